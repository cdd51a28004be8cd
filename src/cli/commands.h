// commands.h: the subcommands of the ringworld binary (one file each), dispatched by main.cpp.
// Each returns the process exit code; MPI is initialised before and finalised after.
#pragma once
#include <string>
#include <vector>

namespace rw::cli {

int run_attn(int argc, char** argv);
int run_attn_input(int argc, char** argv);
int run_train(int argc, char** argv);
int run_forward(int argc, char** argv);
int run_ckpt(int argc, char** argv);
int run_prepare(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_plan(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_import(int argc, char** argv);
int run_export(int argc, char** argv);
int run_generate(int argc, char** argv);
int run_vqgan(int argc, char** argv);

// Every option name train takes (command line and INI keys): plan reads train's config files
// and refuses a key that neither knows.
std::vector<std::string> train_config_keys();

}  // namespace rw::cli
