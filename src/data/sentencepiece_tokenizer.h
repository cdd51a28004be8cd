// sentencepiece_tokenizer.h: a SentencePiece model file (LLaMA's tokenizer.model, or one trained
// with spm_train) as a Tokenizer. Compiled only when CMake found SentencePiece, which then defines
// RINGWORLD_HAVE_SENTENCEPIECE; make_tokenizer("sentencepiece:MODEL") is the way in.
//
// Conventions, the byte tokenizer's: encode() returns the model's pieces for the text and nothing
// else: no BOS and no EOS per document (LLaMA's tokenizer adds BOS when asked; ringworld does not).
// A dataset keeps document boundaries in /doc_offsets and the packed loader restarts segment ids
// and positions per document, so a boundary token adds nothing for training from scratch; and the
// dataset's tokens are exactly what `spm_encode --output_format=id` gives for the same text.
// decode(encode(text)) == text for models that do not rewrite text: identity normalization, extra
// whitespace kept and byte fallback, as LLaMA's model (a model with NFKC normalization or without
// byte fallback maps some text to its normal form or to <unk>). vocab_size() is the model's piece
// count. description() is "sentencepiece:ABSOLUTE_PATH (cksum CRC BYTES)": the model file's POSIX
// checksum and size, the numbers `cksum MODEL` prints, so a dataset names the exact model.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/data/tokenizer.h"

namespace rw::data {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Reads and loads the model; throws InputError naming the file when it is missing, unreadable,
  // empty or not a SentencePiece model.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;
  std::vector<int32_t> encode(const std::string& text) const override;
  // Throws InputError for an id outside [0, vocab_size).
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::string description() const override { return description_; }
  int32_t bos_id() const override { return bos_id_; }  // the model's (LLaMA: 1, 2), -1 if disabled
  int32_t eos_id() const override { return eos_id_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1;
  std::string description_;
};

}  // namespace rw::data
