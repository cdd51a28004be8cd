// tokenizer_choice.h: the tokenizer a command that reads or writes text for a model uses
// (generate, eval needle --mode generate): --tokenizer when given (a SentencePiece model file,
// "byte", "passkey[:VOCAB]" or any make_tokenizer spec), else the one the model file records
// (`ringworld import` records tokenizer.model as "sentencepiece:PATH (cksum N)": the file is
// loaded again and must still have that checksum).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "src/data/tokenizer.h"

namespace rw::cli {

// Throws InputError: no tokenizer given and none recorded; an unreadable or changed file; a
// tokenizer with more ids than the model's vocabulary (vocab_size).
std::unique_ptr<data::Tokenizer> open_model_tokenizer(const std::string& given, const std::string& recorded,
                                                      const std::string& model_path, int64_t vocab_size);

}  // namespace rw::cli
