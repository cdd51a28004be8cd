// passkey.h: the built-in long-context retrieval task (LWM's needle in a haystack, in a small
// token language that needs no tokenizer). A document is
//   <bos> filler ... <key> NAME <is> d1 .. dk <dot> filler ... <ask> NAME <is> d1 .. dk <eos>
// with the needle (<key> NAME <is> digits <dot>) at a chosen depth of the filler; the answer
// repeats the needle's "NAME <is> digits", so retrieval is in-context copying (an induction
// head: find the earlier "<is>", copy what follows). The digits of an answer are distinct
// (while digits <= 10), so each one also marks its place. Filler is a learnable language:
// sentences "SUBJECT VERB OBJECT <dot>" whose verb and object classes depend on the subject;
// with document facts (the default) each document fixes one verb and object per subject, so
// a subject's later sentences are predictable by copying its first one. The filler loss thus
// rewards the same copying the needle needs, at every distance, which makes the retrieval
// skill form in a few hundred steps of a small model. Drawn by a seeded generator.
// Multi-needle: N needles with distinct names, R of them asked (one question each).
// The answer digits are the targets that matter; their tokens carry `answer_weight` in the loss.
// The same generator serves training and evaluation with separate seeds.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "src/attention/layout.h"
#include "src/data/batch.h"

namespace rw::data {

// Token ids of the passkey language.
struct PasskeyVocab {
  static constexpr int32_t kDigit0 = 0;  // digits 0..9
  static constexpr int32_t kBos = 10, kEos = 11, kKey = 12, kAsk = 13, kIs = 14, kDot = 15;
  static constexpr int32_t kFirstName = 16, kNames = 16;  // needle names 16..31
  static constexpr int32_t kFirstWord = 32;               // filler words 32..vocab-1
  static constexpr int32_t kMinVocab = 64;
};

struct PasskeyOptions {
  int digits = 5;               // answer length
  int needles = 1;              // needles in the document
  int asked = 1;                // questions (answers), <= needles
  float answer_weight = 100.f;  // loss weight of each answer digit (filler tokens weigh 1)
  int vocab_size = 64;
  bool distinct_digits = true;  // no digit twice in an answer (while digits <= 10)
  bool document_facts = true;   // filler: one fixed predicate per subject in each document
};

struct PasskeyDocument {
  std::vector<int32_t> tokens;
  std::vector<int> answer_positions;  // token indices of answer digits (targets at index - 1)
  std::vector<int> needle_positions;  // index of each needle's <key> token
};

// One document of exactly `length` tokens with its (first) needle at depth_percent (0-100) of
// the filler. `length` must leave room: at least needle and question sizes plus a sentence.
PasskeyDocument make_passkey_document(const PasskeyOptions& options, int length, double depth_percent,
                                      uint64_t seed, uint64_t index);

// Smallest length make_passkey_document accepts for these options.
int passkey_min_length(const PasskeyOptions& options);

// Training source: answer digits weighted, needles at uniform random depths. Even sequences of
// the stream pack documents of log-uniform lengths from passkey_min_length to seq_len (masked
// packing; as many documents of each octave of lengths: short ones teach retrieval quickly);
// odd sequences are one document of the full seq_len, so the longest retrievals of a stage are
// trained as often as the short ones.
class PasskeySource : public DataSource {
 public:
  PasskeySource(PasskeyOptions options, uint64_t seed, int seq_len, int global_sequences, int dp, int dp_rank, int sp,
                int sp_rank, Layout layout);
  LocalBatch next() override;
  uint64_t cursor() const override { return cursor_; }
  void seek(uint64_t cursor) override { cursor_ = cursor; }

 private:
  PasskeyOptions options_;
  uint64_t seed_;
  int seq_len_, global_sequences_, dp_, dp_rank_, sp_, sp_rank_;
  Layout layout_;
  uint64_t cursor_ = 0;
};

}  // namespace rw::data
