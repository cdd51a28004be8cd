// option_parsing.h: one spelling policy for every command's options.
// - `--hidden-size` and `--hidden_size` are the same option (Hugging Face names stay valid, and
//   so does the dashed style of the other options), on the command line and as INI keys: a
//   spelling that differs from the declared name only in '-' versus '_' is rewritten to it.
// - An unknown option or INI key is refused with the closest known name (edit distance):
//   unknown option '--hiden-size'; did you mean '--hidden-size'?
// - Errors from storing values (range checks of option_values.h) name the option as typed on
//   the command line ('--lr'), or as the INI key.
// Every command parses with parse_command_line + store_command_line; config files go through
// config_file.h, which applies the same policy.
#pragma once
#include <boost/program_options.hpp>

#include <string>
#include <vector>

namespace rw::cli {

// The name with every '_' made '-': two spellings of one option have the same key.
std::string spelling_key(const std::string& name);

// Levenshtein distance (insertions, deletions, substitutions), for "did you mean".
std::size_t edit_distance(const std::string& a, const std::string& b);

// The candidate nearest to `word` when it is near enough to be a likely typo (compared by
// spelling_key; at most a third of the word's length, at least 2 edits allowed), else "".
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

// "; did you mean 'PREFIX<candidate>'?" with the candidate written in the separator style of
// `word` (underscores if the user typed underscores, dashes if dashes), or "" when none is near.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates,
                         const std::string& prefix = "");

// The long names declared in `options`.
std::vector<std::string> option_names(const boost::program_options::options_description& options);

// The declared name whose spelling_key equals that of `name`, or "" if none.
std::string declared_spelling(const std::string& name, const boost::program_options::options_description& options);

// Parses argv[1..] (argv[0] is the command name) under the spelling policy. Throws
// boost::program_options::error: for an unknown option with the suggestion, else boost's own.
boost::program_options::parsed_options parse_command_line(
    int argc, char** argv, const boost::program_options::options_description& options,
    const boost::program_options::positional_options_description* positional = nullptr);

// The help text of --device: the device backends the tools accept here (device/backend.h's
// registry), and those registered but not accepted here.
std::string device_option_help();

// Stores parsed command-line options; a value error names the option with its "--" prefix.
void store_command_line(const boost::program_options::parsed_options& parsed, boost::program_options::variables_map& vm);

}  // namespace rw::cli
