#!/usr/bin/env bash
# tests/slurm/local_slurm.sh start|stop|status STATE_DIR: a private single-node Slurm on this
# machine for the job tests (munge + slurmctld + slurmd on localhost; slurm-wlm 22.05, see
# shared/docs/toolchain.md). Everything it needs lives in STATE_DIR: slurm.conf, the munge key
# and socket, the controller's state, slurmd's spool, pid files and logs. It uses its own config
# (clients find it through SLURM_CONF), its own TCP ports and its own munge socket, so a real
# Slurm or munge on the machine is never touched.
#   start   write the config, start munged, slurmctld and slurmd, wait until the node is idle;
#           writes STATE_DIR/env (`source` it: exports SLURM_CONF). Exit 0 up, 1 failed (logs
#           shown), 3 Slurm or munge is not installed.
#   stop    cancel this cluster's jobs, stop the daemons by their pid files (TERM, then KILL).
#   status  the daemons' pids and sinfo.
# Environment: LOCAL_SLURM_PORT (first of two free TCP ports; default: a free pair from 20000
# up), LOCAL_SLURM_CPUS (node CPUs, default nproc), LOCAL_SLURM_START_TIMEOUT_S (default 30).
set -euo pipefail

usage() { echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
mkdir -p "$2"
state=$(cd "$2" && pwd)
conf=$state/slurm.conf

say() { echo "local_slurm: $*"; }
pid_file() { if [ "$1" = munged ]; then echo "$state/munge/socket/munged.pid"; else echo "$state/run/$1.pid"; fi; }
pid_of() { local f; f=$(pid_file "$1"); [ -s "$f" ] && cat "$f"; }
alive() { local pid; pid=$(pid_of "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

port_in_use() {  # something accepts connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_ports() {  # sets ctld_port and slurmd_port to two consecutive free ports
  local p
  if [ -n "${LOCAL_SLURM_PORT:-}" ]; then
    ctld_port=$LOCAL_SLURM_PORT slurmd_port=$((LOCAL_SLURM_PORT + 1))
    return
  fi
  for _ in $(seq 1 50); do
    p=$((20000 + 2 * (RANDOM % 10000)))
    if ! port_in_use "$p" && ! port_in_use $((p + 1)); then
      ctld_port=$p slurmd_port=$((p + 1))
      return
    fi
  done
  say "no free pair of TCP ports found"; exit 1
}

show_logs() {
  local f
  for f in "$state"/log/*.log; do
    [ -f "$f" ] || continue
    echo "---- $f (last 20 lines)"; tail -n 20 "$f"
  done
}

stop_pids() {  # stop_pids NAME...: TERM to each, wait up to 10 s for all, then KILL the rest
  local name pid pids=()
  for name in "$@"; do
    pid=$(pid_of "$name") || continue
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  for _ in $(seq 1 100); do
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
    [ -z "${pid:-}" ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then say "pid $pid ignored TERM; killing it"; kill -KILL "$pid" 2>/dev/null || true; fi
  done
  for name in "$@"; do rm -f "$(pid_file "$name")"; done
}

do_stop() {
  if alive slurmctld; then
    # Jobs of this cluster first, so that no job step outlives its slurmd.
    SLURM_CONF=$conf scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 150); do
      [ -z "$(SLURM_CONF=$conf squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  stop_pids slurmd slurmctld
  stop_pids munged  # last: the Slurm daemons use it until they end
  say "stopped ($state)"
}

do_status() {
  local name
  for name in munged slurmctld slurmd; do
    if alive "$name"; then echo "$name: running, pid $(pid_of "$name")"; else echo "$name: not running"; fi
  done
  if alive slurmctld; then SLURM_CONF=$conf sinfo -N -o '%N %T %c' || true; fi
}

do_start() {
  local b missing=""
  for b in munged slurmctld slurmd sinfo sbatch scontrol squeue scancel; do
    command -v "$b" > /dev/null 2>&1 || missing="$missing $b"
  done
  if [ -n "$missing" ]; then say "not installed:$missing (Debian: apt-get install slurm-wlm munge)"; exit 3; fi
  if alive slurmctld || alive slurmd || alive munged; then say "already running in $state; stop it first"; exit 1; fi

  # Who runs what: as root, munged runs as the munge user (as Debian's service does; its files
  # must belong to it) and the Slurm daemons as root; otherwise everything runs as this user.
  local me munge_user
  me=$(id -un)
  munge_user=$me
  if [ "$(id -u)" -eq 0 ] && id munge > /dev/null 2>&1; then munge_user=munge; fi

  rm -rf "$state/munge" "$state/ctld" "$state/spool" "$state/run" "$state/log" "$state/tmp"
  mkdir -p "$state/munge/key" "$state/munge/socket" "$state/ctld" "$state/spool" "$state/run" "$state/log" "$state/tmp"
  # munged refuses keys and sockets in directories others may write or read (key dir 0700,
  # socket dir 0755), and the munge user must be able to reach them.
  chmod 0755 "$state" "$state/munge" "$state/munge/socket" "$state/run" "$state/log"
  chmod 0700 "$state/munge/key"
  dd if=/dev/urandom of="$state/munge/key/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$state/munge/key/munge.key"
  touch "$state/log/munged.log" && chmod 0640 "$state/log/munged.log"
  if [ "$munge_user" != "$me" ]; then
    chown -R "$munge_user:" "$state/munge" "$state/log/munged.log"
  fi
  local socket=$state/munge/socket/munge.socket.2
  local -a as_munge=()
  [ "$munge_user" != "$me" ] && as_munge=(runuser -u "$munge_user" --)
  "${as_munge[@]}" munged --socket="$socket" --key-file="$state/munge/key/munge.key" \
    --pid-file="$state/munge/socket/munged.pid" --log-file="$state/log/munged.log" \
    --seed-file="$state/munge/key/munged.seed" ||
    { say "munged did not start"; show_logs; exit 1; }

  pick_ports
  local cpus=${LOCAL_SLURM_CPUS:-$(nproc)}
  # Job ids from a number of its own: two private clusters at once (two build directories)
  # would otherwise both run job 1, and Slurm's PMIx plugin names files after job ids.
  local first_job_id=$((ctld_port * 10))
  cat > "$conf" <<EOF
# Written by tests/slurm/local_slurm.sh: a private one-node cluster for tests.
ClusterName=rwlocal
SlurmctldHost=localhost
SlurmUser=$me
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket,cred_expire=${LOCAL_SLURM_CRED_EXPIRE_S:-5}
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
TmpFS=$state/tmp
FirstJobId=$first_job_id
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=3600
MailProg=/bin/true
InactiveLimit=0
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  printf 'export SLURM_CONF=%q\n' "$conf" > "$state/env"

  # -c: start clean, without jobs saved by an earlier instance in this state directory.
  SLURM_CONF=$conf slurmctld -c -f "$conf" || { say "slurmctld did not start"; show_logs; do_stop; exit 1; }
  SLURM_CONF=$conf slurmd -f "$conf" -N localhost || { say "slurmd did not start"; show_logs; do_stop; exit 1; }

  local t0=$SECONDS timeout=${LOCAL_SLURM_START_TIMEOUT_S:-30} node_state=""
  while [ $((SECONDS - t0)) -lt "$timeout" ]; do
    node_state=$(SLURM_CONF=$conf sinfo -h -N -n localhost -o %T 2>/dev/null || true)
    [ "$node_state" = idle ] && break
    sleep 0.2
  done
  if [ "$node_state" != idle ]; then
    say "the node is '${node_state:-unknown}', not idle, after ${timeout} s"
    show_logs; do_stop; exit 1
  fi
  say "up in $((SECONDS - t0)) s: SLURM_CONF=$conf, slurmctld port $ctld_port, slurmd port $slurmd_port, $cpus CPUs"
}

case "$action" in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac
