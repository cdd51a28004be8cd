#!/usr/bin/env bash
# perf/scaling/plot.sh CSV [OUT_DIR]: the plots of a scaling sweep (perf/scaling/sweep.sh), drawn
# from its CSV with gnuplot, and a text summary.
#   throughput.png     tokens/s against ranks
#   efficiency.png     (GFLOP/s per rank) / (that of the smallest ring of the sweep); the
#                      FLOP count includes attention's s^2 term, so the one formula serves strong
#                      scaling (= tokens/s ratio / ranks ratio) and weak scaling (growing sequence)
#   exposed_comm.png   exposed communication fraction = ring wait / (ring compute + wait)
#   summary.txt        the same numbers as a table, with mfu_ratio = MFU / the reference's MFU
#                      (each against the sgemm rate of its own run: steadier on a loaded machine)
# A series is one (mode, sequence length for strong or tokens per rank for weak, dp, layout,
# blocks, model); the mode is the first word of the row's label (sweep.sh writes it). The
# smallest ring's reference row has the same mode, size, dp and model, and the series' blocks
# and layout where such a row exists (at one rank the layout changes nothing). When a
# point was measured more than once, the last row counts. Oversubscribed points (more
# rank-threads than cores) are drawn as large open red circles: not scaling points.
# Without gnuplot the summary is still written and the PNGs are skipped, saying so (exit 0).
set -euo pipefail
die() { echo "plot.sh: error: $*" >&2; exit 2; }
[ $# -ge 1 ] && [ "$1" != -h ] && [ "$1" != --help ] || {
  echo "usage: perf/scaling/plot.sh CSV [OUT_DIR]   (OUT_DIR defaults to the CSV's directory)"
  [ $# -ge 1 ] && exit 0 || exit 2
}
csv=$1
out=${2:-$(dirname "$csv")}
[ -f "$csv" ] || die "no CSV file '$csv'"
mkdir -p "$out" || die "cannot create '$out'"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One data file per series (ranks tokens_per_s efficiency exposed oversubscribed), an index of
# series (file<TAB>title), and the summary table.
awk -F, -v work="$work" '
  NR == 1 {
    for (i = 1; i <= NF; i++) col[$i] = i
    n_need = split("label ranks dp sp seq_len tokens_per_rank layout block_q block_k model tokens_per_s gflops mfu exposed_comm_frac oversubscribed step_s_median", need, " ")
    for (i = 1; i <= n_need; i++) if (!(need[i] in col)) { print "plot.sh: error: the CSV has no column " need[i] > "/dev/stderr"; bad = 1; exit 2 }
    next
  }
  NF > 1 {
    split($col["label"], words, " "); mode = (words[1] == "weak") ? "weak" : "strong"
    size = (mode == "weak") ? $col["tokens_per_rank"] " tokens/rank" : "seq " $col["seq_len"]
    blocks = $col["block_q"] "x" $col["block_k"]
    # bf16 rows are series of their own (CSVs from before the precision column: all fp32)
    prec = ("precision" in col && $col["precision"] != "fp32") ? ", " $col["precision"] : ""
    key = mode ", " size ", " $col["layout"] " " blocks ", dp " $col["dp"] ", " $col["model"] prec
    r = $col["ranks"] + 0
    if (!(key in series_id)) {
      series_id[key] = ++n_series; series_key[n_series] = key
      group[n_series] = mode SUBSEP size SUBSEP $col["dp"] SUBSEP $col["model"] prec
      layout_of[n_series] = $col["layout"]; blocks_of[n_series] = blocks
    }
    s = series_id[key]
    if (!((s, r) in seen)) { seen[s, r] = 1; nr[s]++; rk[s, nr[s]] = r }
    tps[s, r] = $col["tokens_per_s"]; gf[s, r] = $col["gflops"]; ex[s, r] = $col["exposed_comm_frac"]
    os[s, r] = ($col["oversubscribed"] == "yes") ? 1 : 0; st[s, r] = $col["step_s_median"]; mf[s, r] = $col["mfu"]
    rows++
  }
  END {
    if (bad) exit 2
    if (rows == 0) { print "plot.sh: error: the CSV has no rows" > "/dev/stderr"; exit 2 }
    printf "%-58s %5s %12s %9s %10s %9s %8s %5s\n", "series", "ranks", "tokens_per_s", "step_s", "efficiency", "mfu_ratio", "exposed", "osub" > (work "/summary.txt")
    for (s = 1; s <= n_series; s++) {
      for (i = 1; i <= nr[s]; i++) for (j = i + 1; j <= nr[s]; j++) if (rk[s, j] < rk[s, i]) { t = rk[s, i]; rk[s, i] = rk[s, j]; rk[s, j] = t }
      g = group[s]
      if (!(g in r0_of) || rk[s, 1] < r0_of[g]) r0_of[g] = rk[s, 1]
    }
    for (s = 1; s <= n_series; s++) {
      # The reference: the smallest ring of the group (mode, size, dp, model), measured with this
      # series own layout and blocks if it was, else with its blocks (one rank: the layout does
      # not matter), else any.
      g = group[s]; r0 = r0_of[g]; ref = 0; score = -1
      for (c = 1; c <= n_series; c++) {
        if (group[c] != g || !((c, r0) in seen)) continue
        sc = (blocks_of[c] == blocks_of[s]) * 2 + (layout_of[c] == layout_of[s])
        if (sc > score) { score = sc; ref = c }
      }
      if (ref != s) printf "# %s: efficiency against %s at %d rank(s)\n", series_key[s], series_key[ref], r0 > (work "/notes.txt")
      file = work "/series" s ".dat"
      for (i = 1; i <= nr[s]; i++) {
        r = rk[s, i]
        eff = (gf[ref, r0] > 0) ? (gf[s, r] / r) / (gf[ref, r0] / r0) : 0
        printf "%d %.6g %.6g %.6g %d\n", r, tps[s, r], eff, ex[s, r], os[s, r] > file
        mr = (mf[ref, r0] > 0) ? mf[s, r] / mf[ref, r0] : 0
        printf "%-58s %5d %12.1f %9.3f %10.3f %9.3f %8.3f %5s\n", series_key[s], r, tps[s, r], st[s, r], eff, mr, ex[s, r], os[s, r] ? "yes" : "no" > (work "/summary.txt")
      }
      print file "\t" series_key[s] > (work "/index.txt")
    }
  }' "$csv" || exit 2

[ -f "$work/notes.txt" ] && cat "$work/notes.txt" >> "$work/summary.txt"
cp "$work/summary.txt" "$out/summary.txt"
cat "$out/summary.txt"
echo "# efficiency = (GFLOP/s per rank) / (that of the smallest ring of the sweep); mfu_ratio = MFU / the reference's MFU"
echo "# (each MFU against the sgemm rate measured in its own run: less sensitive to other load); osub yes = oversubscribed"

if ! command -v gnuplot > /dev/null; then
  echo "plot.sh: NOTE: gnuplot not found: no PNGs drawn (Debian/Ubuntu: apt-get install gnuplot-nox); summary in $out/summary.txt"
  exit 0
fi

max_ranks=$(awk '{ if ($1 > m) m = $1 } END { print m }' "$work"/series*.dat)
any_osub=$(awk '$5 == 1 { n++ } END { print n + 0 }' "$work"/series*.dat)
plot_one() {  # PNG TITLE YLABEL COLUMN EXTRA-GNUPLOT
  local png=$1 title=$2 ylabel=$3 column=$4 extra=$5 plots="" file name first=1
  while IFS=$'\t' read -r file name; do
    plots+="${plots:+, }'$file' using 1:$column with linespoints lw 2 pt 7 title '${name//\'/}'"
  done < "$work/index.txt"
  while IFS=$'\t' read -r file name; do
    local t="notitle"
    if [ "$first" = 1 ] && [ "$any_osub" -gt 0 ]; then t="title 'oversubscribed (not scaling)'"; first=0; fi
    plots+=", '$file' using 1:(\$5 > 0 ? \$$column : 1/0) with points pt 6 ps 3 lw 2 lc rgb 'red' $t"
  done < "$work/index.txt"
  gnuplot <<EOF
set terminal pngcairo size 900,560 noenhanced font ",10"
set output '$out/$png'
set title '$title'
set xlabel 'ranks' offset 0,0.6
set ylabel '$ylabel'
set xrange [0.5:$max_ranks + 0.5]
set xtics 1
set grid
set key below center horizontal maxrows 4 box spacing 1.3 height 1
$extra
plot $plots
EOF
}
plot_one throughput.png "throughput (tokens/s)" "tokens/s" 2 "set yrange [0:*]"
plot_one efficiency.png "scaling efficiency vs the smallest ring (1 = ideal)" "efficiency" 3 \
  "set yrange [0:*]; set offsets 0, 0, 0.1, 0; set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb 'gray'"
plot_one exposed_comm.png "exposed communication: ring wait / (compute + wait)" "fraction" 4 "set yrange [0:1]"
echo "plot.sh: wrote $out/throughput.png, $out/efficiency.png, $out/exposed_comm.png"
