// csv_append.cpp
#include "src/bench/csv_append.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "src/common/input_error.h"

namespace rw::bench {
namespace {

std::string directory_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Holds an exclusive flock on a directory for its lifetime.
class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& dir) : fd_(open(dir.c_str(), O_RDONLY | O_DIRECTORY)) {
    if (fd_ < 0) throw InputError("--csv: cannot open directory '" + dir + "': " + std::strerror(errno));
    while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  ~DirectoryLock() {
    flock(fd_, LOCK_UN);
    close(fd_);
  }
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

 private:
  int fd_;
};

}  // namespace

void append_csv_row(const std::string& path, const std::string& header, const std::string& row, bool check_only) {
  if (path.empty() || path.back() == '/') throw InputError("--csv: '" + path + "' is not a file name");
  const std::string dir = directory_of(path);
  if (access(dir.c_str(), W_OK) != 0)
    throw InputError("--csv: cannot write in directory '" + dir + "': " + std::strerror(errno));
  DirectoryLock lock(dir);
  std::string existing;
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream text;
      text << in.rdbuf();
      existing = text.str();
    }
  }
  if (!existing.empty()) {
    const std::string first = existing.substr(0, existing.find('\n'));
    if (first != header)
      throw InputError("--csv: '" + path + "' has other columns (its first line is not this version's header); " +
                       "write to a new file");
    if (existing.back() != '\n') existing += '\n';  // an unterminated last line (edited by hand)
  }
  if (check_only) return;
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) throw InputError("--csv: cannot write '" + tmp + "': " + std::strerror(errno));
  const std::string text = (existing.empty() ? header + "\n" : existing) + row + "\n";
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 &&
                       fsync(fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    throw InputError("--csv: writing '" + tmp + "' failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw InputError("--csv: cannot rename '" + tmp + "' to '" + path + "': " + why);
  }
}

}  // namespace rw::bench
