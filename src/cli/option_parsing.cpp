// option_parsing.cpp
#include "src/cli/option_parsing.h"

#include <algorithm>
#include <map>

#include "device/backend.h"

namespace po = boost::program_options;

namespace rw::cli {

std::string spelling_key(const std::string& name) {
  std::string key = name;
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string key = spelling_key(word);
  const std::size_t allowed = std::max<std::size_t>(2, key.size() / 3);
  std::string best;
  std::size_t best_distance = allowed + 1;
  for (const std::string& c : candidates) {
    const std::string c_key = spelling_key(c);
    std::size_t d = edit_distance(key, c_key);
    // A prefix of a longer name ("--warmup" for "--warmup-steps") is a likely slip too.
    if (key.size() >= 3 && c_key.compare(0, key.size(), key) == 0) d = std::min(d, std::size_t(1));
    if (d < best_distance) best_distance = d, best = c;
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates, const std::string& prefix) {
  std::string match = closest_match(word, candidates);
  if (match.empty()) return "";
  const bool underscores = word.find('_') != std::string::npos && word.find('-') == std::string::npos;
  const bool dashes = word.find('-') != std::string::npos && word.find('_') == std::string::npos;
  if (underscores) std::replace(match.begin(), match.end(), '-', '_');
  else if (dashes) std::replace(match.begin(), match.end(), '_', '-');
  return "; did you mean '" + prefix + match + "'?";
}

std::vector<std::string> option_names(const po::options_description& options) {
  std::vector<std::string> names;
  for (const auto& o : options.options())
    if (!o->long_name().empty()) names.push_back(o->long_name());
  return names;
}

std::string declared_spelling(const std::string& name, const po::options_description& options) {
  const std::string key = spelling_key(name);
  for (const std::string& declared : option_names(options))
    if (spelling_key(declared) == key) return declared;
  return "";
}

po::parsed_options parse_command_line(int argc, char** argv, const po::options_description& options,
                                      const po::positional_options_description* positional) {
  std::vector<std::string> args;
  bool options_end = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") options_end = true;
    if (!options_end && arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
      const std::size_t eq = arg.find('=');
      const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      const std::string declared = declared_spelling(name, options);
      if (!declared.empty() && declared != name) arg = "--" + declared + (eq == std::string::npos ? "" : arg.substr(eq));
    }
    args.push_back(arg);
  }
  po::command_line_parser parser(args);
  parser.options(options);
  if (positional) parser.positional(*positional);
  try {
    return parser.run();
  } catch (const po::unknown_option& e) {
    std::string name = e.get_option_name();
    std::string bare = name;
    while (!bare.empty() && bare[0] == '-') bare.erase(0, 1);
    throw po::error("unknown option '" + name + "'" + did_you_mean(bare, option_names(options), "--"));
  }
}

void store_command_line(const po::parsed_options& parsed, po::variables_map& vm) {
  try {
    po::store(parsed, vm);
  } catch (po::error_with_option_name& e) {
    e.set_prefix(po::command_line_style::allow_long);
    throw;
  }
}

std::string device_option_help() {
  std::string accepted, other;
  for (const device::BackendInfo& b : device::backend_registry()) {
    if (b.tools && b.available()) accepted += (accepted.empty() ? "" : " | ") + std::string(b.name);
    else other += (other.empty() ? "" : ", ") + std::string(b.name);
  }
  return "device backend: " + accepted + (other.empty() ? "" : " (also registered, not offered here: " + other + ")");
}

}  // namespace rw::cli
