// cpu_dispatch.h: run-time choice of instruction set for the hot row loops of the CPU kernels.
//
// The build targets a portable baseline (CMakeLists.txt: -march=x86-64-v2 unless
// RINGWORLD_NATIVE), so a binary built on a login node runs on older compute nodes. Loops that
// matter for speed are marked RW_CPU_CLONES: GCC and Clang compile the function three times
// (x86-64-v4: AVX-512; x86-64-v3: AVX2 and FMA; the build's baseline) and the dynamic loader
// binds the best one the CPU and OS support (an ifunc whose resolver checks CPUID and XCR0),
// once, before main. Only whole functions are cloned: inline functions they call are inlined
// into each clone or called in their baseline copy, so nothing compiled for a newer CPU can
// reach the rest of the program. The AVX-512 register tiles of the fused forward use target
// attributes instead (avx512_tile_gemm.cpp) and run only after avx512_available().
// Elsewhere (not x86-64 Linux, or a compiler without function multi-versioning) the mark is
// empty and the loops are compiled for the build's target.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(RW_NO_CPU_CLONES)
#define RW_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RW_CPU_CLONES
#endif
