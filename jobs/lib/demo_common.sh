# shellcheck shell=bash disable=SC2154  # run, bin, config, stages: set by the sourcing script
# jobs/lib/demo_common.sh: what the demos (jobs/demo.sh, jobs/demo_vision.sh) share; each sources
# it after setting DEMO_NAME (the prefix of its error messages). Bash, under the callers'
# `set -euo pipefail`. The functions read and set the callers' variables bin, config, run,
# stages and mpirun_cmd, as each says:
#   paths      demo_binary, demo_check_inputs, demo_seed_config, demo_read_stages, demo_prepare_run
#   timing     demo_clock_start, demo_seconds / demo_elapsed (since the start), demo_step_start,
#              demo_step_done (prints a step's seconds and keeps them in a file)
#   reuse      demo_train_stage (a stage whose final checkpoint exists is not trained again),
#              demo_up_to_date (an output newer than its checkpoint, made with the same arguments)
#   logging    demo_fail (one message, an exit status), training output tee'd to RUN/train-NAME.log

# demo_fail STATUS MESSAGE: "DEMO_NAME: MESSAGE" on stderr, then exit STATUS.
demo_fail() {
  echo "$DEMO_NAME: $2" >&2
  exit "$1"
}

# demo_binary ARG: sets bin: ARG if it is a file (the binary), else ARG/ringworld (a build directory).
demo_binary() {
  if [ -f "$1" ]; then bin=$(realpath "$1"); else bin=$(realpath -m "$1/ringworld"); fi
}

# demo_check_inputs: the binary ($bin) and the config ($config) exist, else exit 2.
demo_check_inputs() {
  [ -x "$bin" ] || demo_fail 2 "no ringworld binary at $bin (build first: make build)"
  [ -f "$config" ] || demo_fail 2 "no config $config"
}

# demo_seed_config SEED VARIABLE: for a non-empty SEED, config becomes a copy of the config with
# its `seed =` line replaced, kept beside the run ($run.seed-SEED.ini). VARIABLE: the environment
# variable SEED came from, for the messages (exit 2 if SEED is not a whole number or the config
# has no seed line).
demo_seed_config() {
  local seed=$1 variable=$2 seeded
  [ -n "$seed" ] || return 0
  [[ $seed =~ ^[0-9]+$ ]] || demo_fail 2 "$variable must be a whole number (got '$seed')"
  grep -q '^seed *=' "$config" || demo_fail 2 "$config has no 'seed =' line for $variable"
  mkdir -p "$(dirname "$run")"
  seeded="$run.seed-$seed.ini"
  sed "s/^seed *=.*/seed = $seed/" "$config" > "$seeded"
  config=$seeded
}

# demo_read_stages KEY...: sets the array stages: one line "NAME VALUE..." per [stage.NAME]
# section of $config, in order, with the section's values of the KEYs ("?" where it has none);
# exit 2 when there is no stage.
demo_read_stages() {
  mapfile -t stages < <(awk -F'=' -v keys="$*" '
    function trim(s) { gsub(/^[ \t]+|[ \t\r]+$/, "", s); return s }
    function flush(   j, out) {
      if (name == "") return
      out = name
      for (j = 1; j <= n; ++j) out = out " " val[j]
      print out
    }
    BEGIN { n = split(keys, key, " ") }
    /^[ \t]*[#;]/ { next }
    /^[ \t]*\[/ { flush(); name = ""; line = trim($0)
                  if (line ~ /^\[stage\./) { name = substr(line, 8, length(line) - 8); for (i = 1; i <= n; ++i) val[i] = "?" }
                  next }
    name != "" && NF >= 2 { k = trim($1); v = trim($2); for (i = 1; i <= n; ++i) if (k == key[i]) val[i] = v }
    END { flush() }' "$config")
  [ "${#stages[@]}" -gt 0 ] || demo_fail 2 "$config has no [stage.NAME] sections"
}

# demo_prepare_run COPY: makes $run the run directory of this config. A non-empty $run made with
# another config (its copy $run/COPY differs, or there is none) moves aside to
# $run.old-TIMESTAMP, saying so and what changed, never mixed with this run; then $config is
# copied to $run/COPY.
demo_prepare_run() {
  local copy="$run/$1" old
  if [ -d "$run" ] && [ -n "$(ls -A "$run")" ] && ! cmp -s "$config" "$copy"; then
    old="$run.old-$(date +%Y%m%d-%H%M%S)"
    if [ -f "$copy" ]; then
      echo "== $config changed since $run was trained (its copy: $copy):"
      diff -u "$copy" "$config" | sed -n '3,$p' | grep '^[-+]' | sed 's/^/     /' || true
    else
      echo "== $run holds something else than this demo's run (no $1)."
    fi
    echo "== STARTING OVER: the old run moves to $old"
    mv "$run" "$old"
  fi
  mkdir -p "$run"
  cp "$config" "$copy"
}

# demo_mpirun_setup RANKS: sets mpirun_cmd: mpirun on RANKS ranks as root, oversubscribed, one
# OpenMP and one OpenBLAS thread per rank.
demo_mpirun_setup() {
  mpirun_cmd=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1
              -np "$1")
}

# demo_clock_start: the demo's time starts (demo_seconds counts from here).
demo_clock_start() { demo_t_start=$SECONDS; }
# demo_seconds: prints the seconds since demo_clock_start; demo_elapsed: the same as "[N s]".
demo_seconds() { echo "$((SECONDS - demo_t_start))"; }
demo_elapsed() { echo "[$(demo_seconds) s]"; }

# demo_step_start, then demo_step_done WHAT FILE: prints "   WHAT in N s" and writes N (the
# step's seconds) to FILE, where a reused step keeps the time it took when it ran.
demo_step_start() { demo_t_step=$SECONDS; }
demo_step_done() {
  local seconds=$((SECONDS - demo_t_step))
  echo "   $1 in $seconds s"
  echo "$seconds" > "$2"
}

# demo_train_stage INDEX NAME SEQ THETA STEPS TRAIN_CONFIG: stage NAME (number INDEX of
# ${#stages[@]}) reused if $run/ckpt-NAME-final.h5 exists; else trained under mpirun_cmd with
# TRAIN_CONFIG (output tee'd to $run/train-NAME.log, seconds to $run/train-NAME.seconds), exit 1
# if it ends without that checkpoint (a failing training run ends the demo: pipefail, set -e).
demo_train_stage() {
  local index=$1 name=$2 seq=$3 theta=$4 steps=$5 train_config=$6
  local ckpt="$run/ckpt-$name-final.h5"
  if [ -f "$ckpt" ]; then
    echo "== stage $index/${#stages[@]} ($name): already trained, reusing $ckpt"
    return 0
  fi
  echo "== stage $index/${#stages[@]} ($name): training, seq_len $seq, rope_theta $theta, $steps steps  $(demo_elapsed)"
  demo_step_start
  "${mpirun_cmd[@]}" "$bin" train --config "$train_config" --run-dir "$run" --stage "$name" 2>&1 | tee "$run/train-$name.log"
  [ -f "$ckpt" ] || demo_fail 1 "stage $name ended without $ckpt"
  demo_step_done "stage $name trained" "$run/train-$name.seconds"
}

# demo_up_to_date OUTPUT CKPT ARGS_FILE ARGS: true when OUTPUT is newer than CKPT and ARGS_FILE
# holds ARGS (made from this checkpoint with these arguments: nothing to redo).
demo_up_to_date() {
  [ "$1" -nt "$2" ] && [ "$(cat "$3" 2>/dev/null)" = "$4" ]
}
