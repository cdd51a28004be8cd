#!/usr/bin/env bash
# perf/bench_train.sh [BUILD_DIR]: training throughput and memory of `ringworld train` on 2 ranks
# (one thread each), as a parseable table: '#' comment lines, a header row, a units row, rows.
#  - throughput: the "small" LLaMA (hidden 256, 4 layers, 4/2 heads) at seq 4K and 16K, one
#    sequence per step; tokens/s, GFLOP/s (RingAttention paper's FLOP count, causal) and MFU
#    against the sgemm peak that `train` measures at start-up in the same run; the median over
#    steps 2.. (step 1 warms up).
#  - memory: a 1-layer, hidden-64 model at seq 16K and 64K: peak RSS per rank (max over ranks)
#    should grow no faster than the shard (4x), since no seq x seq buffer exists.
set -euo pipefail
build=${1:-build}
bin="$build/ringworld"
mpirun_cmd=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { grep -o "\"$1\":[^,}]*" "$2" | tail -n +2 | cut -d: -f2; }

echo "# ringworld training benchmark: 2 ranks (sp 2, zigzag), 1 thread per rank, $(nproc) cores"
[ "$(nproc)" -lt 2 ] && echo "# oversubscribed: 2 ranks on $(nproc) core(s)"
printf "%-10s %8s %6s %12s %10s %6s %12s\n" model seq_len steps tokens_per_s gflops mfu peak_rss
printf "%-10s %8s %6s %12s %10s %6s %12s\n" - tokens - tok/s GFLOP/s - MiB
run() {  # model-args... -- seq steps label
  local label=$1 seq=$2 steps=$3; shift 3
  local log="$tmp/$label-$seq.log" metrics="$tmp/$label-$seq.jsonl"
  "${mpirun_cmd[@]}" -np 2 "$bin" train "$@" --seq-len "$seq" --steps "$steps" --warmup-steps 1 \
    --metrics "$metrics" --log-every 1000 > "$log"
  local tps gf mfu rss
  if [ "$steps" -gt 1 ]; then
    tps=$(field tokens_per_s "$metrics" | median); gf=$(field gflops "$metrics" | median); mfu=$(field mfu "$metrics" | median)
  else
    tps=$(grep -o '"tokens_per_s":[^,}]*' "$metrics" | cut -d: -f2); gf=$(grep -o '"gflops":[^,}]*' "$metrics" | cut -d: -f2)
    mfu=$(grep -o '"mfu":[^,}]*' "$metrics" | cut -d: -f2)
  fi
  rss=$(grep -o 'max over ranks): [0-9.]*' "$log" | awk '{print $4}')
  printf "%-10s %8d %6d %12.0f %10.1f %6.2f %12.1f\n" "$label" "$seq" "$steps" "$tps" "$gf" "$mfu" "$rss"
  grep -o 'sgemm peak [0-9.]* GFLOP/s over all ranks' "$log" | sed 's/^/# /'
}
run small 4096 5 --model small
run small 16384 3 --model small
run mem-h64 16384 1 --model tiny --hidden_size 64 --intermediate_size 128 --num_hidden_layers 1 --num_attention_heads 1 --num_key_value_heads 1
run mem-h64 65536 1 --model tiny --hidden_size 64 --intermediate_size 128 --num_hidden_layers 1 --num_attention_heads 1 --num_key_value_heads 1
echo "# target: MFU >= 0.4 (small model); peak_rss(64K) / peak_rss(16K) <= 4 (linear in the shard)"
