#!/usr/bin/env bash
# run_fuzz.sh BUILD_DIR SECONDS [TARGET...]: fuzzes each target (default: all) for SECONDS with
# libFuzzer, starting from its committed corpus (tests/fuzz/corpus/<target>/, read-only here) and
# a scratch corpus in BUILD_DIR/fuzz-work/<target>/corpus that keeps what it learns between runs.
# A finding stops that target: the input is saved as BUILD_DIR/fuzz-work/<target>/crash-*
# (reproduce: BUILD_DIR/tests/fuzz/fuzz_<target> FILE). Exits non-zero if any target found one.
# make fuzz-short (CI) runs 2 s per target (Makefile: why); make fuzz FUZZ_SECONDS=900 the long run.
# FUZZ_KEEP_GOING=1: after a finding, start the target again until its time is spent, saving
# every finding (long runs meet HDF5's own bugs in raw mode; triage the crash-* files after).
set -uo pipefail
build=${1:?usage: run_fuzz.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: run_fuzz.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
build=$(cd "$build" && pwd) || exit 2
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(jsonl config attn_input forward_input token_dataset checkpoint import weight_files image)
# Open MPI's own leaks suppressed; any sanitizer report is a finding.
# allocator_may_return_null: a huge malloc inside HDF5 (a size read from a damaged file) returns
# null to HDF5, which reports an error, as it does without ASan; ours would throw bad_alloc (a finding).
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/../sanitize/lsan.supp:print_suppressions=0}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
failed=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "run_fuzz: $bin is missing (make fuzz-build)"; exit 2; }
  work=$build/fuzz-work/$t
  mkdir -p "$work/corpus"
  # HDF5 inputs are whole files (a few KiB); text inputs stay short.
  case $t in jsonl|config) max_len=4096 ;; *) max_len=65536 ;; esac
  echo "run_fuzz: $t for ${seconds}s"
  # One libFuzzer process, restarted after each finding when FUZZ_KEEP_GOING=1 (libFuzzer's own
  # -fork mode restarts per job: with MPI_Init in every start it ran 10x fewer inputs).
  : > "$work/log.txt"
  deadline=$((SECONDS + seconds))
  found=0
  while :; do
    left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || break
    if (cd "$work" && "$bin" -max_total_time="$left" -max_len=$max_len -timeout=20 -rss_limit_mb=2560 \
          -close_fd_mask=3 -print_final_stats=1 -artifact_prefix="$work/" "$work/corpus" "$here/corpus/$t" \
          >> "$work/log.txt" 2>&1); then
      break
    fi
    found=1
    [ "${FUZZ_KEEP_GOING:-0}" = 1 ] || break
  done
  if [ $found = 0 ]; then
    grep -E '^stat::(number_of_executed_units|new_units_added)|cov: ' "$work/log.txt" | tail -3 | sed 's/^/  /'
  else
    echo "run_fuzz: $t: FINDING(S) (log: $work/log.txt): $(ls "$work" | grep -E '^(crash|leak|oom|timeout|slow-unit)-' | tr '\n' ' ')"
    grep -E 'ERROR|SUMMARY|fuzz:' "$work/log.txt" | sort | uniq -c | head -20 | sed 's/^/  /'
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "run_fuzz: findings in: ${failed[*]}"
  exit 1
fi
echo "run_fuzz: no finding in ${#targets[@]} targets"
