#!/usr/bin/env bash
# `radfuse batch` on a real Slurm: a single-node cluster (Debian's slurm-wlm: slurmctld and
# slurmd, munged with a fresh key, all on loopback, every file in a temporary directory;
# tests/slurm/cluster.sh) runs scripts/slurm-batch.sh over a small export: a 4-task job
# array and its afterok merge job. A first submission is interrupted after one task (held,
# one task released, the rest cancelled: its merge must not run); submitted again, the
# finished shard reads nothing again and the others run. The merged results must hold
# exactly the studies, probabilities and errors of a single-process `radfuse batch` of the
# same export, each shard what the documented hash gives it; a third submission changes
# nothing; an array whose tasks fail must not run its merge. Slurm or munge missing is a
# failure naming the package. The daemons are stopped on every exit.
name=test_slurm
source "${RADFUSE_SOURCE:?RADFUSE_SOURCE must name the source tree}/tests/lib.sh"
need_shared data/covid-chestxray
need_tools python3
# shellcheck source=tests/slurm/cluster.sh
source "$src/tests/slurm/cluster.sh"
slurm_need || { echo "test_slurm: FAILED: Slurm cannot run here (above)" >&2; exit 1; }

cleanup_extra() { slurm_down; }
make_tmp
chmod 755 "$tmp"

# the export: 24 covid-chestxray rows (some with labs) as studies in one tree, each in the
# folder convention `radfuse dataset study` writes (study/, note.txt, labs.csv)
"$bin" model random --arch fusion_tiny --vocab "$shared/fixtures/tokenizer/vocab.txt" --out "$tmp/model" >/dev/null ||
  fatal "cannot make the model"
mkdir -p "$tmp/root"
for row in $(seq 0 19 437); do
  "$bin" dataset study --data "$shared/data/covid-chestxray" --row "$row" --out "$tmp/root/row$row" >/dev/null ||
    fatal "cannot make the study of row $row"
done
nstudies=$(find "$tmp/root" -name '*.dcm' | wc -l)
check "the export holds 24 studies" test "$nstudies" -eq 24
# files that are no DICOM: each shard reports those its hash gives (the rows'
# ATTRIBUTION.txt files are ignored, not reported: no DICOM by their name)
mkdir -p "$tmp/root/broken"
printf 'not a DICOM file\n' >"$tmp/root/broken/garbage.dcm"
head -c 100 "$tmp/root/row0/study/0.dcm" >"$tmp/root/broken/truncated.dcm"

# the reference: one process over the whole export (exit 2: the bad files)
opts=(--model "$tmp/model" --device cpu --saliency none)
"$bin" batch "$tmp/root" --out "$tmp/single" "${opts[@]}" --jobs 2 >"$tmp/single.log" 2>&1
rc=$?
[[ $rc -eq 2 && -s $tmp/single/results.jsonl ]] ||
  { cat "$tmp/single.log" >&2; fatal "single-process radfuse batch exited $rc (expected 2 for the bad files)"; }
# rows 19 and 38 are lateral views only, which the model does not read: two failed studies
check "single-process run read 22 studies" test "$(wc -l <"$tmp/single/results.jsonl")" -eq 22
check "single-process run reports the 2 lateral-only studies" test "$(grep -c '"kind":"study"' "$tmp/single/errors.jsonl")" -eq 2
check "single-process run reports the bad files" grep -q '"path":"broken/garbage.dcm"' "$tmp/single/errors.jsonl"

# the cluster
SECONDS=0
slurm_up "$tmp/slurm" || fatal "the single-node Slurm did not come up (logs above)"
echo "test_slurm: slurmctld and slurmd up in ${SECONDS} s, ${SLURM_NODE_CPUS} CPUs"
check "srun runs a step on the node" test "$(srun -N1 -n1 hostname 2>&1)" == "$(hostname)"

# submit: cpus-per-task 1 so that the test node (2 CPUs here) runs two tasks at once
submit() { # submit OUT [SUBMIT_OPTION...]: prints "ARRAY MERGE"
  local line o=$1
  shift
  line=$(RADFUSE=$bin "$src/scripts/slurm-batch.sh" submit "$tmp/root" "$o" --shards 4 \
    --sbatch=--cpus-per-task=1 --sbatch=--mem=1G --sbatch=--time=5 "$@" -- "${opts[@]}" 2>&1) ||
    { echo "$line" >&2; return 1; }
  sed -n 's/^array \([0-9]*\) .*merge \([0-9]*\):.*/\1 \2/p' <<<"$line"
}
# states ARRAY MERGE: every array task and the merge, "ID STATE EXIT" sorted
states() { slurm_job_states "$@" | sort; }
expect_done() { # expect_done ARRAY MERGE: four tasks and the merge COMPLETED with exit 0
  local s
  s=$(states "$1" "$2")
  local want
  want=$(printf '%s_%d COMPLETED 0:0\n' "$1" 0 "$1" 1 "$1" 2 "$1" 3; echo "$2 COMPLETED 0:0")
  want=$(sort <<<"$want")
  [[ $s == "$want" ]] || { echo "job states:"; echo "$s"; echo "expected:"; echo "$want"; } >&2
  [[ $s == "$want" ]]
}
show_logs() { tail -n 20 "$1"/logs/*.out >&2 2>/dev/null; }

# an interrupted run: the array submitted held, only task 0 released and run, then the
# array and its merge cancelled (as an operator would, or a maintenance window)
out=$tmp/out
read -r array0 merge0 < <(submit "$out" --sbatch=--hold) || true
[[ -n ${array0:-} && -n ${merge0:-} ]] || fatal "slurm-batch.sh submit did not give two job ids"
scontrol release "${array0}_0" || fatal "scontrol release ${array0}_0 failed"
slurm_wait_jobs 60 "${array0}_0" || { show_logs "$out"; fatal "task 0 did not finish in 60 s"; }
scancel "$array0" "$merge0"
slurm_wait_jobs 30 "$array0" "$merge0" || fatal "the cancelled jobs did not end"
interrupted=$(states "$array0" "$merge0")
check "interrupted: task 0 completed" grep -q "^${array0}_0 COMPLETED 0:0" <<<"$interrupted"
# (pending tasks cancelled together show as one record, e.g. 12_1-3 or 12_[1-3])
others=$(grep -v "^${array0}_0 " <<<"$interrupted")
check "interrupted: tasks 1-3 and the merge cancelled" \
  bash -c '[[ $(grep -c . <<<"$1") -ge 2 && $(grep -vc " CANCELLED " <<<"$1") -eq 0 ]] &&
    grep -q "^$2 CANCELLED" <<<"$1" && grep -q "^$3_.*1" <<<"$1"' _ "$others" "$merge0" "$array0" ||
  echo "$interrupted" >&2
check "interrupted: shard 0 written, shards 1-3 and the merge not" \
  bash -c '[[ -s $1/shard-0/results.jsonl && ! -e $1/shard-1 && ! -e $1/shard-3 && ! -e $1/merged ]]' _ "$out"
done0=$(wc -l <"$out/shard-0/results.jsonl")

# resume: the same submission again; shard 0 has nothing left to do, the others run
read -r array merge < <(submit "$out") || true
[[ -n ${array:-} && -n ${merge:-} ]] || fatal "slurm-batch.sh submit did not give two job ids"
SECONDS=0
slurm_wait_jobs 90 "$array" "$merge" || { show_logs "$out"; fatal "the array did not finish in 90 s"; }
echo "test_slurm: 4-task array and merge done in ${SECONDS} s"
check "array tasks and merge completed with exit 0" expect_done "$array" "$merge" || show_logs "$out"
# the script's #SBATCH directives were read (its job name), its options were not cut
check "the array runs under the script's directives (job name radfuse-batch)" \
  test "$(scontrol -o show job "$array" | grep -o 'JobName=[^ ]*' | sort -u)" == "JobName=radfuse-batch"
check "each task ran radfuse batch on the task's CPUs" grep -q '"jobs":1,' "$out/logs/shard-0.out"
# afterok: the merge started no earlier than the last task ended (whole seconds)
merge_start=$(slurm_job_times "$merge" | awk '{print $2}')
last_end=$(slurm_job_times "$array" | awk '{print $3}' | sort | tail -1)
check "the merge started after every task ended ($merge_start >= $last_end)" \
  bash -c '[[ -n $1 && -n $2 && ! $1 < $2 ]]' _ "$merge_start" "$last_end"
for i in 0 1 2 3; do
  check "shard $i wrote results" test -s "$out/shard-$i/results.jsonl"
  check "shard $i's log names its shard" grep -q "shard $i/4 of" "$out/logs/shard-$i.out"
  # radfuse batch exits 2 for the shard's bad files; the shard is finished, the task ends 0
  check "shard $i's log says it finished" grep -q "shard $i/4 finished: " "$out/logs/shard-$i.out"
done
check "merged equals the single-process run; shards disjoint and by the hash" \
  python3 "$src/tests/slurm/compare_results.py" "$tmp/single" "$out/merged" \
  --shards 4 "$out"/shard-{0,1,2,3}
check "the shard count is recorded" test "$(cat "$out/slurm-shards")" == 4
# the last summary in shard 0's log (appended to by the second run): nothing read again
last0=$(grep '^{"studies_found"' "$out/logs/shard-0.out" | tail -1)
check "resumed shard 0 read nothing again ($done0 done before)" \
  bash -c '[[ $1 == *"\"processed\":0,"* && $1 == *"\"done_before\":$2,"* ]]' _ "$last0" "$done0"

# the same submission once more: every shard has nothing left to do; nothing is read
# twice and the merge is the same, byte for byte
cp "$out/merged/results.jsonl" "$tmp/merged-1.jsonl"
read -r array2 merge2 < <(submit "$out") || true
[[ -n ${array2:-} ]] || fatal "the second submission did not give job ids"
slurm_wait_jobs 90 "$array2" "$merge2" || { show_logs "$out"; fatal "the second array did not finish"; }
check "second array and merge completed" expect_done "$array2" "$merge2" || show_logs "$out"
check "resubmitted: merged still equals the single-process run, no study twice" \
  python3 "$src/tests/slurm/compare_results.py" "$tmp/single" "$out/merged" \
  --shards 4 "$out"/shard-{0,1,2,3}
check "resubmitted: the merged results.jsonl is unchanged" cmp -s "$tmp/merged-1.jsonl" "$out/merged/results.jsonl"

# a different shard count for the same output is refused before anything is queued
check "another shard count for the same output is refused" \
  bash -c '! RADFUSE="$1" "$2" submit "$3" "$4" --shards 3 -- --model x 2>"$5" && grep -q "sharded 4 ways" "$5"' \
  _ "$bin" "$src/scripts/slurm-batch.sh" "$tmp/root" "$out" "$tmp/refused.txt"

# an export root that does not exist is refused before anything is queued
check "a missing export root is refused" \
  bash -c '! RADFUSE="$1" "$2" submit "$3" "$4" -- --model x 2>"$5" && grep -q "not a directory" "$5"' \
  _ "$bin" "$src/scripts/slurm-batch.sh" "$tmp/no-such-root" "$tmp/out-none" "$tmp/refused2.txt"

# failing tasks (a model directory that does not exist: radfuse batch stops in every
# task): each task FAILED, the merge never runs
opts=(--model "$tmp/no-such-model" --device cpu)
read -r array3 merge3 < <(submit "$tmp/out-bad") || true
[[ -n ${array3:-} ]] || fatal "the third submission did not give job ids"
slurm_wait_jobs 60 "$array3" "$merge3" || fatal "the failing array did not end"
bad=$(states "$array3" "$merge3")
check "failing tasks are FAILED" test "$(grep -c "^${array3}_[0-3] FAILED" <<<"$bad")" -eq 4
check "the merge of a failed array is cancelled, never run" grep -q "^$merge3 CANCELLED" <<<"$bad"
check "the cancelled merge wrote nothing" test ! -e "$tmp/out-bad/merged"
[[ $failures -eq 0 ]] || echo "$bad" >&2

finish
