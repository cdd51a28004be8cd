// needle_haystack.cpp
#include "src/infer/needle_haystack.h"

#include <cstring>
#include <fstream>

#include "io/token_dataset.h"
#include "src/common/input_error.h"
#include "src/data/text_input.h"

namespace rw::infer {
namespace {

bool is_hdf5_file(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  return in.read(head, 8) && std::memcmp(head, kSignature, 8) == 0;
}

}  // namespace

std::vector<int32_t> read_haystack(const std::vector<std::string>& paths, const data::Tokenizer& tokenizer,
                                   int64_t min_tokens) {
  if (paths.empty()) throw InputError("needle haystack: no files given (--haystack FILE...)");
  std::vector<int32_t> ids;
  const auto enough = [&] { return static_cast<int64_t>(ids.size()) >= min_tokens; };
  const auto add = [&](const std::vector<int32_t>& more) { ids.insert(ids.end(), more.begin(), more.end()); };
  for (const std::string& file : data::expand_input_paths(paths)) {
    if (enough()) break;
    if (is_hdf5_file(file)) {
      io::TokenDatasetReader reader(file);
      const io::TokenDatasetInfo& info = reader.info();
      if (info.tokenizer != tokenizer.description())
        throw InputError(file + ": a token dataset made with the tokenizer '" + info.tokenizer +
                         "', not this model's '" + tokenizer.description() + "'");
      std::vector<int32_t> tokens;
      for (int64_t doc = 0; doc < info.n_docs && !enough(); ++doc) {
        reader.read_document(doc, &tokens, nullptr);
        add(tokens);
      }
      continue;
    }
    data::TextReader in(file);
    if (data::is_jsonl_name(file)) {
      std::string line;
      for (long long n = 1; !enough() && in.read_line(line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        add(tokenizer.encode(data::jsonl_text_field(line, file + ":" + std::to_string(n))));
      }
    } else {
      add(tokenizer.encode(in.read_all()));
    }
  }
  if (ids.empty()) throw InputError("needle haystack: the files hold no text");
  return ids;
}

}  // namespace rw::infer
