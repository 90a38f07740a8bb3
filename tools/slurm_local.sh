#!/usr/bin/env bash
# Turn this Debian machine into a one-node Slurm cluster, for tests that submit job arrays.
#
#   tools/slurm_local.sh          install (if needed), configure, start, wait until the node is idle
#   tools/slurm_local.sh --stop   stop slurmd, slurmctld and munged (started by this script)
#
# Needs root and Debian (apt-get). What it does:
#   1. installs the Debian packages `slurm-wlm` and `munge` when they are missing
#      (`apt-get update -qq` only then; no recommends; package scripts are kept from starting
#      daemons with a policy-rc.d while apt runs, since there is no slurm.conf yet);
#   2. writes /etc/slurm/slurm.conf (the path Debian's Slurm reads) for this host alone, and a
#      minimal /etc/slurm/cgroup.conf (see below), and creates the state, spool, log and pid dirs;
#   3. starts munged as the munge user (creating /etc/munge/munge.key, mode 0400, if missing),
#      then slurmctld, then slurmd, each as a daemon (logs in /var/log/slurm/ and /var/log/munge/);
#   4. waits (SLURM_LOCAL_TIMEOUT seconds, default 60) until `sinfo` shows the node idle,
#      resuming it if it registers down or drained; on failure prints the daemon logs' tails
#      and exits non-zero.
# Running it again is cheap: when the node is already idle (or busy with jobs) it exits 0 at once.
#
# Why the unusual settings:
#   - no systemd: CI containers have none (PID 1 is not an init), so the daemons are started
#     directly and stopped through their pid files (`--stop`), never through service managers;
#   - ProctrackType=proctrack/linuxproc: tracks a job's processes through the process tree,
#     which needs no cgroup hierarchy (containers rarely give a writable one);
#   - TaskPlugin=task/none: no CPU binding or cgroup confinement of tasks, for the same reason;
#   - accounting_storage/none and jobacct_gather/none: no slurmdbd/MySQL to run. The price is
#     that `sacct` does not work; see "Task success without accounting" below;
#   - SlurmUser=root: the controller runs as root, so the state dirs need no second owner;
#     acceptable on a throwaway single-user test machine only;
#   - SlurmdParameters=config_overrides: use the node description written here even where the
#     hardware seen inside a container (topology, memory) differs, instead of draining the node;
#   - ReturnToService=2: a node that was DOWN returns to service as soon as it registers with a
#     valid configuration (e.g. after --stop and a restart);
#   - cgroup.conf: slurmd loads a cgroup plugin at start even with linuxproc and task/none, and
#     "autodetect" would pick cgroup/v2 (which wants systemd/dbus) on a cgroup-v2-only host; the
#     file written here pins a plugin that does nothing (see where it is written).
# slurmd and slurmctld log "can not load PMIx library" errors at start: harmless (no MPI here;
# libpmix is only a recommended package).
#
# Task success without accounting (sacct is off), checked on Slurm 22.05:
#   - `sbatch --wait --array=...` blocks until every task has ended and exits with the highest
#     exit code of the tasks: 0 only when all exited 0 (a task ending `exit 3` gives 3; a
#     cancelled task gives 1). That is the array's overall verdict. It polls: even a job of
#     1 s takes it ~10 s. Faster: `J=$(sbatch --parsable ...)`, then poll
#     `squeue -h -j "$J" -t PD,R,CG` until it prints nothing (finished), then read the states.
#   - Per task, while slurmctld still remembers the job (MinJobAge=300 s after it ends):
#       scontrol show job -o <jobid>     one line per task, with ArrayTaskId=, JobState=
#                                        (COMPLETED, FAILED, CANCELLED, TIMEOUT, ...) and
#                                        ExitCode=<code>:<signal> (a cancelled task: 0:15)
#       squeue -h -t all -j <jobid> -o '%K %T'   "<task id> <state>" per task
#     Judge by JobState (COMPLETED = success), not by ExitCode alone.
#   - After that, or to be independent of slurmctld: have each task write its own status
#     (`--output=/tmp/x-%A_%a.out`, and e.g. `cmd; echo $? >/tmp/x-$SLURM_ARRAY_TASK_ID.rc`)
#     and check one file per task after `sbatch --wait` returns; a missing file = a task
#     that never ran or was killed.
#
# Environment: SLURM_LOCAL_TIMEOUT (seconds to wait for the node, default 60).
set -euo pipefail

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
CGROUP_CONF=$CONF_DIR/cgroup.conf
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/lib/slurm/slurmd
LOG_DIR=/var/log/slurm
PID_DIR=/run/slurm
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
MARKER="# Written by tools/slurm_local.sh"
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
NODE=$(hostname -s)

log() { printf 'slurm_local: %s\n' "$*" >&2; }

# Whether process PID is NAME and alive (not a zombie: where PID 1 is no init, a dead daemon
# can stay a zombie for a while).
alive() {
    local pid=$1 name=$2 stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $stat == "$pid ($name) "* && ${stat#*) } != Z* ]]
}

# The pid in FILE when that process is alive and is NAME (a stale pid file is ignored).
live_pid() {
    local file=$1 name=$2 pid
    [[ -r $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] && alive "$pid" "$name" || return 1
    printf '%s\n' "$pid"
}

show_logs() {
    local f
    for f in /var/log/munge/munged.log "$LOG_DIR"/munged.stdout "$LOG_DIR"/slurmctld.stdout \
        "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.stdout "$LOG_DIR"/slurmd.log; do
        [[ -s $f ]] || continue
        echo "----- tail $f" >&2
        tail -n 25 "$f" >&2
    done
}

# Print MESSAGE, the node as slurmctld sees it and the daemons' logs; exit 1.
fail() {
    log "FAILED: $*"
    timeout 5 scontrol show node "$NODE" >&2 2>/dev/null || true
    show_logs
    exit 1
}

# Stop the daemon NAME whose pid file is FILE: TERM, then KILL after 15 s.
stop_daemon() {
    local file=$1 name=$2 pid i
    if ! pid=$(live_pid "$file" "$name"); then
        rm -f "$file"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        alive "$pid" "$name" || break
        sleep 0.1
    done
    if alive "$pid" "$name"; then
        log "$name did not stop on TERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop_all() {
    stop_daemon "$PID_DIR/slurmd.pid" slurmd
    stop_daemon "$PID_DIR/slurmctld.pid" slurmctld
    stop_daemon "$MUNGE_PID" munged
}

# The node's state as sinfo reports it (e.g. idle, down*, drained), empty when unknown.
node_state() {
    timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1 || true
}

is_up() {
    case $(node_state) in
        idle | mixed | allocated | completing) return 0 ;;
        *) return 1 ;;
    esac
}

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root"
    exit 1
fi

# One run at a time (two CI steps starting the cluster at once would race). The daemons are
# started with fd 9 closed, so that they do not hold the lock.
exec 9>/run/slurm_local.lock
flock 9

if [[ ${1:-} == --stop ]]; then
    stop_all
    log "stopped"
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "usage: $0 [--stop]" >&2
    exit 2
fi

# Fast path: already up (the daemons alive, and the node in service).
if command -v sinfo >/dev/null && live_pid "$MUNGE_PID" munged >/dev/null &&
    live_pid "$PID_DIR/slurmctld.pid" slurmctld >/dev/null &&
    live_pid "$PID_DIR/slurmd.pid" slurmd >/dev/null && is_up; then
    log "node $NODE is already $(node_state); nothing to do"
    exit 0
fi

START=$SECONDS

# 1. Packages.
missing=()
for pkg in slurm-wlm munge; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    added_policy=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        # Keep the packages' maintainer scripts from starting daemons (there is no config yet).
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_log=/tmp/slurm_local.apt.log
    status=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        >"$apt_log" 2>&1 || status=$?
    [[ -z $added_policy ]] || rm -f /usr/sbin/policy-rc.d
    if ((status)); then
        tail -n 30 "$apt_log" >&2
        log "FAILED: apt-get exited $status (full log: $apt_log)"
        exit 1
    fi
fi
VERSION=$(slurmd -V | awk '{print $2}')
log "Slurm $VERSION"

# 2. Configuration and directories.
mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$PID_DIR"
chmod 0755 "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$PID_DIR"

CPUS=$(nproc)
# RealMemory as slurmd measures it (MB); without it Slurm assumes 1 MB and rejects --mem.
MEM=$(slurmd -C 2>/dev/null | tr ' ' '\n' | sed -n 's/^RealMemory=\([0-9]*\)$/\1/p' | head -n 1)
MEM_SETTING=${MEM:+ RealMemory=$MEM}

new_conf=$(mktemp)
new_cgroup=$(mktemp)
trap 'rm -f "$new_conf" "$new_cgroup"' EXIT
cat >"$new_conf" <<EOF
$MARKER: a one-node test cluster (see that script's header).
ClusterName=local
SlurmctldHost=$NODE
# Root, not a slurm account: no second owner for the state dirs (throwaway test machine).
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
# No cgroups in containers: processes tracked by the process tree, tasks not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# No slurmdbd: no accounting (sacct does not work; scontrol show job does).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$PID_DIR/slurmctld.pid
SlurmdPidFile=$PID_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
# Quick turnaround for tests.
SchedulerParameters=sched_interval=5
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=300
NodeName=$NODE CPUs=$CPUS$MEM_SETTING State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# Slurm's slurmd loads a cgroup plugin at start whatever ProctrackType and TaskPlugin say
# (seen on 22.05: "cgroup/v1: init" in `slurmd -D -vvvv`). "autodetect" picks cgroup/v2 on a
# cgroup-v2-only host, and that plugin wants systemd/dbus, which a container lacks. Slurm >= 24.05
# has CgroupPlugin=disabled; before that, cgroup/v1 is the harmless choice, since its init()
# touches no files and nothing here asks it to do anything. (Checked on 22.05 only.)
if [[ $(printf '%s\n' "$VERSION" 24.05 | sort -V | head -n 1) == 24.05 ]]; then
    CGROUP_PLUGIN=disabled
else
    CGROUP_PLUGIN=cgroup/v1
fi
cat >"$new_cgroup" <<EOF
$MARKER: no cgroup is used (proctrack/linuxproc, task/none).
CgroupPlugin=$CGROUP_PLUGIN
EOF

changed=
install_conf() {
    local new=$1 dest=$2
    if [[ -f $dest ]] && cmp -s "$new" "$dest"; then
        return 0
    fi
    if [[ -f $dest ]] && ! grep -qF "$MARKER" "$dest"; then
        cp -p "$dest" "$dest.bak.$(date +%Y%m%d%H%M%S)"
        log "kept the previous $dest as $dest.bak.*"
    fi
    install -m 0644 "$new" "$dest"
    changed=1
}
install_conf "$new_conf" "$CONF"
install_conf "$new_cgroup" "$CGROUP_CONF"
if [[ -n $changed ]]; then
    log "wrote $CONF and $CGROUP_CONF"
    # Daemons still running on an older configuration start over.
    stop_daemon "$PID_DIR/slurmd.pid" slurmd
    stop_daemon "$PID_DIR/slurmctld.pid" slurmctld
fi

# 3. munged, as the munge user.
if ! id munge >/dev/null 2>&1; then
    log "no munge user (the munge package creates it)"
    exit 1
fi
install -d -m 0700 -o munge -g munge /etc/munge
install -d -m 0700 -o munge -g munge /var/lib/munge
install -d -m 0700 -o munge -g munge /var/log/munge
install -d -m 0755 -o munge -g munge "$MUNGE_RUN"
if [[ ! -s $MUNGE_KEY ]]; then
    log "creating $MUNGE_KEY"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile="$MUNGE_KEY" --force
    else
        dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"

if live_pid "$MUNGE_PID" munged >/dev/null && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    log "munged already running"
else
    stop_daemon "$MUNGE_PID" munged
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" </dev/null \
        >>"$LOG_DIR/munged.stdout" 2>&1 9>&- || fail "munged did not start"
    for ((i = 0; i < 50; i++)); do
        munge -n </dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null | unmunge >/dev/null 2>&1 || fail "munged does not answer (munge -n | unmunge)"
fi

# 4. slurmctld, then slurmd (both daemonize themselves).
slurmd_since=0
if live_pid "$PID_DIR/slurmctld.pid" slurmctld >/dev/null; then
    log "slurmctld already running"
else
    log "starting slurmctld"
    setsid /usr/sbin/slurmctld </dev/null >>"$LOG_DIR/slurmctld.stdout" 2>&1 9>&- ||
        fail "slurmctld did not start"
fi
if live_pid "$PID_DIR/slurmd.pid" slurmd >/dev/null; then
    log "slurmd already running"
else
    log "starting slurmd"
    slurmd_since=$(date +%s)
    setsid /usr/sbin/slurmd </dev/null >>"$LOG_DIR/slurmd.stdout" 2>&1 9>&- ||
        fail "slurmd did not start"
fi

# 5. Wait for the node.
# Whether the running slurmd has registered: slurmctld may show the node idle from the state it
# saved before a restart, before (or without) the new slurmd reporting in.
registered() {
    local t
    ((slurmd_since)) || return 0
    t=$(timeout 5 scontrol show node -o "$NODE" 2>/dev/null | grep -oE 'SlurmdStartTime=[^ ]+' | cut -d= -f2 || true)
    [[ $t == [0-9]* ]] && (($(date -d "$t" +%s) >= slurmd_since - 1))
}

started=$SECONDS
deadline=$((SECONDS + TIMEOUT))
last_resume=$((SECONDS - 10))
state=
while ((SECONDS < deadline)); do
    state=$(node_state)
    case $state in
        idle | mixed | allocated | completing)
            if registered; then
                log "node $NODE is $state after $((SECONDS - START)) s"
                exit 0
            fi
            ;;
        down | drained | draining | fail)
            # Registered but not in service (not "down*", which means not responding yet).
            if ((SECONDS - last_resume >= 5)); then
                log "node $NODE is $state; resuming it"
                scontrol update nodename="$NODE" state=resume 2>/dev/null || true
                last_resume=$SECONDS
            fi
            ;;
    esac
    # A daemon that died will not come back: fail now (after a grace for its pid file).
    if ((SECONDS - started >= 3)); then
        for d in slurmctld slurmd; do
            live_pid "$PID_DIR/$d.pid" "$d" >/dev/null || fail "$d is not running"
        done
    fi
    sleep 1
done
fail "node $NODE not idle after $TIMEOUT s (last state: '${state:-unknown}')"
