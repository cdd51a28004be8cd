// main.cpp: `ringworld <command> [options]`. Initialises MPI, dispatches, finalises.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "device/backend.h"
#include "mpi/runtime.h"
#include "src/cli/commands.h"
#include "src/common/build_info.h"
#include "src/cli/option_parsing.h"

namespace {

const char* kUsage =
    "usage: ringworld <command> [options]     (run under mpirun -np N for N ranks)\n"
    "       ringworld --version               version, git commit and build options\n"
    "       ringworld --help                  this text\n"
    "\n"
    "commands:\n"
    "  attn        exact ring attention on tensors from an HDF5 file (forward, --backward)\n"
    "  attn-input  write a random input file for attn (any size, packed documents)\n"
    "  train       train a LLaMA model with ring attention on a dp x sp grid (FSDP)\n"
    "  forward     run a model from a parameter file on tokens from HDF5 (logits, loss, gradients)\n"
    "  ckpt        info FILE | convert --input A --output B (checkpoints and parameter files)\n"
    "  prepare     tokenize text files into a token dataset (HDF5)\n"
    "  eval        needle: retrieval accuracy over context lengths x needle depths (heatmap)\n"
    "  plan        predict memory per rank, step time and ring overlap of a run before it runs\n"
    "  bench       training throughput and ring communication at one point of a scaling study\n"
    "  import      Hugging Face (--from hf DIR) or LWM JAX (--from lwm-jax FILE) weights -> parameter file\n"
    "  export      parameter file or checkpoint -> Hugging Face directory (--to hf CKPT DIR)\n"
    "  generate    text from a model: prompt prefilled on the ring, KV cache sharded over the ranks\n"
    "  vqgan       encode images to VQGAN codes (CODES.h5) or decode codes to PNG frames\n"
    "\n"
    "`ringworld <command> --help` describes a command's options (ckpt and eval: also per\n"
    "subcommand, e.g. `ringworld ckpt convert --help`). Options: --hidden-size and --hidden_size\n"
    "are the same option; token counts take K/M/G suffixes (32K = 32768). `ringworld --version`:\n"
    "the version, git commit and build options.\n";

}  // namespace

int main(int argc, char** argv) {
  rw::build::set_command_line(argc, argv);  // before MPI may rewrite argv
  rw::device::prepare_process(argc, argv);  // before MPI_Init: may re-execute (cpu: OpenBLAS kernels)
  rw::mpi::Runtime mpi_runtime(argc, argv);
  const bool is_root = rw::mpi::world_rank() == 0;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    if (is_root) std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "--version") {
    if (is_root)
      std::printf("ringworld %s\ngit commit: %s\nbuild: %s\n", rw::build::version(), rw::build::git_commit(),
                  rw::build::build_options());
    return 0;
  }
  if (command == "attn") return rw::cli::run_attn(argc - 1, argv + 1);
  if (command == "attn-input") return rw::cli::run_attn_input(argc - 1, argv + 1);
  if (command == "train") return rw::cli::run_train(argc - 1, argv + 1);
  if (command == "forward") return rw::cli::run_forward(argc - 1, argv + 1);
  if (command == "ckpt") return rw::cli::run_ckpt(argc - 1, argv + 1);
  if (command == "prepare") return rw::cli::run_prepare(argc - 1, argv + 1);
  if (command == "eval") return rw::cli::run_eval(argc - 1, argv + 1);
  if (command == "plan") return rw::cli::run_plan(argc - 1, argv + 1);
  if (command == "bench") return rw::cli::run_bench(argc - 1, argv + 1);
  if (command == "import") return rw::cli::run_import(argc - 1, argv + 1);
  if (command == "export") return rw::cli::run_export(argc - 1, argv + 1);
  if (command == "generate") return rw::cli::run_generate(argc - 1, argv + 1);
  if (command == "vqgan") return rw::cli::run_vqgan(argc - 1, argv + 1);
  const std::vector<std::string> commands = {"attn", "attn-input", "train", "forward", "ckpt",
                                             "prepare", "eval", "plan", "bench", "import", "export", "generate", "vqgan"};
  if (is_root)
    std::fprintf(stderr, "ringworld: error: unknown command '%s'%s\n\n%s", command.c_str(),
                 rw::cli::did_you_mean(command, commands).c_str(), kUsage);
  return 2;
}
