/* A minimal test harness: checks count failures, main returns nonzero on any. */
#ifndef RADFUSE_TESTUTIL_H
#define RADFUSE_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "radfuse/runtime.h"

extern int test_failures;
extern int test_checks;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        test_checks++;                                                                      \
        if (!(cond)) {                                                                      \
            test_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);        \
        }                                                                                   \
    } while (0)

#define CHECKF(cond, ...)                                                                   \
    do {                                                                                    \
        test_checks++;                                                                      \
        if (!(cond)) {                                                                      \
            test_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
        }                                                                                   \
    } while (0)

/* Prints a summary and returns the process exit status. */
int test_finish(const char *name);

/* The shared data directory ($RADFUSE_SHARED or ../shared next to the source
 * tree); exits with a clear message when missing, so no test skips silently. */
const char *test_shared_dir(void);
/* The radfuse binary under test ($RADFUSE_BIN). */
const char *test_radfuse_bin(void);

/* Max |a[i] - b[i]| over n floats. */
double test_max_abs_diff(const float *a, const float *b, int64_t n);
/* Deterministic pseudo-random floats in [-scale, scale]. */
void test_fill_random(float *x, int64_t n, uint64_t seed, float scale);

#endif

/* Runs argv (argv[0] is a path) with stdout and stderr captured into the
 * buffers (NUL-terminated, truncated to cap). Returns the exit status, or
 * 128 + signal when killed, or -1 when it could not run. */
int test_run(char *const argv[], char *out, size_t out_cap, char *errbuf, size_t err_cap);
/* Number of '\n'-terminated lines in s (a trailing text without '\n' counts). */
int test_count_lines(const char *s);
/* A fresh temporary directory (mkdtemp under /tmp); exits on failure. */
const char *test_tmpdir(char *buf, size_t n);
/* Writes n bytes to path; exits on failure. */
void test_write_file(const char *path, const void *data, size_t n);
/* Reads a whole file into a malloc'd buffer; returns NULL on failure. */
char *test_read_file(const char *path, size_t *n);

/* Backend memory for tests: a tensor of the given shape in a buffer of its
 * own on backend be, filled from host data (NULL: left as is). */
#include "runtime/backend.h"
typedef struct test_dev {
    rf_buffer *buf;
    rf_tensor t;
} test_dev;
int test_dev_alloc(rf_backend *be, test_dev *d, rf_dtype dtype, int ndim, const int64_t *shape, const void *host);
/* Copies d's tensor (or any view of the same backend) back to host memory. */
int test_dev_read(rf_backend *be, const rf_tensor *t, void *host);
void test_dev_free(rf_backend *be, test_dev *d);
