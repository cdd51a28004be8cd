#!/usr/bin/env bash
# scaling_sweep.sh RINGWORLD_BINARY [MPIRUN]: the scaling-study tools end to end on a tiny model
# (seconds): perf/scaling/sweep.sh in strong mode over rings of 1, 2 and 3 ranks and in weak
# mode (striped) over 2, `ringworld bench` writing the CSV, perf/scaling/plot.sh drawing it.
# Checks the CSV's columns and that every row's numbers are positive and agree with each other
# and with the configuration (tokens, FLOPs, hops, bytes the ring must move, oversubscription
# against this machine's cores), and that bad options fail clearly with a non-zero exit.
set -euo pipefail
bin=$(realpath "$1")
mpirun_bin=${2:-mpirun}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "scaling_sweep: FAIL: $*" >&2; exit 1; }
cores=$(nproc)
sweep() { bash "$root/perf/scaling/sweep.sh" --bin "$bin" --mpirun "$mpirun_bin" --model tiny --steps 2 --warmup 1 "$@"; }

# 1. Strong: one 192-token sequence (a multiple of 2 x 3 for zigzag) over 1, 2, 3 ranks.
sweep --mode strong --ranks 1,2,3 --seq-lens 192 --out "$tmp/out" --label smoke > "$tmp/strong.log" 2>&1 ||
  { cat "$tmp/strong.log"; fail "the strong sweep failed"; }
# 2. Weak: 64 tokens per rank, striped, 2 ranks (sequence 128), into the same CSV.
sweep --mode weak --ranks 2 --seq-lens 64 --layouts striped --out "$tmp/out" > "$tmp/weak.log" 2>&1 ||
  { cat "$tmp/weak.log"; fail "the weak sweep failed"; }
csv=$tmp/out/scaling.csv
[ -f "$csv" ] || fail "no CSV at $csv"
if [ "$cores" -lt 3 ]; then
  grep -q "ranks 3 .*OVERSUBSCRIBED" "$tmp/strong.log" || { cat "$tmp/strong.log"; fail "3 ranks on $cores cores not marked OVERSUBSCRIBED"; }
fi
if [ "$cores" -ge 2 ] && grep -q "ranks 2 .*OVERSUBSCRIBED" "$tmp/strong.log"; then
  cat "$tmp/strong.log"; fail "2 ranks on $cores cores marked OVERSUBSCRIBED"
fi

# 3. The CSV: exactly the documented columns, 4 rows, every row consistent.
expected_header="label,ranks,dp,sp,seq_len,tokens_per_rank,layout,block_q,block_k,model,parameters,threads_per_rank,ranks_on_node,cores_on_node,oversubscribed,warmup_steps,steps,tokens_per_step,tokens_per_s,step_s_median,step_s_min,step_s_max,gflops,peak_gflops,mfu,hops_per_step,hop_compute_ms,hop_wait_ms,hop_bare_comm_ms,exposed_comm_frac,bytes_per_step_per_rank,messages_per_step_per_rank,peak_rss_mib,load_1m,unix_time,precision"
[ "$(head -1 "$csv")" = "$expected_header" ] || { head -1 "$csv"; fail "CSV header differs from the documented one"; }
[ "$(wc -l < "$csv")" -eq 5 ] || { cat "$csv"; fail "expected 4 rows"; }
# The tiny preset: hidden 128, 2 layers, 4 kv heads of 32 (kv width 128) -- used for the FLOP
# count and the bytes the ring must move.
awk -F, -v cores="$cores" '
  function bad(msg) { printf "row %d: %s\n", NR - 1, msg; errors++ }
  function close_to(a, b, rel, abs_tol) { d = a - b; if (d < 0) d = -d; return d <= abs_tol + rel * (b < 0 ? -b : b) }
  NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  {
    for (k in c) v[k] = $c[k]
    mode = (v["label"] ~ /^weak/) ? "weak" : (v["label"] ~ /^strong smoke$/ ? "strong" : "?")
    if (mode == "?") bad("label " v["label"] " does not start with the mode (and the strong one carries --label smoke)")
    sp = v["sp"] + 0; dp = v["dp"] + 0; s = v["seq_len"] + 0; n = v["ranks"] + 0
    if (mode == "strong" && s != 192) bad("strong: seq_len " s " != 192")
    if (mode == "weak" && s != 64 * sp) bad("weak: seq_len " s " != 64 x sp")
    if (n != dp * sp) bad("ranks != dp x sp")
    if (v["tokens_per_step"] != s * dp) bad("tokens_per_step != seq_len x dp")
    if (v["tokens_per_rank"] != s / sp) bad("tokens_per_rank != seq_len / sp")
    if (v["model"] != "tiny" || v["threads_per_rank"] != 1 || v["steps"] != 2 || v["warmup_steps"] != 1) bad("configuration columns")
    if (v["precision"] != "fp32") bad("precision " v["precision"] " (the default is fp32)")
    for (k in v) if (k != "label" && k != "layout" && k != "model" && k != "oversubscribed" && k != "precision" && v[k] !~ /^[0-9.e+-]+$/) bad(k " not a number: " v[k])
    split("tokens_per_s step_s_median step_s_min step_s_max gflops peak_gflops mfu hop_compute_ms peak_rss_mib parameters", pos, " ")
    for (i in pos) if (!(v[pos[i]] > 0)) bad(pos[i] " not positive: " v[pos[i]])
    # Values are printed with 6 significant digits (relative rounding <= 5e-6 each): 1e-4 covers a product of two.
    if (!close_to(v["tokens_per_s"] * v["step_s_median"], v["tokens_per_step"], 1e-4, 0)) bad("tokens_per_s x step_s != tokens_per_step")
    if (!(v["step_s_min"] <= v["step_s_median"] && v["step_s_median"] <= v["step_s_max"])) bad("step times out of order")
    # trainer.h forward_flops, causal, x3 for forward + backward.
    flops = 3 * (24 * s * 128 * 128 + 4 * s * s * 128 * 0.5) * 2 * dp
    if (!close_to(flops / v["step_s_median"] / 1e9, v["gflops"], 1e-4, 0)) bad("gflops != FLOPs / step_s")
    # mfu has 5 decimals (abs rounding 5e-6).
    if (!close_to(v["gflops"] / v["peak_gflops"], v["mfu"], 1e-4, 1e-5)) bad("mfu != gflops / peak")
    if (v["hops_per_step"] != 2 * sp * 2) bad("hops_per_step != 2 x sp x layers")
    w = v["hop_wait_ms"]; cpt = v["hop_compute_ms"]; e = v["exposed_comm_frac"]
    if (w < 0 || e < 0 || e > 1) bad("negative wait or exposed fraction outside [0, 1]")
    if (!close_to(w / (w + cpt), e, 1e-4, 1e-5)) bad("exposed_comm_frac != wait / (compute + wait)")
    # Bytes the ring posts per layer: the forward passes K,V (fp32) with positions and segment
    # ids (int32) sp-1 times, the backward the same again plus dK,dV (fp32) sp times (the last
    # hop brings each dK,dV home: to itself on a one-rank ring).
    nl = s / sp; kv = 2 * nl * 128 * 4; meta = 2 * nl * 4
    payload = 2 * (2 * (sp - 1) * (kv + meta) + sp * kv)
    b = v["bytes_per_step_per_rank"]; m = v["messages_per_step_per_rank"]
    # Upper bound: message headers are small structs; 4 KiB per message is far above any.
    if (!(b >= payload && b <= payload + 4096 * m)) bad("bytes_per_step " b " not within [" payload ", +4 KiB per message]")
    if (sp == 1 && v["hop_bare_comm_ms"] != 0) bad("bare communication time on a one-rank ring")
    if (sp > 1 && !(v["hop_bare_comm_ms"] > 0 && m > 0)) bad("no bare communication time or messages on a ring of " sp)
    if (v["ranks_on_node"] != n) bad("ranks_on_node != ranks (one node)")
    if (v["cores_on_node"] != cores) bad("cores_on_node " v["cores_on_node"] " != nproc " cores " (mpirun --bind-to none)")
    if (v["oversubscribed"] != (n > cores ? "yes" : "no")) bad("oversubscribed " v["oversubscribed"] " for " n " ranks on " cores " cores")
  }
  END { exit errors > 0 }' "$csv" || { cat "$csv"; fail "CSV rows inconsistent (above)"; }

# 4. Plots (PNGs when gnuplot is installed) and the summary.
bash "$root/perf/scaling/plot.sh" "$csv" "$tmp/plots" > "$tmp/plot.log" 2>&1 || { cat "$tmp/plot.log"; fail "plot.sh failed"; }
[ "$(grep -c '^strong, seq 192' "$tmp/plots/summary.txt")" -eq 3 ] || { cat "$tmp/plots/summary.txt"; fail "summary: expected 3 strong rows"; }
grep -Eq '^strong, seq 192.* 1 .* 1\.000 ' "$tmp/plots/summary.txt" || fail "summary: the smallest ring's efficiency is not 1"
if command -v gnuplot > /dev/null; then
  for png in throughput efficiency exposed_comm; do
    f=$tmp/plots/$png.png
    [ -s "$f" ] && [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "$png.png missing or not a PNG"
  done
else
  grep -q "gnuplot not found" "$tmp/plot.log" || fail "no note about the missing gnuplot"
fi

# 5. Bad options: one clear message, non-zero exit, nothing appended.
expect_error() {  # LOG PATTERN COMMAND...
  local log=$1 pattern=$2; shift 2
  if "$@" > "$log" 2>&1; then cat "$log"; fail "accepted: $*"; fi
  grep -q -- "$pattern" "$log" || { cat "$log"; fail "no message matching '$pattern' for: $*"; }
}
rows_before=$(wc -l < "$csv")
expect_error "$tmp/e1" "--mode must be strong or weak" sweep --mode sideways --out "$tmp/out"
expect_error "$tmp/e2" "--layouts: 'diagonal'" sweep --layouts zigzag,diagonal --out "$tmp/out"
expect_error "$tmp/e3" "--blocks: '12y4'" sweep --blocks 12y4 --out "$tmp/out"
mpi=("$mpirun_bin" --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1)
expect_error "$tmp/e4" "ringworld bench: error: .*diagonal" "${mpi[@]}" -np 2 "$bin" bench --model tiny --layout diagonal --csv "$csv"
expect_error "$tmp/e5" "ringworld bench: error: .*100" "${mpi[@]}" -np 3 "$bin" bench --model tiny --seq-len 100 --csv "$csv"
expect_error "$tmp/e6" "ringworld bench: error: .*--dp" "${mpi[@]}" -np 2 "$bin" bench --model tiny --dp 3 --csv "$csv"
echo "a,b" > "$tmp/other.csv"
expect_error "$tmp/e7" "other columns" "${mpi[@]}" -np 1 "$bin" bench --model tiny --seq-len 64 --steps 1 --csv "$tmp/other.csv"
[ "$(cat "$tmp/other.csv")" = "a,b" ] || fail "a CSV with other columns was changed"
expect_error "$tmp/e8" "no CSV file" bash "$root/perf/scaling/plot.sh" "$tmp/none.csv"
[ "$(wc -l < "$csv")" -eq "$rows_before" ] || fail "a failed run appended a row"

# 6. --precision bf16 against fp32 at one point (2 ranks, 128 tokens, one step, the same weights
# and data): the row records the precision; the ring moved K/V in bf16 (section 3's byte count
# with 2-byte K/V in both passes; dK/dV stay fp32); the first step's loss within bf16's forward
# bound of fp32's: 21 roundings of u = 2^-8 of the loss (the basis of tests/integration/
# test_forward_tool.cpp's bf16 case) plus the printed 4 decimals. Two runs, ~3 s.
for p in fp32 bf16; do
  "${mpi[@]}" -np 2 "$bin" bench --model tiny --seq-len 128 --steps 1 --warmup 0 --precision "$p" --csv "$tmp/$p.csv" \
    > "$tmp/$p.log" 2>&1 || { cat "$tmp/$p.log"; fail "bench --precision $p failed"; }
  [ "$(head -1 "$tmp/$p.csv")" = "$expected_header" ] || fail "$p.csv: header differs"
  [ "$(tail -1 "$tmp/$p.csv" | awk -F, '{ print $NF }')" = "$p" ] || { cat "$tmp/$p.csv"; fail "$p.csv: precision column is not $p"; }
  grep -q "seq_len 128 (64 tokens per rank), $p\$" "$tmp/$p.log" || { cat "$tmp/$p.log"; fail "bench --precision $p: the header does not say $p"; }
done
loss() { sed -n 's/^# step 1\/1: .*, loss \([0-9.]*\),.*/\1/p' "$1"; }
awk -v a="$(loss "$tmp/fp32.log")" -v b="$(loss "$tmp/bf16.log")" 'BEGIN {
  d = a - b; if (d < 0) d = -d
  if (!(a > 0 && b > 0 && d <= 21 / 256 * a + 1e-4)) { printf "loss fp32 %s, bf16 %s: outside the bound\n", a, b; exit 1 } }' ||
  fail "bench --precision bf16: the first loss is not within bf16's bound of fp32's"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  { sp = $c["sp"]; nl = $c["seq_len"] / sp; meta = 2 * nl * 4; kv16 = 2 * nl * 128 * 2; kv32 = 2 * nl * 128 * 4
    payload = 2 * (2 * (sp - 1) * (kv16 + meta) + sp * kv32); b = $c["bytes_per_step_per_rank"]; m = $c["messages_per_step_per_rank"]
    if (!(b >= payload && b <= payload + 4096 * m)) { printf "bf16: bytes_per_step %s not within [%d, +4 KiB per message]\n", b, payload; exit 1 } }' \
  "$tmp/bf16.csv" || { cat "$tmp/bf16.csv"; fail "bench --precision bf16: the ring did not move bf16 K/V"; }
echo "scaling_sweep: OK"
