// input_file.h: a file the user named for reading, checked with plain POSIX calls before HDF5
// (or MPI-IO, which prints its own pages of errors for a directory) ever sees it.
#pragma once
#include <string>

namespace rw::io {

// Throws InputError with one line when `path` does not exist, is a directory, is not a
// regular file, or is not readable. `what` names the role ("checkpoint", "input").
void check_input_file(const std::string& path, const std::string& what = "input file");

}  // namespace rw::io
