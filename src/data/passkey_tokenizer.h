// passkey_tokenizer.h: the passkey language (passkey.h) written as words, so a model trained on
// the passkey task (the demo's) can be prompted and read like a text model
// (`ringworld generate --tokenizer passkey`). One word per token, separated by single spaces:
//   digits "0".."9" (ids 0-9), "<bos>" "<eos>" "<key>" "<ask>" "<is>" "<dot>" (10-15),
//   needle names "n0".."n15" (16-31), filler words "w32".."wV-1" (ids 32..vocab-1, the id as is).
// encode() splits at any whitespace and accepts exactly these words (no leading zeros, no id
// outside the vocabulary): anything else is an InputError naming the word and its position.
// decode(encode(text)) is the words joined by single spaces; encode(decode(ids)) == ids.
// BOS and EOS are <bos> and <eos>. The vocabulary is the model's: 64 by default
// (PasskeyVocab::kMinVocab), else the spec "passkey:VOCAB".
#pragma once
#include <memory>
#include <string>

#include "src/data/tokenizer.h"

namespace rw::data {

class PasskeyTokenizer : public Tokenizer {
 public:
  explicit PasskeyTokenizer(int64_t vocab_size);  // InputError below PasskeyVocab::kMinVocab
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;  // InputError outside the vocabulary
  int64_t vocab_size() const override { return vocab_size_; }
  std::string description() const override { return "passkey:" + std::to_string(vocab_size_); }
  int32_t bos_id() const override;
  int32_t eos_id() const override;

  std::string word(int32_t id) const;  // one token's word
 private:
  int64_t vocab_size_;
};

// "passkey" (vocabulary 64) or "passkey:VOCAB"; InputError for a malformed or too small VOCAB.
std::unique_ptr<Tokenizer> make_passkey_tokenizer(const std::string& spec);

}  // namespace rw::data
