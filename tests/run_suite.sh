#!/usr/bin/env bash
# tests/run_suite.sh BUILD_DIR JOBS GPU_COMPILER_FOUND(0|1): what `make test` runs after the build:
# the ctest suite, and beside it (niced) the GPU compile checks (`make test-gpu-build`) when nvcc
# or hipcc is present: the tests leave about one core of two idle (mpirun start-up, small
# files), which the compilers use. The checks' log is shown after the tests; either failing
# fails the whole. (A script, not a recipe line: `make -n test` must only print it.)
set -uo pipefail
build=$1 jobs=$2 gpu_found=$3
gpu_pid=""
if [ "$gpu_found" = 1 ] || command -v hipcc > /dev/null 2>&1; then
  echo "test: the GPU compile checks run beside the tests (their output: $build/test-gpu-build.log)"
  # With nvcc the CUDA check only (the HIP build compiles the same sources; `make test-gpu-build`
  # runs both): CI must stay under 30 minutes on 2 cores.
  vendors="cuda hip"
  [ "$gpu_found" = 1 ] && vendors=cuda
  nice -n 5 make --no-print-directory test-gpu-build GPU_CHECK_VENDORS="$vendors" > "$build/test-gpu-build.log" 2>&1 &
  gpu_pid=$!
fi
(cd "$build" && ctest -j "$jobs" --output-on-failure --timeout 900)
tests=$?
gpu=0
if [ -n "$gpu_pid" ]; then
  wait "$gpu_pid"
  gpu=$?
  echo "== make test-gpu-build (exit $gpu):"
  if [ "$gpu" = 0 ]; then tail -n 25 "$build/test-gpu-build.log"; else cat "$build/test-gpu-build.log"; fi
fi
[ "$tests" = 0 ] && [ "$gpu" = 0 ]
