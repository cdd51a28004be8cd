// run_directory.h: the files of a training run's directory and how they change. Plain values
// only (no src/ types): the training driver decides, this writes and reads.
//   run.ini                       the run's plan (written once; --resume reads it back)
//   latest                        name of the newest complete checkpoint
//   ckpt-<stage>-step<N>.h5       step checkpoints (N zero-padded to 8 digits)
//   ckpt-<stage>-final.h5         a stage's final checkpoint: the stage is done
//   metrics.jsonl                 the metrics log (io/metrics_log.h)
// Small files (run.ini, latest) are written atomically: a temporary file is written and
// fsync'd, renamed over the name, and the directory fsync'd so that the rename itself survives
// a crash. Methods act on this process only: the driver calls the writing ones on one rank.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rw::io {

std::string checkpoint_step_name(const std::string& stage, int64_t step);
std::string checkpoint_final_name(const std::string& stage);
// Parses "ckpt-<stage>-step<N>.h5" (step N) or "ckpt-<stage>-final.h5" (is_final); false for
// any other name.
bool parse_checkpoint_name(const std::string& name, std::string* stage, int64_t* step, bool* is_final);

struct RunDirectoryContents {
  bool exists = false;
  bool has_run_ini = false;
  bool has_metrics = false;               // a non-empty metrics.jsonl
  std::string latest;                     // what `latest` names ("" without it)
  std::vector<std::string> checkpoints;   // ckpt-*.h5 and ckpt-*.h5.tmp names, sorted
  // Anything a run leaves: then the directory belongs to a run and a new one must not mix in.
  bool holds_a_run() const { return has_run_ini || has_metrics || !latest.empty() || !checkpoints.empty(); }
};

class RunDirectory {
 public:
  explicit RunDirectory(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const;  // path/name

  RunDirectoryContents inspect() const;
  std::string read_latest() const;  // "" when there is none

  // Creates the directory (not its parents). Throws InputError naming the path and the reason.
  void create() const;
  // Atomic replacement of path/name (see above). Throws InputError.
  void write_file_atomically(const std::string& name, const std::string& text) const;
  void set_latest(const std::string& checkpoint_name) const { write_file_atomically("latest", checkpoint_name + "\n"); }

  // Removes step checkpoints of `stage` so that at most `keep` remain among those that
  // `belongs` to this run and were saved at steps <= current_step (a checkpoint of a later step
  // is a branch this run left by resuming from an earlier one: never counted, never removed).
  // Never removes the checkpoint `latest` names, nor one that does not belong to the run. Returns
  // the names removed.
  std::vector<std::string> prune(const std::string& stage, int keep, int64_t current_step,
                                 const std::function<bool(const std::string& path)>& belongs) const;

 private:
  std::string path_;
};

// `text` as the whole of `path`, atomically: a temporary beside it, fsync'd, renamed over it, the
// directory fsync'd. Throws InputError naming the file.
void write_text_file_atomically(const std::string& path, const std::string& text);

// fsync of a directory, so that renames and creations in it are durable. False if it failed.
bool sync_directory(const std::string& path);

// Absolute, normalised form of a path relative to the current directory (no symlinks resolved).
std::string absolute_path(const std::string& path);

// "crc32:0x1a2b3c4d bytes:12345": the CRC-32 (zlib's) and size of a file's contents, which
// run.ini records for each dataset file. Throws InputError when the file cannot be read.
std::string file_checksum_text(const std::string& path);

}  // namespace rw::io
