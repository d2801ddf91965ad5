#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1, to try (and test) `--launcher slurm` without a cluster.
#
#   bash scripts/slurm_local.sh start   # install slurm-wlm + munge if missing (apt, as root), start, print the env
#   eval "$(bash scripts/slurm_local.sh env)"   # SLURM_CONF for sbatch/squeue/sacct and for cxrsynth
#   bash scripts/slurm_local.sh stop    # end exactly the daemons `start` started (by their pid files)
#   bash scripts/slurm_local.sh status  # exit 0 when its cluster is up
#
# Exit status of `start`: 0 up; 3 slurm-wlm/munge missing and apt-get could not install them (the last
# line on stderr says why); 1 installed but the cluster did not come up (logs named).
# Why a script: the tests marked `slurm` need a real scheduler (sbatch, scancel, time limits), and CI
# runs on a clean clone as root. Everything lives in a private folder ($CXRSYNTH_SLURM_DIR, default
# /tmp/cxrsynth-slurm-$UID): munge key and socket, slurm.conf, state, spool, logs and pid files. Nothing
# under /etc is changed and no system service is started. `start` is idempotent: when its daemons are
# running and the node answers, it only prints the env. Accounting is off (no slurmdbd, so `sacct`
# answers "accounting storage is disabled"); cxrsynth then asks squeue/scontrol and says so.
# The one partition lets two one-CPU jobs share a CPU (OverSubscribe=FORCE:2): most of a test job's
# time is waiting (imports, a sleep under a time limit), and 2 cores would otherwise run 2 jobs at once.
set -euo pipefail

DIR="${CXRSYNTH_SLURM_DIR:-/tmp/cxrsynth-slurm-$(id -u)}"
CONF="$DIR/slurm.conf"
CTLD_PORT="${CXRSYNTH_SLURM_PORT:-6917}"
DAEMONS=(munged slurmctld slurmd)

say() { echo "slurm_local: $*" >&2; }

# The pid in $DIR/<daemon>.pid when that process is alive and is that daemon (a recycled pid is not).
pid_of() {
  local pid
  pid="$(cat "$DIR/$1.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$1" ] && echo "$pid"
}

print_env() { echo "export SLURM_CONF=$CONF"; }

installed() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; }

install() {
  installed && return 0
  if [ "$(id -u)" != 0 ]; then
    say "slurm-wlm and munge are not installed and this is not root: apt-get install -y slurm-wlm munge"; return 1
  fi
  say "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge; } >"${TMPDIR:-/tmp}/slurm_local.apt.log" 2>&1 || {
    say "apt-get could not install slurm-wlm and munge (log: ${TMPDIR:-/tmp}/slurm_local.apt.log: $(tail -n 1 "${TMPDIR:-/tmp}/slurm_local.apt.log"))"; return 1; }
  installed || { say "slurm-wlm and munge installed, but slurmctld, slurmd, sbatch or munged is not on PATH ($PATH)"; return 1; }
}

write_conf() {
  local node hw
  node="$(hostname -s)"
  # This machine as slurmd sees it (CPUs, sockets, cores, threads, RealMemory), so the node is not drained.
  hw="$(slurmd -C 2>/dev/null | head -n 1 | sed 's/^NodeName=[^ ]* //')"
  [ -n "$hw" ] || hw="CPUs=$(nproc)"
  cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm_local.sh: a one-node cluster on 127.0.0.1, private to $DIR.
ClusterName=cxrsynth-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$((CTLD_PORT + 1))
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued (preempted) job may start again after 5 s (SLURM's minimum) instead of the default 120
AuthInfo=socket=$DIR/munge.socket,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# Look at pending jobs every second (defaults: 60 s main loop, 30 s backfill): a job whose begin time has
# come (a requeued one) is started then, not up to half a minute later. One node: no scheduling cost.
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 $hw State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:2
EOF
  mv "$CONF.tmp" "$CONF"
}

node_idle() { SLURM_CONF="$CONF" sinfo -h -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

stop() {
  local d pid
  for d in slurmd slurmctld munged; do  # the reverse of start
    pid="$(pid_of "$d" || true)"
    [ -n "$pid" ] || continue
    kill "$pid"
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -9 "$pid"
    say "stopped $d (pid $pid)"
  done
  rm -f "$DIR"/{munged,slurmctld,slurmd}.pid
}

start() {
  local running=0 d
  for d in "${DAEMONS[@]}"; do [ -n "$(pid_of "$d" || true)" ] && running=$((running + 1)); done
  if [ "$running" = 3 ] && [ -f "$CONF" ] && node_idle; then
    say "already running ($DIR)"; print_env; return 0
  fi
  [ "$running" = 0 ] || stop  # a half-started cluster: start again from nothing
  mkdir -p "$DIR/state" "$DIR/spool"
  chmod 700 "$DIR"
  [ -s "$DIR/munge.key" ] || { mungekey --create --keyfile="$DIR/munge.key.tmp" && mv "$DIR/munge.key.tmp" "$DIR/munge.key"; }
  chmod 600 "$DIR/munge.key"
  write_conf
  export SLURM_CONF="$CONF"
  munged --force --socket="$DIR/munge.socket" --key-file="$DIR/munge.key" --pid-file="$DIR/munged.pid" \
    --log-file="$DIR/munged.log" --seed-file="$DIR/munged.seed"
  slurmctld -f "$CONF"
  slurmd -f "$CONF" -N "$(hostname -s)"
  for _ in $(seq 120); do node_idle && break; sleep 0.5; done
  if ! node_idle; then
    say "the node did not come up within 60 s; logs: $DIR/slurmctld.log $DIR/slurmd.log"
    tail -n 5 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
    stop; return 1
  fi
  say "running: $(sbatch --version), node $(hostname -s) $(sinfo -h -o '%c CPUs, %m MB, %t'), state in $DIR"
  print_env
}

case "${1:-}" in
  start) install || exit 3; start ;;
  stop) stop ;;
  env) print_env ;;
  status) for d in "${DAEMONS[@]}"; do [ -n "$(pid_of "$d" || true)" ] || exit 1; done; node_idle ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
