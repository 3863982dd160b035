#!/usr/bin/env bash
# A single-node SLURM cluster with accounting on this machine, for the tests marked `slurm`.
#
#   tests/slurm-local.sh up | down | status        (up and down need root)
#
# `up` installs slurm-wlm, slurmdbd, munge and mariadb-server from Debian when missing,
# starts munged (unless one answers already), a private MariaDB and slurmdbd (so that
# `sacct`, which submitit polls for job states, works), then slurmctld and slurmd, and
# waits until the node is idle. Everything lives in $PRUNEBENCH_SLURM_DIR (default
# /tmp/prunebench-slurm); the daemons read $DIR/slurm.conf through SLURM_CONF, and
# /etc/slurm/slurm.conf links to it so that sbatch, squeue, scancel and sacct run by any
# process find the cluster. `down` stops what `up` started and removes the link.
# Both are idempotent.
set -euo pipefail

DIR=${PRUNEBENCH_SLURM_DIR:-/tmp/prunebench-slurm}
LINK=/etc/slurm/slurm.conf
DB_PORT=${PRUNEBENCH_SLURM_DB_PORT:-16833}
WAIT_S=${PRUNEBENCH_SLURM_WAIT_S:-60}
export SLURM_CONF=$DIR/slurm.conf

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }

# wait_for SECONDS WHAT COMMAND...: retry COMMAND every half second, or fail naming WHAT.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq "$((seconds * 2))"); do "$@" >/dev/null 2>&1 && return; sleep 0.5; done
  die "$what did not come up within ${seconds}s; logs in $DIR/*.log"
}

install_packages() {
  local tool missing=0
  for tool in slurmctld slurmd slurmdbd sbatch munged mariadbd; do command -v "$tool" >/dev/null || missing=1; done
  [ "$missing" = 0 ] && return
  say "installing slurm-wlm, slurmdbd, munge and mariadb-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm slurmdbd munge mariadb-server >/dev/null
}

munge_ok() { munge -n | unmunge; }

start_munge() {
  if munge_ok >/dev/null 2>&1; then say "munged already running"; return; fi
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    say "created /etc/munge/munge.key"
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- munged
  touch "$DIR/munged.ours"
  wait_for 10 munged munge_ok
  say "started munged"
}

db() { mariadb --socket="$DIR/mysqld.sock" "$@"; }

start_database() {
  cat >"$DIR/my.cnf" <<EOF
[mysqld]
user=root
datadir=$DIR/db
socket=$DIR/mysqld.sock
pid-file=$DIR/mysqld.pid
log-error=$DIR/mysqld.log
bind-address=127.0.0.1
port=$DB_PORT
innodb_buffer_pool_size=64M
EOF
  if db -e "select 1" >/dev/null 2>&1; then say "MariaDB already running"; return; fi
  if [ ! -d "$DIR/db/mysql" ]; then
    mariadb-install-db --defaults-file="$DIR/my.cnf" --auth-root-authentication-method=socket \
      >"$DIR/install-db.log" 2>&1 || die "mariadb-install-db failed; see $DIR/install-db.log"
  fi
  setsid mariadbd --defaults-file="$DIR/my.cnf" </dev/null >/dev/null 2>&1 &
  wait_for 30 MariaDB db -e "select 1"
  db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'prunebench';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  say "started MariaDB on 127.0.0.1:$DB_PORT"
}

write_configs() {
  local node cpus mem
  node=$(hostname -s)
  # slurmd -C prints this machine's line: NodeName=... CPUs=... RealMemory=...
  read -r cpus mem < <(slurmd -C | sed -n 's/.* CPUs=\([0-9]*\) .*RealMemory=\([0-9]*\).*/\1 \2/p')
  [ -n "$cpus" ] && [ -n "$mem" ] || die "could not read CPUs and RealMemory from 'slurmd -C'"
  cat >"$DIR/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
SlurmUser=root
PidFile=$DIR/slurmdbd.pid
LogFile=$DIR/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=prunebench
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$DIR/slurmdbd.conf"
  cat >"$DIR/slurm.conf" <<EOF
# Written by tests/slurm-local.sh: a single-node test cluster.
ClusterName=prunebench
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# Reject at submission what the node can never run, instead of leaving it pending forever.
EnforcePartLimits=ALL
KillWait=5
MaxArraySize=10001
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  say "wrote $DIR/slurm.conf (node $node, $cpus CPUs, $mem MB)"
}

link_config() {
  if [ -e "$LINK" ] && [ "$(readlink "$LINK")" != "$SLURM_CONF" ]; then
    die "$LINK exists and is not ours; move it away to use the test cluster"
  fi
  ln -sfn "$SLURM_CONF" "$LINK"
  say "linked $LINK -> $SLURM_CONF"
}

running() { [ -s "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start() {
  if running "$1"; then say "$1 already running"; return; fi
  "$1"
  say "started $1"
}

node_ready() { sinfo -h -N -o %t | grep -qxE 'idle|mix|alloc'; }

up() {
  [ "$(id -u)" = 0 ] || die "starting the test cluster needs root"
  install_packages
  mkdir -p "$DIR/state" "$DIR/spool"
  start_munge
  start_database
  write_configs
  link_config
  start slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  start slurmctld
  start slurmd
  wait_for "$WAIT_S" "node $(hostname -s)" node_ready
  sacct -n -X >/dev/null || die "sacct fails; see $DIR/slurmdbd.log"
  say "node $(hostname -s) is $(sinfo -h -N -o %t), accounting works"
}

stop() {
  local pid
  [ -s "$DIR/$1.pid" ] || return 0
  pid=$(cat "$DIR/$1.pid")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    say "stopped ${2:-$1}"
  fi
  rm -f "$DIR/$1.pid"
}

down() {
  stop slurmd
  stop slurmctld
  stop slurmdbd
  stop mysqld MariaDB
  if [ "$(readlink "$LINK" 2>/dev/null)" = "$SLURM_CONF" ]; then rm -f "$LINK"; fi
  if [ -e "$DIR/munged.ours" ]; then
    [ -s /run/munge/munged.pid ] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null && say "stopped munged"
    rm -f "$DIR/munged.ours"
  fi
}

status() {
  running slurmctld && running slurmd && node_ready || { say "not running"; return 1; }
  sinfo
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
