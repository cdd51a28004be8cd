// prepare_command.cpp: `ringworld prepare`: tokenizes text files into a token dataset (HDF5,
// io/token_dataset.h): one document per file, or one per line of .jsonl files (the "text"
// field). Documents outside [--min-doc-tokens, --max-doc-tokens] are left out (LWM filters by
// length per stage). Runs on rank 0; other ranks wait. With --vision: vision-language records
// (src/cli/prepare_vision.h).
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "io/attn_io.h"
#include "io/token_dataset.h"
#include "mpi/runtime.h"
#include "src/cli/commands.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/cli/prepare_vision.h"
#include "src/data/text_input.h"
#include "src/data/tokenizer.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

// Progress: a bar redrawn in place on a terminal, a plain line every 10% otherwise.
class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total), tty_(isatty(fileno(stderr))) {}
  void update(std::size_t done, long long docs, long long tokens) {
    const int percent = total_ ? static_cast<int>(100 * done / total_) : 100;
    if (tty_) {
      const int width = 30, filled = width * percent / 100;
      std::fprintf(stderr, "\r  [%s%s] %3d%%  %lld docs, %lld tokens", std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), percent, docs, tokens);
      if (done == total_) std::fprintf(stderr, "\n");
    } else if (percent >= next_percent_ || done == total_) {
      std::fprintf(stderr, "  %3d%%  %lld docs, %lld tokens\n", percent, docs, tokens);
      next_percent_ = percent + 10;
    }
  }

 private:
  std::size_t total_;
  bool tty_;
  int next_percent_ = 0;
};

}  // namespace

int run_prepare(int argc, char** argv) {
  const bool is_root = mpi::world_rank() == 0;
  std::string tokenizer_spec = "byte", output;
  std::vector<std::string> inputs;
  int64_t min_tokens = 1, max_tokens = 0;
  bool vision = false;
  PrepareVisionOptions v;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")
      ("tokenizer", po::value(&tokenizer_spec)->default_value(tokenizer_spec), "byte | sentencepiece:MODEL")
      ("input", po::value(&inputs)->multitoken(),
       "text files (one document each), .jsonl files (one per line, \"text\"), or directories of them; "
       "gzip and zstd files are decompressed")
      ("output", po::value(&output), "dataset file to write (HDF5, atomic)")
      ("min-doc-tokens", count(&min_tokens)->min(1)->default_value(min_tokens), "leave out shorter documents (K/M suffixes)")
      ("max-doc-tokens", count(&max_tokens)->min(0)->default_value(max_tokens), "leave out longer documents (0: no limit)");
  po::options_description vision_desc("vision-language (--vision)");
  vision_desc.add_options()
      ("vision", po::bool_switch(&vision),
       "inputs are .jsonl records {\"text\", \"images\": [...]} or {\"text\", \"video\": FILE_OR_DIR, \"fps\", \"max_frames\"}, "
       "optional \"task\": caption | generate; paths relative to the .jsonl file")
      ("vqgan", po::value(&v.vqgan), "encode the frames here with this VQGAN weight file (rank 0)")
      ("codes", po::value(&v.codes)->multitoken(), "or take them from CODES.h5 file(s) of `ringworld vqgan encode` (by source name)")
      ("vision-task", po::value(&v.task)->default_value(v.task),
       "records without \"task\": caption (vision, then the text as target), generate (text, then the vision as target) or both "
       "(one document each)")
      ("fps", po::value(&v.fps), "sample video files without \"fps\" at this rate (default: every frame; frame directories are taken whole)")
      ("max-frames", count(&v.max_frames)->min(1), "at most this many frames a video, chosen uniformly (LWM's max_n_frames)")
      ("vision-vocab-size", count(&v.vision_vocab)->min(3), "vision vocabulary (default: codebook + 2 rounded up to 256: LWM's 8448)")
      ("device", po::value(&v.device)->default_value(v.device), "device of the VQGAN (--vqgan)")
      ("batch", count(&v.batch)->min(1)->default_value(v.batch), "frames per VQGAN pass (--vqgan)");
  desc.add(vision_desc);
  po::variables_map vm;
  std::unique_ptr<data::Tokenizer> tokenizer;
  try {
    store_command_line(parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root)
        std::cout << "usage: ringworld prepare --tokenizer byte|sentencepiece:MODEL --input FILES... --output DATA.h5\n"
                     "       ringworld prepare --vision --vqgan VQ.h5 | --codes CODES.h5... --tokenizer T --input RECORDS.jsonl... --output DATA.h5\n\n"
                  << desc << "\n";
      return 0;
    }
    if (inputs.empty() || output.empty()) throw InputError("--input and --output are required");
    if (vision) {
      if (v.vqgan.empty() == v.codes.empty()) throw InputError("--vision needs --vqgan VQ.h5 or --codes CODES.h5 (one of them)");
      if (v.task != "caption" && v.task != "generate" && v.task != "both")
        throw InputError("--vision-task must be caption, generate or both (got '" + v.task + "')");
      if (vm.count("fps") && !(v.fps > 0 && v.fps <= 1000)) throw InputError("--fps must be in (0, 1000]");
    } else {
      for (const char* name : {"vqgan", "codes", "fps", "max-frames", "vision-vocab-size"})
        if (vm.count(name)) throw InputError(std::string("--") + name + " is for --vision");
    }
    if (max_tokens && max_tokens < min_tokens)
      throw InputError("--max-doc-tokens (" + std::to_string(max_tokens) + ") must be 0 (no limit) or at least --min-doc-tokens (" +
                       std::to_string(min_tokens) + ")");
    tokenizer = data::make_tokenizer(tokenizer_spec);
    io::check_output_path(output);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld prepare: error: %s\n", e.what());
    return 2;
  }
  if (vision) {
    v.tokenizer = tokenizer_spec;
    v.inputs = inputs;
    v.output = output;
    v.min_doc_tokens = min_tokens;
    v.max_doc_tokens = max_tokens;
    return run_prepare_vision(v);
  }
  std::string error;
  long long kept = 0, too_short = 0, too_long = 0, tokens = 0;
  if (is_root) {
    try {
      const std::vector<std::string> files = data::expand_input_paths(inputs);
      if (files.size() != inputs.size())
        std::printf("ringworld prepare: %zu input file(s) (directories expanded)\n", files.size());
      io::TokenDatasetWriter writer(output, tokenizer->vocab_size(), tokenizer->description(), false);
      Progress progress(files.size());
      const double t0 = wall_seconds();
      auto add = [&](const std::string& text, const std::string& where) {
        if (text.empty()) throw InputError(where + ": empty document");
        const std::vector<int32_t> ids = tokenizer->encode(text);
        if (static_cast<int64_t>(ids.size()) < min_tokens) return void(++too_short);
        if (max_tokens && static_cast<int64_t>(ids.size()) > max_tokens) return void(++too_long);
        writer.add_document(ids);
        ++kept;
        tokens += static_cast<long long>(ids.size());
      };
      for (std::size_t f = 0; f < files.size(); ++f) {
        data::TextReader in(files[f]);  // decompresses gzip/zstd; refuses other archives and binary files
        if (data::is_jsonl_name(files[f])) {
          std::string line;
          for (long long n = 1; in.read_line(line); ++n) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
            const std::string where = files[f] + ":" + std::to_string(n);
            add(data::jsonl_text_field(line, where), where);
          }
        } else {
          add(in.read_all(), files[f]);
        }
        progress.update(f + 1, kept, tokens);
      }
      if (kept == 0) throw InputError("no document passed the length bounds (" + std::to_string(too_short) +
                                      " too short, " + std::to_string(too_long) + " too long)");
      writer.finish();
      std::printf("ringworld prepare: wrote %s: %lld documents, %lld tokens (%s tokenizer, vocabulary %lld) in %.1f s; "
                  "left out %lld shorter than %lld and %lld longer than %lld tokens\n",
                  output.c_str(), kept, tokens, tokenizer->description().c_str(),
                  static_cast<long long>(tokenizer->vocab_size()), wall_seconds() - t0, too_short,
                  static_cast<long long>(min_tokens), too_long, static_cast<long long>(max_tokens));
    } catch (const std::exception& e) {  // InputError, or e.g. an allocation failure: one message, no abort
      error = e.what();
    }
  }
  if (!(error = mpi::agree_on_error(error)).empty()) {
    if (is_root) std::fprintf(stderr, "ringworld prepare: error: %s\n", error.c_str());
    return 1;
  }
  return 0;
}

}  // namespace rw::cli
