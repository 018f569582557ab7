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
