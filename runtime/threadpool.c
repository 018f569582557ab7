/*
 * Thread pool for data-parallel loops. Workers spin briefly on a generation
 * counter before sleeping on a condition variable, so back-to-back loops in a
 * forward pass do not pay a futex wake-up each, while an idle pool costs no CPU.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/threadpool.h"

#define SPIN_ITERS 20000
/* Kernels keep tiles on the stack (up to ~256 KiB a task); do not depend on
 * the C library's default thread stack, which is 128 KiB on some. */
#define WORKER_STACK (8u << 20)

struct rf_pool {
    int threads;
    pthread_t *workers;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    atomic_uint generation;
    atomic_int stop;
    /* the current loop */
    rf_pool_fn fn;
    void *ctx;
    int64_t ntasks;
    atomic_llong next;
    atomic_int active; /* workers still inside the current loop */
};

typedef struct {
    rf_pool *pool;
    int index;
} worker_arg;

static void run_tasks(rf_pool *p, int thread)
{
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->ntasks)
            break;
        p->fn(p->ctx, t, thread);
    }
}

static void *worker_main(void *argp)
{
    worker_arg *arg = argp;
    rf_pool *p = arg->pool;
    int index = arg->index;
    free(arg);
    unsigned seen = 0; /* no loop runs before rf_pool_create returns */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->generation, memory_order_acquire) == seen &&
               !atomic_load(&p->stop)) {
            if (++spins < SPIN_ITERS)
                continue;
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load(&p->generation);
        run_tasks(p, index);
        if (atomic_fetch_sub_explicit(&p->active, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int rf_cpu_max_parse(const char *text)
{
    char quota[32];
    long long period = 0;
    if (!text || sscanf(text, "%31s %lld", quota, &period) != 2 || period <= 0)
        return 0;
    if (strcmp(quota, "max") == 0)
        return 0;
    char *end;
    long long q = strtoll(quota, &end, 10);
    if (*end || q <= 0)
        return 0;
    long long cpus = (q + period - 1) / period; /* 1.5 CPUs of time: 2 threads */
    return cpus > 65536 ? 65536 : (int)cpus;
}

/* A small text file into buf; 0 or -1. */
static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return 0;
}

int rf_cgroup_cpu_limit(const char *root, const char *self_cgroup)
{
    /* the cgroup v2 line of /proc/self/cgroup: "0::/PATH" */
    const char *line = self_cgroup;
    while (line && strncmp(line, "0::", 3) != 0) {
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    if (!line || line[3] != '/')
        return 0;
    char path[4096];
    size_t len = strcspn(line + 3, "\n");
    if (len >= sizeof path)
        return 0;
    memcpy(path, line + 3, len);
    path[len] = 0;
    /* the least limit from the process's cgroup up to the root's */
    int limit = 0;
    for (;;) {
        char file[4200], text[128];
        snprintf(file, sizeof file, "%s%s/cpu.max", root, strcmp(path, "/") == 0 ? "" : path);
        int n = read_small(file, text, sizeof text) == 0 ? rf_cpu_max_parse(text) : 0;
        if (n > 0 && (limit == 0 || n < limit))
            limit = n;
        char *slash = strrchr(path, '/');
        if (!slash || slash == path) {
            if (strcmp(path, "/") == 0)
                break;
            path[1] = 0;
        } else {
            *slash = 0;
        }
    }
    return limit;
}

int rf_cpu_count(void)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = online > 0 ? (int)online : 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int allowed = CPU_COUNT(&set);
        if (allowed > 0 && allowed < n)
            n = allowed;
    }
    char self[4096];
    if (read_small("/proc/self/cgroup", self, sizeof self) == 0) {
        int quota = rf_cgroup_cpu_limit("/sys/fs/cgroup", self);
        if (quota > 0 && quota < n)
            n = quota;
    }
    return n > 0 ? n : 1;
}

int rf_pool_create(rf_pool **out, int threads, rf_err *err)
{
    *out = NULL;
    if (threads <= 0)
        threads = rf_cpu_count();
    if (threads > 1024)
        return rf_err_set(err, RF_EINVAL, "thread count %d is too large", threads);
    rf_pool *p = calloc(1, sizeof *p);
    if (!p)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate a thread pool");
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    p->workers = calloc((size_t)threads, sizeof *p->workers);
    if (!p->workers) {
        rf_pool_destroy(p);
        return rf_err_set(err, RF_ENOMEM, "cannot allocate a thread pool");
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    for (int i = 1; i < threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (arg) {
            arg->pool = p;
            arg->index = i;
        }
        if (!arg || pthread_create(&p->workers[i], &attr, worker_main, arg) != 0) {
            free(arg);
            pthread_attr_destroy(&attr);
            p->threads = i; /* only join the ones started */
            rf_pool_destroy(p);
            return rf_err_set(err, RF_ENOMEM, "cannot start worker thread %d", i);
        }
    }
    pthread_attr_destroy(&attr);
    *out = p;
    return RF_OK;
}

void rf_pool_destroy(rf_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->threads; i++)
        pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    free(p->workers);
    free(p);
}

int rf_pool_threads(const rf_pool *p)
{
    return p ? p->threads : 1;
}

void rf_pool_run(rf_pool *p, int64_t ntasks, rf_pool_fn fn, void *ctx)
{
    if (ntasks <= 0)
        return;
    if (!p || p->threads == 1 || ntasks == 1) {
        for (int64_t t = 0; t < ntasks; t++)
            fn(ctx, t, 0);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store(&p->next, 0);
    atomic_store(&p->active, p->threads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    int spins = 0;
    while (atomic_load_explicit(&p->active, memory_order_acquire) > 0) {
        if (++spins < SPIN_ITERS)
            continue;
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->active) > 0)
            pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
