#include "tests/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int test_failures;
int test_checks;

int test_finish(const char *name)
{
    if (test_checks == 0) {
        fprintf(stderr, "%s: no checks ran\n", name);
        return 1;
    }
    printf("%s: %d checks, %d failures\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

const char *test_shared_dir(void)
{
    static char path[4096]; /* written once, read-only afterwards */
    const char *env = getenv("RADFUSE_SHARED");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        const char *src = getenv("RADFUSE_SOURCE");
        snprintf(path, sizeof path, "%s/../shared", src && *src ? src : ".");
    }
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/fixtures/reference", path);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr,
                "FATAL: shared test data not found at %s (set RADFUSE_SHARED or place "
                "shared/ beside the checkout)\n",
                path);
        exit(1);
    }
    return path;
}

const char *test_radfuse_bin(void)
{
    const char *bin = getenv("RADFUSE_BIN");
    if (!bin || !*bin) {
        fprintf(stderr, "FATAL: RADFUSE_BIN is not set (run the tests through ctest)\n");
        exit(1);
    }
    return bin;
}

double test_max_abs_diff(const float *a, const float *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}

void test_fill_random(float *x, int64_t n, uint64_t seed, float scale)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = scale * (2.0f * (float)((s >> 40) & 0xffffff) / 16777215.0f - 1.0f);
    }
}
