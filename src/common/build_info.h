// build_info.h: what this binary is: the version (CMake's project version), the git commit it
// was built from (at build time, "-dirty" when tracked files differed; "unknown" outside git)
// and the build options CMake configured. Run directories, metrics logs and checkpoints record
// them; `ringworld --version` prints them.
#pragma once
#include <string>

namespace rw::build {

const char* version();        // "0.1.0"
const char* git_commit();     // 40 hex digits, optionally "-dirty"; or "unknown"
const char* build_options();  // "Release; GNU 12.2.0; -march=native; ..."

// "ringworld 0.1.0 (git 1a2b3c4d5e6f)": one line for logs and headers.
std::string version_line();

// The command line of this process (set once by main; words shell-quoted where needed), which
// run.ini, the metrics header and checkpoints record. "" until set.
void set_command_line(int argc, const char* const* argv);
const std::string& command_line();

}  // namespace rw::build
