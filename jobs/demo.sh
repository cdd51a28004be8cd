#!/usr/bin/env bash
# jobs/demo.sh BUILD_DIR | RINGWORLD_BINARY: the main job (`make demo` runs it after the build).
# LWM's progressive context extension in miniature: the stages of jobs/demo.ini (a small LLaMA
# on synthetic passkey data, 512 -> 2K -> 8K tokens, RoPE theta raised at each stage) trained one
# at a time on a ring of 2 MPI ranks (sp = 2, zigzag), an HDF5 checkpoint per stage, and after
# each stage the needle-in-a-haystack evaluation over context lengths from the first stage's
# length up to the last stage's. Ends with the accuracy tables and where the files are.
#
# Run again, it reuses what is done: a stage whose final checkpoint exists is not trained again
# and an evaluation newer than its checkpoint is not repeated. If the config differs from the
# one the run directory was made with, it says so, moves the old run aside
# (RUN_DIR.old-TIMESTAMP) and starts over.
#
# Environment: DEMO_CONFIG (default jobs/demo.ini), DEMO_RUN_DIR (default runs/demo),
# DEMO_TRIALS (documents per length x depth cell after the last stage, default 10: the demo's
# claim), DEMO_TRIALS_BETWEEN (after the earlier stages, default 4: they only show the model
# before its extension), DEMO_RANKS (default 2),
# DEMO_SEED (replaces the config's seed: initialisation and training data; default: the
# config's), DEMO_SEEDS (a list, e.g. "1 2 3": the whole demo once per seed, in
# RUN_DIR-seed-N, then a table of the spread over seeds: README's table comes from it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
DEMO_NAME=demo
# shellcheck source=jobs/lib/demo_common.sh
source "$here/lib/demo_common.sh"
demo_binary "${1:-build}"
config=$(realpath -m "${DEMO_CONFIG:-$here/demo.ini}")
run=$(realpath -m "${DEMO_RUN_DIR:-$root/runs/demo}")
trials=${DEMO_TRIALS:-10}
trials_between=${DEMO_TRIALS_BETWEEN:-4}
ranks=${DEMO_RANKS:-2}

# Several seeds: the demo once per seed, then the spread of the last stage's evaluation.
if [ -n "${DEMO_SEEDS:-}" ]; then
  summary=()
  for seed in $DEMO_SEEDS; do
    [[ $seed =~ ^[0-9]+$ ]] || demo_fail 2 "DEMO_SEEDS must list whole numbers (got '$seed')"
    DEMO_SEEDS="" DEMO_SEED=$seed DEMO_RUN_DIR="$run-seed-$seed" bash "${BASH_SOURCE[0]}" "$bin" | tee "$run-seed-$seed.log"
    last=$(sed -n 's/^[ \t]*\[stage\.\(.*\)\][ \t]*$/\1/p' "$config" | tail -1)
    # Seconds of training and evaluation as measured when they ran (a reused stage keeps its own).
    secs=$(cat "$run-seed-$seed"/train-*.seconds "$run-seed-$seed"/needle-*.seconds 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
    summary+=("$seed $secs $run-seed-$seed/needle-$last.csv")
  done
  echo
  echo "== spread over seeds (last stage; every length x depth cell, $trials documents per cell;"
  echo "   time_s: training and evaluation, summed over stages as they ran):"
  printf '%6s %8s %8s %8s %16s\n' seed time_s lowest mean "cells >= 0.9"
  for line in "${summary[@]}"; do
    read -r seed secs csv <<< "$line"
    awk -F, -v seed="$seed" -v secs="$secs" 'NR > 1 { n++; sum += $5; if (min == "" || $5 < min) min = $5; ok += ($5 >= 0.9) }
      END { printf "%6s %8s %8.2f %8.3f %10d of %-3d\n", seed, secs, min, sum / n, ok, n }' "$csv"
  done
  exit 0
fi
depths=0,25,50,75,100
demo_check_inputs
demo_seed_config "${DEMO_SEED:-}" DEMO_SEED
demo_mpirun_setup "$ranks"
demo_clock_start

# Stages of the config, in order: name seq-len rope_theta steps global-batch-tokens.
demo_read_stages seq-len rope_theta steps global-batch-tokens
read -r _ first_seq _ <<< "${stages[0]}"
read -r _ last_seq _ <<< "${stages[-1]}"
lengths=""
for ((l = first_seq; l <= last_seq; l *= 2)); do lengths+="${lengths:+,}$l"; done

echo "== ringworld demo: ${#stages[@]} stages of context extension ($config), $ranks ranks (sp = $ranks, zigzag)"
for s in "${stages[@]}"; do
  read -r name seq theta steps tokens <<< "$s"
  echo "   stage $name: seq_len $seq, rope_theta $theta, $steps steps of $tokens tokens"
done
echo "   needle evaluation after each stage: lengths $lengths x depths $depths %, $trials_between trial(s) per cell"
echo "   after the earlier stages, $trials after the last (the demo's claim: every cell >= 0.9)"

# A run directory made with another config is moved aside, never mixed with this one.
demo_prepare_run demo.ini
echo "   run directory: $run"

index=0
for s in "${stages[@]}"; do
  read -r name seq theta steps tokens <<< "$s"
  index=$((index + 1))
  ckpt="$run/ckpt-$name-final.h5"
  demo_train_stage "$index" "$name" "$seq" "$theta" "$steps" "$config"

  csv="$run/needle-$name.csv"
  table="$run/needle-$name.txt"
  stage_trials=$trials_between
  [ "$index" -eq "${#stages[@]}" ] && stage_trials=$trials
  eval_args="--lengths $lengths --depths $depths --trials $stage_trials"
  if [ -f "$table" ] && demo_up_to_date "$csv" "$ckpt" "$run/needle-$name.args" "$eval_args"; then
    echo "-- needle evaluation after stage $name: up to date, reusing $csv"
  else
    echo "-- needle evaluation after stage $name (rope_theta $theta)  $(demo_elapsed)"
    demo_step_start
    rm -f "$csv" "$table"
    # shellcheck disable=SC2086
    "${mpirun_cmd[@]}" "$bin" eval needle --checkpoint "$ckpt" $eval_args --csv "$csv" --png "$run/needle-$name.png" \
      --title "after stage $name (trained at $seq tokens, RoPE theta $theta)" 2>&1 | tee "$run/needle-$name.log"
    [ -f "$csv" ] || demo_fail 1 "the evaluation of stage $name wrote no $csv"
    awk '/^needle accuracy/ { p = 1 } p && /^  [a-z]/ { p = 0 } p' "$run/needle-$name.log" > "$table"
    echo "$eval_args" > "$run/needle-$name.args"
    demo_step_done evaluated "$run/needle-$name.seconds"
  fi
done

echo
echo "== needle retrieval after each stage: the share of documents whose every answer digit the model"
echo "   gets right, by context length (columns) and needle depth (rows, % of the document)"
for s in "${stages[@]}"; do
  read -r name seq theta _ <<< "$s"
  echo
  echo "-- after stage $name (trained at $seq tokens, RoPE theta $theta):"
  sed -n '2,$p' "$run/needle-$name.txt"
done
read -r last_name _ <<< "${stages[-1]}"
worst=$(awk -F, -v max="$last_seq" 'NR > 1 && $1 <= max { if (min == "" || $5 < min) min = $5 } END { print min }' \
  "$run/needle-$last_name.csv")
echo
echo "== after the last stage, the lowest accuracy over every length up to $last_seq and every depth: $worst"
if awk -v w="$worst" 'BEGIN { exit !(w >= 0.9) }'; then
  echo "== the demo's claim holds: every cell >= 0.9 ($trials documents per cell)"
else
  echo "== BELOW THE DEMO'S CLAIM: a cell under 0.9 ($trials documents per cell; see needle-$last_name.txt)"
fi
# The last stage's model answers by generation: each document cut after its question, the
# digits generated greedily with the KV cache sharded over the ranks (eval needle --mode generate).
gen_csv="$run/needle-generate.csv"
if [ "$gen_csv" -nt "$run/ckpt-$last_name-final.h5" ]; then
  echo "== generation after stage $last_name: up to date ($gen_csv)"
  sed -n '2,$p' "$run/needle-generate.txt" 2>/dev/null || true
else
  echo "== the model of stage $last_name generates its passkeys (greedy decoding, KV cache on the ring):"
  "${mpirun_cmd[@]}" "$bin" eval needle --mode generate --checkpoint "$run/ckpt-$last_name-final.h5" \
    --lengths "$last_seq" --depths 0,50,100 --trials 4 --show 1 --answers "$run/needle-generate.jsonl" \
    --csv "$gen_csv" 2>&1 | tee "$run/needle-generate.log"
  [ -f "$gen_csv" ] || demo_fail 1 "the generation evaluation wrote no CSV"
  awk '/^needle accuracy/ { p = 1 } p && /^  [a-z]/ { p = 0 } p' "$run/needle-generate.log" > "$run/needle-generate.txt"
fi
echo "== files in $run:"
names=""
for s in "${stages[@]}"; do read -r name _ <<< "$s"; names+="ckpt-$name-final.h5 "; done
echo "   checkpoints:     $names(one per stage)"
echo "   needle results:  needle-<stage>.csv (length,depth,trials,correct,accuracy), needle-<stage>.txt"
echo "   by generation:   needle-generate.csv, needle-generate.jsonl (every prompt's generated answer)"
if ls "$run"/needle-*.png > /dev/null 2>&1; then
  echo "   heatmaps:        needle-<stage>.png"
else
  echo "   heatmaps:        none (the PNGs need gnuplot: apt-get install gnuplot-nox)"
fi
echo "   logs:            train-<stage>.log, needle-<stage>.log, metrics.jsonl; the run's plan: run.ini"
echo "== done in $(demo_seconds) s"
