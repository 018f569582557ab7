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
/* x[0..n) = v. */
void test_fill_const(float *x, int64_t n, float v);
/* A key mask [B, C] for softmax tests (malloc'd): in batch b, b % 3 == 0
 * keeps key 0 and about 3/4 of the others at random (from seed), 1 keeps the
 * first max(C - C / 3, 1) keys, 2 masks every key; kept entries are 1 or 7
 * (any nonzero keeps). */
int32_t *test_softmax_mask(int64_t B, int64_t C, uint64_t seed);
/* A key mask [B, T] for attention tests (into mask): all keys kept unless
 * masked; then in batch b, b % 3 == 0 pads the tail (the last T / 3 keys), 1
 * pads the front (the first min(T - 1, 70) keys: whole 64-key tiles), 2
 * masks every key; kept entries are 1 or 3 (any nonzero keeps). */
void test_attention_mask(int32_t *mask, int64_t B, int64_t T, int masked);
/* The softmax cases of the backend tests: for each of the ncols column
 * counts, 1, 3 and 17 rows, out of place and in place, one unmasked case
 * (x in [-4, 4]) and two masked ones (scale 0.125 on x in [-30, 30], scale 1
 * on [-100, 100]: without max subtraction expf overflows). */
typedef void test_softmax_case_fn(int64_t B, int64_t R, int64_t C, int masked, float scale, float range, int alias);
void test_softmax_grid(const int64_t *cols, size_t ncols, test_softmax_case_fn *case_fn);

/* malloc that aborts with a message when out of memory; 0 bytes (or a count
 * <= 0) still gives a valid pointer. Free with free(). */
void *test_xmalloc(size_t bytes);
float *test_falloc(int64_t n);
double *test_dalloc(int64_t n);
int32_t *test_ialloc(int64_t n);

/* True when RADFUSE_TEST_VERBOSE is set to something other than "" or "0". */
int test_verbose(void);

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

/* The CPU backend (2 threads) and the default Vulkan device, whose name is
 * printed; a missing device fails the test (exits 1): lavapipe in CI. */
void test_backends_create(rf_backend **cpu, rf_backend **vk);
/* Ends a pass begun on be: submitted when the recorded operation returned
 * rc == 0, dropped otherwise. Returns rc, or else end's status (err set). */
int test_end_pass(rf_backend *be, int rc, rf_err *err);

#endif
