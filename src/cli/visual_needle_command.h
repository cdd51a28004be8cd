// visual_needle_command.h: `ringworld eval visual-needle` (visual_needle_command.cpp), dispatched
// by eval_command.cpp.
#pragma once

namespace rw::cli {

int run_eval_visual_needle(int argc, char** argv);  // argv[0] is "visual-needle"

}  // namespace rw::cli
