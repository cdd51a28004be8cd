#!/usr/bin/env bash
# demo_mini.sh RINGWORLD_BINARY: the main job (jobs/demo.sh) end to end on its miniature config
# (jobs/demo-mini.ini: 64 -> 128 -> 256 tokens, a few steps): every stage trained with a
# checkpoint, every evaluation CSV complete with its number of documents per cell; run again it
# reuses everything; a changed config starts over with the old run moved aside; a failing stage
# fails the job. Seconds.
set -euo pipefail
bin=$(realpath "$1")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "demo_mini: FAIL: $*" >&2; exit 1; }
demo() {  # demo CONFIG LOG
  DEMO_CONFIG=$1 DEMO_RUN_DIR=$tmp/run DEMO_TRIALS=2 DEMO_TRIALS_BETWEEN=1 bash "$root/jobs/demo.sh" "$bin" > "$2" 2>&1
}
stages=(64 128 256)
check_run() {
  for s in "${stages[@]}"; do
    [ -f "$tmp/run/ckpt-$s-final.h5" ] || fail "no checkpoint for stage $s"
    n=1  # documents per cell: DEMO_TRIALS_BETWEEN after the earlier stages, DEMO_TRIALS after the last
    [ "$s" = "${stages[-1]}" ] && n=2
    csv=$tmp/run/needle-$s.csv
    [ -f "$csv" ] || fail "no $csv"
    [ "$(head -1 "$csv")" = "length,depth,trials,correct,accuracy" ] || fail "$csv: bad header"
    for l in 64 128 256; do
      for d in 0 25 50 75 100; do
        grep -Eq "^$l,$d,$n,[0-$n],[0-9.e-]+\$" "$csv" || fail "$csv: no cell length $l depth $d"
      done
    done
    [ "$(wc -l < "$csv")" -eq 16 ] || fail "$csv: expected 15 cells"
  done
}

# 1. From nothing: three stages, three evaluations.
demo "$root/jobs/demo-mini.ini" "$tmp/log1" || { cat "$tmp/log1"; fail "the demo failed"; }
check_run
[ "$(grep -c '^== stage .*: training' "$tmp/log1")" -eq 3 ] || { cat "$tmp/log1"; fail "expected 3 stages trained"; }
grep -q "lowest accuracy" "$tmp/log1" || fail "no final summary"
# The last model's answers by generation: 3 depths x 4 documents, each with its generated answer.
[ "$(wc -l < "$tmp/run/needle-generate.csv")" -eq 4 ] || { cat "$tmp/log1"; fail "needle-generate.csv: expected 3 cells"; }
[ "$(wc -l < "$tmp/run/needle-generate.jsonl")" -eq 12 ] || fail "needle-generate.jsonl: expected 12 answers"
grep -q "generates its passkeys" "$tmp/log1" || fail "no generation step"

# 2. Again: nothing is trained or evaluated again.
demo "$root/jobs/demo-mini.ini" "$tmp/log2" || { cat "$tmp/log2"; fail "the second run failed"; }
[ "$(grep -c 'already trained, reusing' "$tmp/log2")" -eq 3 ] || { cat "$tmp/log2"; fail "stages not reused"; }
[ "$(grep -c 'up to date, reusing' "$tmp/log2")" -eq 3 ] || { cat "$tmp/log2"; fail "evaluations not reused"; }
grep -q "generation after stage 256: up to date" "$tmp/log2" || { cat "$tmp/log2"; fail "the generation step was repeated"; }
check_run

# 3. A changed config: said clearly, the old run moved aside, everything done anew.
sed 's/^steps = 3$/steps = 2/' "$root/jobs/demo-mini.ini" > "$tmp/changed.ini"
demo "$tmp/changed.ini" "$tmp/log3" || { cat "$tmp/log3"; fail "the run after a config change failed"; }
grep -q "STARTING OVER" "$tmp/log3" || { cat "$tmp/log3"; fail "no start-over message"; }
ls -d "$tmp"/run.old-* > /dev/null 2>&1 || fail "the old run was not moved aside"
[ "$(grep -c '^== stage .*: training' "$tmp/log3")" -eq 3 ] || { cat "$tmp/log3"; fail "expected 3 stages trained anew"; }
check_run

# 4. A stage that fails fails the job.
sed 's/^data = synthetic:passkey$/data = synthetic:no-such-source/' "$root/jobs/demo-mini.ini" > "$tmp/bad.ini"
rm -rf "$tmp/run"
if demo "$tmp/bad.ini" "$tmp/log4"; then cat "$tmp/log4"; fail "a failing stage did not fail the demo"; fi
echo "demo_mini: OK"
