// openblas_single_thread.h: holds OpenBLAS at one thread while our own OpenMP threads call it
// (each GEMM of a parallel region single-threaded, so the work's partition, and with it every
// result's bits, is ours and fixed by the shapes); restores the previous count on exit. The
// count is OpenBLAS's process-wide setting (0.3.21 has no per-call one).
#pragma once
#include <cblas.h>

namespace rw::device::cpu {

class OpenblasSingleThread {
 public:
  OpenblasSingleThread() : saved_(openblas_get_num_threads()) {
    if (saved_ != 1) openblas_set_num_threads(1);
  }
  ~OpenblasSingleThread() {
    if (saved_ != 1) openblas_set_num_threads(saved_);
  }
  OpenblasSingleThread(const OpenblasSingleThread&) = delete;
  OpenblasSingleThread& operator=(const OpenblasSingleThread&) = delete;

 private:
  int saved_;
};

}  // namespace rw::device::cpu
