#!/usr/bin/env bash
# jobs/slurm/submit_stages.sh: submits a context-extension schedule to Slurm, one job per stage
# (jobs/slurm/stage.sbatch), each stage waiting for the one before it (--dependency=afterok), all
# sharing one run directory. Prints one line per stage: "stage NAME: job ID".
#
# usage: submit_stages.sh --config RUN.ini [--run-dir DIR] [--after JOBID] [--script FILE] [--dry-run]
#                         [-- SBATCH_ARGS...]
#   --config RUN.ini   the stages are its [stage.NAME] sections, in file order
#   --run-dir DIR      run directory (default: runs/<config name>); job logs go there as
#                      slurm-<stage>-<jobid>.out
#   --after JOBID      the first stage also waits for this job
#   --script FILE      the per-stage batch script (default: stage.sbatch beside this file)
#   --dry-run          print the sbatch commands, submit nothing
#   -- SBATCH_ARGS     passed to every sbatch, last (they override everything else)
# Stages whose final checkpoint (DIR/ckpt-NAME-final.h5) exists are not submitted again, so
# running the same command after a failure or a scancel resubmits only what is left; the first
# job left resumes from the run directory's latest checkpoint.
#
# Cluster settings from the environment, each only when set (or pass sbatch options after --):
#   RW_ACCOUNT (-A), RW_PARTITION (-p), RW_NODES (-N), RW_NTASKS_PER_NODE (--ntasks-per-node;
#   default RW_GPUS_PER_NODE: one rank per GPU), RW_CPUS_PER_TASK (--cpus-per-task),
#   RW_GPUS_PER_NODE (--gpus-per-node), RW_TIME (--time)
# and what stage.sbatch reads (RW_BIN, RW_LAUNCHER, RW_SRUN_MPI, RW_LAUNCHER_ARGS, RW_MODULES,
# RW_TRAIN_ARGS, RW_REQUEUE, RW_MAX_REQUEUES): sbatch passes the environment to the jobs.
# Example:
#   RW_ACCOUNT=proj42 RW_PARTITION=gpu RW_NODES=4 RW_GPUS_PER_NODE=4 RW_TIME=12:00:00 \
#     RW_TRAIN_ARGS="--checkpoint-every 200" jobs/slurm/submit_stages.sh --config jobs/configs/lwm-text-7b.ini
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '6,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }
die() { echo "submit_stages: $*" >&2; exit 2; }

config="" run_dir="" after="" dry_run=0 script=$here/stage.sbatch
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
    --run-dir) [ $# -ge 2 ] || usage; run_dir=$2; shift 2 ;;
    --after) [ $# -ge 2 ] || usage; after=$2; shift 2 ;;
    --script) [ $# -ge 2 ] || usage; script=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "submit_stages: unknown argument '$1'" >&2; usage ;;
  esac
done
[ -n "$config" ] || die "--config RUN.ini is required"
[ -f "$config" ] || die "cannot read config file '$config'"
[ -f "$script" ] || die "no batch script '$script'"
[ -n "$run_dir" ] || run_dir=runs/$(basename "$config" .ini)
# The jobs may start in another directory (sbatch --chdir): absolute paths.
config=$(realpath "$config")
run_dir=$(realpath -m "$run_dir")

# Stage names in file order: the [stage.NAME] section headers (a name repeated counts once).
mapfile -t stages < <(sed -n 's/^[[:space:]]*\[stage\.\([^]]*\)\][[:space:]]*$/\1/p' "$config" | awk '!seen[$0]++')
[ "${#stages[@]}" -gt 0 ] || die "'$config' has no [stage.NAME] sections"

common=()
[ -n "${RW_ACCOUNT:-}" ] && common+=(--account="$RW_ACCOUNT")
[ -n "${RW_PARTITION:-}" ] && common+=(--partition="$RW_PARTITION")
[ -n "${RW_NODES:-}" ] && common+=(--nodes="$RW_NODES")
ntasks_per_node=${RW_NTASKS_PER_NODE:-${RW_GPUS_PER_NODE:-}}
[ -n "$ntasks_per_node" ] && common+=(--ntasks-per-node="$ntasks_per_node")
[ -n "${RW_CPUS_PER_TASK:-}" ] && common+=(--cpus-per-task="$RW_CPUS_PER_TASK")
[ -n "${RW_GPUS_PER_NODE:-}" ] && common+=(--gpus-per-node="$RW_GPUS_PER_NODE")
[ -n "${RW_TIME:-}" ] && common+=(--time="$RW_TIME")

[ "$dry_run" = 1 ] || mkdir -p "$run_dir"  # sbatch needs the log directory to exist
previous=$after
for stage in "${stages[@]}"; do
  if [ -f "$run_dir/ckpt-$stage-final.h5" ]; then
    echo "stage $stage: already complete ($run_dir/ckpt-$stage-final.h5); not submitted"
    continue
  fi
  cmd=(env RW_CONFIG="$config" RW_STAGE="$stage" RW_RUN_DIR="$run_dir"
       sbatch --parsable --job-name="ringworld-$stage" --output="$run_dir/slurm-$stage-%j.out")
  # A stage whose predecessor fails is cancelled rather than left pending forever.
  [ -n "$previous" ] && cmd+=(--dependency="afterok:$previous" --kill-on-invalid-dep=yes)
  cmd+=("${common[@]}" "${extra[@]}" "$script")
  if [ "$dry_run" = 1 ]; then
    printf '%q ' "${cmd[@]}"; echo
    previous="JOBID_OF_STAGE_$stage"
    continue
  fi
  id=$("${cmd[@]}") || die "sbatch failed for stage $stage"
  id=${id%%;*}  # --parsable prints JOBID[;CLUSTER]
  echo "stage $stage: job $id"
  previous=$id
done
