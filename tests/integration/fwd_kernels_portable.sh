#!/usr/bin/env bash
# fwd_kernels_portable.sh RINGWORLD_BINARY MPIEXEC: the binary (a portable build) runs a small
# `attn` with each forward kernel forced through RINGWORLD_ATTN_FWD_KERNEL: blas, fused-portable,
# and fused (AVX-512) where this CPU has AVX-512F, else fused must be refused with one clear line
# and a non-zero exit (never an illegal instruction). Outputs of the kernels agree within
# 1e-4 (inputs of amplitude 1, head_dim 64: fp32 rounding differences are ~1e-6). Seconds.
set -euo pipefail
bin=$(realpath "$1")
mpiexec=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "fwd_kernels_portable: FAIL: $*" >&2; exit 1; }
run() {  # run KERNEL OUT: attn on 2 ranks with the kernel forced
  RINGWORLD_ATTN_FWD_KERNEL=$1 timeout 60 "$mpiexec" --allow-run-as-root --oversubscribe --bind-to none \
    -x RINGWORLD_ATTN_FWD_KERNEL -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -np 2 \
    "$bin" attn --input "$tmp/in.h5" --output "$2" --causal --layout zigzag --block-q 24 --block-k 40 --quiet
}
"$bin" attn-input --output "$tmp/in.h5" --seq 200 --heads 4 --kv-heads 2 --head-dim 64 --documents 3 --no-dout \
  || fail "attn-input"
run blas "$tmp/blas.h5" || fail "attn with the blas forward"
run fused-portable "$tmp/portable.h5" || fail "attn with the fused forward, portable tiles"
h5diff -d 1e-4 "$tmp/blas.h5" "$tmp/portable.h5" > "$tmp/diff.txt" || fail "blas and fused-portable differ: $(head -5 "$tmp/diff.txt")"
if grep -qw avx512f /proc/cpuinfo; then
  run fused "$tmp/fused.h5" || fail "attn with the fused AVX-512 forward"
  h5diff -d 1e-4 "$tmp/blas.h5" "$tmp/fused.h5" > "$tmp/diff.txt" || fail "blas and fused differ: $(head -5 "$tmp/diff.txt")"
  echo "fwd_kernels_portable: blas, fused-portable and fused (AVX-512) agree"
else
  set +e
  run fused "$tmp/fused.h5" > "$tmp/out.txt" 2>&1
  rc=$?
  set -e
  [ $rc -ne 0 ] || fail "fused forced on a CPU without AVX-512F did not fail"
  grep -q "needs an AVX-512F CPU" "$tmp/out.txt" || fail "no clear message for fused without AVX-512F: $(head -5 "$tmp/out.txt")"
  ! grep -qi "illegal instruction" "$tmp/out.txt" || fail "illegal instruction"
  [ ! -e "$tmp/fused.h5" ] || fail "an output was left behind"
  echo "fwd_kernels_portable: blas and fused-portable agree; fused refused cleanly (no AVX-512F here)"
fi
