// model_options.h: the model's options, shared by train, plan and bench: every Hugging Face
// LlamaConfig field (src/model/llama_config.h) as an option with its meaning and the value of
// each preset in --help, range-checked when stored (option_values.h), and applied over a preset.
#pragma once
#include <boost/program_options.hpp>

#include <string>

#include "src/model/llama_config.h"

namespace rw::cli {

// Declares one option per LlamaConfig field (int64 or double), with "what it is [tiny 256,
// small 512, 7b 32000]" as its help.
void add_model_options(boost::program_options::options_description& options);

// Sets the fields given in vm over `config`. Returns "name=value;..." of what was set (for
// labels), numbers as typed.
std::string apply_model_options(const boost::program_options::variables_map& vm, model::LlamaConfig& config);

}  // namespace rw::cli
