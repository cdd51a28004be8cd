// sgemm_peak.h: the sgemm rate this process reaches right now (OpenBLAS, square matrices), the
// peak that training MFU and benchmark ratios are measured against.
#pragma once

namespace rw::device::cpu {

// GFLOP/s of C = A B for n x n float matrices with `threads` OpenBLAS threads: the best of
// `repeats` timed runs after one warm-up.
double measure_sgemm_gflops(int n, int threads, int repeats);

}  // namespace rw::device::cpu
