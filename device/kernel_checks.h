// kernel_checks.h: the argument checks every backend's kernels share (shapes, dtypes,
// contiguity, non-null pointers). Backend::launch runs them before a backend sees a call; a
// violation is fatal and names the kernel, the argument and what was expected.
#pragma once
#include "device/kernel_call.h"

namespace rw::device {

void check_kernel_call(const KernelCall& call);

}  // namespace rw::device
