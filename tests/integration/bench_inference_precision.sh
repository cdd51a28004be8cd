#!/usr/bin/env bash
# bench_inference_precision.sh BENCH_INFERENCE [MPIRUN]: perf/bench_inference's --precision on a
# small model (seconds): fp32 and bf16 runs on 2 ranks record their precision on every table row
# (JSON Lines); bf16's KV cache per rank is below fp32's and above half of it (keys and values
# halve, the int32 positions and segment ids do not); an unknown precision is one message and a
# non-zero exit. About 5 s.
set -euo pipefail
bin=$(realpath "$1")
mpirun_bin=${2:-mpirun}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "bench_inference_precision: FAIL: $*" >&2; exit 1; }
mpi=("$mpirun_bin" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
small=(--hidden 64 --heads 2 --kv-heads 2 --layers 1 --intermediate 128 --vocab 64 --prefill-seq 64
       --decode-context 256 --reps 1 --decode-tokens 2 --no-plan --json)
cache_bytes() { sed -n 's/.*"table": "decode", "context".*"cache_bytes": \([0-9.]*\).*/\1/p' "$1"; }
for p in fp32 bf16; do
  "${mpi[@]}" -np 2 "$bin" "${small[@]}" --precision "$p" > "$tmp/$p.jsonl" 2> "$tmp/$p.err" ||
    { cat "$tmp/$p.err" "$tmp/$p.jsonl"; fail "--precision $p failed"; }
  rows=$(grep -cE '"table": "(prefill|decode)", "(seq|context)"' "$tmp/$p.jsonl" || true)
  [ "$rows" -eq 2 ] || { cat "$tmp/$p.jsonl"; fail "--precision $p: expected a prefill and a decode row, got $rows"; }
  [ "$(grep -E '"table": "(prefill|decode)", "(seq|context)"' "$tmp/$p.jsonl" | grep -c "\"precision\": \"$p\"")" -eq 2 ] ||
    { cat "$tmp/$p.jsonl"; fail "--precision $p: a row does not record it"; }
  grep -q "tiles 256x256, $p, weights resident" "$tmp/$p.jsonl" || { cat "$tmp/$p.jsonl"; fail "--precision $p: the model line does not say it"; }
done
awk -v a="$(cache_bytes "$tmp/fp32.jsonl")" -v b="$(cache_bytes "$tmp/bf16.jsonl")" 'BEGIN {
  if (!(a > 0 && b < a && 2 * b > a)) { printf "KV cache per rank: fp32 %s, bf16 %s bytes\n", a, b; exit 1 } }' ||
  fail "bf16's KV cache is not between half and all of fp32's"
rc=0
"${mpi[@]}" -np 2 "$bin" --precision fp16 > "$tmp/bad.out" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || { cat "$tmp/bad.out"; fail "--precision fp16 accepted"; }
[ "$(grep -c "bench_inference: error: unknown precision 'fp16' (fp32 or bf16)" "$tmp/bad.out")" -eq 1 ] ||
  { cat "$tmp/bad.out"; fail "--precision fp16: not one clear message"; }
echo "bench_inference_precision: OK"
