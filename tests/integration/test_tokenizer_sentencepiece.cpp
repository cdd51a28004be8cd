// test_tokenizer_sentencepiece.cpp: the SentencePiece tokenizer (src/data/sentencepiece_tokenizer.h)
// and `ringworld prepare --tokenizer sentencepiece:MODEL` end to end.
//
// A plain (non-MPI) Catch2 program. It trains a small model in the test with the spm_train tool
// (Debian package `sentencepiece`): BPE, 400 pieces, settings as LLaMA's tokenizer.model (identity
// normalization, extra whitespace kept, byte fallback, digits split), over a corpus of generated
// sentences the test writes (about 3000 lines, well under a second to train). The independent
// references are the SentencePiece command-line tools, not our code: spm_encode's ids for the same
// text, spm_decode's text for the dataset's ids, spm_train's --vocab_size, and `cksum` of the model.
//
// What is tested:
//   * Round trips: decode(encode(text)) == text exactly for text with newlines, tabs, leading and
//     repeated spaces, digits, accents, CJK and an emoji (absent from the corpus: byte fallback);
//     every id in [0, vocab_size); ids not in the vocabulary are refused by decode.
//   * The tokenizer: vocab_size is the trained 400; no BOS/EOS is added (the ids are exactly
//     spm_encode's); the description names the absolute model path and `cksum MODEL`'s numbers.
//   * prepare end to end (np 1): a one-line .txt, a multi-line .txt and a .jsonl (JSON escapes)
//     into one dataset: every single-line document's tokens equal spm_encode's ids for its text,
//     the multi-line document's tokens decode with spm_decode to the file's exact bytes, the
//     vocab_size and tokenizer attributes are the model's.
//   * Bad model files (missing, a directory, empty, not a model): make_tokenizer throws one
//     InputError naming the file; prepare (np 2) exits non-zero with one error line naming the
//     file and leaves no output behind.
//   * Built without SentencePiece: sentencepiece:MODEL is refused with a message that says so and
//     names libsentencepiece-dev (only that case runs in such a build).
// Skips (Catch2 WARN, the test passes): the tests that need a trained model when spm_train,
// spm_encode or spm_decode is not installed; all but the "built without" case in a build without
// SentencePiece.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "io/token_dataset.h"
#include "src/common/input_error.h"
#include "src/data/tokenizer.h"
#include "src/infer/chat_template.h"
#include "src/infer/needle_prompt.h"
#include "tests/integration/integration_support.h"
#ifdef RINGWORLD_HAVE_SENTENCEPIECE
#include "src/data/sentencepiece_tokenizer.h"
#endif

using namespace rw;
using namespace rw::test;

namespace {

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  REQUIRE(out.good());
}

#ifdef RINGWORLD_HAVE_SENTENCEPIECE

constexpr int kVocabSize = 400;  // spm_train --vocab_size: 259 byte/special pieces + ~140 learned

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Runs `command` through the shell (in a subshell: its own redirections stand), what else it
// prints to `log`; the exit code (-1: no normal exit).
int run_shell(const std::string& command, const fs::path& log) {
  const int status = std::system(("(" + command + ") >" + quoted(log) + " 2>&1").c_str());
  return (status != -1 && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
}

bool have_tool(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

bool have_spm_tools() {
  return have_tool("spm_train") && have_tool("spm_encode") && have_tool("spm_decode");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream in(line);
  for (long long id; in >> id;) ids.push_back(static_cast<int32_t>(id));
  return ids;
}

// Sentences over a small vocabulary (some accented words, numbers), seeded: the training corpus.
std::string corpus_text() {
  const std::vector<std::string> words = {
      "the", "ring", "passes", "keys", "and", "values", "around", "every", "rank", "while", "each",
      "block", "computes", "attention", "over", "its", "own", "shard", "of", "a", "very", "long",
      "sequence", "model", "learns", "to", "find", "needle", "hidden", "deep", "inside", "context",
      "café", "naïve", "über", "señor", "garçon", "stage", "extension", "rope", "theta", "tokens"};
  std::mt19937 rng(20240501);
  std::string text;
  for (int line = 0; line < 3000; ++line) {
    const int n_words = 5 + static_cast<int>(rng() % 11);
    for (int w = 0; w < n_words; ++w) {
      if (w) text += ' ';
      text += (rng() % 13 == 0) ? std::to_string(rng() % 10000) : words[rng() % words.size()];
    }
    text += ".\n";
  }
  return text;
}

// Trains the model once per test run (LLaMA-like settings, see the top of the file); its path.
fs::path trained_model() {
  static ScratchDir dir("tokenizer_sentencepiece_model");
  static bool trained = false;
  const fs::path model = dir / "m.model";
  if (!trained) {
    write_file(dir / "corpus.txt", corpus_text());
    const std::string command = "spm_train --input=" + quoted(dir / "corpus.txt") + " --model_prefix=" +
                                quoted(dir / "m") + " --vocab_size=" + std::to_string(kVocabSize) +
                                " --model_type=bpe --character_coverage=1.0 --byte_fallback=true"
                                " --normalization_rule_name=identity --remove_extra_whitespaces=false"
                                " --split_digits=true --num_threads=1";
    const int rc = run_shell(command, dir / "spm_train.log");
    INFO(command << "\n" << slurp(dir / "spm_train.log"));
    REQUIRE(rc == 0);
    REQUIRE(fs::is_regular_file(model));
    trained = true;
  }
  return model;
}

// spm_encode's ids for each line of `text_file` (the tool encodes line by line).
std::vector<std::vector<int32_t>> spm_encode_ids(const fs::path& model, const fs::path& text_file,
                                                 const fs::path& work) {
  const fs::path out = work / "spm_encode.out";
  const std::string command = "spm_encode --model=" + quoted(model) + " --output_format=id < " +
                              quoted(text_file) + " > " + quoted(out);
  const int rc = run_shell(command, work / "spm_encode.log");
  INFO(command << "\n" << slurp(work / "spm_encode.log"));
  REQUIRE(rc == 0);
  std::vector<std::vector<int32_t>> ids;
  for (const auto& line : lines_of(slurp(out))) ids.push_back(parse_ids(line));
  return ids;
}

// `cksum FILE`'s first two fields: "CRC BYTES".
std::string cksum_of(const fs::path& file, const fs::path& work) {
  const int rc = run_shell("cksum " + quoted(file), work / "cksum.out");
  REQUIRE(rc == 0);
  std::istringstream in(slurp(work / "cksum.out"));
  std::string crc, bytes;
  in >> crc >> bytes;
  return crc + " " + bytes;
}

#endif  // RINGWORLD_HAVE_SENTENCEPIECE

}  // namespace

TEST_CASE("sentencepiece: a spec without a model file is refused", "[sentencepiece]") {
  CHECK_THROWS_WITH(data::make_tokenizer("sentencepiece:"), Catch::Contains("sentencepiece:MODEL"));
}

#ifndef RINGWORLD_HAVE_SENTENCEPIECE

TEST_CASE("sentencepiece: a build without it says so and how to get it", "[sentencepiece]") {
  WARN("ringworld was built without SentencePiece: only the refusal is tested (install "
       "libsentencepiece-dev and sentencepiece, reconfigure, to test the tokenizer)");
  CHECK_THROWS_WITH(data::make_tokenizer("sentencepiece:tokenizer.model"),
                    Catch::Contains("built without SentencePiece") && Catch::Contains("libsentencepiece-dev"));
  ScratchDir dir("tokenizer_sentencepiece_without");
  write_file(dir / "a.txt", "some text");
  const fs::path output = dir / "out.h5";
  const RunResult r = run_ringworld(1, "prepare --tokenizer sentencepiece:tokenizer.model --input " +
                                           quoted(dir / "a.txt") + " --output " + quoted(output),
                                    60, dir / "out.log", dir / "err.log");
  expect_clean_failure(r, output, "built without SentencePiece");
}

#else  // RINGWORLD_HAVE_SENTENCEPIECE

TEST_CASE("sentencepiece tokenizer: exact round trips, ids in the vocabulary, description", "[sentencepiece]") {
  if (!have_spm_tools()) {
    WARN("SKIPPED: spm_train/spm_encode/spm_decode not installed (Debian: apt-get install sentencepiece)");
    return;
  }
  const fs::path model = trained_model();
  ScratchDir work("tokenizer_sentencepiece_roundtrip");
  data::SentencePieceTokenizer tok(model.string());
  CHECK(tok.vocab_size() == kVocabSize);
  // The model's special ids: spm_train's defaults (unk 0, bos 1, eos 2), LLaMA's too.
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);

  const std::vector<std::string> texts = {
      "the ring passes keys and values around every rank",
      "Two lines\nof text\n\nwith a blank one and a trailing newline\n",
      "  leading spaces, double  spaces and\ttabs\t",
      "digits 0123456789 and 3.14159, café über naïve",
      "unseen: \xe4\xb8\x96\xe7\x95\x8c (CJK) and \xf0\x9f\x98\x80 (emoji), \"quotes\" <s> </s> {json}",
      " a single leading space"};
  for (const auto& text : texts) {
    INFO("text: " << text);
    const std::vector<int32_t> ids = tok.encode(text);
    REQUIRE_FALSE(ids.empty());
    for (const int32_t id : ids) CHECK((id >= 0 && id < kVocabSize));
    CHECK(tok.decode(ids) == text);
  }
  // Merges were learned and used: a corpus sentence takes fewer pieces than it has characters
  // (single characters and byte fallback alone would give one piece per character or more).
  CHECK(tok.encode(texts[0]).size() < texts[0].size());

  // Ids outside the vocabulary are refused.
  CHECK_THROWS_AS(tok.decode({kVocabSize}), InputError);
  CHECK_THROWS_AS(tok.decode({-1}), InputError);

  // No BOS/EOS: the ids are exactly spm_encode's (which adds none by default).
  write_file(work / "line.txt", texts[0] + "\n");
  const auto reference = spm_encode_ids(model, work / "line.txt", work.path);
  REQUIRE(reference.size() == 1);
  CHECK(tok.encode(texts[0]) == reference[0]);

  // The description names the absolute model path and `cksum MODEL`'s CRC and size.
  const std::string description = tok.description();
  INFO("description: " << description);
  CHECK(description.rfind("sentencepiece:" + fs::absolute(model).lexically_normal().string() + " ", 0) == 0);
  CHECK(contains(description, "(cksum " + cksum_of(model, work.path) + ")"));
  // Through make_tokenizer, the same tokenizer.
  const auto made = data::make_tokenizer("sentencepiece:" + model.string());
  CHECK(made->description() == description);
  CHECK(made->encode(texts[1]) == tok.encode(texts[1]));
}

TEST_CASE("prepare --tokenizer sentencepiece:MODEL: the dataset's tokens are spm_encode's ids", "[sentencepiece]") {
  if (!have_spm_tools()) {
    WARN("SKIPPED: spm_train/spm_encode/spm_decode not installed (Debian: apt-get install sentencepiece)");
    return;
  }
  const fs::path model = trained_model();
  ScratchDir dir("tokenizer_sentencepiece_prepare");

  // Document 0: a one-line .txt (no trailing newline, so spm_encode's line is the document).
  const std::string one_line = "each block computes attention over its own shard, 42 times";
  write_file(dir / "a.txt", one_line);
  // Document 1: a multi-line .txt, the file's exact bytes (trailing newline included).
  const std::string multi_line = "First line of the book.\n\n  Indented second paragraph\twith a tab.\nEnd.\n";
  write_file(dir / "b.txt", multi_line);
  // Documents 2..5: a .jsonl with escapes (and other fields); the texts as the JSON reader gives them.
  write_file(dir / "c.jsonl",
             "{\"id\": 1, \"text\": \"the needle hidden deep inside context\"}\n"
             "{\"text\": \"caf\\u00e9 and \\\"quoted\\\" words\", \"meta\": {\"x\": [1, 2]}}\n"
             "\n"
             "{\"text\": \"rope theta 1000000 for stage 3\"}\n"
             "{\"text\": \"  spaces  kept \\t and an emoji \\ud83d\\ude00\"}\n");
  const std::vector<std::string> jsonl_texts = {"the needle hidden deep inside context",
                                                "caf\xc3\xa9 and \"quoted\" words",
                                                "rope theta 1000000 for stage 3",
                                                "  spaces  kept \t and an emoji \xf0\x9f\x98\x80"};
  std::string reference_input = one_line + "\n";
  for (const auto& t : jsonl_texts) reference_input += t + "\n";
  write_file(dir / "reference_input.txt", reference_input);
  const auto reference = spm_encode_ids(model, dir / "reference_input.txt", dir.path);
  REQUIRE(reference.size() == 1 + jsonl_texts.size());

  const fs::path output = dir / "out.h5";
  const RunResult r = run_ringworld(1, "prepare --tokenizer sentencepiece:" + quoted(model) + " --input " +
                                           quoted(dir / "a.txt") + " " + quoted(dir / "b.txt") + " " +
                                           quoted(dir / "c.jsonl") + " --output " + quoted(output),
                                    120, dir / "out.log", dir / "err.log");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(fs::is_regular_file(output));
  CHECK_FALSE(fs::exists(output.string() + ".tmp"));

  io::TokenDatasetReader reader(output.string());
  const auto& info = reader.info();
  CHECK(info.vocab_size == kVocabSize);
  CHECK(info.tokenizer.rfind("sentencepiece:" + fs::absolute(model).lexically_normal().string() + " ", 0) == 0);
  CHECK(contains(info.tokenizer, "(cksum " + cksum_of(model, dir.path) + ")"));
  CHECK_FALSE(info.has_loss_mask);
  REQUIRE(info.n_docs == 6);

  std::vector<std::vector<int32_t>> docs(info.n_docs);
  std::vector<uint8_t> mask;
  int64_t n_tokens = 0;
  for (int64_t d = 0; d < info.n_docs; ++d) {
    reader.read_document(d, &docs[d], &mask);
    n_tokens += static_cast<int64_t>(docs[d].size());
    for (const int32_t id : docs[d]) CHECK((id >= 0 && id < kVocabSize));
  }
  CHECK(n_tokens == info.n_tokens);
  CHECK(docs[0] == reference[0]);
  for (std::size_t j = 0; j < jsonl_texts.size(); ++j) {
    INFO("jsonl document " << j << ": " << jsonl_texts[j]);
    CHECK(docs[2 + j] == reference[1 + j]);
  }

  // The multi-line document: spm_decode of its ids (one line of ids in, the text and a newline
  // out) gives the file's exact bytes.
  std::string id_line;
  for (std::size_t i = 0; i < docs[1].size(); ++i) id_line += (i ? " " : "") + std::to_string(docs[1][i]);
  write_file(dir / "ids.txt", id_line + "\n");
  const std::string decode_command = "spm_decode --model=" + quoted(model) + " --input_format=id < " +
                                     quoted(dir / "ids.txt") + " > " + quoted(dir / "decoded.txt");
  REQUIRE(run_shell(decode_command, dir / "spm_decode.log") == 0);
  CHECK(slurp(dir / "decoded.txt") == multi_line + "\n");
}

TEST_CASE("sentencepiece: a bad model file is one clear error naming the file", "[sentencepiece]") {
  ScratchDir dir("tokenizer_sentencepiece_bad");
  write_file(dir / "empty.model", "");
  write_file(dir / "text.model", "this is not a SentencePiece model, just text\n");
  fs::create_directories(dir / "dir.model");
  const std::vector<fs::path> bad = {dir / "missing.model", dir / "empty.model", dir / "text.model", dir / "dir.model"};
  for (const auto& path : bad) {
    INFO("model: " << path);
    CHECK_THROWS_AS(data::make_tokenizer("sentencepiece:" + path.string()), InputError);
    CHECK_THROWS_WITH(data::make_tokenizer("sentencepiece:" + path.string()), Catch::Contains(path.string()));
  }
  // prepare on 2 ranks (both load the model): one error line naming the file, nothing written.
  write_file(dir / "a.txt", "some text");
  const fs::path output = dir / "out.h5";
  for (const auto& path : {dir / "missing.model", dir / "text.model"}) {
    const RunResult r = run_ringworld(2, "prepare --tokenizer sentencepiece:" + quoted(path) + " --input " +
                                             quoted(dir / "a.txt") + " --output " + quoted(output),
                                      60, dir / "out.log", dir / "err.log");
    expect_clean_failure(r, output, path.string());
  }
}

TEST_CASE("sentencepiece: LWM's chat template and needle prompts in a subword vocabulary", "[sentencepiece]") {
  if (!have_spm_tools()) {
    WARN("SKIPPED: spm_train/spm_encode/spm_decode not installed (Debian: apt-get install sentencepiece)");
    return;
  }
  data::SentencePieceTokenizer tok(trained_model().string());
  // --chat lwm: BOS 1, then the template's pieces; EOS 2 stops.
  const infer::ChatPrompt chat = infer::apply_chat_template("lwm", "find the needle", tok);
  REQUIRE(chat.ids.size() > 1);
  CHECK(chat.ids[0] == 1);
  CHECK(std::vector<int32_t>(chat.ids.begin() + 1, chat.ids.end()) ==
        tok.encode("You are a helpful assistant. USER: find the needle ASSISTANT:"));
  CHECK(chat.stop_token == 2);
  // Needle prompts: the corpus's sentences as the haystack; pieces merge across the joins, so
  // the length is adjusted to the target: never over it, at most 2 under (a room one token
  // larger can add 2 tokens at the cut; seen: exact in every case here).
  const std::vector<int32_t> haystack = tok.encode(corpus_text());
  for (int64_t target : {400, 3000})
    for (double depth : {0.0, 40.0, 100.0}) {
      INFO("target " << target << " depth " << depth);
      const infer::NeedleTask task = infer::draw_needle_task(2, 1, depth, 5, 0);
      const infer::NeedlePrompt p = infer::build_needle_prompt(task, haystack, tok, target);
      CHECK(static_cast<int64_t>(p.ids.size()) <= target);
      CHECK(static_cast<int64_t>(p.ids.size()) >= target - 2);
      CHECK(p.ids[0] == 1);
      CHECK(tok.decode(p.ids) == p.text);  // identity normalization: the prompt text exactly
      CHECK(contains(p.text, infer::needle_text(task.needles[0])));
      CHECK(contains(p.text, "What is the special magic " + task.needles[0].city + " number?"));
    }
}

#endif  // RINGWORLD_HAVE_SENTENCEPIECE
