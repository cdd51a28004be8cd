// metrics_log.h: the JSON-lines metrics log of a training run (one JSON object per line,
// appended and flushed as it happens, so a killed run loses at most the line being written).
// Every record gets "time", the UTC wall-clock time as ISO 8601 with milliseconds
// ("2024-05-01T12:34:56.789Z"), as its first key. The records themselves are the driver's:
//   {"time", "type":"header", version, commit, command line, world size, grid, run id, ...}
//   {"time", "stage", "step", "loss", ...}                        one per optimizer step
//   {"time", "type":"validation", "stage_name", "after_step", "val_loss", "by_position":[...]}
//   {"time", "type":"stage_end", "stage_name", ...}
// Only step records have a "stage" key, so `grep '"stage":"b"'` finds a stage's steps.
// Free of src/ types: records are nlohmann::ordered_json objects.
#pragma once
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace rw::io {

// "2024-05-01T12:34:56.789Z" for now (UTC).
std::string iso_time_utc_now();

// Throws InputError when path cannot become a metrics log: its directory is missing or not a
// directory, or the path is a directory. Checked before training starts.
void check_metrics_path(const std::string& path);

class MetricsLog {
 public:
  MetricsLog() = default;  // closed: append() does nothing
  // Opens path for appending (created if missing). Throws InputError naming the path.
  explicit MetricsLog(const std::string& path);
  bool is_open() const { return out_.is_open(); }
  const std::string& path() const { return path_; }
  // Writes {"time": now, ...record} as one line and flushes. Throws InputError when the write
  // fails (a full disk must not pass silently).
  void append(const nlohmann::ordered_json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace rw::io
