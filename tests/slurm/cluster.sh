# A throwaway single-node Slurm cluster on loopback, for tests and benchmarks.
# Source this file, then:
#   slurm_up DIR      munged with a fresh key, slurmctld and slurmd (node "localhost",
#                     this machine's CPUs and memory), every file under DIR; returns
#                     once the node is idle. Exports SLURM_CONF for the client commands.
#   slurm_down        stops the daemons slurm_up started (by pid), safe to call twice
#   slurm_wait_jobs TIMEOUT JOBID...   waits until none of the jobs is pending or running
#   slurm_job_states JOBID...          prints "jobid_task STATE EXITCODE" per (array) job
#   slurm_job_times JOBID...           prints "jobid_task START END" (ISO 8601, local time)
# Needs root (slurmd runs jobs as their submitting user, which needs root) and Debian's
# slurm-wlm and munge. Nothing outside DIR is written; nothing listens off loopback.
# A missing binary is an error naming its package: never a skip.

slurm_log() { echo "slurm-cluster: $*" >&2; }

# slurm_need: every binary slurm_up and the tests use, with the Debian package it comes in
slurm_need() {
  local bin pkg missing=0
  for pair in munged:munge mungekey:munge slurmctld:slurmctld slurmd:slurmd \
    sbatch:slurm-client squeue:slurm-client scontrol:slurm-client srun:slurm-client \
    sinfo:slurm-client; do
    bin=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$bin" >/dev/null 2>&1 && [[ ! -x /usr/sbin/$bin ]]; then
      slurm_log "$bin is missing: install Debian's $pkg (scripts/install-deps.sh installs slurm-wlm and munge)"
      missing=1
    fi
  done
  [[ $(id -u) -eq 0 ]] || { slurm_log "must run as root (slurmd starts jobs as their user)"; missing=1; }
  return $missing
}

# slurm_free_port: a TCP port no socket uses (from /proc/net/tcp*: iproute2 may be absent),
# from a range away from the usual ones
slurm_free_port() {
  local p used=" " local_addr
  while read -r _ local_addr _; do
    [[ $local_addr == *:* ]] && used+="$((16#${local_addr##*:})) "
  done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 20000))
    [[ $used == *" $p "* ]] || { echo "$p"; return 0; }
  done
  return 1
}

_slurm_pids=()

slurm_up() {
  local dir=$1
  slurm_need || return 1
  PATH=$PATH:/usr/sbin
  mkdir -p "$dir"/{munge,state,spool,log} || return 1
  # munged wants every directory above its socket searchable by all (clients of any user
  # connect to it) and its key readable by its owner only
  chmod 755 "$dir" "$dir/munge"
  _slurm_dir=$dir

  # munge: a fresh key (mungekey writes 1024 random bits), its own socket
  mungekey --create --keyfile="$dir/munge/munge.key" 2>"$dir/log/mungekey.log" ||
    { slurm_log "mungekey failed: $(cat "$dir/log/mungekey.log")"; return 1; }
  chmod 400 "$dir/munge/munge.key"
  munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" 2>"$dir/log/munged.err" ||
    { slurm_log "munged did not start: $(cat "$dir/log/munged.err" "$dir/log/munged.log" 2>/dev/null | tail -3)"; return 1; }
  for _ in $(seq 50); do [[ -s $dir/munge/munged.pid ]] && break; sleep 0.1; done
  _slurm_pids+=("$(cat "$dir/munge/munged.pid")")

  # the node as slurmd -C sees this machine; Slurm refuses a node that claims more
  local cpus mem ctld_port node_port
  read -r cpus mem < <(slurmd -C | awk '/^NodeName/ {
      for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "CPUs") c = kv[2]; if (kv[1] == "RealMemory") m = kv[2] }
      print c, m }')
  [[ -n $cpus && -n $mem ]] || { slurm_log "slurmd -C gave no CPUs/RealMemory"; return 1; }
  ctld_port=$(slurm_free_port) && node_port=$(slurm_free_port) || { slurm_log "no free port"; return 1; }
  while [[ $node_port == "$ctld_port" ]]; do node_port=$(slurm_free_port); done
  SLURM_NODE_CPUS=$cpus
  export SLURM_NODE_CPUS

  cat >"$dir/slurm.conf" <<EOF
ClusterName=radfusetest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$node_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MinJobAge=600
MaxArraySize=1001
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=batch Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$dir/slurm.conf

  # -i: no saved state to recover; both in the background, pids from their pid files
  slurmctld -f "$SLURM_CONF" -i 2>"$dir/log/slurmctld.err" ||
    { slurm_log "slurmctld did not start: $(tail -5 "$dir/log/slurmctld.err" "$dir/log/slurmctld.log" 2>/dev/null)"; return 1; }
  for _ in $(seq 50); do [[ -s $dir/slurmctld.pid ]] && break; sleep 0.1; done
  _slurm_pids+=("$(cat "$dir/slurmctld.pid" 2>/dev/null)")
  slurmd -f "$SLURM_CONF" -N localhost 2>"$dir/log/slurmd.err" ||
    { slurm_log "slurmd did not start: $(tail -5 "$dir/log/slurmd.err" "$dir/log/slurmd.log" 2>/dev/null)"; return 1; }
  for _ in $(seq 50); do [[ -s $dir/slurmd.pid ]] && break; sleep 0.1; done
  _slurm_pids+=("$(cat "$dir/slurmd.pid" 2>/dev/null)")

  # the node registers within a second or two; 30 s is generous
  local state=
  for _ in $(seq 150); do
    state=$(sinfo -h -N -n localhost -o '%T' 2>/dev/null)
    [[ $state == idle ]] && return 0
    sleep 0.2
  done
  slurm_log "node not idle after 30 s (state '${state}'); slurmctld log:"
  tail -15 "$dir/log/slurmctld.log" >&2
  slurm_log "slurmd log:"
  tail -15 "$dir/log/slurmd.log" >&2
  return 1
}

slurm_down() {
  local pid
  # slurmd first so that it does not re-register; jobs still running die with it
  # (linuxproc tracks them as its descendants)
  if [[ -n ${SLURM_CONF:-} ]] && command -v scancel >/dev/null; then
    scancel --quiet --user=root 2>/dev/null || true
  fi
  for ((i = ${#_slurm_pids[@]} - 1; i >= 0; i--)); do
    pid=${_slurm_pids[i]}
    [[ -n $pid ]] && kill "$pid" 2>/dev/null
  done
  for ((i = ${#_slurm_pids[@]} - 1; i >= 0; i--)); do
    pid=${_slurm_pids[i]}
    [[ -n $pid ]] || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  done
  _slurm_pids=()
  return 0
}

slurm_wait_jobs() {
  local timeout=$1
  shift
  local ids
  ids=$(IFS=,; echo "$*")
  local end=$((SECONDS + timeout))
  local q
  while ((SECONDS < end)); do
    # squeue lists pending, running and completing jobs; empty once all are done
    q=$(squeue -h -j "$ids" -o '%i' 2>&1) || { slurm_log "squeue -j $ids: $q"; return 1; }
    [[ -z $q ]] && return 0
    sleep 0.5
  done
  slurm_log "jobs $ids still queued or running after ${timeout} s:"
  squeue -j "$ids" >&2
  return 1
}

slurm_job_states() {
  local id
  for id in "$@"; do
    # one line per job (every task of an array): its id, final state and exit code
    scontrol -o show job "$id" 2>/dev/null | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "=");
          if (kv[1] == "JobId") j = kv[2]; if (kv[1] == "ArrayJobId") a = kv[2];
          if (kv[1] == "ArrayTaskId") t = kv[2]; if (kv[1] == "JobState") s = kv[2];
          if (kv[1] == "ExitCode") e = kv[2] }
        print (t != "" ? a "_" t : j), s, e; a = ""; t = "" }'
  done
}

slurm_job_times() {
  local id
  for id in "$@"; do
    scontrol -o show job "$id" 2>/dev/null | awk '{
        for (i = 1; i <= NF; i++) { split($i, kv, "=");
          if (kv[1] == "JobId") j = kv[2]; if (kv[1] == "ArrayJobId") a = kv[2];
          if (kv[1] == "ArrayTaskId") t = kv[2]; if (kv[1] == "StartTime") s = kv[2];
          if (kv[1] == "EndTime") e = kv[2] }
        print (t != "" ? a "_" t : j), s, e; a = ""; t = "" }'
  done
}
