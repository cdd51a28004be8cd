// needle_haystack.h: the haystack of `eval needle --mode generate`: real text from the user's
// files as token ids of the model's tokenizer (needle_prompt.h repeats and cuts them).
//   - token datasets (HDF5, recognised by the file's signature; io/token_dataset.h): their
//     documents' tokens, when the dataset's tokenizer is this one (the description matches,
//     e.g. "byte" or SentencePiece's path and checksum), else InputError naming both;
//   - .jsonl (also .gz, .zst): the "text" field of each line, one document each (LWM's pg19.jsonl);
//   - any other file: plain text (gzip and zstd decompressed, directories expanded: text_input.h).
// Files are read in the order given and documents appended until min_tokens are in hand (a
// plain text file is read whole). Every problem is an InputError naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/data/tokenizer.h"

namespace rw::infer {

std::vector<int32_t> read_haystack(const std::vector<std::string>& paths, const data::Tokenizer& tokenizer,
                                   int64_t min_tokens);

}  // namespace rw::infer
