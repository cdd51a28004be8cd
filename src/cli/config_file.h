// config_file.h: reads an INI file (the options of a command, plus [stage.NAME] sections left
// unregistered) with one clear error naming the file. Shared by train and plan.
#pragma once
#include <boost/program_options.hpp>

#include <fstream>
#include <string>

#include "src/common/input_error.h"

namespace rw::cli {

inline boost::program_options::parsed_options parse_config_file(const std::string& path,
                                                                const boost::program_options::options_description& options) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read config file '" + path + "'");
  try {
    return boost::program_options::parse_config_file(in, options, /*allow_unregistered=*/true);
  } catch (const boost::program_options::error& e) {
    throw InputError("config file '" + path + "': " + e.what());
  }
}

}  // namespace rw::cli
