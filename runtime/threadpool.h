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
/* Online cores. */
int rf_cpu_count(void);

#endif
