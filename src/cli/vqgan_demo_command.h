// vqgan_demo_command.h: `ringworld vqgan init` (a VQGAN made here: seeded random weights, the
// codebook fitted by k-means to sample frames; src/vision/vqgan_init.h) and `ringworld vqgan
// demo-data` (the vision demo's synthetic videos as frame directories and .jsonl records for
// `prepare --vision`; src/vision/synthetic_video.h). vqgan_command.cpp dispatches to them.
#pragma once

namespace rw::cli {

int run_vqgan_init(int argc, char** argv);       // argv[0] is "init"
int run_vqgan_demo_data(int argc, char** argv);  // argv[0] is "demo-data"

}  // namespace rw::cli
