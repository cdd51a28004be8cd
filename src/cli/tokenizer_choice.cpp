// tokenizer_choice.cpp: see tokenizer_choice.h.
#include "src/cli/tokenizer_choice.h"

#include "src/common/input_error.h"

namespace rw::cli {
namespace {

// A make_tokenizer spec from what the user typed: a bare path is a SentencePiece model.
std::string spec_of(const std::string& given) {
  if (given == "byte" || given == "passkey" || given.rfind("passkey:", 0) == 0 ||
      given.rfind("sentencepiece:", 0) == 0)
    return given;
  return "sentencepiece:" + given;
}

}  // namespace

std::unique_ptr<data::Tokenizer> open_model_tokenizer(const std::string& given, const std::string& recorded,
                                                      const std::string& model_path, int64_t vocab_size) {
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (!given.empty()) {
    tokenizer = data::make_tokenizer(spec_of(given));
  } else {
    if (recorded.empty())
      throw InputError("'" + model_path + "' records no tokenizer: give --tokenizer (tokenizer.model, byte or passkey)");
    // "sentencepiece:PATH (cksum N)" or a plain spec ("byte").
    const std::size_t note = recorded.find(" (cksum ");
    tokenizer = data::make_tokenizer(recorded.substr(0, note));
    if (note != std::string::npos && tokenizer->description() != recorded)
      throw InputError("the tokenizer '" + model_path + "' records has changed since: recorded " + recorded +
                       ", found " + tokenizer->description() + " (give --tokenizer to use it anyway)");
  }
  if (tokenizer->vocab_size() > vocab_size)
    throw InputError("tokenizer " + tokenizer->description() + " has " + std::to_string(tokenizer->vocab_size()) +
                     " token ids but the model '" + model_path + "' has a vocabulary of " + std::to_string(vocab_size));
  return tokenizer;
}

}  // namespace rw::cli
