// passkey.cpp
#include "src/data/passkey.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "src/common/fatal.h"
#include "src/common/input_error.h"
#include "src/data/global_batch.h"
#include "src/model/param_init.h"

namespace rw::data {
namespace {

// splitmix64's finaliser: a bijection of 64-bit words that mixes every input bit into every
// output bit.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The key of training sequence `sequence` of the stream seeded `seed`: distinct sequences get
// distinct keys (both steps are bijections for a fixed seed), unrelated to the indices that
// make_passkey_document's callers pass with a seed of their own.
uint64_t sequence_key(uint64_t seed, uint64_t sequence) {
  return mix64(seed ^ mix64(sequence + 0x9e3779b97f4a7c15ull));
}

struct Draw {
  uint64_t seed, stream, counter = 0;
  double uniform() { return model::hashed_unit_interval(seed, stream, counter++); }
  int below(int n) { return std::min(n - 1, static_cast<int>(uniform() * n)); }
};

// Filler grammar: words split into subjects, verbs and objects; subject s allows the verbs of
// group s % 4 and the objects of group (s / 4) % 4, so a model can learn which follow which.
// With document facts, each document fixes one verb and one object per subject (drawn from
// the subject's groups) and every sentence about that subject repeats them.
struct Grammar {
  int first, n_subjects, n_verbs, n_objects;
  explicit Grammar(int vocab) {
    const int words = vocab - PasskeyVocab::kFirstWord;
    first = PasskeyVocab::kFirstWord;
    n_subjects = std::max(4, words / 4);
    n_verbs = std::max(4, (words - n_subjects) / 2);
    n_objects = std::max(4, words - n_subjects - n_verbs);
  }
  // Verb and object word ids of a sentence about subject s.
  std::pair<int32_t, int32_t> predicate(Draw& d, int s) const {
    const int verb_group = s % 4, object_group = (s / 4) % 4;
    const int v = (verb_group + 4 * d.below(std::max(1, n_verbs / 4))) % n_verbs;
    const int o = (object_group + 4 * d.below(std::max(1, n_objects / 4))) % n_objects;
    return {first + n_subjects + v, first + n_subjects + n_verbs + o};
  }
  // Sentences until `out` holds at least `room` tokens; facts[s] (when given) fixes subject s's predicate.
  void fill(Draw& d, const std::vector<std::pair<int32_t, int32_t>>* facts, int room, std::vector<int32_t>& out) const {
    while (static_cast<int>(out.size()) < room) {
      const int s = d.below(n_subjects);
      const auto p = facts ? (*facts)[s] : predicate(d, s);
      out.push_back(first + s);
      out.push_back(p.first);
      out.push_back(p.second);
      out.push_back(PasskeyVocab::kDot);
    }
  }
};

}  // namespace

int passkey_min_length(const PasskeyOptions& o) {
  // <bos>, needles (key, name, is, digits, dot), one sentence, questions (ask, name, is, digits), <eos>
  return 1 + o.needles * (4 + o.digits) + 4 + o.asked * (3 + o.digits) + 1;
}

PasskeyDocument make_passkey_document(const PasskeyOptions& o, int length, double depth_percent, uint64_t seed,
                                      uint64_t index) {
  if (o.vocab_size < PasskeyVocab::kMinVocab)
    throw InputError("the passkey task needs a vocabulary of at least " + std::to_string(PasskeyVocab::kMinVocab));
  if (o.needles < 1 || o.needles > PasskeyVocab::kNames || o.asked < 1 || o.asked > o.needles || o.digits < 1)
    throw InputError("passkey: needles must be 1-16, asked 1..needles, digits >= 1");
  if (length < passkey_min_length(o))
    throw InputError("passkey: a document of " + std::to_string(length) + " tokens is too short (at least " +
                     std::to_string(passkey_min_length(o)) + ")");
  Draw d{seed, index};
  const Grammar grammar(o.vocab_size);
  // Names and values of the needles.
  std::vector<int32_t> names;
  while (static_cast<int>(names.size()) < o.needles) {
    const int32_t name = PasskeyVocab::kFirstName + d.below(PasskeyVocab::kNames);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::vector<std::vector<int32_t>> values(o.needles);
  const bool distinct = o.distinct_digits && o.digits <= 10;
  for (auto& v : values)
    while (static_cast<int>(v.size()) < o.digits) {
      const int32_t digit = PasskeyVocab::kDigit0 + d.below(10);
      if (!distinct || std::find(v.begin(), v.end(), digit) == v.end()) v.push_back(digit);
    }
  const int question_tokens = o.asked * (3 + o.digits) + 1;  // + <eos>
  const int needle_tokens = 4 + o.digits;
  const int filler_room = length - 1 - question_tokens - o.needles * needle_tokens;
  // Filler as whole sentences, cut to the room.
  std::vector<std::pair<int32_t, int32_t>> facts;
  if (o.document_facts)
    for (int s = 0; s < grammar.n_subjects; ++s) facts.push_back(grammar.predicate(d, s));
  std::vector<int32_t> filler;
  grammar.fill(d, o.document_facts ? &facts : nullptr, filler_room, filler);
  filler.resize(filler_room);
  // Needle positions in the filler: the first at the requested depth (at a sentence boundary
  // at or before it), the others at random depths.
  std::vector<int> at;
  auto boundary = [&](int pos) {
    pos = std::max(0, std::min(pos, filler_room));
    while (pos > 0 && filler[pos - 1] != PasskeyVocab::kDot) --pos;
    return pos;
  };
  at.push_back(boundary(static_cast<int>(std::lround(depth_percent / 100.0 * filler_room))));
  for (int n = 1; n < o.needles; ++n) at.push_back(boundary(d.below(filler_room + 1)));
  PasskeyDocument doc;
  doc.tokens.reserve(length);
  doc.tokens.push_back(PasskeyVocab::kBos);
  std::vector<int> order(o.needles);
  for (int n = 0; n < o.needles; ++n) order[n] = n;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return at[a] < at[b]; });
  doc.needle_positions.assign(o.needles, 0);
  int next = 0;
  for (int f = 0; f <= filler_room; ++f) {
    while (next < o.needles && at[order[next]] == f) {
      const int n = order[next++];
      doc.needle_positions[n] = static_cast<int>(doc.tokens.size());
      doc.tokens.push_back(PasskeyVocab::kKey);
      doc.tokens.push_back(names[n]);
      doc.tokens.push_back(PasskeyVocab::kIs);
      doc.tokens.insert(doc.tokens.end(), values[n].begin(), values[n].end());
      doc.tokens.push_back(PasskeyVocab::kDot);
    }
    if (f < filler_room) doc.tokens.push_back(filler[f]);
  }
  for (int q = 0; q < o.asked; ++q) {  // ask needles 0..asked-1 (needle 0 is at the requested depth)
    doc.tokens.push_back(PasskeyVocab::kAsk);
    doc.tokens.push_back(names[q]);
    doc.tokens.push_back(PasskeyVocab::kIs);
    for (int32_t digit : values[q]) {
      doc.answer_positions.push_back(static_cast<int>(doc.tokens.size()));
      doc.tokens.push_back(digit);
    }
  }
  doc.tokens.push_back(PasskeyVocab::kEos);
  RW_CHECK(static_cast<int>(doc.tokens.size()) == length, "passkey document length mismatch");
  return doc;
}

PasskeySource::PasskeySource(PasskeyOptions options, uint64_t seed, int seq_len, int global_sequences, int dp,
                             int dp_rank, int sp, int sp_rank, Layout layout)
    : options_(options), seed_(seed), seq_len_(seq_len), global_sequences_(global_sequences), dp_(dp),
      dp_rank_(dp_rank), sp_(sp), sp_rank_(sp_rank), layout_(layout) {
  if (seq_len < passkey_min_length(options))
    throw InputError("passkey: seq-len " + std::to_string(seq_len) + " is shorter than one document (" +
                     std::to_string(passkey_min_length(options)) + " tokens)");
  if (global_sequences % dp) throw InputError("passkey: the global batch does not split over dp");
}

LocalBatch PasskeySource::next() {
  const int per_group = global_sequences_ / dp_;
  GlobalBatch g;
  g.n_sequences = per_group;
  g.seq_len = seq_len_;
  const std::size_t n = static_cast<std::size_t>(per_group) * seq_len_;
  g.tokens.assign(n, 0);
  g.segment_ids.assign(n, 0);
  std::vector<float> answer_weight(n, 1.f);
  const int min_length = passkey_min_length(options_);
  const double log_range = std::log(static_cast<double>(seq_len_) / min_length);
  for (int s = 0; s < per_group; ++s) {
    const uint64_t sequence = cursor_ + static_cast<uint64_t>(dp_rank_) * per_group + s;
    // One key per sequence: its document lengths and depths come from stream 0 of the key,
    // its documents from streams 1, 2, ... (was: seed (1 << 20) | sequence, which repeated
    // after 2^20 sequences).
    const uint64_t key = sequence_key(seed_, sequence);
    Draw d{key, 0};
    // Every other sequence is one document of the full length (the needle at a uniform depth):
    // the longest retrievals, which the evaluation asks for at every length up to seq_len, get
    // trained as often as the short ones (packed log-uniform documents alone put a needle more
    // than 3/4 of seq_len from its question in about one sequence of 70 at 8K tokens; now one
    // sequence of 8 has one).
    const bool whole = sequence % 2 == 1;
    int at = 0, segment = 0;
    while (at < seq_len_) {
      const int room = seq_len_ - at;
      // Log-uniform length: as many documents of each octave of lengths.
      int length = static_cast<int>(std::lround(min_length * std::exp(d.uniform() * log_range)));
      length = std::max(min_length, std::min(length, room));
      if (whole || room - length < min_length) length = room;  // never leave a scrap
      const PasskeyDocument doc =
          make_passkey_document(options_, length, 100.0 * d.uniform(), key, 1 + static_cast<uint64_t>(segment));
      const std::size_t row = static_cast<std::size_t>(s) * seq_len_ + at;
      std::copy(doc.tokens.begin(), doc.tokens.end(), g.tokens.begin() + row);
      std::fill(g.segment_ids.begin() + row, g.segment_ids.begin() + row + length, segment);
      for (int p : doc.answer_positions) answer_weight[row + p - 1] = options_.answer_weight;  // predicts the digit
      at += length;
      ++segment;
    }
  }
  cursor_ += global_sequences_;
  derive_targets_positions_weights(g);
  for (std::size_t i = 0; i < n; ++i) g.loss_weights[i] *= answer_weight[i];
  return slice_global_batch(g, 1, 0, sp_, sp_rank_, layout_);
}

}  // namespace rw::data
