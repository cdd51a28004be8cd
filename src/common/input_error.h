// input_error.h: bad user input (files, options, configs). Thrown where input is read or
// validated; caught in each command's main, where all ranks agree on one message, print it
// once and exit non-zero (see mpi/runtime.h agree_on_error).
#pragma once
#include <stdexcept>
#include <string>

namespace rw {

struct InputError : std::runtime_error {
  explicit InputError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace rw
