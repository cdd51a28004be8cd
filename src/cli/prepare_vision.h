// prepare_vision.h: `ringworld prepare --vision`: vision-language .jsonl records
// (src/data/vision_record.h) to a token dataset in the combined id space
// (src/vision/vision_sequence.h): text ids from the tokenizer, vision token v as text_vocab + v,
// a loss mask (LWM's: the conditioning part 0), and the attribute vision_vocab_size
// (io/token_dataset.h). Frames come from a VQGAN run here (--vqgan VQ.h5, on rank 0) or from
// CODES.h5 files of `vqgan encode` (--codes, looked up by source name: src/cli/vision_inputs.h).
// Paths in a record are relative to its .jsonl file's directory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace rw::cli {

struct PrepareVisionOptions {
  std::string tokenizer = "byte";
  std::vector<std::string> inputs;  // .jsonl files or directories of them
  std::string output;
  std::string vqgan;                // VQ.h5, or
  std::vector<std::string> codes;   // CODES.h5 files
  std::string device = "cpu";
  int64_t batch = 4;
  double fps = 0;                   // videos without "fps": 0 = every frame
  int64_t max_frames = 0;           // videos without "max_frames": 0 = no limit
  std::string task = "caption";     // records without "task": caption | generate | both
  int64_t vision_vocab = 0;         // 0: LWM's rule (codebook + 2 rounded up to 256)
  int64_t min_doc_tokens = 1, max_doc_tokens = 0;
};

// Collective (every rank reads CODES.h5; rank 0 does the rest). Returns the exit code after
// printing any error once.
int run_prepare_vision(const PrepareVisionOptions& options);

}  // namespace rw::cli
