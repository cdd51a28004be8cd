// test_passkey.cpp: the passkey documents: exact length, the needle at the requested depth, the
// answer equal to the needle's digits, multi-needle questions, determinism; the training source
// weights the answer digits; length parsing of the evaluation; the passkey language as words
// (passkey_tokenizer.h) round-trips documents and refuses unknown words.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "src/common/input_error.h"
#include "src/data/passkey.h"
#include "src/data/passkey_tokenizer.h"
#include "src/data/tokenizer.h"
#include "src/infer/needle_eval.h"

using namespace rw;
using data::PasskeyVocab;

TEST_CASE("passkey documents put the needle at the requested depth", "[passkey]") {
  data::PasskeyOptions o;
  for (int length : {64, 500, 4096})
    for (double depth : {0.0, 25.0, 50.0, 75.0, 100.0}) {
      const auto doc = data::make_passkey_document(o, length, depth, 7, 3);
      REQUIRE(static_cast<int>(doc.tokens.size()) == length);
      CHECK(doc.tokens.front() == PasskeyVocab::kBos);
      CHECK(doc.tokens.back() == PasskeyVocab::kEos);
      const int key = doc.needle_positions[0];
      REQUIRE(doc.tokens[key] == PasskeyVocab::kKey);
      // Depth is measured over the filler (the document minus needle and question): the needle
      // sits at a sentence boundary at or before the requested point, so within one sentence
      // (4 tokens) of it.
      const int question = 1 + o.asked * (3 + o.digits);
      const int filler = length - 1 - question - (4 + o.digits);  // needle: <key> NAME <is> digits <dot>
      const long wanted = 1 + std::lround(depth / 100.0 * filler);  // after <bos>
      CHECK(key <= wanted);
      CHECK(key >= wanted - 4);
      // The answer repeats the needle's digits.
      REQUIRE(doc.answer_positions.size() == static_cast<std::size_t>(o.digits));
      CHECK(doc.tokens[key + 2] == PasskeyVocab::kIs);
      for (int k = 0; k < o.digits; ++k) CHECK(doc.tokens[doc.answer_positions[k]] == doc.tokens[key + 3 + k]);
      CHECK(doc.tokens[doc.answer_positions[0] - 2] == doc.tokens[key + 1]);  // asks for the needle's name
    }
}

TEST_CASE("multi-needle documents ask for the right names; generation is deterministic", "[passkey]") {
  data::PasskeyOptions o;
  o.needles = 4;
  o.asked = 2;
  const auto a = data::make_passkey_document(o, 300, 40, 11, 5), b = data::make_passkey_document(o, 300, 40, 11, 5);
  CHECK(a.tokens == b.tokens);
  CHECK(data::make_passkey_document(o, 300, 40, 12, 5).tokens != a.tokens);
  REQUIRE(a.answer_positions.size() == 2u * o.digits);
  for (int q = 0; q < 2; ++q) {
    const int first = a.answer_positions[q * o.digits];
    const int32_t name = a.tokens[first - 2];
    const int key = a.needle_positions[q];
    CHECK(a.tokens[key + 1] == name);
    for (int k = 0; k < o.digits; ++k) CHECK(a.tokens[a.answer_positions[q * o.digits + k]] == a.tokens[key + 3 + k]);
  }
  CHECK_THROWS_AS(data::make_passkey_document(o, 20, 0, 1, 1), InputError);
}

TEST_CASE("the passkey source packs documents and weights answer digits", "[passkey]") {
  data::PasskeyOptions o;
  data::PasskeySource source(o, 3, 256, 2, 1, 0, 1, 0, Layout::contiguous);
  const data::LocalBatch b = source.next();
  REQUIRE(b.tokens.size() == 512u);
  int heavy = 0;
  for (std::size_t i = 0; i < b.tokens.size(); ++i)
    if (b.loss_weights[i] == o.answer_weight) {
      ++heavy;
      CHECK(b.targets[i] >= PasskeyVocab::kDigit0);
      CHECK(b.targets[i] < PasskeyVocab::kDigit0 + 10);
    }
  CHECK(heavy >= 2 * o.digits);  // at least one document per sequence
  CHECK(heavy % o.digits == 0);
}

TEST_CASE("needle evaluation options parse lengths and depths", "[passkey]") {
  CHECK(infer::parse_lengths("512,1K,2k,1M") == std::vector<int>{512, 1024, 2048, 1048576});
  CHECK_THROWS_AS(infer::parse_lengths("512,x"), InputError);
  CHECK(infer::parse_depths("0,50,100") == std::vector<double>{0, 50, 100});
  CHECK_THROWS_AS(infer::parse_depths("120"), InputError);
}

namespace {

// Sequence `index` of the passkey training stream (seed 5, 2048 tokens, one per step).
data::LocalBatch passkey_sequence(uint64_t index) {
  data::PasskeySource source(data::PasskeyOptions{}, 5, 2048, 1, 1, 0, 1, 0, Layout::contiguous);
  source.seek(index);
  return source.next();
}

}  // namespace

// The stream's draws used to be seeded with (1 << 20) | index, so sequence 2^20 repeated the
// document lengths and needle depths of sequence 0 (and 2^20 + 2 those of 2, ...). Packed (even)
// sequences are compared by their document layout (segment ids) and answer places (heavy loss
// weights): for independent draws at 2048 tokens an exact repeat of both has negligible
// probability. All sequences, whole-length (odd) ones included, must differ in their tokens.
TEST_CASE("the passkey stream does not repeat after 2^20 sequences and is deterministic", "[passkey]") {
  const uint64_t far = uint64_t(1) << 20;
  const std::vector<uint64_t> indices = {0, 1, 2, 16, far, far + 1, far + 2, 2 * far, uint64_t(1) << 36};
  std::vector<data::LocalBatch> batches;
  for (uint64_t i : indices) batches.push_back(passkey_sequence(i));
  for (std::size_t a = 0; a < indices.size(); ++a)
    for (std::size_t b = a + 1; b < indices.size(); ++b) {
      INFO("sequences " << indices[a] << " and " << indices[b]);
      const bool same_layout = batches[a].segment_ids == batches[b].segment_ids &&
                               batches[a].loss_weights == batches[b].loss_weights;
      if (indices[a] % 2 == 0 && indices[b] % 2 == 0) CHECK_FALSE(same_layout);
      CHECK(batches[a].tokens != batches[b].tokens);
    }
  // Deterministic: the same index gives the same sequence from a fresh source.
  for (std::size_t a = 0; a < indices.size(); ++a) {
    const data::LocalBatch again = passkey_sequence(indices[a]);
    CHECK(again.tokens == batches[a].tokens);
    CHECK(again.segment_ids == batches[a].segment_ids);
    CHECK(again.loss_weights == batches[a].loss_weights);
  }
}

// Odd sequences of the stream are one document of the full length (the longest retrievals);
// even ones pack several documents. Every document has its answer (weighted digits) at its end.
TEST_CASE("the passkey stream alternates whole-length and packed sequences", "[passkey]") {
  data::PasskeyOptions o;
  data::PasskeySource source(o, 9, 2048, 8, 1, 0, 1, 0, Layout::contiguous);
  int packed_with_several = 0;
  for (int step = 0; step < 3; ++step) {
    const data::LocalBatch b = source.next();
    REQUIRE(b.n_sequences == 8);
    for (int s = 0; s < 8; ++s) {
      const int32_t* seg = b.segment_ids.data() + static_cast<std::size_t>(s) * 2048;
      const int documents = seg[2047] + 1;
      int heavy = 0;
      for (int t = 0; t < 2048; ++t) heavy += b.loss_weights[static_cast<std::size_t>(s) * 2048 + t] == o.answer_weight;
      CHECK(heavy == documents * o.digits);
      if (s % 2 == 1) CHECK(documents == 1);
      else packed_with_several += documents > 1;
    }
  }
  CHECK(packed_with_several >= 10);  // of 12 packed sequences (a log-uniform draw fills 2048 rarely)
}

TEST_CASE("the passkey tokenizer round-trips documents as words", "[passkey]") {
  for (int vocab : {64, 100}) {
    data::PasskeyOptions o;
    o.vocab_size = vocab;
    o.needles = 3;
    o.asked = 2;
    const auto tok = data::make_tokenizer(vocab == 64 ? "passkey" : "passkey:100");
    REQUIRE(tok->vocab_size() == vocab);
    CHECK(tok->description() == "passkey:" + std::to_string(vocab));
    CHECK(data::make_tokenizer(tok->description())->vocab_size() == vocab);
    CHECK(tok->bos_id() == PasskeyVocab::kBos);
    CHECK(tok->eos_id() == PasskeyVocab::kEos);
    for (uint64_t index = 0; index < 4; ++index) {
      const auto doc = data::make_passkey_document(o, 400, 30, 21, index);
      const std::string text = tok->decode(doc.tokens);
      CHECK(tok->encode(text) == doc.tokens);
      CHECK(tok->decode(tok->encode(text)) == text);
    }
  }
  // Every id has its word, spelled as the header says; any whitespace separates words.
  data::PasskeyTokenizer tok(64);
  CHECK(tok.decode({0, 9, 10, 11, 12, 13, 14, 15, 16, 31, 32, 63}) ==
        "0 9 <bos> <eos> <key> <ask> <is> <dot> n0 n15 w32 w63");
  CHECK(tok.encode("  <bos>\tw40\n\n<key> n3 <is> 4 1 <dot>  ") ==
        std::vector<int32_t>{10, 40, 12, 19, 14, 4, 1, 15});
  CHECK(tok.encode(" \n ").empty());
}

TEST_CASE("the passkey tokenizer refuses unknown words, ids and vocabularies", "[passkey]") {
  data::PasskeyTokenizer tok(64);
  for (const char* bad : {"w64", "w31", "w032", "n16", "n01", "10", "<BOS>", "hello", "w", "n", "w3x"}) {
    INFO(bad);
    CHECK_THROWS_AS(tok.encode(std::string("<bos> 1 ") + bad), InputError);
    CHECK_THROWS_WITH(tok.encode(std::string("<bos> 1 ") + bad),
                      Catch::Contains(std::string("'") + bad + "'") && Catch::Contains("word 3"));
  }
  CHECK_THROWS_AS(tok.decode({64}), InputError);
  CHECK_THROWS_AS(tok.decode({-1}), InputError);
  CHECK_THROWS_WITH(data::make_tokenizer("passkey:32"), Catch::Contains("at least 64"));
  CHECK_THROWS_AS(data::make_tokenizer("passkey:"), InputError);
  CHECK_THROWS_AS(data::make_tokenizer("passkey:6x"), InputError);
  CHECK_THROWS_WITH(data::make_tokenizer("passkeys"), Catch::Contains("passkey[:VOCAB]"));
}

// The record both eval modes write per document (needle_eval.h): hits per question from the
// model's tokens at the answer digits, the prompt's tail up to the first answer digit, the
// needles as placed. Planted answers: all right, one digit wrong in the second question, too few.
TEST_CASE("passkey answers: hits per question, the prompt's tail, the needles", "[passkey]") {
  infer::NeedleEvalOptions o;
  o.passkey.needles = 3;
  o.passkey.asked = 2;
  o.passkey.digits = 4;
  o.lengths = {200};
  o.depths = {0, 60};
  o.trials = 2;
  const data::PasskeyDocument doc = infer::needle_passkey_document(o, 200, 1, 1);
  // The same document the forced mode batches: seed, index (length << 24) + depth * trials + trial.
  CHECK(doc.tokens == data::make_passkey_document(o.passkey, 200, 60, o.seed, (200ull << 24) + 3).tokens);
  std::vector<int32_t> right;
  for (int p : doc.answer_positions) right.push_back(doc.tokens[p]);
  const infer::NeedleAnswer a = infer::passkey_answer(doc, o.passkey, 200, 60, 1, right);
  CHECK(a.hits == std::vector<bool>{true, true});
  CHECK(a.expected_tokens == right);
  CHECK(a.prompt_tokens == doc.answer_positions[0]);
  const data::PasskeyTokenizer words(o.passkey.vocab_size);
  const std::string name0 = words.word(doc.tokens[doc.needle_positions[0] + 1]);
  // The prompt ends with the first question, "<ask> NAME <is>", and has 20 words.
  const std::string ask = "<ask> " + name0 + " <is>";
  REQUIRE(a.prompt_tail.size() >= ask.size());
  CHECK(a.prompt_tail.compare(a.prompt_tail.size() - ask.size(), ask.size(), ask) == 0);
  CHECK(std::count(a.prompt_tail.begin(), a.prompt_tail.end(), ' ') == infer::NeedleAnswer::kTailTokens - 1);
  REQUIRE(a.needles.size() == 3u);
  CHECK(a.needles[0].key == name0);
  CHECK(a.needles[0].asked);
  CHECK(a.needles[1].asked);
  CHECK_FALSE(a.needles[2].asked);
  std::string digits0;
  for (int k = 0; k < 4; ++k) digits0 += std::to_string(right[k]);
  CHECK(a.needles[0].value == digits0);
  CHECK(a.needles[0].depth_percent == Approx(100.0 * doc.needle_positions[0] / 200));
  CHECK(a.answer == words.decode({right[0], right[1], right[2], right[3]}) + " / " +
                        words.decode({right[4], right[5], right[6], right[7]}));

  std::vector<int32_t> wrong = right;
  wrong[6] = (wrong[6] + 1) % 10;
  CHECK(infer::passkey_answer(doc, o.passkey, 200, 60, 1, wrong).hits == std::vector<bool>{true, false});
  wrong[0] = PasskeyVocab::kEos;  // not a digit at all
  CHECK(infer::passkey_answer(doc, o.passkey, 200, 60, 1, wrong).hits == std::vector<bool>{false, false});
  const std::vector<int32_t> short_answer(right.begin(), right.begin() + 5);  // the second question cut short
  CHECK(infer::passkey_answer(doc, o.passkey, 200, 60, 1, short_answer).hits == std::vector<bool>{true, false});
}
