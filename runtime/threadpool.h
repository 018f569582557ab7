/*
 * A fixed pool of worker threads for data-parallel loops. The calling thread
 * takes part, so a pool of n threads starts n - 1 workers. One parallel loop
 * runs at a time per pool; loops are not reentrant.
 */
#ifndef RADFUSE_RUNTIME_THREADPOOL_H
#define RADFUSE_RUNTIME_THREADPOOL_H

#include "radfuse/runtime.h"

typedef struct rf_pool rf_pool;

/* fn(ctx, task, thread): called once for each task in [0, ntasks), on thread
 * index 0..threads-1. Tasks are handed out dynamically. */
typedef void (*rf_pool_fn)(void *ctx, int64_t task, int thread);

int rf_pool_create(rf_pool **out, int threads, rf_err *err);
void rf_pool_destroy(rf_pool *p);
int rf_pool_threads(const rf_pool *p);
void rf_pool_run(rf_pool *p, int64_t ntasks, rf_pool_fn fn, void *ctx);
/*
 * The threads worth running: the least of the online cores
 * (sysconf(_SC_NPROCESSORS_ONLN)), the cores of this thread's affinity mask
 * (sched_getaffinity: taskset, cpusets, Slurm's and Kubernetes' CPU pinning)
 * and the cgroup v2 CPU quota of the process's cgroup and its ancestors
 * (rf_cgroup_cpu_limit over /proc/self/cgroup and /sys/fs/cgroup: Docker's
 * --cpus, Kubernetes' CPU limits); at least 1. What cannot be read (no
 * cgroup v2, no affinity call) is left out. cgroup v1 quotas are not read.
 * Reads a few small files at each call: call it once per pool or run.
 */
int rf_cpu_count(void);

/* The CPUs a cgroup v2 cpu.max text grants ("QUOTA PERIOD" in microseconds:
 * ceil(QUOTA / PERIOD), so "200000 100000" is 2 and "150000 100000" is 2);
 * 0 for "max PERIOD" (no limit) or a text that is not of that form. */
int rf_cpu_max_parse(const char *text);

/* The least cpu.max limit (rf_cpu_max_parse) along the cgroup v2 path that
 * self_cgroup (the text of /proc/self/cgroup) names on its "0::" line, from
 * ROOT/PATH/cpu.max up to ROOT/cpu.max (root: where cgroup2 is mounted,
 * /sys/fs/cgroup); 0 when none is set or readable. */
int rf_cgroup_cpu_limit(const char *root, const char *self_cgroup);

#endif
