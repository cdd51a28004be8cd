// tokenizer.h: text to token ids. The built-in byte-level tokenizer needs nothing: each UTF-8
// byte is one token (vocabulary 256), so any text round-trips exactly. SentencePiece models
// (sentencepiece_tokenizer.h) when built with libsentencepiece. Tokenizers add no special tokens
// (no BOS/EOS): documents are delimited by the dataset's /doc_offsets, not by tokens. A tokenizer
// names its special ids (bos_id/eos_id, -1 when it has none, as the byte tokenizer) for the
// callers that add them: chat templates and generation's stop token (src/infer/chat_template.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rw::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::string description() const = 0;  // stored with datasets
  virtual int32_t bos_id() const { return -1; }  // -1: none
  virtual int32_t eos_id() const { return -1; }
};

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return 256; }
  std::string description() const override { return "byte"; }
};

// "byte", "passkey" or "passkey:VOCAB" (the passkey task's words, passkey_tokenizer.h), or
// "sentencepiece:MODEL" (a SentencePiece model file, e.g. LLaMA's tokenizer.model)
// when built with SentencePiece (RINGWORLD_HAVE_SENTENCEPIECE). Throws InputError for an unknown
// spec, a bad model file, or sentencepiece:MODEL in a build without SentencePiece (the message
// says how to get it).
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& spec);

// The "text" field of one JSON object per line (.jsonl; parsed with simdjson). Throws InputError
// (with `where`, e.g. "file.jsonl:12") when the line is not valid JSON (RFC 8259, UTF-8), not an
// object, or has no string "text" field or more than one.
std::string jsonl_text_field(const std::string& line, const std::string& where);

}  // namespace rw::data
