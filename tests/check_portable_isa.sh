#!/usr/bin/env bash
# check_portable_isa.sh BINARY: in a portable build (RINGWORLD_NATIVE=OFF) no function of BINARY
# uses AVX or AVX-512 registers (ymm, zmm, mask registers k1-k7) except the code chosen at run
# time after a CPU check (device/cpu/cpu_dispatch.h):
#   - the x86-64-v3 / v4 clones that RW_CPU_CLONES makes ("[clone .arch_x86_64_v3]", "v4"),
#   - the AVX-512 register tiles, rw::device::cpu::avx512::* (target attributes; called only
#     after avx512_available()).
# Anything else with such an instruction would die with SIGILL on an older compute node. The
# check also requires that the dispatched code exists (an empty result proves nothing).
# Seconds (one objdump of the binary).
set -euo pipefail
bin=$1
command -v objdump > /dev/null || { echo "check_portable_isa: objdump not found (binutils)"; exit 77; }
objdump -d --no-show-raw-insn -C "$bin" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = substr($0, index($0, "<") + 1); sub(/>:$/, "", fn); next }
  /%[yz]mm[0-9]|%k[1-7]/ {
    if (fn ~ /\[clone \.arch_x86_64_v[34]\]/) { clones[fn] = 1; next }
    if (fn ~ /(^|[ ])rw::device::cpu::avx512::/) { tiles[fn] = 1; next }
    bad[fn]++
  }
  END {
    n_bad = 0
    for (f in bad) { print "check_portable_isa: AVX/AVX-512 instructions outside dispatched code: " f " (" bad[f] ")"; n_bad++ }
    n_clones = 0; for (f in clones) n_clones++
    n_tiles = 0; for (f in tiles) n_tiles++
    printf "check_portable_isa: %d dispatched clone(s), %d AVX-512 tile function(s), %d undispatched function(s) with AVX/AVX-512\n", n_clones, n_tiles, n_bad
    if (n_clones == 0 || n_tiles == 0) { print "check_portable_isa: expected dispatched clones and AVX-512 tiles in the binary"; exit 1 }
    exit n_bad > 0
  }'
