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
arg=${1:-build}
if [ -f "$arg" ]; then bin=$(realpath "$arg"); else bin=$(realpath -m "$arg/ringworld"); fi
config=$(realpath -m "${DEMO_VISION_CONFIG:-$here/demo-vision.ini}")
run=$(realpath -m "${DEMO_VISION_RUN_DIR:-$root/runs/demo-vision}")
ranks=${DEMO_RANKS:-2}
[ -x "$bin" ] || { echo "demo-vision: no ringworld binary at $bin (build first: make build)" >&2; exit 2; }
[ -f "$config" ] || { echo "demo-vision: no config $config" >&2; exit 2; }
config_dir=$(dirname "$config")
if [ -n "${DEMO_VISION_SEED:-}" ]; then  # the config with its seed replaced, kept beside the run
  [[ $DEMO_VISION_SEED =~ ^[0-9]+$ ]] || { echo "demo-vision: DEMO_VISION_SEED must be a whole number (got '$DEMO_VISION_SEED')" >&2; exit 2; }
  grep -q '^seed *=' "$config" || { echo "demo-vision: $config has no 'seed =' line for DEMO_VISION_SEED" >&2; exit 2; }
  mkdir -p "$(dirname "$run")"
  seeded="$run.seed-$DEMO_VISION_SEED.ini"
  sed "s/^seed *=.*/seed = $DEMO_VISION_SEED/" "$config" > "$seeded"
  config=$seeded
fi

# The demo's own settings: "#> key = value" lines of the config.
setting() {
  local v
  v=$(sed -n "s/^#>[ \t]*$1[ \t]*=[ \t]*\(.*[^ \t]\)[ \t]*$/\1/p" "$config" | tail -1)
  [ -n "$v" ] || { echo "demo-vision: $config has no '#> $1 = ...' line" >&2; exit 2; }
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
[ "${#datasets[@]}" -gt 0 ] || { echo "demo-vision: $config has no '#> data.NAME = VIDEOS MIN:MAX SEED' lines" >&2; exit 2; }

# Stages of the config, in order: name seq-len rope_theta steps.
mapfile -t stages < <(awk -F'=' '
  function trim(s) { gsub(/^[ \t]+|[ \t\r]+$/, "", s); return s }
  /^[ \t]*[#;]/ { next }
  /^[ \t]*\[/ { if (name != "") print name, seq, theta, steps
                name = ""; line = trim($0)
                if (line ~ /^\[stage\./) { name = substr(line, 8, length(line) - 8); seq = theta = steps = "?" }
                next }
  name != "" && NF >= 2 { k = trim($1); v = trim($2)
                if (k == "seq-len") seq = v; else if (k == "rope_theta") theta = v; else if (k == "steps") steps = v }
  END { if (name != "") print name, seq, theta, steps }' "$config")
[ "${#stages[@]}" -gt 0 ] || { echo "demo-vision: $config has no [stage.NAME] sections" >&2; exit 2; }

# One thread a process: OpenMP's idle threads spin, and on a busy machine they cost the VQGAN's
# small convolutions ~40x (measured: prepare --vision, 8 against 380 frames a second).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
mpirun_cmd=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 -np "$ranks")
start=$SECONDS
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
if [ -d "$run" ] && [ -n "$(ls -A "$run")" ] && ! cmp -s "$config" "$run/config.ini"; then
  old="$run.old-$(date +%Y%m%d-%H%M%S)"
  echo "== $config differs from the one $run was made with: STARTING OVER, the old run moves to $old"
  mv "$run" "$old"
fi
mkdir -p "$run"
cp "$config" "$run/config.ini"
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
    echo "== data $name: $videos videos  [$((SECONDS - start)) s]"
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
  echo "== VQGAN: $vqgan_encoder encoder, seed $vqgan_seed, codebook fitted to $run/data-$first/fit  [$((SECONDS - start)) s]"
  "$bin" vqgan init --config "$vqgan_config" --image-size "$size" --seed "$vqgan_seed" --encoder "$vqgan_encoder" \
    --fit-codebook "$run/data-$first/fit" --output "$run/vqgan.h5"
fi

# 3. Token datasets.
for d in "${datasets[@]}"; do
  read -r name _ <<< "$d"
  if [ -f "$run/data-$name.h5" ] && [ "$run/data-$name.h5" -nt "$run/vqgan.h5" ]; then
    echo "== tokens $name: reusing $run/data-$name.h5"
  else
    echo "== tokens $name: encoding and laying out  [$((SECONDS - start)) s]"
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
  if [ -f "$ckpt" ]; then
    echo "== stage $index/${#stages[@]} ($name): already trained, reusing $ckpt"
  else
    echo "== stage $index/${#stages[@]} ($name): training, seq_len $seq, rope_theta $theta, $steps steps  [$((SECONDS - start)) s]"
    t0=$SECONDS
    "${mpirun_cmd[@]}" "$bin" train --config "$run/train.ini" --run-dir "$run" --stage "$name" 2>&1 | tee "$run/train-$name.log"
    [ -f "$ckpt" ] || { echo "demo-vision: stage $name ended without $ckpt" >&2; exit 1; }
    echo "   stage $name trained in $((SECONDS - t0)) s"
    echo "$((SECONDS - t0))" > "$run/train-$name.seconds"
  fi
  stage_trials=$trials_between
  [ "$index" -eq "${#stages[@]}" ] && stage_trials=$trials
  csv="$run/visual-needle-$name.csv"
  args="--frames $eval_frames --depths $eval_depths --trials $stage_trials"
  if [ "$csv" -nt "$ckpt" ] && [ "$(cat "$run/visual-needle-$name.args" 2>/dev/null)" = "$args" ]; then
    echo "-- evaluation after stage $name: up to date, reusing $csv"
  else
    echo "-- evaluation after stage $name (trained at $seq tokens)  [$((SECONDS - start)) s]"
    t0=$SECONDS
    rm -f "$csv"
    # shellcheck disable=SC2086
    "${mpirun_cmd[@]}" "$bin" eval visual-needle --checkpoint "$ckpt" --vqgan "$run/vqgan.h5" $args --csv "$csv" \
      --answers "$run/visual-needle-$name.jsonl" --title "after stage $name (trained at $seq tokens)" 2>&1 |
      tee "$run/visual-needle-$name.log"
    [ -f "$csv" ] || { echo "demo-vision: the evaluation of stage $name wrote no $csv" >&2; exit 1; }
    echo "$args" > "$run/visual-needle-$name.args"
    echo "   evaluated in $((SECONDS - t0)) s"
    echo "$((SECONDS - t0))" > "$run/visual-needle-$name.seconds"
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
echo "== done in $((SECONDS - start)) s; files in $run (CSV per stage: visual-needle-<stage>.csv, answers: .jsonl)"
