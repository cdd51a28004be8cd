// build_info.cpp: the only file that includes the generated header, so a new commit
// recompiles one file.
#include "src/common/build_info.h"

#include "ringworld_build_info.h"

namespace rw::build {
namespace {
std::string& stored_command_line() {
  static std::string text;
  return text;
}

// A word as a POSIX shell reads it back: as is when it holds only safe characters, else in
// single quotes (a single quote inside written '\'').
std::string shell_word(const std::string& word) {
  const bool safe = !word.empty() && word.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                            "0123456789-_./=:,+@%") == std::string::npos;
  if (safe) return word;
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
}  // namespace

const char* version() { return RINGWORLD_VERSION_TEXT; }
const char* git_commit() { return RINGWORLD_GIT_COMMIT_TEXT; }
const char* build_options() { return RINGWORLD_BUILD_OPTIONS_TEXT; }

std::string version_line() {
  const std::string commit = git_commit();
  const bool dirty = commit.size() > 6 && commit.compare(commit.size() - 6, 6, "-dirty") == 0;
  const std::string short_commit = commit == "unknown" ? commit : commit.substr(0, 12) + (dirty ? "-dirty" : "");
  return std::string("ringworld ") + version() + " (git " + short_commit + ")";
}

}  // namespace rw::build

namespace rw::build {

void set_command_line(int argc, const char* const* argv) {
  std::string text;
  for (int i = 0; i < argc; ++i) text += (i ? " " : "") + shell_word(argv[i]);
  stored_command_line() = text;
}

const std::string& command_line() { return stored_command_line(); }

}  // namespace rw::build
