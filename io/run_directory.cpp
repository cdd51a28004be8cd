// run_directory.cpp
#include "io/run_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "src/common/input_error.h"

namespace rw::io {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::string checkpoint_step_name(const std::string& stage, int64_t step) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%08lld", static_cast<long long>(step));
  return "ckpt-" + stage + "-step" + digits + ".h5";
}

std::string checkpoint_final_name(const std::string& stage) { return "ckpt-" + stage + "-final.h5"; }

bool parse_checkpoint_name(const std::string& name, std::string* stage, int64_t* step, bool* is_final) {
  if (name.rfind("ckpt-", 0) != 0 || !ends_with(name, ".h5")) return false;
  const std::string body = name.substr(5, name.size() - 8);  // between "ckpt-" and ".h5"
  if (ends_with(body, "-final") && body.size() > 6) {
    *stage = body.substr(0, body.size() - 6);
    *step = -1;
    *is_final = true;
    return true;
  }
  const std::size_t at = body.rfind("-step");
  if (at == std::string::npos || at == 0 || at + 5 >= body.size()) return false;
  const std::string digits = body.substr(at + 5);
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) return false;
  *stage = body.substr(0, at);
  *step = std::stoll(digits);
  *is_final = false;
  return true;
}

std::string RunDirectory::file(const std::string& name) const { return path_.empty() ? name : path_ + "/" + name; }

RunDirectoryContents RunDirectory::inspect() const {
  RunDirectoryContents c;
  DIR* dir = opendir(path_.c_str());
  if (!dir) return c;
  c.exists = true;
  while (dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "run.ini") c.has_run_ini = true;
    if (name.rfind("ckpt-", 0) == 0 && (ends_with(name, ".h5") || ends_with(name, ".h5.tmp"))) c.checkpoints.push_back(name);
  }
  closedir(dir);
  std::sort(c.checkpoints.begin(), c.checkpoints.end());
  struct stat info {};
  c.has_metrics = stat(file("metrics.jsonl").c_str(), &info) == 0 && info.st_size > 0;
  c.latest = read_latest();
  return c;
}

std::string RunDirectory::read_latest() const {
  std::ifstream in(file("latest"));
  std::string name;
  if (!(in >> name)) return "";
  return name;
}

void RunDirectory::create() const {
  if (mkdir(path_.c_str(), 0755) == 0) {
    const std::string parent = std::filesystem::path(absolute_path(path_)).parent_path().string();
    sync_directory(parent.empty() ? "/" : parent);
    return;
  }
  if (errno != EEXIST) throw InputError("cannot create run directory '" + path_ + "': " + errno_text());
  struct stat info {};
  if (stat(path_.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    throw InputError("run directory '" + path_ + "' exists and is not a directory");
}

void write_text_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError("cannot write '" + tmp + "': " + errno_text());
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = errno_text();
      close(fd);
      std::remove(tmp.c_str());
      throw InputError("cannot write '" + tmp + "': " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  const bool synced = fsync(fd) == 0;
  const std::string sync_error = synced ? "" : errno_text();
  if (close(fd) != 0 || !synced) {
    std::remove(tmp.c_str());
    throw InputError("cannot write '" + tmp + "' to disk: " + (synced ? errno_text() : sync_error));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    std::remove(tmp.c_str());
    throw InputError("cannot rename '" + tmp + "' to '" + path + "': " + why);
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (!sync_directory(dir.empty() ? "." : dir))
    throw InputError("cannot fsync directory '" + (dir.empty() ? std::string(".") : dir) + "' after replacing '" +
                     path + "': " + errno_text());
}

void RunDirectory::write_file_atomically(const std::string& name, const std::string& text) const {
  write_text_file_atomically(file(name), text);
}

std::vector<std::string> RunDirectory::prune(const std::string& stage, int keep, int64_t current_step,
                                             const std::function<bool(const std::string&)>& belongs) const {
  std::vector<std::pair<int64_t, std::string>> candidates;
  const std::string latest = read_latest();
  for (const std::string& name : inspect().checkpoints) {
    std::string s;
    int64_t step = 0;
    bool is_final = false;
    if (!parse_checkpoint_name(name, &s, &step, &is_final) || is_final || s != stage) continue;
    if (step > current_step) continue;  // a later branch of this run, left alone
    if (!belongs(file(name))) continue;  // another run's file: never ours to remove
    candidates.emplace_back(step, name);
  }
  std::sort(candidates.begin(), candidates.end());
  std::vector<std::string> removed;
  const std::size_t kept = static_cast<std::size_t>(std::max(0, keep));
  for (std::size_t i = 0; i + kept < candidates.size(); ++i) {
    const std::string& name = candidates[i].second;
    if (name == latest) continue;
    if (std::remove(file(name).c_str()) == 0) removed.push_back(name);
  }
  if (!removed.empty()) sync_directory(path_.empty() ? "." : path_);
  return removed;
}

bool sync_directory(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fsync(fd) == 0 || errno == EINVAL;  // some file systems cannot sync directories
  close(fd);
  return ok;
}

std::string absolute_path(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::absolute(path, ec);
  return (ec ? std::filesystem::path(path) : p).lexically_normal().string();
}

std::string file_checksum_text(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError("cannot read '" + path + "' to checksum it: " + errno_text());
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<unsigned char> buffer(1 << 22);
  uLong crc = crc32_z(0L, Z_NULL, 0);
  unsigned long long bytes = 0;
  for (;;) {
    const ssize_t n = read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = errno_text();
      close(fd);
      throw InputError("cannot read '" + path + "' to checksum it: " + why);
    }
    if (n == 0) break;
    crc = crc32_z(crc, buffer.data(), static_cast<z_size_t>(n));
    bytes += static_cast<unsigned long long>(n);
  }
  close(fd);
  char text[64];
  std::snprintf(text, sizeof text, "crc32:0x%08lx bytes:%llu", static_cast<unsigned long>(crc), bytes);
  return text;
}

}  // namespace rw::io
