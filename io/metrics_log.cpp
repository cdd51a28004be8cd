// metrics_log.cpp
#include "io/metrics_log.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>

#include "src/common/input_error.h"

namespace rw::io {

std::string iso_time_utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  return text;
}

void check_metrics_path(const std::string& path) {
  if (path.empty()) throw InputError("--metrics: empty path");
  const std::filesystem::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  struct stat info {};
  if (stat(dir.c_str(), &info) != 0)
    throw InputError("--metrics '" + path + "': directory '" + dir + "' does not exist (create it first)");
  if (!S_ISDIR(info.st_mode)) throw InputError("--metrics '" + path + "': '" + dir + "' is not a directory");
  if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode))
    throw InputError("--metrics '" + path + "' is a directory; name a file");
}

MetricsLog::MetricsLog(const std::string& path) : path_(path) {
  check_metrics_path(path);
  out_.open(path, std::ios::app);
  if (!out_) throw InputError("cannot open metrics file '" + path + "' for writing");
}

void MetricsLog::append(const nlohmann::ordered_json& record) {
  if (!out_.is_open()) return;
  nlohmann::ordered_json line;
  line["time"] = iso_time_utc_now();
  for (const auto& [key, value] : record.items()) line[key] = value;
  out_ << line.dump() << '\n';
  out_.flush();
  if (!out_) throw InputError("cannot write to metrics file '" + path_ + "' (disk full?)");
}

}  // namespace rw::io
