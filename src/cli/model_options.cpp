// model_options.cpp
#include "src/cli/model_options.h"

#include "src/cli/option_values.h"
#include "src/common/number_format.h"

namespace po = boost::program_options;

namespace rw::cli {

void add_model_options(po::options_description& options) {
  const char* presets[] = {"tiny", "small", "7b"};
  for (const auto& f : model::config_fields()) {
    std::string help = std::string(f.meaning) + " [";
    for (std::size_t i = 0; i < 3; ++i) {
      const model::LlamaConfig preset = model::preset_config(presets[i]);
      help += std::string(i ? ", " : "") + presets[i] + " " +
              (f.integer ? std::to_string(preset.*f.integer) : format_number(preset.*f.real));
    }
    help += "]";
    // Ranges of single fields here; the relations between fields in LlamaConfig::validate().
    if (f.integer) options.add_options()(f.name, number<int64_t>(nullptr)->min(f.optional ? 0 : 1), help.c_str());
    else if (f.real == &model::LlamaConfig::rope_theta) options.add_options()(f.name, number<double>(nullptr)->above(1), help.c_str());
    else options.add_options()(f.name, number<double>(nullptr)->above(0), help.c_str());
  }
}

std::string apply_model_options(const po::variables_map& vm, model::LlamaConfig& config) {
  std::string set;
  for (const auto& f : model::config_fields()) {
    if (!vm.count(f.name)) continue;
    if (f.integer) config.*f.integer = vm[f.name].as<int64_t>();
    else config.*f.real = vm[f.name].as<double>();
    set += (set.empty() ? "" : ";") + std::string(f.name) + "=" +
           (f.integer ? std::to_string(config.*f.integer) : format_number(config.*f.real));
  }
  return set;
}

}  // namespace rw::cli
