#!/usr/bin/env bash
# demo_vision_mini.sh RINGWORLD_BINARY: the vision demo (jobs/demo_vision.sh) end to end on its
# miniature config (jobs/demo-vision-mini.ini: 16x16 frames, the tiny VQGAN, 18 videos, two
# stages of a few steps, 2 ranks): data, VQGAN, token datasets, a checkpoint per stage, every
# evaluation CSV complete (each frames x depth cell with its videos), the answers; run again it
# reuses everything. It checks the pipeline and its report, not accuracy. About 15 s.
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "demo_vision_mini: FAIL: $*" >&2; exit 1; }
demo() {  # demo LOG
  DEMO_VISION_CONFIG=$root/jobs/demo-vision-mini.ini DEMO_VISION_RUN_DIR=$tmp/run DEMO_VISION_TRIALS_BETWEEN=1 \
    bash "$root/jobs/demo_vision.sh" "$bin" > "$1" 2>&1
}
check_run() {
  for f in vqgan.h5 data-short.h5 data-long.h5 data-short/records.jsonl; do [ -f "$tmp/run/$f" ] || fail "no $f"; done
  [ "$(wc -l < "$tmp/run/data-short/records.jsonl")" -eq 12 ] || fail "data-short: expected 12 records"
  [ "$(find "$tmp/run/data-short/fit" -name "*.png" | wc -l)" -eq 24 ] || fail "data-short/fit: expected 2 x 6 x 2 frames"
  for s in short long; do
    [ -f "$tmp/run/ckpt-$s-final.h5" ] || fail "no checkpoint for stage $s"
    n=1 && [ "$s" = long ] && n=2  # videos per cell: 1 between stages, the config's 2 after the last
    csv=$tmp/run/visual-needle-$s.csv
    [ -f "$csv" ] || fail "no $csv"
    [ "$(head -1 "$csv")" = "frames,prompt_tokens,depth,trials,correct,accuracy" ] || fail "$csv: bad header"
    for f in 2 6; do
      # 17 tokens a frame (4x4 codes + <eof>), 8 + 9 marker bytes, the question's 37 bytes.
      t=$((f * 17 + 17 + 37))
      for d in 0 100; do
        grep -Eq "^$f,$t,$d,$n,[0-$n],[0-9.]+\$" "$csv" || fail "$csv: no cell of $f frames ($t tokens) at depth $d"
      done
    done
    [ "$(wc -l < "$csv")" -eq 5 ] || fail "$csv: expected 4 cells"
    [ "$(wc -l < "$tmp/run/visual-needle-$s.jsonl")" -eq $((4 * n)) ] || fail "visual-needle-$s.jsonl: expected $((4 * n)) answers"
  done
}

# 1. From nothing.
demo "$tmp/log1" || { cat "$tmp/log1"; fail "the demo failed"; }
check_run
[ "$(grep -c '^== stage .*: training' "$tmp/log1")" -eq 2 ] || { cat "$tmp/log1"; fail "expected 2 stages trained"; }
grep -q "^== last stage: 4 cells" "$tmp/log1" || { cat "$tmp/log1"; fail "no final summary"; }

# 2. Again: nothing is made, trained or evaluated again.
demo "$tmp/log2" || { cat "$tmp/log2"; fail "the second run failed"; }
[ "$(grep -c 'reusing' "$tmp/log2")" -eq 9 ] || { cat "$tmp/log2"; fail "expected 2 data sets, the VQGAN, 2 token sets, 2 stages and 2 evaluations reused"; }
check_run
# 3. Bad input: one clear message and the documented exit status.
expect() {  # expect STATUS TEXT COMMAND...
  local want=$1 text=$2 rc=0
  shift 2
  "$@" > "$tmp/out" 2>&1 || rc=$?
  [ "$rc" -eq "$want" ] || { cat "$tmp/out"; fail "'$*' exited $rc, expected $want"; }
  grep -q -- "$text" "$tmp/out" || { cat "$tmp/out"; fail "'$*' did not say '$text'"; }
}
expect 2 "MIN <= MAX" "$bin" vqgan demo-data --output "$tmp/bad" --videos 2 --frames 5:3
expect 2 "whole numbers" "$bin" vqgan demo-data --output "$tmp/bad" --videos 2 --frames 5:x
expect 2 "random or pool" "$bin" vqgan init --config tiny --seed 1 --encoder other --output "$tmp/bad.h5"
expect 1 "does not exist" "$bin" vqgan init --config tiny --seed 1 --fit-codebook "$tmp/run/data-short/videos/000000/missing" --output "$tmp/bad.h5"
expect 1 "data-short.h5" "$bin" eval visual-needle --checkpoint "$tmp/run/ckpt-short-final.h5" --vqgan "$tmp/run/data-short.h5"
expect 2 "--checkpoint and --vqgan" "$bin" eval visual-needle --checkpoint "$tmp/run/ckpt-short-final.h5"
echo "demo_vision_mini: OK"
