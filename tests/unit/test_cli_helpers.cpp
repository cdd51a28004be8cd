// test_cli_helpers.cpp: the pieces of the command line's spelling and number policy:
// format_number (shortest round trip), parse_count (K/M/G), edit distance and "did you mean",
// NumberValue ranges through boost::program_options, the spelling rewrite of argv, the stage
// range checks, and prepare's TextReader (plain, gzip, zstd). Exact expectations: these are
// text and integer functions.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "src/cli/option_parsing.h"
#include "src/cli/option_values.h"
#include "src/common/count_text.h"
#include "src/common/input_error.h"
#include "src/common/number_format.h"
#include "src/data/text_input.h"
#include "src/train/stage_checks.h"

namespace po = boost::program_options;

TEST_CASE("format_number prints numbers as typed and reads back bit-identically", "[cli]") {
  CHECK(rw::format_number(0.9) == "0.9");
  CHECK(rw::format_number(0.95) == "0.95");
  CHECK(rw::format_number(0.1) == "0.1");
  CHECK(rw::format_number(1e-5) == "1e-5");
  CHECK(rw::format_number(1e-8) == "1e-8");
  CHECK(rw::format_number(3e-4) == "0.0003");
  CHECK(rw::format_number(10000) == "10000");
  CHECK(rw::format_number(1e6) == "1000000");
  CHECK(rw::format_number(1e20) == "1e20");
  CHECK(rw::format_number(-0.0) == "-0");
  CHECK(rw::format_number(-2.5) == "-2.5");
  CHECK(rw::format_number(0) == "0");
  CHECK(rw::format_number(std::nan("")) == "nan");
  CHECK(rw::format_number(-std::numeric_limits<double>::infinity()) == "-inf");
  // Round trip over random doubles of every magnitude, and never more than 17 digits.
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<double> mantissa(-10, 10);
  std::uniform_int_distribution<int> exponent(-300, 300);
  for (int i = 0; i < 20000; ++i) {
    const double x = std::ldexp(mantissa(gen), exponent(gen));
    const std::string text = rw::format_number(x);
    REQUIRE(std::strtod(text.c_str(), nullptr) == x);
    CHECK(text.size() <= 24);
  }
  CHECK(std::strtod(rw::format_number(std::numeric_limits<double>::denorm_min()).c_str(), nullptr) ==
        std::numeric_limits<double>::denorm_min());
}

TEST_CASE("parse_count reads counts with binary K/M/G suffixes", "[cli]") {
  int64_t v = -1;
  CHECK((rw::parse_count("4096", &v) && v == 4096));
  CHECK((rw::parse_count("32K", &v) && v == 32768));
  CHECK((rw::parse_count("4k", &v) && v == 4096));
  CHECK((rw::parse_count("1M", &v) && v == 1048576));
  CHECK((rw::parse_count("2G", &v) && v == 2147483648LL));
  CHECK((rw::parse_count("0", &v) && v == 0));
  CHECK((rw::parse_count("8589934591G", &v) && v == 8589934591LL << 30));  // the largest that fits
  v = 7;
  for (const char* bad : {"", "K", "-1", "1.5K", "4KB", "4 K", " 4", "0x10", "8589934592G", "99999999999999999999"}) {
    INFO(bad);
    CHECK_FALSE(rw::parse_count(bad, &v));
    CHECK(v == 7);
  }
}

TEST_CASE("edit distance and did-you-mean", "[cli]") {
  using rw::cli::closest_match;
  using rw::cli::did_you_mean;
  using rw::cli::edit_distance;
  CHECK(edit_distance("", "abc") == 3);
  CHECK(edit_distance("kitten", "sitting") == 3);
  CHECK(edit_distance("needle", "needle") == 0);
  CHECK(edit_distance("neddle", "needle") == 1);
  const std::vector<std::string> names = {"hidden_size", "help", "seq-len", "steps", "warmup-steps", "lr", "min-lr"};
  CHECK(closest_match("hiden-size", names) == "hidden_size");
  CHECK(closest_match("seqlen", names) == "seq-len");
  CHECK(closest_match("warmup", names) == "warmup-steps");  // a prefix
  CHECK(closest_match("stepz", names) == "steps");
  CHECK(closest_match("tokenizer", names).empty());  // nothing near
  CHECK(did_you_mean("hiden-size", names, "--") == "; did you mean '--hidden-size'?");
  CHECK(did_you_mean("hiden_size", names, "--") == "; did you mean '--hidden_size'?");
  CHECK(did_you_mean("neddle", {"needle"}) == "; did you mean 'needle'?");
  CHECK(did_you_mean("xyzzy", {"needle"}).empty());
}

namespace {

struct Parsed {
  int steps = 0, seq_len = 0;
  double lr = 0, beta = 0;
  int64_t hidden = 0;
};

po::options_description options_for(Parsed& p) {
  po::options_description d("test");
  d.add_options()("steps", rw::cli::number(&p.steps)->min(1)->default_value(100), "")(
      "seq-len", rw::cli::count(&p.seq_len)->min(1)->default_value(1024), "")(
      "lr", rw::cli::number(&p.lr)->min(0)->default_value(1e-3), "")(
      "beta1", rw::cli::number(&p.beta)->min(0)->below(1)->default_value(0.9), "")(
      "hidden_size", rw::cli::number(&p.hidden)->min(1), "");
  return d;
}

// Parses argv as a command would; returns the error text ("" on success).
std::string parse(std::vector<std::string> args, Parsed& p) {
  args.insert(args.begin(), "cmd");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const po::options_description d = options_for(p);
  try {
    po::variables_map vm;
    rw::cli::store_command_line(rw::cli::parse_command_line(static_cast<int>(argv.size()), argv.data(), d), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("options: ranges, counts and both spellings through boost::program_options", "[cli]") {
  Parsed p;
  CHECK(parse({"--steps", "5", "--seq_len", "4K", "--hidden-size", "64", "--lr=0.5"}, p).empty());
  CHECK(p.steps == 5);
  CHECK(p.seq_len == 4096);
  CHECK(p.hidden == 64);
  CHECK(p.lr == 0.5);
  CHECK(p.beta == 0.9);  // the default
  CHECK(parse({"--steps", "0"}, p) == "option '--steps' must be an integer >= 1 (got '0')");
  CHECK(parse({"--lr", "nan"}, p) == "option '--lr' must be a finite number >= 0 (got 'nan')");
  CHECK(parse({"--lr", "inf"}, p) == "option '--lr' must be a finite number >= 0 (got 'inf')");
  CHECK(parse({"--lr", "1e-3x"}, p) == "option '--lr' must be a finite number >= 0 (got '1e-3x')");
  CHECK(parse({"--beta1", "1"}, p) == "option '--beta1' must be a finite number in [0, 1) (got '1')");
  CHECK(parse({"--seq-len", "3G"}, p).find("must be a count >= 1") != std::string::npos);  // beyond int
  CHECK(parse({"--steps", "2.5"}, p) == "option '--steps' must be an integer >= 1 (got '2.5')");
  CHECK(parse({"--hiden-size", "4"}, p) == "unknown option '--hiden-size'; did you mean '--hidden-size'?");
  // Help shows defaults as typed.
  std::ostringstream help;
  help << options_for(p);
  CHECK(help.str().find("(=0.9)") != std::string::npos);
  CHECK(help.str().find("(=0.001)") != std::string::npos);
  CHECK(help.str().find("0000000") == std::string::npos);
}

TEST_CASE("stage numbers are range-checked with the stage, key and range", "[cli]") {
  rw::train::StageSpec s;
  s.name = "32k";
  CHECK_NOTHROW(rw::train::check_stage_numbers(s));
  auto message = [](rw::train::StageSpec bad) {
    try {
      rw::train::check_stage_numbers(bad);
    } catch (const rw::InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  rw::train::StageSpec t = s;
  t.lr = std::nan("");
  CHECK(message(t) == "stage '32k': lr must be a finite number >= 0 (got nan)");
  t = s, t.steps = 0;
  CHECK(message(t) == "stage '32k': steps must be an integer >= 1 (got 0)");
  t = s, t.warmup_steps = -1;
  CHECK(message(t) == "stage '32k': warmup-steps must be an integer >= 0 (got -1)");
  t = s, t.seq_len = 0;
  CHECK(message(t) == "stage '32k': seq-len must be an integer >= 1 (got 0)");
  t = s, t.rope_theta = 1;
  CHECK(message(t) == "stage '32k': rope_theta must be a finite number > 1 (got 1)");
  t = s, t.min_lr = -std::numeric_limits<double>::infinity();
  CHECK(message(t) == "stage '32k': min-lr must be a finite number >= 0 (got -inf)");
  t = s, t.global_batch_tokens = -4;
  CHECK(message(t) == "stage '32k': global-batch-tokens must be an integer >= 0 (got -4)");
}

TEST_CASE("TextReader gives the same lines and text from plain, gzip and zstd files", "[cli]") {
  // Lines of 0 to 200K bytes, so lines cross the reader's 64 KiB chunks in every way; a last
  // line without a newline.
  const std::string dir = "text_reader_" + std::to_string(::getpid());
  REQUIRE(std::system(("rm -rf " + dir + " && mkdir " + dir).c_str()) == 0);
  std::mt19937 gen(3);
  std::vector<std::string> lines;
  std::string text;
  for (int i = 0; i < 60; ++i) {
    const int length = i % 7 == 0 ? 0 : static_cast<int>(gen() % (i % 5 == 0 ? 200000 : 300));
    std::string line;
    for (int c = 0; c < length; ++c) line += static_cast<char>('a' + gen() % 26);
    lines.push_back(line);
    text += line + (i + 1 < 60 ? "\n" : "");
  }
  {
    std::ofstream out(dir + "/t.txt", std::ios::binary);
    out << text;
  }
  REQUIRE(std::system(("gzip -k " + dir + "/t.txt").c_str()) == 0);
  std::vector<std::string> files = {dir + "/t.txt", dir + "/t.txt.gz"};
  if (std::system("command -v zstd >/dev/null 2>&1") == 0) {
    REQUIRE(std::system(("zstd -q -k " + dir + "/t.txt").c_str()) == 0);
    files.push_back(dir + "/t.txt.zst");
  }
  for (const std::string& f : files) {
    INFO(f);
    rw::data::TextReader lines_reader(f);
    std::vector<std::string> got;
    for (std::string line; lines_reader.read_line(line);) got.push_back(line);
    CHECK(got == lines);
    rw::data::TextReader all_reader(f);
    CHECK(all_reader.read_all() == text);
  }
  std::system(("rm -rf " + dir).c_str());
}
