#!/usr/bin/env bash
# jobs/demo_vision.sh BUILD_DIR | RINGWORLD_BINARY: the vision demo (`make demo-vision`): a visual
# needle in long videos, end to end on this machine (jobs/demo-vision.ini says what and why):
#   1. data     `vqgan demo-data`: seeded synthetic videos as frame directories + .jsonl records
#               (the question and its answer), one set per stage, and a fit set of frames
#   2. VQGAN    `vqgan init`: random weights, the codebook fitted by k-means to the fit frames
#   3. tokens   `prepare --vision --vqgan`: LWM's video-text sequences (caption order)
#   4. train    the stages of the config one at a time on a ring of DEMO_RANKS ranks (sp)
#   5. eval     `eval visual-needle` after each stage: held-out videos of several lengths with
#               the needle at several depths; accuracy per cell (table + CSV), chance 1/6
# Run again, it reuses what is done (data, VQGAN, datasets, trained stages, evaluations newer
# than their checkpoint). If the config differs from the one the run directory was made with,
# the old run moves aside (RUN_DIR.old-TIMESTAMP) and the demo starts over.
# Environment: DEMO_VISION_CONFIG (default jobs/demo-vision.ini), DEMO_VISION_RUN_DIR (default
# runs/demo-vision), DEMO_RANKS (default 2), DEMO_VISION_TRIALS (videos per cell after the last
# stage; default the config's eval-trials), DEMO_VISION_TRIALS_BETWEEN (after earlier stages,
# default 4), DEMO_VISION_SEED (replaces the config's `seed =`: the model's initialisation and the
# order of the training data; the videos, the VQGAN and the evaluation keep theirs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
DEMO_NAME=demo-vision
# shellcheck source=jobs/lib/demo_common.sh
source "$here/lib/demo_common.sh"
demo_binary "${1:-build}"
config=$(realpath -m "${DEMO_VISION_CONFIG:-$here/demo-vision.ini}")
run=$(realpath -m "${DEMO_VISION_RUN_DIR:-$root/runs/demo-vision}")
ranks=${DEMO_RANKS:-2}
demo_check_inputs
config_dir=$(dirname "$config")
demo_seed_config "${DEMO_VISION_SEED:-}" DEMO_VISION_SEED

# The demo's own settings: "#> key = value" lines of the config.
setting() {
  local v
  v=$(sed -n "s/^#>[ \t]*$1[ \t]*=[ \t]*\(.*[^ \t]\)[ \t]*$/\1/p" "$config" | tail -1)
  [ -n "$v" ] || demo_fail 2 "$config has no '#> $1 = ...' line"
  echo "$v"
}
size=$(setting frame-size)
vqgan_config=$(setting vqgan-config)
case $vqgan_config in /*|lwm|tiny|tiny-1) ;; *) vqgan_config="$config_dir/$vqgan_config" ;; esac
vqgan_seed=$(setting vqgan-seed)
vqgan_encoder=$(setting vqgan-encoder)
fit_frames=$(setting fit-frames)
eval_frames=$(setting eval-frames)
eval_depths=$(setting eval-depths)
trials=${DEMO_VISION_TRIALS:-$(setting eval-trials)}
trials_between=${DEMO_VISION_TRIALS_BETWEEN:-4}
mapfile -t datasets < <(sed -n 's/^#>[ \t]*data\.\([A-Za-z0-9_-]*\)[ \t]*=[ \t]*\([0-9]*\)[ \t]\+\([0-9]*:[0-9]*\)[ \t]\+\([0-9]*\)[ \t]*$/\1 \2 \3 \4/p' "$config")
[ "${#datasets[@]}" -gt 0 ] || demo_fail 2 "$config has no '#> data.NAME = VIDEOS MIN:MAX SEED' lines"

# Stages of the config, in order: name seq-len rope_theta steps.
demo_read_stages seq-len rope_theta steps

# One thread a process, for speed only (the results are the same at any thread count): OpenMP's
# idle threads spin, and on a busy machine they cost the VQGAN's small convolutions ~40x
# (measured: prepare --vision, 8 against 380 frames a second).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
demo_mpirun_setup "$ranks"
demo_clock_start
echo "== ringworld vision demo ($config): a visual needle in long videos, $ranks ranks (sp = $ranks, zigzag)"
for d in "${datasets[@]}"; do
  read -r name videos range seed <<< "$d"
  echo "   data $name: $videos videos of $range frames (${size}x$size), seed $seed"
done
for s in "${stages[@]}"; do
  read -r name seq theta steps <<< "$s"
  echo "   stage $name: seq_len $seq, rope_theta $theta, $steps steps"
done
echo "   evaluation after each stage: frames $eval_frames x depths $eval_depths %, $trials_between video(s) per cell"
echo "   after the earlier stages, $trials after the last; chance: 1/6 = 0.17"

# A run directory made with another config is moved aside, never mixed with this one.
demo_prepare_run config.ini
sed "s|@RUN@|$run|g" "$config" > "$run/train.ini"
echo "   run directory: $run"

# 1. Data (the first set also holds the codebook's fit frames).
first=""
for d in "${datasets[@]}"; do
  read -r name videos range seed <<< "$d"
  [ -n "$first" ] || first=$name
  if [ -f "$run/data-$name/records.jsonl" ]; then
    echo "== data $name: reusing $run/data-$name"
  else
    echo "== data $name: $videos videos  $(demo_elapsed)"
    rm -rf "$run/data-$name"
    fit=()
    [ "$name" = "$first" ] && fit=(--fit-frames "$fit_frames")
    "$bin" vqgan demo-data --output "$run/data-$name" --videos "$videos" --frames "$range" --size "$size" --seed "$seed" "${fit[@]}"
  fi
done

# 2. The VQGAN.
if [ -f "$run/vqgan.h5" ]; then
  echo "== VQGAN: reusing $run/vqgan.h5"
else
  echo "== VQGAN: $vqgan_encoder encoder, seed $vqgan_seed, codebook fitted to $run/data-$first/fit  $(demo_elapsed)"
  "$bin" vqgan init --config "$vqgan_config" --image-size "$size" --seed "$vqgan_seed" --encoder "$vqgan_encoder" \
    --fit-codebook "$run/data-$first/fit" --output "$run/vqgan.h5"
fi

# 3. Token datasets.
for d in "${datasets[@]}"; do
  read -r name _ <<< "$d"
  if [ -f "$run/data-$name.h5" ] && [ "$run/data-$name.h5" -nt "$run/vqgan.h5" ]; then
    echo "== tokens $name: reusing $run/data-$name.h5"
  else
    echo "== tokens $name: encoding and laying out  $(demo_elapsed)"
    "$bin" prepare --vision --vqgan "$run/vqgan.h5" --tokenizer byte --vision-task caption \
      --input "$run/data-$name/records.jsonl" --output "$run/data-$name.h5"
  fi
done

# 4, 5. Stages and their evaluations.
index=0
for s in "${stages[@]}"; do
  read -r name seq theta steps <<< "$s"
  index=$((index + 1))
  ckpt="$run/ckpt-$name-final.h5"
  demo_train_stage "$index" "$name" "$seq" "$theta" "$steps" "$run/train.ini"
  stage_trials=$trials_between
  [ "$index" -eq "${#stages[@]}" ] && stage_trials=$trials
  csv="$run/visual-needle-$name.csv"
  args="--frames $eval_frames --depths $eval_depths --trials $stage_trials"
  if demo_up_to_date "$csv" "$ckpt" "$run/visual-needle-$name.args" "$args"; then
    echo "-- evaluation after stage $name: up to date, reusing $csv"
  else
    echo "-- evaluation after stage $name (trained at $seq tokens)  $(demo_elapsed)"
    demo_step_start
    rm -f "$csv"
    # shellcheck disable=SC2086
    "${mpirun_cmd[@]}" "$bin" eval visual-needle --checkpoint "$ckpt" --vqgan "$run/vqgan.h5" $args --csv "$csv" \
      --answers "$run/visual-needle-$name.jsonl" --title "after stage $name (trained at $seq tokens)" 2>&1 |
      tee "$run/visual-needle-$name.log"
    [ -f "$csv" ] || demo_fail 1 "the evaluation of stage $name wrote no $csv"
    echo "$args" > "$run/visual-needle-$name.args"
    demo_step_done evaluated "$run/visual-needle-$name.seconds"
  fi
done

echo
echo "== visual needle accuracy after each stage (the share of videos whose colour the model names; chance 0.17):"
for s in "${stages[@]}"; do
  read -r name _ <<< "$s"
  echo "-- after stage $name:"
  awk '/^visual needle accuracy/ { p = 1; next } p && /^  (e\.g\.|wrote)/ { p = 0 } p' "$run/visual-needle-$name.log"
done
last=$(read -r n _ <<< "${stages[-1]}"; echo "$n")
awk -F, 'NR > 1 { n++; sum += $6; if (min == "" || $6 < min) min = $6 }
  END { printf "== last stage: %d cells, lowest %.2f, mean %.3f (chance 0.17)\n", n, min, sum / n }' "$run/visual-needle-$last.csv"
echo "== done in $(demo_seconds) s; files in $run (CSV per stage: visual-needle-<stage>.csv, answers: .jsonl)"
