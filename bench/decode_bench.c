/*
 * Benchmark driver (not a test): decodes every DICOM file given (files or
 * directory trees) in-process with rf_dicom_read(..., RF_DICOM_PIXELS, ...),
 * all frames into stored values, as `radfuse dicom ls` does minus the SHA-256
 * and the printing. Files are handed out one at a time to the threads of a
 * pool (the calling thread included), so a slow file does not leave a core
 * idle while another waits. One untimed pass first puts every file in the
 * page cache and checks that all decode; then ITERS timed passes per thread
 * count. Prints one JSON object per thread count: the best and median pass,
 * and from the best pass images/s and MB/s (MB = 10^6 bytes) of decoded
 * stored values and of input (the whole file as it lies on disk), and the
 * CPU time (user + system) of the pass that used least, which contention from
 * other processes inflates less than wall time.
 *
 * With --once: each file decoded once in the calling thread, nothing printed,
 * exit status 1 if any failed: one process per file, to compare with tools
 * that start a process per file (`radfuse dicom ls` also hashes and prints).
 *
 *   decode_bench [--threads 1,N] [--iters N] [--label L] PATH...
 *   decode_bench --once FILE...
 *   (--threads: a comma-separated list; 0 means every online core)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "radfuse/imaging.h"
#include "runtime/threadpool.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    char **files;
    uint64_t *decoded; /* per file, from the checking pass */
    atomic_int failed;
    rf_err first_err;
    atomic_int err_taken;
} job;

static void decode_one(void *ctx, int64_t task, int thread)
{
    job *j = ctx;
    rf_dicom_image img;
    rf_err err;
    if (rf_dicom_read(j->files[task], RF_DICOM_PIXELS, &img, &err) != 0) {
        if (atomic_exchange(&j->err_taken, 1) == 0)
            snprintf(j->first_err.msg, sizeof j->first_err.msg, "%s", err.msg);
        atomic_fetch_add(&j->failed, 1);
        return;
    }
    j->decoded[task] = img.pixels_size;
    rf_dicom_image_free(&img);
}

int main(int argc, char **argv)
{
    const char *threads_list = "1,0", *label = "";
    int iters = 5, once = 0;
    const char **paths = calloc((size_t)argc, sizeof *paths);
    int npaths = 0;
    if (!paths)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads_list = argv[++i];
        else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
            label = argv[++i];
        else if (strcmp(argv[i], "--once") == 0)
            once = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "decode_bench: unknown option '%s'\n", argv[i]);
            return 2;
        } else
            paths[npaths++] = argv[i];
    }
    if (npaths == 0 || iters < 1) {
        fprintf(stderr, "usage: decode_bench [--threads 1,N] [--iters N] [--label L] PATH...\n");
        return 2;
    }
    rf_err err;
    if (once) {
        int bad = 0;
        for (int i = 0; i < npaths; i++) {
            rf_dicom_image img;
            if (rf_dicom_read(paths[i], RF_DICOM_PIXELS, &img, &err) != 0) {
                fprintf(stderr, "decode_bench: %s\n", err.msg);
                bad = 1;
                continue;
            }
            rf_dicom_image_free(&img);
        }
        free(paths);
        return bad;
    }
    char **files = NULL;
    size_t nfiles = 0;
    if (rf_collect_files(paths, npaths, &files, &nfiles, &err) != 0) {
        fprintf(stderr, "decode_bench: %s\n", err.msg);
        return 1;
    }
    if (nfiles == 0) {
        fprintf(stderr, "decode_bench: no files\n");
        return 1;
    }
    uint64_t input_bytes = 0;
    for (size_t i = 0; i < nfiles; i++) {
        struct stat st;
        if (stat(files[i], &st) == 0)
            input_bytes += (uint64_t)st.st_size;
    }
    job j = {.files = files, .decoded = calloc(nfiles, sizeof(uint64_t))};
    double *times = calloc((size_t)iters, sizeof *times), *cpus = calloc((size_t)iters, sizeof *cpus);
    if (!j.decoded || !times || !cpus)
        return 1;

    int max_threads = rf_cpu_count();
    rf_pool *pool = NULL;
    if (rf_pool_create(&pool, max_threads, &err) != 0) {
        fprintf(stderr, "decode_bench: %s\n", err.msg);
        return 1;
    }
    rf_pool_run(pool, (int64_t)nfiles, decode_one, &j);
    rf_pool_destroy(pool);
    if (atomic_load(&j.failed)) {
        fprintf(stderr, "decode_bench: %d of %zu files failed; first: %s\n", atomic_load(&j.failed), nfiles,
                j.first_err.msg);
        return 1;
    }
    uint64_t decoded_bytes = 0;
    for (size_t i = 0; i < nfiles; i++)
        decoded_bytes += j.decoded[i];

    const char *p = threads_list;
    while (*p) {
        char *end;
        long t = strtol(p, &end, 10);
        if (end == p || t < 0 || t > 1024) {
            fprintf(stderr, "decode_bench: bad --threads '%s'\n", threads_list);
            return 2;
        }
        p = *end == ',' ? end + 1 : end;
        int threads = t == 0 ? max_threads : (int)t;
        /* a fresh pool per count: a pool's size is fixed */
        if (rf_pool_create(&pool, threads, &err) != 0) {
            fprintf(stderr, "decode_bench: %s\n", err.msg);
            return 1;
        }
        for (int it = 0; it < iters; it++) {
            double t0 = now_s(), c0 = cpu_s();
            rf_pool_run(pool, (int64_t)nfiles, decode_one, &j);
            times[it] = now_s() - t0;
            cpus[it] = cpu_s() - c0;
        }
        rf_pool_destroy(pool);
        if (atomic_load(&j.failed)) {
            fprintf(stderr, "decode_bench: a file failed on a timed pass: %s\n", j.first_err.msg);
            return 1;
        }
        qsort(times, (size_t)iters, sizeof *times, cmp_double);
        qsort(cpus, (size_t)iters, sizeof *cpus, cmp_double);
        double best = times[0], median = times[iters / 2];
        printf("{\"impl\":\"radfuse-inproc\",\"label\":\"%s\",\"threads\":%d,\"files\":%zu,\"iters\":%d,"
               "\"decoded_bytes\":%llu,\"input_bytes\":%llu,\"best_s\":%.6f,\"median_s\":%.6f,\"cpu_s\":%.6f,"
               "\"images_per_s\":%.3f,\"decoded_MB_per_s\":%.2f,\"input_MB_per_s\":%.2f}\n",
               label, threads, nfiles, iters, (unsigned long long)decoded_bytes, (unsigned long long)input_bytes,
               best, median, cpus[0], (double)nfiles / best, (double)decoded_bytes / 1e6 / best,
               (double)input_bytes / 1e6 / best);
        fflush(stdout);
    }
    rf_paths_free(files, nfiles);
    free(j.decoded);
    free(times);
    free(cpus);
    free(paths);
    return 0;
}
