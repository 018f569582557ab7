/*
 * The thread pool and rf_cpu_count (runtime/threadpool.h): cgroup v2 cpu.max
 * texts, the least limit along a cgroup path (a tree made under a temporary
 * directory), rf_cpu_count against the online cores and the affinity mask,
 * and a pool that runs every task once.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/threadpool.h"
#include "tests/testutil.h"

static void write_text(const char *dir, const char *sub, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s", dir, sub);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s%s/cpu.max", dir, sub);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void check_parse(void)
{
    CHECK(rf_cpu_max_parse("max 100000\n") == 0);
    CHECK(rf_cpu_max_parse("200000 100000\n") == 2);
    CHECK(rf_cpu_max_parse("150000 100000") == 2);
    CHECK(rf_cpu_max_parse("50000 100000") == 1);
    CHECK(rf_cpu_max_parse("400000 100000") == 4);
    CHECK(rf_cpu_max_parse("") == 0);
    CHECK(rf_cpu_max_parse(NULL) == 0);
    CHECK(rf_cpu_max_parse("100000") == 0);
    CHECK(rf_cpu_max_parse("abc 100000") == 0);
    CHECK(rf_cpu_max_parse("100000 0") == 0);
    CHECK(rf_cpu_max_parse("-1 100000") == 0);
}

static void check_hierarchy(void)
{
    char root[] = "/tmp/radfuse-test_threadpool-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    /* root: none; /a: 4 CPUs; /a/b: no limit; /a/b/c: 3 CPUs */
    write_text(root, "", "max 100000\n");
    write_text(root, "/a", "400000 100000\n");
    write_text(root, "/a/b", "max 100000\n");
    write_text(root, "/a/b/c", "300000 100000\n");
    CHECK(rf_cgroup_cpu_limit(root, "0::/a/b/c\n") == 3);
    CHECK(rf_cgroup_cpu_limit(root, "0::/a/b\n") == 4);
    CHECK(rf_cgroup_cpu_limit(root, "0::/a\n") == 4);
    CHECK(rf_cgroup_cpu_limit(root, "0::/\n") == 0);
    /* a cgroup without cpu.max of its own under one with a limit; v1 lines before the v2 one */
    CHECK(rf_cgroup_cpu_limit(root, "4:memory:/x\n1:cpu:/\n0::/a/none/deeper\n") == 4);
    /* no v2 line (cgroup v1 only), a relative path */
    CHECK(rf_cgroup_cpu_limit(root, "1:cpu:/a/b/c\n") == 0);
    CHECK(rf_cgroup_cpu_limit(root, "0::a/b/c\n") == 0);
    /* a tighter limit above a looser one */
    write_text(root, "/a", "100000 100000\n");
    CHECK(rf_cgroup_cpu_limit(root, "0::/a/b/c\n") == 1);
    /* a container's view: the cgroup namespace's root is the container's cgroup */
    write_text(root, "", "200000 100000\n");
    CHECK(rf_cgroup_cpu_limit(root, "0::/\n") == 2);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

static void check_count(void)
{
    int n = rf_cpu_count();
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK(n >= 1 && (online < 1 || n <= online));
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int allowed = CPU_COUNT(&set);
        CHECKF(n <= allowed, "rf_cpu_count %d, affinity mask %d", n, allowed);
        /* pinned to one core: one thread */
        cpu_set_t one;
        CPU_ZERO(&one);
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) {
                CPU_SET(c, &one);
                break;
            }
        if (sched_setaffinity(0, sizeof one, &one) == 0) {
            CHECK(rf_cpu_count() == 1);
            CHECK(sched_setaffinity(0, sizeof set, &set) == 0);
        }
    }
}

static void add_task(void *ctx, int64_t task, int thread)
{
    (void)thread;
    atomic_llong *sum = ctx;
    atomic_fetch_add(sum, task + 1);
}

static void check_pool(void)
{
    rf_pool *p;
    rf_err err;
    CHECK(rf_pool_create(&p, 3, &err) == 0);
    CHECK(rf_pool_threads(p) == 3);
    for (int round = 0; round < 20; round++) {
        atomic_llong sum = 0;
        rf_pool_run(p, 1000, add_task, &sum);
        CHECK(atomic_load(&sum) == 1000 * 1001 / 2);
    }
    rf_pool_destroy(p);
    CHECK(rf_pool_create(&p, 0, &err) == 0 && rf_pool_threads(p) == rf_cpu_count());
    rf_pool_destroy(p);
    CHECK(rf_pool_create(&p, 5000, &err) == RF_EINVAL);
}

int main(void)
{
    check_parse();
    check_hierarchy();
    check_count();
    check_pool();
    return test_finish("test_threadpool");
}
