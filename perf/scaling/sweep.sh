#!/usr/bin/env bash
# perf/scaling/sweep.sh: a scaling study of ringworld training. Runs `ringworld bench` once per
# point of ring sizes x dp sizes x sequence lengths x block sizes x layouts and collects one CSV
# row per point (written by bench itself, safely) in an output directory.
#   --mode strong   --seq-lens are total sequence lengths: the same sequence over more ranks
#   --mode weak     --seq-lens are tokens per rank: the sequence grows with the ring
# Points with more rank-threads than cores on a node are run but marked OVERSUBSCRIBED here and
# `oversubscribed=yes` in the CSV: they time-share cores and say nothing about scaling.
# Points whose sequence cannot be split over the ring (zigzag needs seq % (2 x sp) == 0, the
# others seq % sp == 0) are skipped with a note. A failing point is reported and the sweep goes
# on; the exit status is non-zero when any point failed. Exit 2: bad options.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: perf/scaling/sweep.sh [options]
  --mode strong|weak     strong: fixed total sequence; weak: fixed tokens per rank (default strong)
  --ranks LIST           ring sizes sp, comma list (default 1,2)
  --dp LIST              data-parallel sizes (default 1); a point uses dp x sp ranks
  --seq-lens LIST        strong: total tokens; weak: tokens per rank (default 8192 / 4096)
  --blocks LIST          attention tiles, N (N x N) or QxK, e.g. 128,256x128 (default 256)
  --layouts LIST         zigzag,striped,contiguous (default zigzag)
  --model NAME           tiny | small | 7b (default small)
  --model-args "ARGS"    extra bench options, e.g. "--num_hidden_layers 2"
  --steps K              timed steps per point (default 3)
  --warmup W             warm-up steps per point (default 1)
  --threads T            OpenMP threads per rank (default 1)
  --launcher mpirun|srun mpirun (default; root-safe flags) or srun inside a Slurm allocation
  --mpirun PATH          the mpirun to use (default: mpirun on PATH)
  --launcher-args "ARGS" extra launcher arguments (e.g. "--mpi=pmix" for srun, the default there)
  --bin PATH             the ringworld binary (default: build/ringworld of this checkout)
  --out DIR              output directory (default perf/results/scaling-DATE-TIME)
  --csv NAME             CSV file name inside DIR (default scaling.csv); rows are appended
  --label TEXT           added to every row's label (which starts with the mode)
  --point-timeout S      seconds one point may run (default 3600; 0: none)
  --dry-run              print the points and their commands, run nothing
  -h, --help             this help
EOF
}

die() { echo "sweep.sh: error: $*" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
mode=strong ranks_list=1,2 dp_list=1 seq_list="" blocks_list=256 layouts_list=zigzag model=small model_args=""
steps=3 warmup=1 threads=1 launcher=mpirun mpirun_bin=mpirun launcher_args="" bin="$root/build/ringworld"
out="" csv_name=scaling.csv label="" point_timeout=3600 dry_run=0

while [ $# -gt 0 ]; do
  opt=$1
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    --dry-run) dry_run=1; shift; continue ;;
  esac
  [ $# -ge 2 ] || die "option $opt needs a value (see --help)"
  val=$2
  case "$opt" in
    --mode) mode=$val ;;
    --ranks) ranks_list=$val ;;
    --dp) dp_list=$val ;;
    --seq-lens) seq_list=$val ;;
    --blocks) blocks_list=$val ;;
    --layouts) layouts_list=$val ;;
    --model) model=$val ;;
    --model-args) model_args=$val ;;
    --steps) steps=$val ;;
    --warmup) warmup=$val ;;
    --threads) threads=$val ;;
    --launcher) launcher=$val ;;
    --mpirun) mpirun_bin=$val ;;
    --launcher-args) launcher_args=$val ;;
    --bin) bin=$val ;;
    --out) out=$val ;;
    --csv) csv_name=$val ;;
    --label) label=$val ;;
    --point-timeout) point_timeout=$val ;;
    *) die "unknown option '$opt' (see --help)" ;;
  esac
  shift 2
done

# ---- validate everything before the first point ------------------------------------------------
case "$mode" in strong|weak) ;; *) die "--mode must be strong or weak (got '$mode')" ;; esac
case "$launcher" in mpirun|srun) ;; *) die "--launcher must be mpirun or srun (got '$launcher')" ;; esac
[ -n "$seq_list" ] || { [ "$mode" = strong ] && seq_list=8192 || seq_list=4096; }
split_list() {  # ARRAY OPTION LIST: comma list into ARRAY; every item a positive integer
  local -n into=$1
  local option=$2 list=$3 item
  IFS=, read -r -a into <<< "$list"
  [ ${#into[@]} -gt 0 ] || die "$option is empty"
  for item in "${into[@]}"; do [[ "$item" =~ ^[1-9][0-9]*$ ]] || die "$option: '$item' is not a positive integer"; done
}
split_list ranks --ranks "$ranks_list"
split_list dp --dp "$dp_list"
split_list seq_lens --seq-lens "$seq_list"
IFS=, read -r -a blocks <<< "$blocks_list"
[ ${#blocks[@]} -gt 0 ] || die "--blocks is empty"
for b in "${blocks[@]}"; do
  [[ "$b" =~ ^[1-9][0-9]*(x[1-9][0-9]*)?$ ]] || die "--blocks: '$b' is not N or QxK (positive integers)"
done
IFS=, read -r -a layouts <<< "$layouts_list"
[ ${#layouts[@]} -gt 0 ] || die "--layouts is empty"
for l in "${layouts[@]}"; do
  case "$l" in zigzag|striped|contiguous) ;; *) die "--layouts: '$l' is not zigzag, striped or contiguous" ;; esac
done
for v in steps threads; do [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || die "--$v must be a positive integer (got '${!v}')"; done
[[ "$warmup" =~ ^[0-9]+$ ]] || die "--warmup must be a non-negative integer (got '$warmup')"
[[ "$point_timeout" =~ ^[0-9]+$ ]] || die "--point-timeout must be a non-negative integer (got '$point_timeout')"
[[ "$csv_name" =~ ^[A-Za-z0-9._-]+$ ]] || die "--csv must be a plain file name (got '$csv_name')"
[[ "$label" != *[,\"]* ]] || die "--label must not contain commas or quotes"
[ -x "$bin" ] || [ "$dry_run" = 1 ] || die "no ringworld binary at '$bin' (build it, or pass --bin)"
if [ "$launcher" = srun ]; then
  [ "$dry_run" = 1 ] || [ -n "${SLURM_JOB_ID:-}" ] || die "--launcher srun runs inside a Slurm allocation (salloc/sbatch): SLURM_JOB_ID is not set"
  [ -n "$launcher_args" ] || launcher_args="--mpi=pmix"
else
  [ "$dry_run" = 1 ] || command -v "$mpirun_bin" > /dev/null || die "'$mpirun_bin' not found (Open MPI: apt-get install openmpi-bin, or pass --mpirun)"
fi
[ -n "$out" ] || out="$root/perf/results/scaling-$(date +%Y%m%d-%H%M%S)"
csv="$out/$csv_name"
stamp=$(date +%Y%m%d-%H%M%S)  # log names: sweeps into one DIR never overwrite each other's logs
cores=$(nproc)

# ---- the launcher's command line for N ranks -------------------------------------------------------
launch_cmd() {  # N: prints nothing, fills array cmd
  local n=$1
  local -a extra=()
  [ -z "$launcher_args" ] || read -r -a extra <<< "$launcher_args"
  if [ "$launcher" = srun ]; then
    # --overcommit: more tasks than the allocation's CPUs are allowed (and then marked by bench).
    cmd=(srun "${extra[@]}" -n "$n" --cpus-per-task="$threads" --overcommit
         --export=ALL,OMP_NUM_THREADS="$threads",OPENBLAS_NUM_THREADS=1)
  elif "$mpirun_bin" --version 2>/dev/null | grep -q "Open MPI\|OpenRTE"; then
    # Open MPI: allowed as root, more ranks than cores allowed, ranks not pinned to one core.
    cmd=("$mpirun_bin" --allow-run-as-root --oversubscribe --bind-to none
         -x OMP_NUM_THREADS="$threads" -x OPENBLAS_NUM_THREADS=1 "${extra[@]}" -np "$n")
  else  # MPICH / Intel MPI (Hydra)
    cmd=("$mpirun_bin" -genv OMP_NUM_THREADS "$threads" -genv OPENBLAS_NUM_THREADS 1 "${extra[@]}" -n "$n")
  fi
}

# A CSV column of the last row, by header name.
last_value() {  # COLUMN
  awk -F, -v col="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next } { v = $c } END { print v }' "$csv"
}

# ---- the points ----------------------------------------------------------------------------------
points=()
for s in "${seq_lens[@]}"; do for d in "${dp[@]}"; do for r in "${ranks[@]}"; do
  for b in "${blocks[@]}"; do for l in "${layouts[@]}"; do points+=("$s $d $r $b $l"); done; done
done; done; done
total=${#points[@]}
mode_label=$mode${label:+ $label}

echo "# ringworld scaling sweep: mode $mode, $total point(s), model $model, $steps step(s) after $warmup warm-up, $threads thread(s) per rank"
echo "# machine: $(hostname), $cores core(s), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?'); launcher $launcher"
echo "# csv: $csv"
[ "$dry_run" = 1 ] || mkdir -p "$out/logs"
failed=0 skipped=0 done_points=0 index=0
for p in "${points[@]}"; do
  read -r s d r b l <<< "$p"
  index=$((index + 1))
  n=$((d * r))
  bq=${b%x*} bk=${b#*x}
  if [ "$mode" = strong ]; then seq=$s; else seq=$((s * r)); fi
  div=$r; [ "$l" = zigzag ] && div=$((2 * r))
  tag="[$index/$total] ranks $n (dp $d x sp $r) seq $seq blocks ${bq}x$bk $l"
  if [ $((seq % div)) -ne 0 ]; then
    echo "$tag: SKIPPED: seq $seq is not a multiple of $div ($l over $r ranks)"
    skipped=$((skipped + 1)); continue
  fi
  osub=""
  # mpirun runs on this node; under srun the allocation's nodes decide (bench marks the row).
  [ "$launcher" = mpirun ] && [ $((n * threads)) -gt "$cores" ] &&
    osub=" OVERSUBSCRIBED ($((n * threads)) rank-threads on $cores cores)"
  launch_cmd "$n"
  bench=("$bin" bench --model "$model" --seq-len "$seq" --dp "$d" --sp "$r" --layout "$l" --block-q "$bq"
         --block-k "$bk" --steps "$steps" --warmup "$warmup" --csv "$csv" --label "$mode_label")
  extra_model=()
  [ -z "$model_args" ] || read -r -a extra_model <<< "$model_args"
  full=("${cmd[@]}" "${bench[@]}" "${extra_model[@]}")
  if [ "$dry_run" = 1 ]; then echo "$tag$osub: ${full[*]}"; continue; fi
  log="$out/logs/$stamp-point-$index-n$n-dp$d-seq$seq-b${bq}x$bk-$l.log"
  echo -n "$tag$osub ... "
  t0=$(date +%s)
  rc=0
  if [ "$point_timeout" -gt 0 ]; then timeout "$point_timeout" "${full[@]}" > "$log" 2>&1 || rc=$?
  else "${full[@]}" > "$log" 2>&1 || rc=$?; fi
  t1=$(date +%s)
  if [ "$rc" -ne 0 ]; then
    echo "FAILED (exit $rc after $((t1 - t0)) s; log $log)"
    grep -m1 "error" "$log" | sed 's/^/    /' || true
    failed=$((failed + 1)); continue
  fi
  done_points=$((done_points + 1))
  mark=$(last_value oversubscribed)
  printf "%.0f tok/s, step %.3f s, MFU %.3f, exposed comm %.2f, %s MiB/rank (%d s)%s\n" \
    "$(last_value tokens_per_s)" "$(last_value step_s_median)" "$(last_value mfu)" "$(last_value exposed_comm_frac)" \
    "$(last_value peak_rss_mib)" $((t1 - t0)) "$([ "$mark" = yes ] && echo ' [oversubscribed=yes in the CSV]')"
done
[ "$dry_run" = 1 ] && exit 0
echo "# done: $done_points point(s) measured, $skipped skipped, $failed failed; load average now $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
echo "# csv: $csv   plots: perf/scaling/plot.sh $csv"
[ "$failed" -eq 0 ]
