// prepare_command.cpp: `ringworld prepare`: tokenizes text files into a token dataset (HDF5,
// io/token_dataset.h): one document per file, or one per line of .jsonl files (the "text"
// field). Documents outside [--min-doc-tokens, --max-doc-tokens] are left out (LWM filters by
// length per stage). Runs on rank 0; other ranks wait.
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "io/attn_io.h"
#include "io/token_dataset.h"
#include "mpi/runtime.h"
#include "src/cli/commands.h"
#include "src/common/input_error.h"
#include "src/common/timer.h"
#include "src/data/tokenizer.h"

namespace po = boost::program_options;

namespace rw::cli {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

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
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")
      ("tokenizer", po::value(&tokenizer_spec)->default_value(tokenizer_spec), "byte | sentencepiece:MODEL")
      ("input", po::value(&inputs)->multitoken(), "text files (one document each) or .jsonl (one per line, \"text\")")
      ("output", po::value(&output), "dataset file to write (HDF5, atomic)")
      ("min-doc-tokens", po::value(&min_tokens)->default_value(min_tokens), "leave out shorter documents")
      ("max-doc-tokens", po::value(&max_tokens)->default_value(max_tokens), "leave out longer documents (0: no limit)");
  po::variables_map vm;
  std::unique_ptr<data::Tokenizer> tokenizer;
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      if (is_root) std::cout << "usage: ringworld prepare --tokenizer byte|sentencepiece:MODEL --input FILES... --output DATA.h5\n\n" << desc << "\n";
      return 0;
    }
    if (inputs.empty() || output.empty()) throw InputError("--input and --output are required");
    if (min_tokens < 1 || max_tokens < 0 || (max_tokens && max_tokens < min_tokens))
      throw InputError("--min-doc-tokens must be >= 1 and --max-doc-tokens 0 or >= it");
    tokenizer = data::make_tokenizer(tokenizer_spec);
    io::check_output_path(output);
  } catch (const std::exception& e) {
    if (is_root) std::fprintf(stderr, "ringworld prepare: error: %s\n", e.what());
    return 2;
  }
  std::string error;
  long long kept = 0, too_short = 0, too_long = 0, tokens = 0;
  if (is_root) {
    try {
      for (const auto& path : inputs)
        if (!std::ifstream(path)) throw InputError("cannot read input file '" + path + "'");
      io::TokenDatasetWriter writer(output, tokenizer->vocab_size(), tokenizer->description(), false);
      Progress progress(inputs.size());
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
      for (std::size_t f = 0; f < inputs.size(); ++f) {
        std::ifstream in(inputs[f], std::ios::binary);
        if (ends_with(inputs[f], ".jsonl")) {
          std::string line;
          for (long long n = 1; std::getline(in, line); ++n) {
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
            const std::string where = inputs[f] + ":" + std::to_string(n);
            add(data::jsonl_text_field(line, where), where);
          }
        } else {
          add(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), inputs[f]);
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
    } catch (const InputError& e) {
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
