// fuzz_config.cpp: INI config files (src/cli/config_file.h on boost::program_options, and the
// [stage.NAME] handling of train and plan around it): the bytes are written as a config file and
// read by `ringworld train --config FILE` and `ringworld plan --config FILE` (and --model FILE).
// train gets --stage with a name no INI section can spell (a newline), so it always stops after
// reading and validating the whole config, before any training; plan gets a fixed device so it
// does not measure this machine. A finding: a crash, a sanitizer report, rw::fatal, or an
// exception escaping the command (each must end in one message and a non-zero status).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "src/cli/commands.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

int run(int (*command)(int, char**), std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  try {
    return command(static_cast<int>(args.size()), argv.data());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_config: exception escaped %s: %s\n", args[0].c_str(), e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  rw::fuzz::init_mpi_once(argc, argv);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  rw::fuzz::TempFile ini(data, size, ".ini");
  run(rw::cli::run_train, {"train", "--config", ini.path(), "--stage", "\n"});
  const std::vector<std::string> device = {"--device-tflops", "1", "--device-mem-gib", "16", "--link-gbps", "100"};
  std::vector<std::string> plan = {"plan", "--config", ini.path(), "--ranks", "4"};
  plan.insert(plan.end(), device.begin(), device.end());
  run(rw::cli::run_plan, plan);
  plan = {"plan", "--model", ini.path(), "--seq-len", "4K", "--ranks", "2"};
  plan.insert(plan.end(), device.begin(), device.end());
  run(rw::cli::run_plan, plan);
  return 0;
}
