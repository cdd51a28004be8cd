// test_needle_prompt.cpp: LWM's needle prompts by generation (src/infer/needle_prompt.h,
// needle_haystack.h) with the byte tokenizer, whose token counts are additive, so lengths and
// depths are checked exactly: the prompt has exactly the target's tokens; each needle sits at a
// sentence end at most one sentence before its requested depth; the texts are LWM's (written out
// here); tasks are deterministic by seed; scoring finds the numbers; the haystack reader takes
// plain text, .jsonl and token datasets of the same tokenizer; eval needle's report files
// (src/cli/needle_report.h). Runs in about a second.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <unistd.h>

#include "io/token_dataset.h"
#include "src/cli/needle_report.h"
#include "src/common/input_error.h"
#include "src/data/tokenizer.h"
#include "src/infer/needle_haystack.h"
#include "src/infer/needle_prompt.h"

using namespace rw;
namespace fs = std::filesystem;

namespace {

const std::string kHead = "You are a helpful assistant. USER: ";
const std::string kTail =
    " Don't give information outside the document or repeat your findings. Keep your response short and direct. "
    "ASSISTANT: ";

// Sentences of 3-14 words ending in '.', none containing "magic"; the longest sentence's length.
std::string haystack_text(int n_sentences, std::size_t* longest) {
  const char* words[] = {"river", "stone", "the", "old", "lantern", "walked", "under", "a", "quiet", "sky", "and", "then"};
  std::string text;
  *longest = 0;
  for (int s = 0; s < n_sentences; ++s) {
    std::string sentence = "Once";
    for (int w = 0; w < 3 + (s * 7) % 12; ++w) sentence += std::string(" ") + words[(s * 5 + w * 3) % 12];
    sentence += ". ";
    *longest = std::max(*longest, sentence.size());
    text += sentence;
  }
  return text;
}

}  // namespace

TEST_CASE("needle prompts: exact length, LWM's text, needle at the requested depth", "[needle]") {
  const data::ByteTokenizer tok;
  std::size_t longest = 0;
  const std::string text = haystack_text(150, &longest);  // ~8K bytes: repeated for the longer targets
  const std::vector<int32_t> haystack = tok.encode(text);
  for (int64_t target : {600, 2000, 20000})
    for (double depth : {0.0, 10.0, 33.3, 50.0, 91.0, 100.0}) {
      INFO("target " << target << " depth " << depth);
      const infer::NeedleTask task = infer::draw_needle_task(1, 1, depth, 7, static_cast<uint64_t>(target));
      const infer::NeedlePrompt p = infer::build_needle_prompt(task, haystack, tok, target);
      // Bytes add up exactly, so the adjustment reaches the target exactly (tolerance 0).
      CHECK(static_cast<int64_t>(p.ids.size()) == target);
      CHECK(p.ids == tok.encode(p.text));  // no BOS for a tokenizer without one
      const infer::Needle& n = task.needles[0];
      REQUIRE(n.number.size() == 7);
      CHECK(n.number[0] != '0');
      const std::string needle = "\nThe special magic " + n.city + " number is: " + n.number + "\n";
      const std::string question = "What is the special magic " + n.city + " number?";
      REQUIRE(p.text.rfind(kHead, 0) == 0);
      const std::string end = " " + question + kTail;
      REQUIRE(p.text.size() > kHead.size() + end.size());
      CHECK(p.text.compare(p.text.size() - end.size(), end.size(), end) == 0);
      // The context is the haystack (repeated, cut) with the needle inserted once.
      const std::string context = p.text.substr(kHead.size(), p.text.size() - kHead.size() - end.size());
      const std::size_t at = context.find(needle);
      REQUIRE(at != std::string::npos);
      CHECK(context.find(needle, at + 1) == std::string::npos);
      const std::string hay = context.substr(0, at) + context.substr(at + needle.size());
      CHECK(static_cast<int64_t>(hay.size()) == p.haystack_tokens);
      for (std::size_t i = 0; i < hay.size(); ++i)
        if (hay[i] != text[i % text.size()]) FAIL("haystack byte " << i << " is not the text's");
      // Depth: LWM's point floor(depth% of the haystack), moved back to just after a '.', so
      // within one sentence (the longest: `longest` bytes) before it; 100% is the very end.
      const int64_t want = depth >= 100 ? p.haystack_tokens
                                        : static_cast<int64_t>(std::floor(p.haystack_tokens * depth / 100.0));
      CHECK(static_cast<int64_t>(at) == p.needle_at[0]);
      CHECK(static_cast<int64_t>(at) <= want);
      CHECK(static_cast<int64_t>(at) >= want - static_cast<int64_t>(longest));
      if (at > 0 && depth < 100) CHECK(hay[at - 1] == '.');
      if (depth == 100) CHECK(static_cast<int64_t>(at) == p.haystack_tokens);
      CHECK(p.needle_depth_percent[0] == Approx(100.0 * at / p.haystack_tokens));
    }
}

namespace {

// Bytes, except that ". " and " O" are one token each (256, 257), read left to right, so the
// count of a text is not the sum of its parts' counts: the template's "USER: " and the
// haystack's first word "Once" merge at their join. Stands in for subword tokenizers
// (SentencePiece), whose pieces merge across joins in the same way. BOS 1.
struct MergingTokenizer : data::Tokenizer {
  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids;
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '.' && i + 1 < text.size() && text[i + 1] == ' ') {
        ids.push_back(256);
        ++i;
      } else if (text[i] == ' ' && i + 1 < text.size() && text[i + 1] == 'O') {
        ids.push_back(257);
        ++i;
      } else {
        ids.push_back(static_cast<unsigned char>(text[i]));
      }
    }
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override {
    std::string text;
    for (int32_t id : ids)
      text += id == 256 ? std::string(". ") : id == 257 ? std::string(" O") : std::string(1, static_cast<char>(id));
    return text;
  }
  int64_t vocab_size() const override { return 258; }
  std::string description() const override { return "merging"; }
  int32_t bos_id() const override { return 1; }
};

}  // namespace

TEST_CASE("needle prompts: a tokenizer that merges across joins still meets the target", "[needle]") {
  const MergingTokenizer tok;
  std::size_t longest = 0;
  const std::string text = haystack_text(150, &longest);
  const std::vector<int32_t> haystack = tok.encode(text);
  int exact = 0, total = 0;
  for (int64_t target : {700, 1999, 5000, 12345})
    for (double depth : {0.0, 20.0, 50.0, 77.0, 100.0}) {
      INFO("target " << target << " depth " << depth);
      const infer::NeedleTask task = infer::draw_needle_task(2, 1, depth, 3, static_cast<uint64_t>(target));
      const infer::NeedlePrompt p = infer::build_needle_prompt(task, haystack, tok, target);
      REQUIRE(p.ids.front() == 1);  // BOS
      CHECK(std::vector<int32_t>(p.ids.begin() + 1, p.ids.end()) == tok.encode(p.text));
      // Never over the target; under it by at most one token: the only join that merges is
      // the context's last "." with the " " before the question, and a room one token larger
      // can land on a haystack cut that no longer merges (+2), so one short may be the best.
      CHECK(static_cast<int64_t>(p.ids.size()) <= target);
      CHECK(static_cast<int64_t>(p.ids.size()) >= target - 1);
      exact += static_cast<int64_t>(p.ids.size()) == target;
      ++total;
      const std::string needle = infer::needle_text(task.needles[0]);
      CHECK(p.text.find(needle) != std::string::npos);
      // The break is the ". " token: the needle follows a sentence's end and its space.
      const int64_t want = depth >= 100 ? p.haystack_tokens
                                        : static_cast<int64_t>(std::floor(p.haystack_tokens * depth / 100.0));
      CHECK(p.needle_at[0] <= want);
      CHECK(p.needle_at[0] >= want - static_cast<int64_t>(longest));
      const std::size_t at = p.text.find(needle);
      if (depth > 0 && depth < 100) CHECK(p.text.compare(at - 2, 2, ". ") == 0);
    }
  INFO(exact << " of " << total << " prompts hit the target exactly");
  CHECK(exact * 2 >= total);  // most do: the miss needs the cut to fall at a merge
}

TEST_CASE("needle prompts: text without periods keeps the exact point", "[needle]") {
  const data::ByteTokenizer tok;
  const std::vector<int32_t> haystack = tok.encode("no sentence ends here just words and more words ");
  const infer::NeedleTask task = infer::draw_needle_task(1, 1, 50, 1, 0);
  const infer::NeedlePrompt p = infer::build_needle_prompt(task, haystack, tok, 1000);
  CHECK(p.needle_at[0] == p.haystack_tokens / 2);
}

TEST_CASE("multi-needle prompts: distinct cities, all needles in, the asked ones named", "[needle]") {
  const data::ByteTokenizer tok;
  std::size_t longest = 0;
  const std::vector<int32_t> haystack = tok.encode(haystack_text(400, &longest));
  const infer::NeedleTask task = infer::draw_needle_task(4, 2, 25, 99, 3);
  REQUIRE(task.needles.size() == 4u);
  CHECK(task.asked == 2);
  std::set<std::string> cities, numbers;
  for (const auto& n : task.needles) cities.insert(n.city), numbers.insert(n.number);
  CHECK(cities.size() == 4u);
  CHECK(task.needles[0].depth_percent == 25.0);
  CHECK(infer::needle_question(task) == "What are the special magic numbers for " + task.needles[0].city + ", and " +
                                            task.needles[1].city + "?");
  const infer::NeedleTask three = infer::draw_needle_task(5, 3, 0, 99, 3);
  CHECK(infer::needle_question(three) == "What are the special magic numbers for " + three.needles[0].city + ", " +
                                             three.needles[1].city + ", and " + three.needles[2].city + "?");
  const infer::NeedlePrompt p = infer::build_needle_prompt(task, haystack, tok, 4096);
  CHECK(p.ids.size() == 4096u);
  for (std::size_t i = 0; i < 4; ++i) {
    const std::string needle = infer::needle_text(task.needles[i]);
    const std::size_t at = p.text.find(needle);
    REQUIRE(at != std::string::npos);
    // Needles before it in the text add their own length to its offset in the context.
    std::size_t earlier = 0;
    for (std::size_t j = 0; j < 4; ++j)
      if (j != i && p.text.find(infer::needle_text(task.needles[j])) < at) earlier += infer::needle_text(task.needles[j]).size();
    CHECK(static_cast<int64_t>(at - kHead.size() - earlier) == p.needle_at[i]);
    const int64_t want = task.needles[i].depth_percent >= 100
                             ? p.haystack_tokens
                             : static_cast<int64_t>(std::floor(p.haystack_tokens * task.needles[i].depth_percent / 100));
    CHECK(p.needle_at[i] <= want);
    CHECK(p.needle_at[i] >= want - static_cast<int64_t>(longest));
  }
  // Deterministic by (seed, index); another seed or index draws another task.
  const auto same = infer::draw_needle_task(4, 2, 25, 99, 3);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(same.needles[i].city == task.needles[i].city);
    CHECK(same.needles[i].number == task.needles[i].number);
    CHECK(same.needles[i].depth_percent == task.needles[i].depth_percent);
  }
  CHECK(infer::draw_needle_task(4, 2, 25, 100, 3).needles[0].number != task.needles[0].number);
  CHECK(infer::draw_needle_task(4, 2, 25, 99, 4).needles[0].number != task.needles[0].number);
  CHECK(infer::build_needle_prompt(same, haystack, tok, 4096).text == p.text);
}

TEST_CASE("needle scoring: a hit when the number appears in the answer", "[needle]") {
  infer::NeedleTask task;
  task.needles = {{"Oslo", "4821937", 10}, {"Lima", "1000001", 50}, {"Rome", "7777777", 90}};
  task.asked = 2;
  CHECK(infer::score_needle_answer(task, "The special magic Oslo number is: 4821937.") == std::vector<bool>{true, false});
  CHECK(infer::score_needle_answer(task, "4821937 and 1000001") == std::vector<bool>{true, true});
  CHECK(infer::score_needle_answer(task, "482193 7, 100000") == std::vector<bool>{false, false});
  CHECK(infer::score_needle_answer(task, "7777777") == std::vector<bool>{false, false});  // not asked
  CHECK(infer::score_needle_answer(task, "") == std::vector<bool>{false, false});
}

TEST_CASE("needle prompts refuse impossible requests", "[needle]") {
  const data::ByteTokenizer tok;
  const std::vector<int32_t> haystack = tok.encode("Some text. ");
  const auto task = infer::draw_needle_task(1, 1, 50, 1, 0);
  CHECK_THROWS_WITH(infer::build_needle_prompt(task, haystack, tok, 200), Catch::Contains("no room"));
  CHECK_THROWS_AS(infer::build_needle_prompt(task, {}, tok, 2000), InputError);
  CHECK_THROWS_AS(infer::draw_needle_task(0, 1, 50, 1, 0), InputError);
  CHECK_THROWS_AS(infer::draw_needle_task(2, 3, 50, 1, 0), InputError);
  CHECK_THROWS_AS(infer::draw_needle_task(1000, 1, 50, 1, 0), InputError);
  CHECK_THROWS_AS(infer::draw_needle_task(1, 1, 101, 1, 0), InputError);
}

TEST_CASE("needle haystacks: plain text, .jsonl and token datasets of the same tokenizer", "[needle]") {
  const fs::path dir = fs::temp_directory_path() / ("rw_needle_haystack_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const data::ByteTokenizer tok;
  std::ofstream(dir / "book.txt") << "First book. It ends.";
  std::ofstream(dir / "pg.jsonl") << "{\"text\": \"Line one.\"}\n\n{\"text\": \"Line two.\"}\n";
  {
    io::TokenDatasetWriter w((dir / "data.h5").string(), 256, "byte", false);
    w.add_document(tok.encode("Doc A."));
    w.add_document(tok.encode("Doc B."));
    w.finish();
    io::TokenDatasetWriter other((dir / "other.h5").string(), 400, "sentencepiece:/x.model (cksum 1 2)", false);
    other.add_document({5, 6});
    other.finish();
  }
  const auto read = [&](std::vector<std::string> names, int64_t min_tokens) {
    for (auto& n : names) n = (dir / n).string();
    return tok.decode(infer::read_haystack(names, tok, min_tokens));
  };
  CHECK(read({"book.txt", "pg.jsonl", "data.h5"}, 1000) == "First book. It ends.Line one.Line two.Doc A.Doc B.");
  // Reading stops once enough tokens are in hand (whole documents).
  CHECK(read({"book.txt", "pg.jsonl", "data.h5"}, 5) == "First book. It ends.");
  CHECK(read({"pg.jsonl", "data.h5"}, 10) == "Line one.Line two.");
  CHECK_THROWS_WITH(read({"other.h5"}, 10), Catch::Contains("other.h5") && Catch::Contains("sentencepiece:/x.model"));
  CHECK_THROWS_AS(read({"missing.txt"}, 10), InputError);
  CHECK_THROWS_AS(infer::read_haystack({}, tok, 10), InputError);
  std::ofstream(dir / "empty.txt").flush();
  CHECK_THROWS_WITH(read({"empty.txt"}, 10), Catch::Contains("no text"));
  fs::remove_all(dir);
}

// eval needle's outputs (src/cli/needle_report.h): one JSON line per answer with the task's
// names for the needles, the CSV of the cells written atomically (no temporary left), --show.
TEST_CASE("needle reports: answers as JSON lines, the CSV, the shown answers", "[needle]") {
  infer::NeedleAnswer a;
  a.length = 1024;
  a.depth = 50;
  a.trial = 3;
  a.prompt_tokens = 1020;
  a.prompt_tail = "short and direct. ASSISTANT: ";
  a.needles = {{"Oslo", "4821937", 48.5, true}, {"Lima", "1000001", 12.25, false}};
  a.answer_tokens = {52, 56};
  a.answer = "48\n";
  a.hits = {false};
  infer::NeedleAnswer b = a;
  b.trial = 4;
  b.hits = {true};
  const std::string text = cli::needle_answers_jsonl({a, b}, "generate", true);
  CHECK(std::count(text.begin(), text.end(), '\n') == 2);
  const nlohmann::json j = nlohmann::json::parse(text.substr(0, text.find('\n')));
  CHECK(j["mode"] == "generate");
  CHECK(j["task"] == "text");
  CHECK(j["length"] == 1024);
  CHECK(j["depth"] == 50.0);
  CHECK(j["trial"] == 3);
  CHECK(j["prompt_tokens"] == 1020);
  CHECK(j["needles"][0]["city"] == "Oslo");
  CHECK(j["needles"][0]["number"] == "4821937");
  CHECK(j["needles"][0]["depth_percent"] == 48.5);
  CHECK(j["needles"][1]["asked"] == false);
  CHECK(j["answer"] == "48\n");
  CHECK(j["answer_tokens"] == std::vector<int32_t>{52, 56});
  CHECK(j["hits"] == std::vector<bool>{false});
  CHECK(j["hit"] == false);
  CHECK_FALSE(j.contains("expected_tokens"));
  CHECK(nlohmann::json::parse(text.substr(text.find('\n') + 1))["hit"] == true);
  CHECK(j["precision"] == "fp32");  // the model's --precision, fp32 unless given
  CHECK(nlohmann::json::parse(cli::needle_answers_jsonl({a}, "generate", true, "bf16"))["precision"] == "bf16");
  const nlohmann::json p = nlohmann::json::parse(cli::needle_answers_jsonl({a}, "forced", false));
  CHECK(p["task"] == "passkey");
  CHECK(p["needles"][0]["name"] == "Oslo");
  CHECK(p["needles"][0]["digits"] == "4821937");
  CHECK(p.contains("expected_tokens"));

  const std::string shown = cli::needle_show_text({a, b}, 1);
  CHECK(shown.find("ASSISTANT: ") != std::string::npos);
  CHECK(shown.find("answer: 48\\n") != std::string::npos);  // newlines shown as \n: one line each
  CHECK(shown.find("Oslo 4821937 (0/1 found)") != std::string::npos);
  CHECK(shown.find("trial 4") == std::string::npos);  // only the first

  const fs::path dir = fs::temp_directory_path() / ("rw_needle_report_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  infer::NeedleCell c1{512, 25, 4, 3}, c2{512, 75, 8, 2};
  cli::write_needle_csv((dir / "n.csv").string(), {c1, c2});
  std::ifstream in(dir / "n.csv");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(all == "length,depth,trials,correct,accuracy\n512,25,4,3,0.75\n512,75,8,2,0.25\n");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);
  CHECK_THROWS_AS(cli::write_needle_csv((dir / "no" / "n.csv").string(), {c1}), InputError);
  fs::remove_all(dir);
}
