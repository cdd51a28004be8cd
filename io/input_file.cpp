// input_file.cpp
#include "io/input_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/common/input_error.h"

namespace rw::io {

void check_input_file(const std::string& path, const std::string& what) {
  struct stat info {};
  if (path.empty()) throw InputError(what + ": empty path");
  if (stat(path.c_str(), &info) != 0)
    throw InputError(what + " '" + path + "' " + (errno == ENOENT ? "does not exist" : std::string("cannot be read: ") + std::strerror(errno)));
  if (S_ISDIR(info.st_mode)) throw InputError(what + " '" + path + "' is a directory, expected a file");
  if (!S_ISREG(info.st_mode)) throw InputError(what + " '" + path + "' is not a regular file");
  if (access(path.c_str(), R_OK) != 0) throw InputError(what + " '" + path + "' is not readable: " + std::strerror(errno));
}

}  // namespace rw::io
