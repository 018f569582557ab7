#!/usr/bin/env bash
# `radfuse batch` over a Slurm job array: task I of N reads the studies of shard I/N
# (a hash of the StudyInstanceUID, docs/slurm.md) into OUT/shard-I; a merge job that
# starts once every task has finished its shard (afterok) combines them into OUT/merged.
#
#   scripts/slurm-batch.sh submit ROOT OUT [--shards N] [--at-once K] [--sbatch=OPTION]... [-- BATCH_OPTION...]
#       submits the array (tasks 0..N-1, default N = 4; at most K running at once) and the
#       merge job; prints both job ids.
#       --sbatch=--partition=cpu (repeatable) passes an option to both sbatch calls; BATCH_OPTION
#       goes to every `radfuse batch` (e.g. -- --model /models/cxr --device cpu).
#   sbatch --array=0-7 scripts/slurm-batch.sh ROOT OUT [BATCH_OPTION...]
#       the array alone, under this file's directives; then run the merge by hand:
#       radfuse batch merge OUT/merged OUT/shard-0 ... OUT/shard-7
#   sbatch --dependency=afterok:JOBID scripts/slurm-batch.sh merge OUT N
#       the merge job alone.
#
# Submitting the same array again (same ROOT, OUT and N) continues every shard where it
# stopped: radfuse batch keeps its own state per output directory. N must not change
# between submissions (the shards would cut the export differently): the first submit
# records it in OUT/slurm-shards and later ones must agree.
#
# Environment: RADFUSE (the radfuse binary, default `radfuse` on PATH), RADFUSE_SHARDS
# (the shard count inside a task; set by `submit`, else the array's size). sbatch's own
# SBATCH_* variables (SBATCH_PARTITION, SBATCH_TIMELIMIT, SBATCH_ACCOUNT, ...) apply too
# and override the directives below; options on the sbatch command line override both.
#
# Per task, tune to the export and the nodes:
#SBATCH --job-name=radfuse-batch
#   one task per shard; `submit` replaces the range with 0-(N-1). "%4" after it would run at
#   most 4 tasks at once.
#SBATCH --array=0-3
#   decode, preprocessing and output threads and the CPU backend's: radfuse batch runs
#   --jobs $SLURM_CPUS_PER_TASK --threads $SLURM_CPUS_PER_TASK
#SBATCH --cpus-per-task=4
#   the model, one batch of decoded images per queue slot and the writer's buffers; memory
#   stays flat however many studies the shard holds
#SBATCH --mem=8G
#   per task; a task stopped at its limit loses nothing and resumes when submitted again
#SBATCH --time=04:00:00
#   %A: the array's job id, %a: the task index; `submit` writes them under OUT/logs
#SBATCH --output=radfuse-batch-%A_%a.out
#SBATCH --open-mode=append
set -uo pipefail

radfuse=${RADFUSE:-radfuse}
die() { echo "slurm-batch: $*" >&2; exit 2; }

# check_shards OUT N: the shard count recorded for OUT must be N (or none yet: record N)
check_shards() {
  local out=$1 n=$2 rec=$1/slurm-shards
  if [[ -f $rec ]]; then
    [[ $(cat "$rec") == "$n" ]] ||
      die "$out was sharded $(cat "$rec") ways, not $n: use the same shard count to continue, or a new output directory"
  else
    mkdir -p "$out" || die "cannot create $out"
    # concurrent tasks may both get here: each writes its own temporary, the same content
    echo "$n" >"$rec.$$" && mv "$rec.$$" "$rec" || die "cannot write $rec"
  fi
}

submit() {
  [[ $# -ge 2 ]] || die "usage: slurm-batch.sh submit ROOT OUT [--shards N] [--at-once K] [--sbatch=OPTION]... [-- BATCH_OPTION...]"
  local root out n=4 k= sb=() extra=()
  root=$(realpath -m -- "$1") out=$(realpath -m -- "$2")
  shift 2
  while [[ $# -gt 0 ]]; do
    case $1 in
      --shards) [[ $# -ge 2 ]] || die "--shards needs a number"; n=$2; shift 2 ;;
      --shards=*) n=${1#--shards=}; shift ;;
      --at-once) [[ $# -ge 2 ]] || die "--at-once needs a number"; k=$2; shift 2 ;;
      --at-once=*) k=${1#--at-once=}; shift ;;
      --sbatch=*) sb+=("${1#--sbatch=}"); shift ;;
      --) shift; extra=("$@"); break ;;
      *) die "unknown option '$1' (radfuse batch options go after --)" ;;
    esac
  done
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive number, not '$n'"
  [[ -z $k || $k =~ ^[1-9][0-9]*$ ]] || die "--at-once must be a positive number, not '$k'"
  [[ -d $root ]] || die "$root: not a directory"
  command -v sbatch >/dev/null || die "sbatch not found (Slurm's client commands: Debian's slurm-client)"
  check_shards "$out" "$n"
  mkdir -p "$out/logs" || die "cannot create $out/logs"
  local self array merge
  self=$(realpath -- "${BASH_SOURCE[0]}")
  # the task reads RADFUSE_SHARDS rather than SLURM_ARRAY_TASK_COUNT: a later submission of
  # a few tasks only (--array=3,5) must still cut the export N ways
  array=$(RADFUSE_SHARDS=$n sbatch --parsable --array="0-$((n - 1))${k:+%$k}" \
    --output="$out/logs/shard-%a.out" "${sb[@]}" "$self" "$root" "$out" "${extra[@]}") ||
    die "sbatch refused the array"
  array=${array%%;*}
  # afterok: the merge waits for every task to exit 0; when one fails the merge can never
  # run and --kill-on-invalid-dep cancels it instead of leaving it pending forever
  # --wrap: a script of its own, so that this file's array and size directives do not apply
  local cmd
  cmd=$(printf '%q ' "$self" merge "$out" "$n")
  merge=$(sbatch --parsable "${sb[@]}" --job-name=radfuse-merge --dependency="afterok:$array" \
    --kill-on-invalid-dep=yes --cpus-per-task=1 --mem=1G --output="$out/logs/merge.out" \
    --open-mode=append --wrap="exec $cmd") ||
    die "sbatch refused the merge job (the array $array is queued)"
  merge=${merge%%;*}
  echo "array $array ($n tasks), merge $merge: logs in $out/logs, merged results in $out/merged"
}

merge() {
  [[ $# -eq 2 && $2 =~ ^[1-9][0-9]*$ ]] || die "usage: slurm-batch.sh merge OUT N"
  local out=$1 n=$2 dirs=() i new old
  for ((i = 0; i < n; i++)); do dirs+=("$out/shard-$i"); done
  # radfuse batch merge wants a new directory: merge beside, then swap it in, so that a
  # merge after a resubmission replaces the previous one and a failed merge leaves it
  new=$out/.merged.new.${SLURM_JOB_ID:-$$} old=$out/.merged.old.${SLURM_JOB_ID:-$$}
  rm -rf "$new" "$old"
  echo "slurm-batch: merging $n shards into $out/merged"
  "$radfuse" batch merge "$new" "${dirs[@]}" || { rm -rf "$new"; exit 2; }
  if [[ -e $out/merged ]]; then
    mv "$out/merged" "$old" || die "cannot move the previous $out/merged aside"
  fi
  mv "$new" "$out/merged" || die "cannot rename $new to $out/merged"
  rm -rf "$old"
}

task() {
  [[ $# -ge 2 ]] || die "usage: sbatch --array=0-(N-1) slurm-batch.sh ROOT OUT [BATCH_OPTION...]"
  local root=$1 out=$2 i=$SLURM_ARRAY_TASK_ID n
  shift 2
  if [[ -n ${RADFUSE_SHARDS:-} ]]; then
    n=$RADFUSE_SHARDS
  else
    # the array's size is the shard count only when the array is whole: 0..N-1
    n=${SLURM_ARRAY_TASK_COUNT:?}
    [[ ${SLURM_ARRAY_TASK_MIN:-0} -eq 0 && ${SLURM_ARRAY_TASK_MAX:-0} -eq $((n - 1)) ]] ||
      die "array ${SLURM_ARRAY_TASK_MIN}-${SLURM_ARRAY_TASK_MAX} is not 0-$((n - 1)): set RADFUSE_SHARDS to the shard count"
  fi
  ((i < n)) || die "task $i is outside the $n shards"
  check_shards "$out" "$n"
  echo "slurm-batch: job ${SLURM_ARRAY_JOB_ID}_$i on $(hostname -s): shard $i/$n of $root"
  # --jobs and --threads: the task's CPUs, not the node's (radfuse counts the node's online
  # CPUs by default, which would put every task's threads on all of them); options given
  # after them on the command line win. --json: the summary as one JSON line (in the log
  # too), read below.
  local summary rc cpus=${SLURM_CPUS_PER_TASK:-1}
  summary=$("$radfuse" batch "$root" --out "$out/shard-$i" --shard "$i/$n" \
    --jobs "$cpus" --threads "$cpus" "$@" --json)
  rc=$?
  [[ -n $summary ]] && echo "$summary"
  # radfuse batch exits 2 also when it went through the whole shard but some studies or
  # files failed (they are in errors.jsonl). The shard is then finished: the task ends 0 so
  # that the merge (afterok) runs, and the merge carries the errors. A shard that stopped
  # (an output it could not write) or never started ends with radfuse's status. Every
  # finished shard says so in its log, with or without failures.
  local total done failed ferr
  total=$(json_num "$summary" total) done=$(json_num "$summary" done)
  failed=$(json_num "$summary" failed) ferr=$(json_num "$summary" file_errors)
  if [[ -n $total && -n $done && -n $failed && $summary == *'"stopped":false'* ]] &&
    ((done + failed == total)); then
    echo "slurm-batch: shard $i/$n finished: $done studies done, $failed failed, $ferr files not read (in $out/shard-$i/errors.jsonl)"
    exit 0
  fi
  ((rc == 0)) && exit 0
  echo "slurm-batch: shard $i/$n did not finish (radfuse batch exited $rc): submit it again to continue" >&2
  exit "$rc"
}

# json_num TEXT KEY: the number KEY has in radfuse batch's one-line JSON summary
json_num() {
  [[ $1 =~ \"$2\":([0-9]+)[,}] ]] && echo "${BASH_REMATCH[1]}"
}

case ${1:-} in
  submit) shift; submit "$@" ;;
  merge) shift; merge "$@" ;;
  *)
    [[ -n ${SLURM_ARRAY_TASK_ID:-} ]] ||
      die "not in a Slurm array task: use 'slurm-batch.sh submit ROOT OUT ...' or 'sbatch --array=0-(N-1) slurm-batch.sh ROOT OUT'"
    task "$@"
    ;;
esac
