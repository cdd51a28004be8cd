// config_file.h: reads an INI file (the options of a command, plus [stage.NAME] sections left
// unregistered) with one clear error naming the file. Shared by train and plan.
// The spelling policy of option_parsing.h holds here too: `hidden-size` and `hidden_size` are
// the same key (rewritten to the declared name), and so are `seq_len` and `seq-len` inside
// [stage.NAME] sections (rewritten to train::stage_keys()); an unknown stage key is refused
// with the closest known one. Other unknown keys stay unregistered for the caller to judge
// (unknown_key_error gives the message). Values are checked when stored (option_values.h).
#pragma once
#include <boost/program_options.hpp>

#include <fstream>
#include <string>

#include "src/cli/option_parsing.h"
#include "src/common/input_error.h"
#include "src/train/run_plan.h"

namespace rw::cli {

inline InputError unknown_key_error(const std::string& path, const std::string& key,
                                    const boost::program_options::options_description& options) {
  return InputError("config file '" + path + "': unknown option '" + key + "'" + did_you_mean(key, option_names(options)));
}

inline boost::program_options::parsed_options parse_config_file(const std::string& path,
                                                                const boost::program_options::options_description& options) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read config file '" + path + "'");
  boost::program_options::parsed_options parsed(&options);
  try {
    parsed = boost::program_options::parse_config_file(in, options, /*allow_unregistered=*/true);
  } catch (const boost::program_options::error& e) {
    throw InputError("config file '" + path + "': " + e.what());
  }
  for (auto& o : parsed.options) {
    if (!o.unregistered) continue;
    const std::string& key = o.string_key;
    if (key.rfind("stage.", 0) == 0 && key.find('.', 6) != std::string::npos) {
      const std::size_t dot = key.find('.', 6);
      const std::string field = key.substr(dot + 1);
      std::string known;
      for (const std::string& k : train::stage_keys())
        if (spelling_key(k) == spelling_key(field)) known = k;
      if (known.empty())
        throw InputError("config file '" + path + "': stage '" + key.substr(6, dot - 6) + "' has an unknown key '" + field +
                         "'" + did_you_mean(field, train::stage_keys()));
      o.string_key = key.substr(0, dot + 1) + known;
      continue;
    }
    const std::string declared = declared_spelling(key, options);
    if (!declared.empty()) {
      o.string_key = declared;
      o.unregistered = false;
    }
  }
  return parsed;
}

// Stores options parsed from a config file; a bad value is one error naming the file and key.
inline void store_config_file(const std::string& path, const boost::program_options::parsed_options& parsed,
                              boost::program_options::variables_map& vm) {
  try {
    boost::program_options::store(parsed, vm);
  } catch (const boost::program_options::error& e) {
    throw InputError("config file '" + path + "': " + e.what());
  }
}

}  // namespace rw::cli
