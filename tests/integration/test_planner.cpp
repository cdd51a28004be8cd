// test_planner.cpp: `ringworld plan` end to end. Its memory prediction is compared with the peak
// resident memory `ringworld train` measures (getrusage ru_maxrss, max over ranks: the line
// "peak resident memory per rank (max over ranks): X MiB") on three small CPU runs on 2 ranks,
// chosen so that activations, not the process's constant baseline, make most of the memory:
//   1. one long sequence: 32K tokens of short packed documents (a token dataset written by
//      `ringworld prepare`; short documents keep attention cheap so the run takes seconds), a
//      GQA model of hidden 64 with 6 layers, sp 2, 64 x 64 tiles;
//   2. the small preset (hidden 256, 4 layers, intermediate 688), 8 sequences of 512, sp 2;
//   3. dp 2 x sp 1 (a ring of one: FSDP over the two dp ranks), 8 sequences of 2048, hidden 64,
//      8 layers.
// The issue asks for agreement within 25% (kTolerance). The model follows the allocations of
// the code (src/plan/memory_model.h) and adds a measured constant for the CPU process (30 MiB,
// src/plan/device_table.cpp); when this test was written the predictions were within 4% of the
// measurements (printed below on every run). Each configuration must also be one where the
// model's non-constant part (parameters, optimizer state, activations) is at least
// kMinVariableShare of the prediction, so a constant cannot pass the test by itself.
// Also: bad options exit 2 with one message; the 7b / 1M / 64 x H100 plan prints its verdicts
// (inter-node links for a ring over 8 nodes, the 10% headroom); a run that does not fit exits 1;
// ring messages over 1 GiB are reported with their splitting; --json holds the same figures;
// train measures the peak its MFU uses with the dense GEMMs' (OpenBLAS) thread count; plan
// --inference: LWM-Text-1M's 512 GiB KV cache at 1M tokens, the smallest ring of H100s that
// holds it (and one fewer does not: exit 1), --json, bad options (about 1 s). `plan` runs as a user runs it, without mpirun; `train` under mpirun -np 2. About
// 15-20 s on a loaded 2-core machine.
#include <sys/wait.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/integration/integration_support.h"

using namespace rw::test;

namespace {

constexpr double kTolerance = 0.25;         // |predicted - measured| / measured, from the issue
constexpr double kMinVariableShare = 0.6;   // of the prediction, beyond the constant baseline

// A number before " MiB" (or another binary unit) following `label` in `text`; -1 if absent.
double mib_after(const std::string& text, const std::string& label) {
  const std::size_t at = text.find(label);
  if (at == std::string::npos) return -1;
  std::smatch m;
  const std::string rest = text.substr(at + label.size());
  if (!std::regex_search(rest, m, std::regex(R"(^\s*([0-9.]+) (B|KiB|MiB|GiB))"))) return -1;
  const double value = std::stod(m[1]);
  const std::string unit = m[2];
  return unit == "GiB" ? value * 1024 : unit == "MiB" ? value : unit == "KiB" ? value / 1024 : value / 1048576;
}

// 1200 short documents (8-30 words of a small vocabulary), deterministic: about 137K byte tokens.
void write_documents(const fs::path& path) {
  static const char* words[] = {"alpha", "beta", "gamma", "delta", "ring", "attention", "token",
                                "memory", "plan", "rank", "block", "chunk", "layer"};
  std::ofstream out(path);
  uint64_t state = 12345;
  auto next = [&](int n) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((state >> 33) % static_cast<uint64_t>(n));
  };
  for (int d = 0; d < 1200; ++d) {
    out << "{\"text\": \"";
    const int n = 8 + next(23);
    for (int w = 0; w < n; ++w) out << (w ? " " : "") << words[next(13)];
    out << "\"}\n";
  }
}

// `ringworld ARGS` run directly, as a user runs `plan` before a job (an MPI singleton, no
// mpirun: also seconds faster per call on a loaded machine).
RunResult run_direct(const std::string& args, const fs::path& out_log, const fs::path& err_log) {
  RunResult r;
  r.command = "timeout 60 " + quoted(RW_PLANNER_BIN) + " " + args;
  const int status = std::system((r.command + " >" + quoted(out_log) + " 2>" + quoted(err_log)).c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.stdout_text = slurp(out_log);
  r.stderr_text = slurp(err_log);
  return r;
}

RunResult run_plan(const std::string& args, const fs::path& out_log, const fs::path& err_log) {
  return run_direct("plan " + args, out_log, err_log);
}

struct Config {
  std::string name;
  std::string shape;        // options train and plan share
  std::string train_extra;  // options only train takes
};

}  // namespace

TEST_CASE("plan predicts the peak resident memory of small CPU training runs within 25%", "[planner]") {
  ScratchDir dir("planner");
  write_documents(dir / "docs.jsonl");
  const RunResult prep = run_direct("prepare --tokenizer byte --input " + quoted(dir / "docs.jsonl") + " --output " +
                                        quoted(dir / "docs.h5"),
                                    dir / "prep.out", dir / "prep.err");
  INFO(show(prep));
  REQUIRE(prep.exit_code == 0);

  const std::string gqa64 = "--model tiny --hidden_size 64 --num_attention_heads 2 --intermediate_size 128 --vocab_size 256";
  const std::vector<Config> configs = {
      {"32K packed sequence, sp 2", gqa64 + " --num_key_value_heads 1 --num_hidden_layers 6 --seq-len 32768 --block-q 64 --block-k 64",
       "--data file:" + quoted(dir / "docs.h5")},
      {"small preset, 8 x 512, sp 2", "--model small --seq-len 512 --global-batch-tokens 4096", ""},
      {"8 x 2048, dp 2 x sp 1", gqa64 + " --num_key_value_heads 2 --num_hidden_layers 8 --seq-len 2048 --global-batch-tokens 16384 --dp 2 --sp 1",
       ""},
  };
  std::printf("planner vs measured peak resident memory per rank (2 ranks, CPU):\n");
  std::printf("  %-30s %12s %12s %8s %12s\n", "configuration", "measured", "predicted", "error", "constant");
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const Config& c = configs[i];
    const std::string tag = "c" + std::to_string(i);
    const RunResult train = run_ringworld(2, "train " + c.shape + " " + c.train_extra + " --steps 1", 240,
                                          dir / (tag + "-train.out"), dir / (tag + "-train.err"));
    const RunResult plan = run_plan(c.shape + " --ranks 2 --device cpu --device-tflops 1 --threads 1",
                                    dir / (tag + "-plan.out"), dir / (tag + "-plan.err"));
    INFO(c.name);
    INFO(show(train));
    INFO(show(plan));
    REQUIRE(train.exit_code == 0);
    REQUIRE(plan.exit_code == 0);
    const double measured = mib_after(train.stdout_text, "peak resident memory per rank (max over ranks):");
    const double predicted = mib_after(plan.stdout_text, "predicted peak memory per rank:");
    const double constant = mib_after(plan.stdout_text, "runtime and libraries");
    REQUIRE(measured > 0);
    REQUIRE(predicted > 0);
    REQUIRE(constant >= 0);
    const double error = (predicted - measured) / measured;
    std::printf("  %-30s %8.1f MiB %8.1f MiB %+7.1f%% %8.1f MiB\n", c.name.c_str(), measured, predicted, 100 * error,
                constant);
    std::fflush(stdout);
    CHECK(std::fabs(error) <= kTolerance);
    CHECK(predicted - constant >= kMinVariableShare * predicted);
  }
}

TEST_CASE("plan: the 7b at 1M tokens on 64 H100s fits, names its smallest ring and hides the ring", "[planner]") {
  ScratchDir dir("planner7b");
  const RunResult r = run_plan("--model 7b --seq-len 1M --ranks 64 --device h100", dir / "out", dir / "err");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.stdout_text.find("6738415616 parameters") != std::string::npos);
  CHECK(r.stdout_text.find(": fits") != std::string::npos);
  CHECK(r.stdout_text.find("smallest ring that fits (dp 1 kept): sp = 32") != std::string::npos);
  CHECK(r.stdout_text.find("forward : compute") != std::string::npos);
  CHECK(r.stdout_text.find("NOT hidden") == std::string::npos);
  // 64 ranks of 8 per node: the ring crosses 8 nodes, so its hops run at the network's 50 GB/s.
  CHECK(r.stdout_text.find("8 rank(s) per node: 8 node(s); 1 of 1 ring(s) cross nodes (8 of 64 hops)") != std::string::npos);
  CHECK(r.stdout_text.find("over the inter-node link: 50.0 GB/s each way") != std::string::npos);
  CHECK(r.stdout_text.find("of 72.00 GiB usable (80.00 GiB less 10% headroom") != std::string::npos);
  // bf16 compute (tensor-core rate) with bf16 K/V messages (train --precision bf16): the forward
  // ring no longer hides at 4K tokens per rank, c* = F (4 kv + 8) / (2 h B): over the network
  // (B = 50 GB/s) 989.4e12 * 16392 / (8192 * 50e9) = 39595 tokens; were all 256 GPUs one NVLink
  // node (B = 450 GB/s), 4399.
  const RunResult bf16 =
      run_plan("--model 7b --seq-len 1M --ranks 256 --device h100 --precision bf16", dir / "out2", dir / "err2");
  INFO(show(bf16));
  REQUIRE(bf16.exit_code == 0);
  CHECK(bf16.stdout_text.find("forward : compute") != std::string::npos);
  CHECK(bf16.stdout_text.find("NOT hidden (hides when c >= 39595 tokens)") != std::string::npos);
  const RunResult one_node = run_plan("--model 7b --seq-len 1M --ranks 256 --device h100 --precision bf16 --gpus-per-node 256",
                                      dir / "out3", dir / "err3");
  INFO(show(one_node));
  REQUIRE(one_node.exit_code == 0);
  CHECK(one_node.stdout_text.find("NOT hidden (hides when c >= 4399 tokens)") != std::string::npos);
}

namespace {

// LWM's 128K stage (jobs/configs/lwm-text-7b.ini): 7b, 4M tokens per step.
fs::path write_lwm_128k(const fs::path& dir) {
  const fs::path path = dir / "lwm-128k.ini";
  std::ofstream out(path);
  out << "model = 7b\nlayout = zigzag\n\n[stage.128k]\nseq-len = 131072\nglobal-batch-tokens = 4194304\n"
         "steps = 3000\nlr = 4e-5\n";
  return path;
}

}  // namespace

TEST_CASE("plan: a run that does not fit exits 1; messages over 1 GiB are reported split", "[planner]") {
  ScratchDir dir("planner_fit");
  const fs::path config = write_lwm_128k(dir.path);
  // Issue 15: 32 ranks need 174 GiB per rank. On an MI300X (192 GB) that is 91%: inside the
  // capacity, outside the 10% headroom: does not fit, exit status 1 (the whole batch at once:
  // --micro-batch-tokens 0; by default plan would choose micro-batches that fit).
  const RunResult no = run_plan("--model " + quoted(config) + " --ranks 32 --device mi300x --micro-batch-tokens 0", dir / "o1", dir / "e1");
  INFO(show(no));
  CHECK(no.exit_code == 1);
  CHECK(no.stdout_text.find("174.37 GiB) of 172.80 GiB usable (192.00 GiB less 10% headroom") != std::string::npos);
  CHECK(no.stdout_text.find("verdict: DOES NOT FIT (exit status 1)") != std::string::npos);
  // Without headroom it would fit: the headroom is what refuses it.
  const RunResult tight = run_plan("--model " + quoted(config) + " --ranks 32 --device mi300x --headroom 0 --micro-batch-tokens 0", dir / "o2", dir / "e2");
  INFO(show(tight));
  CHECK(tight.exit_code == 0);
  // 64 ranks on H200s fit; each ring hop carries 2 x 64 x 2048 tokens x 4096 x 4 B = 2 GiB of
  // K|V (issue 14: beyond MPI's int count, which aborted the first ring step): sent in 2 pieces.
  const RunResult yes = run_plan("--model " + quoted(config) + " --ranks 64 --device h200", dir / "o3", dir / "e3");
  INFO(show(yes));
  CHECK(yes.exit_code == 0);
  CHECK(yes.stdout_text.find("verdict: fits") != std::string::npos);
  CHECK(yes.stdout_text.find("largest MPI transfer of a step: 2.00 GiB (ring K|V payload, per hop): split into 2 calls of <= 1.00 GiB") !=
        std::string::npos);
}

TEST_CASE("plan --json prints one JSON object with the verdict and the same figures", "[planner]") {
  ScratchDir dir("planner_json");
  const fs::path config = write_lwm_128k(dir.path);
  for (int ranks : {32, 64}) {
    const std::string args = "--model " + quoted(config) + " --ranks " + std::to_string(ranks) + " --device h200 --micro-batch-tokens 0";
    const RunResult text = run_plan(args, dir / "t.out", dir / "t.err");
    const RunResult json = run_plan(args + " --json", dir / "j.out", dir / "j.err");
    INFO(show(json));
    CHECK(json.exit_code == text.exit_code);
    nlohmann::json j;
    REQUIRE_NOTHROW(j = nlohmann::json::parse(json.stdout_text));
    CHECK(j["fits"].get<bool>() == (ranks == 64));
    CHECK(j["run"]["ranks"].get<int>() == ranks);
    CHECK(j["run"]["sequences_per_group"].get<int>() == 32);
    CHECK(j["device"]["name"] == "h200");
    CHECK(j["memory"]["headroom"].get<double>() == 0.1);
    CHECK(j["topology"]["nodes"].get<int>() == ranks / 8);
    CHECK(j["transfers"][0]["name"] == "ring K|V payload, per hop");
    CHECK(j["transfers"][0]["calls"].get<double>() == 128.0 / ranks);
    // The text's peak memory, in MiB with one decimal, is the JSON's bytes.
    CHECK(mib_after(text.stdout_text, "predicted peak memory per rank:") ==
          Approx(j["memory"]["total_bytes"].get<double>() / 1048576).margin(0.05));
  }
}

TEST_CASE("plan: bad options end with one message and a non-zero exit", "[planner]") {
  ScratchDir dir("planner_bad");
  const fs::path nothing = dir / "no-output";
  struct Bad {
    std::string args, needle;
  };
  const std::vector<Bad> cases = {
      {"--model 7b --seq-len 1.5M --ranks 8", "--seq-len '1.5M'"},
      {"--model 7b --seq-len 1000 --ranks 3", "1000"},
      {"--model 7b --ranks 8", "--seq-len is required"},
      {"--model 7b --seq-len 32K", "--ranks"},
      {"--model 7b --seq-len 32K --ranks 8 --dp 3", "--dp x --sp"},
      {"--model 7b --seq-len 32K --ranks 8 --device a100", "unknown device 'a100'"},
      {"--model 7b --seq-len 32K --ranks 8 --precision fp8", "unknown precision 'fp8'"},
      {"--model 13b --seq-len 32K --ranks 8", "--model '13b'"},
      {"--model 7b --seq-len 32K --ranks 8 --global-batch-tokens 1000", "--global-batch-tokens"},
      // An override needs the device it overrides (issue 15: it silently kept the CPU profile).
      {"--model 7b --seq-len 32K --ranks 8 --device-tflops 100", "--device-tflops needs --device"},
      {"--model 7b --seq-len 32K --ranks 8 --device-mem-gib 80", "--device-mem-gib needs --device"},
      {"--model 7b --seq-len 32K --ranks 8 --device custom --device-tflops 100", "--device custom needs"},
      {"--model 7b --seq-len 32K --ranks 16 --device custom --device-tflops 100 --device-mem-gib 80 --link-gbps 800 "
       "--ranks-per-node 8",
       "needs --inter-node-gbps"},
      {"--model 7b --seq-len 32K --ranks 8 --device h100 --headroom 1.5", "--headroom"},
      {"--model 7b --seq-len 32K --ranks 8 --device cpu --gpus-per-node 4", "--gpus-per-node is for GPU devices"},
      {"--model 7b --seq-len 32K --ranks 8 --device h100 --gpus-per-node 4 --ranks-per-node 8", "differ"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const RunResult r =
        run_plan(cases[i].args, dir / ("b" + std::to_string(i) + ".out"), dir / ("b" + std::to_string(i) + ".err"));
    INFO(cases[i].args);
    expect_clean_failure(r, nothing, cases[i].needle);
  }
  // A key of the config file that neither train nor plan knows (it was silently ignored, so a
  // typo planned the preset's model); train's own keys (lr, steps, ...) stay accepted.
  const fs::path typo = dir / "typo.ini";
  std::ofstream(typo) << "model = tiny\nlr = 1e-3\nhidden_sise = 256\n[stage.a]\nseq-len = 512\nsteps = 3\n";
  expect_clean_failure(run_plan("--model " + quoted(typo) + " --ranks 2", dir / "t.out", dir / "t.err"), nothing,
                       "unknown option 'hidden_sise'; did you mean 'hidden_size'?");
  const fs::path fine = dir / "fine.ini";
  std::ofstream(fine) << "model = tiny\nlr = 1e-3\nhidden_size = 256\nkeep-last = 1\n[stage.a]\nseq-len = 512\nsteps = 3\n";
  const RunResult ok = run_plan("--model " + quoted(fine) + " --ranks 2", dir / "f.out", dir / "f.err");
  INFO(show(ok));
  CHECK(ok.exit_code == 0);
}

TEST_CASE("plan --inference: LWM-Text-1M at 1M tokens: 512 GiB of bf16 KV cache, the ring that holds it, exit status", "[planner]") {
  ScratchDir dir("planner_inference");
  const std::string lwm = "--inference --model lwm-7b --context 1M --device h100";
  const RunResult r = run_plan(lwm + " --ranks 16", dir / "o1", dir / "e1");
  INFO(show(r));
  REQUIRE(r.exit_code == 0);
  // 32 layers x 32 kv heads x 128 x 2 (K, V) x 2 bytes x 2^20 tokens = 512 GiB; 32 GiB per rank.
  CHECK(r.stdout_text.find("KV cache, whole context: 512.00 GiB of bf16 (16.0 KiB per token per layer); per rank 32.00 GiB = total / 16") !=
        std::string::npos);
  CHECK(r.stdout_text.find("precision: bf16") != std::string::npos);
  CHECK(r.stdout_text.find("at 1M tokens needs 512.00 GiB of bf16 KV cache: ") != std::string::npos);
  CHECK(r.stdout_text.find("decode time per token: ") != std::string::npos);
  CHECK(r.stdout_text.find("prefill time: ") != std::string::npos);
  CHECK(r.stdout_text.find("verdict: fits") != std::string::npos);

  // --json: the same figures; the smallest ring it names fits and one rank fewer does not
  // (exit status 1).
  const RunResult j16 = run_plan(lwm + " --ranks 16 --json", dir / "o2", dir / "e2");
  INFO(show(j16));
  REQUIRE(j16.exit_code == 0);
  nlohmann::json j;
  REQUIRE_NOTHROW(j = nlohmann::json::parse(j16.stdout_text));
  CHECK(j["mode"] == "inference");
  CHECK(j["device"]["precision"] == "bf16");
  CHECK(j["memory"]["kv_cache_total_bytes"].get<double>() == 512.0 * 1024 * 1024 * 1024);
  CHECK(j["memory"]["kv_cache_bytes"].get<double>() == j["memory"]["kv_cache_total_bytes"].get<double>() / 16);
  CHECK(mib_after(r.stdout_text, "predicted peak memory per rank:") ==
        Approx(j["memory"]["total_bytes"].get<double>() / 1048576).margin(0.01 * 1024));  // printed as GiB, 2 decimals
  const int smallest = j["memory"]["smallest_fitting_ranks"].get<int>();
  REQUIRE(smallest > 8);  // 512 GiB / 72 GiB usable per H100 is more than 7, and the model is on every rank
  CHECK(r.stdout_text.find("smallest ring of h100 that holds it: " + std::to_string(smallest) + " x h100") != std::string::npos);
  const RunResult at = run_plan(lwm + " --ranks " + std::to_string(smallest), dir / "o3", dir / "e3");
  CHECK(at.exit_code == 0);
  const RunResult below = run_plan(lwm + " --ranks " + std::to_string(smallest - 1), dir / "o4", dir / "e4");
  INFO(show(below));
  CHECK(below.exit_code == 1);
  CHECK(below.stdout_text.find("verdict: DOES NOT FIT (exit status 1)") != std::string::npos);
  // fp32 doubles the cache.
  const RunResult fp32 = run_plan(lwm + " --ranks 64 --precision fp32", dir / "o5", dir / "e5");
  CHECK(fp32.stdout_text.find("KV cache, whole context: 1024.00 GiB of fp32") != std::string::npos);
}

TEST_CASE("plan --inference: bad options end with one message and exit status 2", "[planner]") {
  ScratchDir dir("planner_inference_bad");
  const fs::path nothing = dir / "no-output";
  struct Bad {
    std::string args, needle;
  };
  const std::vector<Bad> cases = {
      {"--inference --model lwm-7b --ranks 8 --device h100", "--inference needs --context"},
      {"--inference --model lwm-7b --context 1M --device h100", "--inference needs --ranks"},
      {"--inference --model lwm-7b --context 1M --ranks 0 --device h100", "--ranks must be at least 1"},
      {"--inference --model lwm-7b --context 0 --ranks 8 --device h100", "--context"},
      {"--inference --model lwm-7b --context 1.5M --ranks 8 --device h100", "--context"},
      {"--inference --model lwm-7b --context 2G --ranks 8 --device h100", "2^31 - 1"},
      {"--inference --model lwm-7b --context 1M --ranks 8 --device h100 --max-new-tokens -1", "--max-new-tokens"},
      {"--inference --model lwm-7b --context 1M --ranks 8 --device h100 --precision fp8", "unknown precision 'fp8'"},
      {"--inference --model lwm-13b --context 1M --ranks 8", "--model 'lwm-13b'"},
      {"--inference --model lwm-7b --seq-len 1M --ranks 8 --device h100", "--seq-len is for training plans"},
      {"--inference --model lwm-7b --context 1M --ranks 8 --dp 2 --device h100", "--dp is for training plans"},
      {"--model 7b --seq-len 1M --ranks 8 --context 1M --device h100", "--context is for inference plans"},
      {"--inference --model lwm-7b --context 1M --ranks 8 --memory-bandwidth-gbs 3000", "--memory-bandwidth-gbs needs --device"},
      {"--inference --model lwm-7b --context 1M --ranks 8 --device h100 --memory-bandwidth-gbs 0", "--memory-bandwidth-gbs"},
      {"--inference --model lwm-7b --context 1M --ranks 8 --device h100 --link-latency-us -2", "--link-latency-us"},
      {"--inference --model lwm-7b --context 1M --ranks 8 --device custom --device-tflops 100 --device-mem-gib 80 "
       "--link-gbps 800",
       "needs --memory-bandwidth-gbs"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const RunResult r =
        run_plan(cases[i].args, dir / ("b" + std::to_string(i) + ".out"), dir / ("b" + std::to_string(i) + ".err"));
    INFO(cases[i].args);
    expect_clean_failure(r, nothing, cases[i].needle);
  }
}

TEST_CASE("train measures its MFU peak with the dense GEMMs' threads and warns when OpenMP's differ", "[planner]") {
  // Issue 14 item 7: the Slurm scripts ran the GEMMs on one OpenBLAS thread beside
  // OMP_NUM_THREADS=cpus-per-task, and MFU's peak was measured with the OpenMP count.
  ScratchDir dir("planner_threads");
  const std::string args = "train --model tiny --hidden_size 64 --intermediate_size 128 --num_attention_heads 4 "
                           "--num_key_value_heads 4 --vocab_size 64 --seq-len 64 --steps 1";
  for (const auto& [omp, blas] : std::vector<std::pair<int, int>>{{2, 1}, {2, 2}}) {
    std::string command = ringworld_command(2, args);
    const std::size_t at = command.find(" -np ");
    REQUIRE(at != std::string::npos);
    command.insert(at, " -x OMP_NUM_THREADS=" + std::to_string(omp) + " -x OPENBLAS_NUM_THREADS=" + std::to_string(blas) +
                           " -x OMP_WAIT_POLICY=passive");
    RunResult r;
    r.command = "timeout 120 " + command;
    const int status = std::system((r.command + " >" + quoted(dir / "out") + " 2>" + quoted(dir / "err")).c_str());
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.stdout_text = slurp(dir / "out");
    r.stderr_text = slurp(dir / "err");
    INFO(show(r));
    REQUIRE(r.exit_code == 0);
    CHECK(r.stdout_text.find("threads per rank: " + std::to_string(blas) + " OpenBLAS (dense GEMMs; the peak above), " +
                             std::to_string(omp) + " OpenMP") != std::string::npos);
    const bool warned = r.stderr_text.find("warning: the dense GEMMs run on 1 OpenBLAS thread(s) per rank but the attention "
                                           "kernels on 2 OpenMP thread(s)") != std::string::npos;
    CHECK(warned == (omp != blas));
  }
}
