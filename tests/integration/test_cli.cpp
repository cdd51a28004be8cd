// test_cli.cpp: the command line end to end: the ringworld binary run as a user runs it
// (under mpirun, RW_MPIEXEC and RW_RINGWORLD_BIN from CMake), the Makefile's targets, and the
// README's marked examples. A plain (non-MPI) Catch2 program; files are written and read with
// the serial HDF5 C API.
//
// What is tested (each fails on the code before the change that introduced it):
//   * Help: every command and subcommand answers --help with exit 0 and a usage text
//     (ckpt, ckpt info, ckpt convert and eval did not); the top-level usage lists --version;
//     model fields show their meaning and every preset's value; train --help lists every data
//     source; defaults print as typed (0.9, 1e-5), never 0.90000000000000002.
//   * Spelling: typos get "did you mean" (options, INI keys, stage keys, commands, ckpt
//     subcommands, eval modes); --hidden-size and --hidden_size are one option on the command
//     line and in INI files, with identical results.
//   * Counts: K/M suffixes in train, plan, eval and in INI files (train refused 4K before).
//   * Ranges: an out-of-range or non-finite number is refused by every command with one line
//     naming the option and its range (train with --lr nan used to run).
//   * Files: `ckpt convert` onto its input is refused and leaves it untouched; a directory
//     given where a file is read is one line on every command; `prepare` reads directories
//     and gzip/zstd files (SIGABRT on a directory before; .gz tokenized as bytes) and refuses
//     other archives, binary files and truncated streams; int64 token files (NumPy's default)
//     give bit-identical results to int32 ones, and values outside int32 are refused.
//   * eval needle refuses a model whose vocabulary cannot hold the passkey task.
//   * Makefile: `make build` installs nothing; without dpkg-query `make test`'s package step is
//     skipped with a note and `make deps` says what it is for.
//   * README: every block marked `<!-- readme-test: runs as written -->` runs as written.
// About 60-90 s on 2 cores (most of it the README examples and a few 1-step trainings).
#include <hdf5.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/integration_support.h"

#ifndef RW_SOURCE_DIR
#error "RW_SOURCE_DIR (the repository root) must be defined"
#endif
#ifndef RW_CLI_MPIEXEC
#error "RW_CLI_MPIEXEC (mpirun with its flags) must be defined"
#endif
#ifndef RW_CLI_BIN
#error "RW_CLI_BIN (the ringworld binary) must be defined"
#endif

namespace {

using namespace rw::test;

// Runs ringworld on np ranks with `dir` as the working directory (file names in args are
// relative to it, as a user types them); logs go to dir/<tag>.out and .err.
RunResult rw_run(const ScratchDir& dir, int np, const std::string& args, const std::string& tag = "run",
                 int timeout_s = 120) {
  const fs::path here = fs::current_path();
  fs::current_path(dir.path);
  RunResult r;
  if (np > 0) {
    r = run_ringworld(np, args, timeout_s, dir / (tag + ".out"), dir / (tag + ".err"));
  } else {  // np 0: the binary alone, as on a login node (an MPI singleton; seconds faster)
    const fs::path out = dir / (tag + ".out"), err = dir / (tag + ".err");
    r.command = "timeout " + std::to_string(timeout_s) + " " + RW_CLI_BIN + " " + args;
    const int status = std::system((r.command + " >" + quoted(out) + " 2>" + quoted(err)).c_str());
    if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    r.stdout_text = slurp(out);
    r.stderr_text = slurp(err);
  }
  fs::current_path(here);
  return r;
}

// Runs of whitespace as one space (help texts wrap at any space).
std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool space = c == ' ' || c == '\n' || c == '\t';
    if (space && !out.empty() && out.back() == ' ') continue;
    out += space ? ' ' : c;
  }
  return out;
}

// Runs a bash command (written to a script file, so no quoting) in `dir`, capturing stdout and
// stderr together in stdout_text.
RunResult shell(const fs::path& dir, const std::string& command, int timeout_s = 120) {
  RunResult r;
  r.command = command;
  const fs::path log = dir / "shell.log", script = dir / "shell.sh";
  std::ofstream(script) << command << "\n";
  const std::string line = "cd " + quoted(dir) + " && timeout " + std::to_string(timeout_s) + " bash " + quoted(script) +
                           " >" + quoted(log) + " 2>&1";
  const int status = std::system(line.c_str());
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  r.stdout_text = slurp(log);
  return r;
}

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

// One error line naming `needle` on stderr, non-zero exit, no hang, no abort path.
void expect_refusal(const RunResult& r, const std::string& needle) {
  INFO(show(r));
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code != 124);
  const auto lines = tool_lines(r.stderr_text);
  REQUIRE(lines.size() == 1);
  CHECK(contains(lines[0], "error"));
  CHECK(contains(lines[0], needle));
  CHECK_FALSE(contains(r.stderr_text, "fatal"));
  CHECK_FALSE(contains(r.stderr_text, "MPI_ABORT"));
  CHECK_FALSE(contains(r.stderr_text, "HDF5-DIAG"));
  CHECK_FALSE(contains(r.stderr_text, "MPI_File"));
}

void write_i64(hid_t file, const std::string& name, const std::vector<hsize_t>& dims, const std::vector<int64_t>& data) {
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t ds = H5Dcreate2(file, name.c_str(), H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(ds >= 0);
  REQUIRE(H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0);
  H5Dclose(ds);
  H5Sclose(space);
}

// A small model for file tests: train one step and save its parameters (np 1, seconds).
const char* kSmallModel =
    "--vocab_size 64 --hidden_size 32 --intermediate_size 64 --num_hidden_layers 1 --num_attention_heads 2 "
    "--num_key_value_heads 2";

void train_params(const ScratchDir& dir, const std::string& file) {
  const RunResult r = rw_run(dir, 0, std::string("train ") + kSmallModel + " --seq-len 64 --steps 1 --save-params " + file,
                             "train_params", 300);
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
}

}  // namespace

TEST_CASE("every command and subcommand answers --help", "[cli]") {
  ScratchDir dir("cli_help");
  const std::vector<std::string> commands = {
      "--help",        "attn --help", "attn-input --help", "train --help",      "forward --help",
      "ckpt --help",   "ckpt info --help", "ckpt convert --help", "prepare --help", "eval --help",
      "eval needle --help", "plan --help", "bench --help", "ckpt help", "eval -h"};
  for (const std::string& c : commands) {
    const RunResult r = rw_run(dir, 0, c);
    INFO(show(r));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.stdout_text, "usage"));
    CHECK(r.stdout_text.find("0000000") == std::string::npos);  // 0.90000000000000002, 9.9999999999999995e-08
  }
  const RunResult top = rw_run(dir, 0, "--help");
  CHECK(contains(top.stdout_text, "--version"));
  const std::string train = one_line(rw_run(dir, 0, "train --help").stdout_text);
  for (const char* source : {"synthetic:flat", "synthetic:passkey", "file:DATA.h5", "file-concat:DATA.h5"})
    CHECK(contains(train, source));
  CHECK(contains(train, "(=0.9)"));                          // beta1 as typed
  CHECK(contains(train, "[tiny 256, small 512, 7b 32000]"));  // vocab_size per preset
  CHECK(contains(train, "RoPE base frequency"));             // a field's meaning
  const RunResult ckpt = rw_run(dir, 0, "ckpt convert --help");
  CHECK(contains(ckpt.stdout_text, "--output"));
}

TEST_CASE("typos get one line with the closest name", "[cli]") {
  ScratchDir dir("cli_typos");
  expect_refusal(rw_run(dir, 0, "train --hiden-size 64"), "did you mean '--hidden-size'?");
  expect_refusal(rw_run(dir, 0, "train --hiden_size 64"), "did you mean '--hidden_size'?");
  expect_refusal(rw_run(dir, 0, "plan --seqlen 4K --ranks 1"), "did you mean '--seq-len'?");
  expect_refusal(rw_run(dir, 0, "eval neddle --checkpoint x.h5"), "unknown eval mode 'neddle'; did you mean 'needle'?");
  expect_refusal(rw_run(dir, 0, "ckpt inof x.h5"), "did you mean 'info'?");
  expect_refusal(rw_run(dir, 0, "tran --steps 1"), "did you mean 'train'?");
  expect_refusal(rw_run(dir, 0, "forward --chekpoint x.h5"), "did you mean '--checkpoint'?");
  expect_refusal(rw_run(dir, 0, "eval"), "missing mode");
  expect_refusal(rw_run(dir, 0, "ckpt"), "missing subcommand");
  {
    std::ofstream(dir / "typo.ini") << "hiden_size = 64\n";
    expect_refusal(rw_run(dir, 0, "train --config typo.ini"), "unknown option 'hiden_size'; did you mean 'hidden_size'?");
  }
  {
    std::ofstream(dir / "stage_typo.ini") << "[stage.a]\nseq-len = 64\nrope_theta = 10000\nglobal-batch-tokens = 0\n"
                                             "stepz = 2\nwarmup-steps = 0\nlr = 1e-3\ndata = synthetic\n";
    expect_refusal(rw_run(dir, 0, "train --config stage_typo.ini"), "unknown key 'stepz'; did you mean 'steps'?");
  }
}

TEST_CASE("both spellings and K/M suffixes work on the command line and in INI files", "[cli]") {
  ScratchDir dir("cli_spelling");
  // plan: the same model line with either spelling, 4K == 4096.
  const RunResult a = rw_run(dir, 0, "plan --model tiny --seq-len 4K --ranks 1 --hidden-size 64 --num-attention-heads 4", "plan_a");
  const RunResult b = rw_run(dir, 0, "plan --model tiny --seq_len 4096 --ranks 1 --hidden_size 64 --num_attention_heads 4", "plan_b");
  REQUIRE(a.exit_code == 0);
  REQUIRE(b.exit_code == 0);
  CHECK(contains(a.stdout_text, "hidden 64"));
  CHECK(contains(a.stdout_text, "seq_len 4096"));
  CHECK(a.stdout_text.substr(0, a.stdout_text.find('\n')) == b.stdout_text.substr(0, b.stdout_text.find('\n')));

  // train: dashed model fields and K suffixes; the saved file has the config asked for.
  const RunResult t = rw_run(dir, 0,
                             "train --vocab-size 64 --hidden-size 32 --intermediate-size 64 --num-hidden-layers 1 "
                             "--num-attention-heads 2 --num_key_value_heads 1 --seq_len 1K --global-batch-tokens 2K "
                             "--ffn-chunk 1K --steps 1 --save-params p.h5",
                             "train", 300);
  INFO(show(t));
  REQUIRE(t.exit_code == 0);
  {
    H5File f(dir / "p.h5");
    REQUIRE(f.ok());
    CHECK(get_i64(f.id(), "hidden_size") == 32);
    CHECK(get_i64(f.id(), "num_key_value_heads") == 1);
  }
  CHECK(contains(t.stdout_text, "1024"));

  // INI: either spelling at the top and in stage sections, K suffixes; train and plan agree.
  std::ofstream(dir / "run.ini") << "vocab-size = 64\nhidden_size = 32\nintermediate-size = 64\nnum_hidden_layers = 1\n"
                                    "num-attention-heads = 2\nnum_key_value_heads = 2\nffn_chunk = 1K\n"
                                    "[stage.one]\nseq_len = 1K\nrope-theta = 10000\nglobal_batch_tokens = 2K\nsteps = 1\n"
                                    "warmup_steps = 0\nlr = 1e-3\ndata = synthetic\n";
  const RunResult ti = rw_run(dir, 0, "train --config run.ini --save-params q.h5", "train_ini", 300);
  INFO(show(ti));
  REQUIRE(ti.exit_code == 0);
  const RunResult pi = rw_run(dir, 0, "plan --config run.ini --ranks 1", "plan_ini");
  INFO(show(pi));
  REQUIRE(pi.exit_code == 0);
  CHECK(contains(pi.stdout_text, "seq_len 1024 (1K)"));
  CHECK(contains(pi.stdout_text, "hidden 32"));

  // eval: K lengths and a K block.
  const RunResult e = rw_run(dir, 0, "eval needle --checkpoint p.h5 --lengths 128,1K --depths 50 --trials 1 --block 1K", "eval", 300);
  INFO(show(e));
  CHECK(e.exit_code == 0);
  CHECK(contains(e.stdout_text, "1024"));
}

TEST_CASE("out-of-range numbers are refused by every command with the option and its range", "[cli]") {
  ScratchDir dir("cli_ranges");
  struct Case {
    std::string args, needle;
  };
  const std::vector<Case> cases = {
      {"train --lr nan", "option '--lr' must be a finite number >= 0 (got 'nan')"},
      {"train --lr -1e-3", "option '--lr' must be a finite number >= 0"},
      {"train --steps 0", "option '--steps' must be an integer >= 1 (got '0')"},
      {"train --seq-len 0", "option '--seq-len' must be a count >= 1"},
      {"train --seq-len 4Q", "option '--seq-len' must be a count >= 1"},
      {"train --warmup-steps -1", "option '--warmup-steps' must be an integer >= 0"},
      {"train --beta1 1", "option '--beta1' must be a finite number in [0, 1)"},
      {"train --beta2 inf", "option '--beta2' must be a finite number in [0, 1)"},
      {"train --adam-eps 0", "option '--adam-eps' must be a finite number > 0"},
      {"train --weight-decay -0.1", "option '--weight-decay' must be a finite number >= 0"},
      {"train --clip-grad-norm nan", "option '--clip-grad-norm' must be a finite number >= 0"},
      {"train --min-lr -1", "option '--min-lr' must be a finite number >= 0"},
      {"train --timeout -5", "option '--timeout' must be a finite number >= 0"},
      {"train --carry-optimizer 2", "option '--carry-optimizer' must be an integer in [0, 1]"},
      {"train --log-every 0", "option '--log-every' must be an integer >= 1"},
      {"train --hidden_size 0", "option '--hidden_size' must be an integer >= 1"},
      {"train --rms_norm_eps 0", "option '--rms_norm_eps' must be a finite number > 0"},
      {"train --rope_theta 1", "option '--rope_theta' must be a finite number > 1"},
      {"train --num_attention_heads 3 --num_key_value_heads 1", "hidden_size (128) must be a multiple of num_attention_heads (3)"},
      {"train --num_key_value_heads 8", "num_key_value_heads must be an integer in [1, 4] (got 8)"},
      {"attn --input a.h5 --output b.h5 --block-q 0", "option '--block-q' must be a count >= 1"},
      {"attn --input a.h5 --output b.h5 --timeout nan", "option '--timeout' must be a finite number >= 0"},
      {"attn-input --output a.h5 --seq 0", "option '--seq' must be a count in [1, 2147483647]"},
      {"attn-input --output a.h5 --heads 0", "option '--heads' must be an integer in [1, 65536]"},
      {"forward --checkpoint a --input b --output c --block-k 0", "option '--block-k' must be a count >= 1"},
      {"forward --checkpoint a --input b --output c --precision fp16", "unknown precision 'fp16' (fp32 or bf16)"},
      {"train --precision bf32", "unknown precision 'bf32' (fp32 or bf16)"},
      {"prepare --input a --output b.h5 --min-doc-tokens 0", "option '--min-doc-tokens' must be a count >= 1"},
      {"eval needle --checkpoint a --trials 0", "option '--trials' must be an integer >= 1"},
      {"eval needle --checkpoint a --needles 17", "option '--needles' must be an integer in [1, 16]"},
      {"eval needle --checkpoint a --lengths 512,4096M", "bad length '4096M'"},
      {"eval needle --checkpoint a --ask 2", "--ask (2) must be at most --needles (1)"},
      {"eval needle --checkpoint a --haystack h.txt --needles 2 --ask 3", "--ask (3) must be at most --needles (2)"},
      {"eval needle --checkpoint a --mode sample", "unknown --mode 'sample' (forced or generate)"},
      {"eval needle --checkpoint a --mode forced --haystack h.txt", "use --mode generate"},
      {"eval needle --checkpoint a --haystack", "--haystack"},
      {"eval needle --checkpoint a --tokenizer byte", "--tokenizer is for the text task (--haystack)"},
      {"eval needle --checkpoint a --max-new-tokens 5", "--max-new-tokens is for the text task (--haystack)"},
      {"eval needle --checkpoint a --haystack h.txt --digits 3", "--digits is for the passkey task"},
      {"eval needle --checkpoint a --mode generate --show -1", "option '--show' must be a count >= 0"},
      {"plan --seq-len 4K --ranks 1 --block-q 0", "option '--block-q' must be a count >= 1"},
      {"plan --seq-len 4K --ranks 1 --threads 0", "option '--threads' must be an integer >= 1"},
      {"bench --steps 0", "option '--steps' must be an integer >= 1"},
      {"bench --warmup -1", "option '--warmup' must be an integer >= 0"},
      {"bench --model tiny --precision fp16", "unknown precision 'fp16' (fp32 or bf16)"},
      {"eval needle --checkpoint a --precision bf8", "unknown precision 'bf8' (fp32 or bf16)"},
      {"eval visual-needle --checkpoint a --vqgan b --precision half", "unknown precision 'half' (fp32 or bf16)"},
  };
  for (const Case& c : cases) expect_refusal(rw_run(dir, 0, c.args), c.needle);

  // Stage values from an INI file: the stage, the key and the range.
  std::ofstream(dir / "bad_stage.ini") << "[stage.s1]\nseq-len = 64\nrope_theta = 10000\nglobal-batch-tokens = 0\n"
                                          "steps = 2\nwarmup-steps = 0\nlr = nan\ndata = synthetic\n";
  expect_refusal(rw_run(dir, 0, "train --config bad_stage.ini"), "stage 's1': lr must be a finite number >= 0 (got nan)");
  std::ofstream(dir / "bad_top.ini") << "adam-eps = -1\n";
  expect_refusal(rw_run(dir, 0, "train --config bad_top.ini"), "adam-eps' must be a finite number > 0");
}

TEST_CASE("ckpt convert refuses to overwrite its input", "[cli]") {
  ScratchDir dir("cli_convert");
  const RunResult t = rw_run(dir, 0, std::string("train ") + kSmallModel + " --seq-len 64 --steps 1 --run-dir run",
                             "train", 300);
  INFO(show(t));
  REQUIRE(t.exit_code == 0);
  const fs::path ckpt = dir / "run" / "ckpt-main-final.h5";
  REQUIRE(fs::exists(ckpt));
  const std::string before = slurp(ckpt);
  expect_refusal(rw_run(dir, 2, "ckpt convert --input run/ckpt-main-final.h5 --output run/ckpt-main-final.h5"),
                 "is the input file");
  expect_refusal(rw_run(dir, 2, "ckpt convert --input run/ckpt-main-final.h5 --output run/../run/ckpt-main-final.h5"),
                 "is the input file");
  fs::create_hard_link(ckpt, dir / "link.h5");
  expect_refusal(rw_run(dir, 0, "ckpt convert --input run/ckpt-main-final.h5 --output link.h5"), "is the input file");
  CHECK(slurp(ckpt) == before);
  // Converting to another name still works.
  const RunResult ok = rw_run(dir, 2, "ckpt convert --input run/ckpt-main-final.h5 --output params.h5");
  INFO(show(ok));
  CHECK(ok.exit_code == 0);
  CHECK(fs::exists(dir / "params.h5"));
}

TEST_CASE("a directory given where a file is read is one line on every command", "[cli]") {
  ScratchDir dir("cli_dir_as_file");
  fs::create_directories(dir / "adir");
  const std::vector<std::string> commands = {
      "ckpt info adir",
      "ckpt convert --input adir --output out.h5",
      "forward --checkpoint adir --input adir --output out.h5",
      "attn --input adir --output out.h5",
      "eval needle --checkpoint adir --lengths 64 --depths 50",
      "train --init-params adir --seq-len 64 --steps 1",
      "train --data file:adir --seq-len 64 --steps 1",
  };
  for (const std::string& c : commands) {
    const RunResult r = rw_run(dir, 2, c, "dir", 120);
    expect_refusal(r, "'adir' is a directory, expected a file");
    CHECK_FALSE(fs::exists(dir / "out.h5"));
  }
  expect_refusal(rw_run(dir, 0, "ckpt info missing.h5"), "'missing.h5' does not exist");
}

TEST_CASE("prepare reads directories and compressed files, refuses what it cannot read as text", "[cli]") {
  ScratchDir dir("cli_prepare");
  fs::create_directories(dir / "texts" / "sub");
  fs::create_directories(dir / "texts" / ".hidden");
  std::ofstream(dir / "texts" / "a.txt") << "first document, plain text\n";
  std::ofstream(dir / "texts" / "sub" / "b.txt") << "second document in a subdirectory\n";
  std::ofstream(dir / "texts" / ".hidden" / "skip.txt") << "not read\n";
  std::ofstream(dir / "docs.jsonl") << "{\"text\": \"json one\"}\n{\"text\": \"json two\"}\n";
  const bool have_zstd = std::system("command -v zstd >/dev/null 2>&1") == 0;
  REQUIRE(shell(dir.path, "cp docs.jsonl c.jsonl && gzip -k c.jsonl && cp texts/a.txt a2.txt && gzip a2.txt").exit_code == 0);
  if (have_zstd) REQUIRE(shell(dir.path, "zstd -q -k docs.jsonl -o z.jsonl.zst").exit_code == 0);

  // A directory: its files, sorted, hidden ones skipped.
  const RunResult d = rw_run(dir, 0, "prepare --input texts --output dir.h5", "prep_dir");
  INFO(show(d));
  REQUIRE(d.exit_code == 0);
  CHECK(contains(d.stdout_text, "2 documents"));

  // Compressed files give exactly the tokens of the plain ones.
  const RunResult plain = rw_run(dir, 0, "prepare --input docs.jsonl texts/a.txt --output plain.h5", "prep_plain");
  const RunResult packed = rw_run(dir, 0, "prepare --input c.jsonl.gz a2.txt.gz --output gz.h5", "prep_gz");
  INFO(show(packed));
  REQUIRE(plain.exit_code == 0);
  REQUIRE(packed.exit_code == 0);
  auto tokens = [](const fs::path& p) {
    H5File f(p);
    REQUIRE(f.ok());
    hid_t ds = H5Dopen2(f.id(), "tokens", H5P_DEFAULT);
    REQUIRE(ds >= 0);
    hid_t space = H5Dget_space(ds);
    std::vector<int32_t> v(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    H5Dread(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Sclose(space);
    H5Dclose(ds);
    return v;
  };
  const auto plain_tokens = tokens(dir / "plain.h5");
  CHECK(plain_tokens.size() > 20);
  CHECK(tokens(dir / "gz.h5") == plain_tokens);
  if (have_zstd) {
    const RunResult z = rw_run(dir, 0, "prepare --input z.jsonl.zst --output z.h5", "prep_zst");
    INFO(show(z));
    REQUIRE(z.exit_code == 0);
    CHECK(contains(z.stdout_text, "2 documents"));
  }

  // Refused, one line each.
  REQUIRE(shell(dir.path, "printf 'BZh91AY&SY' > x.bz2 && printf '\\375\\067\\172\\130\\132\\000' > x.xz && "
                          "head -c 40 c.jsonl.gz > cut.jsonl.gz")
              .exit_code == 0);
  expect_refusal(rw_run(dir, 0, "prepare --input x.bz2 --output o.h5"), "bzip2-compressed");
  expect_refusal(rw_run(dir, 0, "prepare --input x.xz --output o.h5"), "xz-compressed");
  expect_refusal(rw_run(dir, 0, "prepare --input plain.h5 --output o.h5"), "is binary");
  expect_refusal(rw_run(dir, 0, "prepare --input cut.jsonl.gz --output o.h5"), "truncated or damaged gzip");
  fs::create_directories(dir / "empty");
  expect_refusal(rw_run(dir, 0, "prepare --input empty --output o.h5"), "holds no files");
  expect_refusal(rw_run(dir, 2, "prepare --input nothere --output o.h5"), "'nothere' does not exist");
  CHECK_FALSE(fs::exists(dir / "o.h5"));
}

TEST_CASE("forward and attn read int64 token files as int32 ones and refuse values outside int32", "[cli]") {
  ScratchDir dir("cli_int64");
  train_params(dir, "p.h5");
  const hsize_t batch = 2, seq = 16;
  std::vector<int64_t> tok64(batch * seq), seg64(batch * seq), pos64(batch * seq);
  for (hsize_t i = 0; i < batch * seq; ++i) {
    tok64[i] = static_cast<int64_t>((i * 7 + 3) % 64);
    seg64[i] = i % seq < 10 ? 0 : 1;
    pos64[i] = seg64[i] == 0 ? static_cast<int64_t>(i % seq) : static_cast<int64_t>(i % seq - 10);
  }
  std::vector<int32_t> tok32(tok64.begin(), tok64.end()), seg32(seg64.begin(), seg64.end()), pos32(pos64.begin(), pos64.end());
  {
    H5Writer w(dir / "in32.h5");
    w.i32("tokens", {batch, seq}, tok32);
    w.i32("segment_ids", {batch, seq}, seg32);
    w.i32("positions", {batch, seq}, pos32);
  }
  {
    H5Writer w(dir / "in64.h5");
    write_i64(w.id(), "tokens", {batch, seq}, tok64);
    write_i64(w.id(), "segment_ids", {batch, seq}, seg64);
    write_i64(w.id(), "positions", {batch, seq}, pos64);
  }
  const RunResult r32 = rw_run(dir, 2, "forward --checkpoint p.h5 --input in32.h5 --output out32.h5", "f32");
  const RunResult r64 = rw_run(dir, 2, "forward --checkpoint p.h5 --input in64.h5 --output out64.h5", "f64");
  INFO(show(r64));
  REQUIRE(r32.exit_code == 0);
  REQUIRE(r64.exit_code == 0);
  {
    H5File a(dir / "out32.h5"), b(dir / "out64.h5");
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    const Tensor la = read_tensor(a.id(), "logits"), lb = read_tensor(b.id(), "logits");
    CHECK(la.values.size() == batch * seq * 64);
    CHECK(same_bits(la, lb));
  }
  // A value beyond int32, a token id beyond the vocabulary, and a float dtype.
  std::vector<int64_t> big = tok64;
  big[5] = int64_t(1) << 33;
  {
    H5Writer w(dir / "big.h5");
    write_i64(w.id(), "tokens", {batch, seq}, big);
  }
  expect_refusal(rw_run(dir, 2, "forward --checkpoint p.h5 --input big.h5 --output o.h5"), "outside the int32 range");
  std::vector<int64_t> pos_big = pos64;
  pos_big[20] = -(int64_t(1) << 40);
  {
    H5Writer w(dir / "bigpos.h5");
    write_i64(w.id(), "tokens", {batch, seq}, tok64);
    write_i64(w.id(), "positions", {batch, seq}, pos_big);
  }
  expect_refusal(rw_run(dir, 2, "forward --checkpoint p.h5 --input bigpos.h5 --output o.h5"),
                 "dataset 'positions' in 'bigpos.h5' holds a value outside the int32 range");
  {
    H5Writer w(dir / "float.h5");
    w.f64("tokens", {batch, seq}, std::vector<double>(batch * seq, 1.0));
  }
  expect_refusal(rw_run(dir, 2, "forward --checkpoint p.h5 --input float.h5 --output o.h5"), "x.astype(np.int32)");
  CHECK_FALSE(fs::exists(dir / "o.h5"));

  // attn: int64 positions and segment ids give the int32 result bit for bit.
  const hsize_t heads = 2, d = 4;
  std::vector<float> q(batch * seq * heads * d);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<float>((i * 37 % 101) / 50.0 - 1.0);
  for (const char* name : {"a32.h5", "a64.h5"}) {
    H5Writer w(dir / name);
    w.f32("q", {batch, seq, heads, d}, q);
    w.f32("k", {batch, seq, heads, d}, q);
    w.f32("v", {batch, seq, heads, d}, q);
    if (std::string(name) == "a32.h5") {
      w.i32("segment_ids", {batch, seq}, seg32);
      w.i32("positions", {batch, seq}, pos32);
    } else {
      write_i64(w.id(), "segment_ids", {batch, seq}, seg64);
      write_i64(w.id(), "positions", {batch, seq}, pos64);
    }
  }
  const RunResult a32 = rw_run(dir, 2, "attn --input a32.h5 --output ao32.h5 --causal --quiet", "a32");
  const RunResult a64 = rw_run(dir, 2, "attn --input a64.h5 --output ao64.h5 --causal --quiet", "a64");
  INFO(show(a64));
  REQUIRE(a32.exit_code == 0);
  REQUIRE(a64.exit_code == 0);
  H5File a(dir / "ao32.h5"), b(dir / "ao64.h5");
  CHECK(same_bits(read_tensor(a.id(), "out"), read_tensor(b.id(), "out")));
  CHECK(same_bits(read_tensor(a.id(), "lse"), read_tensor(b.id(), "lse")));
}

TEST_CASE("eval needle refuses a model whose vocabulary cannot hold the passkey task", "[cli]") {
  ScratchDir dir("cli_eval_vocab");
  const RunResult t = rw_run(dir, 0,
                             "train --vocab_size 32 --hidden_size 32 --intermediate_size 64 --num_hidden_layers 1 "
                             "--num_attention_heads 2 --num_key_value_heads 2 --seq-len 64 --steps 1 --save-params v32.h5",
                             "train", 300);
  INFO(show(t));
  REQUIRE(t.exit_code == 0);
  expect_refusal(rw_run(dir, 2, "eval needle --checkpoint v32.h5 --lengths 128 --depths 50"),
                 "has vocab_size 32: eval needle's passkey task needs at least 64 token ids");
}

TEST_CASE("make build installs nothing; without dpkg the package step is a note", "[cli]") {
  ScratchDir dir("cli_make");
  const fs::path src = RW_SOURCE_DIR;
  const RunResult which = shell(dir.path, "command -v make");
  REQUIRE(which.exit_code == 0);
  const std::string make = which.stdout_text.substr(0, which.stdout_text.find('\n'));
  // -n prints what would run: configure and build, no package manager.
  const RunResult dry = shell(dir.path, make + " -n -C " + quoted(src) + " build BUILD_DIR=" + quoted(dir / "b"));
  INFO(dry.stdout_text);
  CHECK(dry.exit_code == 0);
  CHECK(contains(dry.stdout_text, "cmake"));
  CHECK_FALSE(contains(dry.stdout_text, "dpkg"));
  CHECK_FALSE(contains(dry.stdout_text, "apt-get"));
  // A machine without dpkg-query: only make itself on PATH.
  fs::create_directories(dir / "bin");
  fs::create_symlink(make, dir / "bin" / "make");
  const std::string env = "env PATH=" + (dir / "bin").string() + " " + (dir / "bin" / "make").string() + " --no-print-directory -C " + quoted(src);
  const RunResult skip = shell(dir.path, env + " deps-if-debian");
  INFO(skip.stdout_text);
  CHECK(skip.exit_code == 0);
  CHECK(contains(skip.stdout_text, "no dpkg-query here"));
  const RunResult deps = shell(dir.path, env + " deps");
  INFO(deps.stdout_text);
  CHECK(deps.exit_code != 0);
  CHECK(contains(deps.stdout_text, "Debian/Ubuntu"));
  const RunResult test_dry = shell(dir.path, env + " -n test BUILD_DIR=" + quoted(dir / "b"));
  INFO(test_dry.stdout_text);
  CHECK(test_dry.exit_code == 0);
  CHECK(contains(test_dry.stdout_text, "no dpkg-query here"));
  CHECK_FALSE(contains(test_dry.stdout_text, "apt-get install"));
}

TEST_CASE("README's marked examples run as written", "[cli]") {
  ScratchDir dir("cli_readme");
  std::ifstream in(std::string(RW_SOURCE_DIR) + "/README.md");
  REQUIRE(in);
  std::vector<std::string> blocks;
  std::string line;
  bool marked = false, inside = false;
  while (std::getline(in, line)) {
    if (inside) {
      if (line.rfind("```", 0) == 0) inside = false;
      else blocks.back() += line + "\n";
      continue;
    }
    if (line.find("<!-- readme-test: runs as written -->") != std::string::npos) marked = true;
    else if (marked && line.rfind("```sh", 0) == 0) inside = true, marked = false, blocks.emplace_back();
    else if (marked && !line.empty()) marked = false;  // a marker applies to the block right after it
  }
  REQUIRE(blocks.size() >= 2);
  // As a user runs them from the repository root: build/ringworld is the built binary, mpirun
  // gets the test suite's root-safe flags.
  int index = 0;
  for (std::string block : blocks) {
    block = std::regex_replace(block, std::regex("(^|[\n (;&|])build/ringworld"), std::string("$1") + RW_CLI_BIN);
    block = std::regex_replace(block, std::regex("(^|[\n (;&|])mpirun "), std::string("$1") + RW_CLI_MPIEXEC + " ");
    const RunResult r = shell(dir.path, "set -euo pipefail\n" + block, 600);
    ++index;
    INFO("block " << index << ":\n" << block << "\noutput:\n" << r.stdout_text);
    CHECK(r.exit_code == 0);
  }
}
