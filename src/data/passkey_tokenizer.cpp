// passkey_tokenizer.cpp
#include "src/data/passkey_tokenizer.h"

#include <cctype>

#include "src/common/input_error.h"
#include "src/data/passkey.h"

namespace rw::data {
namespace {

const char* const kSpecialWords[] = {"<bos>", "<eos>", "<key>", "<ask>", "<is>", "<dot>"};  // ids 10-15

// The decimal number of `text` from `from` on, when it is one in canonical form (digits only,
// no leading zero, at most 9 digits); else -1.
int64_t canonical_number(const std::string& text, std::size_t from) {
  const std::size_t n = text.size() - from;
  if (n == 0 || n > 9 || (n > 1 && text[from] == '0')) return -1;
  int64_t value = 0;
  for (std::size_t i = from; i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return -1;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

}  // namespace

PasskeyTokenizer::PasskeyTokenizer(int64_t vocab_size) : vocab_size_(vocab_size) {
  if (vocab_size < PasskeyVocab::kMinVocab)
    throw InputError("passkey tokenizer: the vocabulary must be at least " + std::to_string(PasskeyVocab::kMinVocab) +
                     " (got " + std::to_string(vocab_size) + ")");
}

int32_t PasskeyTokenizer::bos_id() const { return PasskeyVocab::kBos; }
int32_t PasskeyTokenizer::eos_id() const { return PasskeyVocab::kEos; }

std::string PasskeyTokenizer::word(int32_t id) const {
  if (id < 0 || id >= vocab_size_)
    throw InputError("token id " + std::to_string(id) + " is not in the passkey vocabulary (0.." +
                     std::to_string(vocab_size_ - 1) + ")");
  if (id < PasskeyVocab::kBos) return std::to_string(id - PasskeyVocab::kDigit0);
  if (id < PasskeyVocab::kFirstName) return kSpecialWords[id - PasskeyVocab::kBos];
  if (id < PasskeyVocab::kFirstWord) return "n" + std::to_string(id - PasskeyVocab::kFirstName);
  return "w" + std::to_string(id);
}

std::string PasskeyTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i) text += ' ';
    text += word(ids[i]);
  }
  return text;
}

std::vector<int32_t> PasskeyTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  std::size_t at = 0;
  while (true) {
    while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
    if (at == text.size()) break;
    std::size_t end = at;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    const std::string w = text.substr(at, end - at);
    int64_t id = -1;
    if (w.size() == 1 && std::isdigit(static_cast<unsigned char>(w[0]))) id = PasskeyVocab::kDigit0 + (w[0] - '0');
    for (int s = 0; s < 6 && id < 0; ++s)
      if (w == kSpecialWords[s]) id = PasskeyVocab::kBos + s;
    if (id < 0 && w[0] == 'n') {
      const int64_t n = canonical_number(w, 1);
      if (n >= 0 && n < PasskeyVocab::kNames) id = PasskeyVocab::kFirstName + n;
    }
    if (id < 0 && w[0] == 'w') {
      const int64_t n = canonical_number(w, 1);
      if (n >= PasskeyVocab::kFirstWord && n < vocab_size_) id = n;
    }
    if (id < 0)
      throw InputError("passkey tokenizer: unknown word '" + w + "' (word " + std::to_string(ids.size() + 1) +
                       "; expected 0-9, <bos> <eos> <key> <ask> <is> <dot>, n0-n15 or w32-w" +
                       std::to_string(vocab_size_ - 1) + ")");
    ids.push_back(static_cast<int32_t>(id));
    at = end;
  }
  return ids;
}

std::unique_ptr<Tokenizer> make_passkey_tokenizer(const std::string& spec) {
  if (spec == "passkey") return std::make_unique<PasskeyTokenizer>(PasskeyVocab::kMinVocab);
  const std::string prefix = "passkey:";
  const int64_t vocab = spec.rfind(prefix, 0) == 0 ? canonical_number(spec, prefix.size()) : -1;
  if (vocab < 0)
    throw InputError("tokenizer '" + spec + "': expected passkey or passkey:VOCAB (VOCAB a whole number)");
  return std::make_unique<PasskeyTokenizer>(vocab);
}

}  // namespace rw::data
