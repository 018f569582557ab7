#include "tests/testutil.h"
#include "runtime/vk_device.h"

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

void test_fill_const(float *x, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = v;
}

void *test_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FATAL: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

float *test_falloc(int64_t n)
{
    return test_xmalloc((size_t)(n > 0 ? n : 0) * sizeof(float));
}

double *test_dalloc(int64_t n)
{
    return test_xmalloc((size_t)(n > 0 ? n : 0) * sizeof(double));
}

int32_t *test_ialloc(int64_t n)
{
    return test_xmalloc((size_t)(n > 0 ? n : 0) * sizeof(int32_t));
}

int32_t *test_softmax_mask(int64_t B, int64_t C, uint64_t seed)
{
    int32_t *mask = test_ialloc(B * C);
    float *mr = test_falloc(B * C);
    test_fill_random(mr, B * C, seed, 1.0f);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < C; j++) {
            int keep;
            switch (b % 3) {
            case 0: keep = j == 0 || mr[b * C + j] > -0.5f; break;
            case 1: keep = j < (C - C / 3 > 0 ? C - C / 3 : 1); break;
            default: keep = 0; break;
            }
            mask[b * C + j] = keep ? (j % 2 ? 1 : 7) : 0; /* any nonzero keeps */
        }
    free(mr);
    return mask;
}

void test_attention_mask(int32_t *mask, int64_t B, int64_t T, int masked)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < T; j++) {
            int keep = 1;
            if (masked) {
                switch (b % 3) {
                case 0: keep = j < T - T / 3; break;                  /* padded tail */
                case 1: keep = j >= (T - 1 < 70 ? T - 1 : 70); break; /* padded front */
                default: keep = 0; break;                             /* all padding */
                }
            }
            mask[b * T + j] = keep ? (j % 2 ? 1 : 3) : 0; /* any nonzero keeps */
        }
}

void test_softmax_grid(const int64_t *cols, size_t ncols, test_softmax_case_fn *case_fn)
{
    static const int64_t rows[] = {1, 3, 17};
    for (size_t ci = 0; ci < ncols; ci++)
        for (size_t ri = 0; ri < 3; ri++)
            for (int alias = 0; alias < 2; alias++) {
                case_fn(ri == 1 ? 1 : 2, rows[ri], cols[ci], 0, 1.0f, 4.0f, alias);
                case_fn(3, rows[ri], cols[ci], 1, 0.125f, 30.0f, alias);
                case_fn(3, rows[ri], cols[ci], 1, 1.0f, 100.0f, alias);
            }
}

int test_verbose(void)
{
    const char *v = getenv("RADFUSE_TEST_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

#include <fcntl.h>
#include <sys/wait.h>

/* Reads all of fd into buf (up to cap - 1 bytes), discarding the rest. */
static void drain(int fd, char *buf, size_t cap)
{
    size_t used = 0;
    char tmp[4096];
    for (;;) {
        ssize_t r = read(fd, tmp, sizeof tmp);
        if (r <= 0)
            break;
        size_t take = (size_t)r;
        if (buf && cap && used + take > cap - 1)
            take = cap - 1 - used;
        if (buf && take) {
            memcpy(buf + used, tmp, take);
            used += take;
        }
    }
    if (buf && cap)
        buf[used] = 0;
}

int test_run(char *const argv[], char *out, size_t out_cap, char *errbuf, size_t err_cap)
{
    char outname[] = "/tmp/radfuse-test-out-XXXXXX";
    char errname[] = "/tmp/radfuse-test-err-XXXXXX";
    int ofd = mkstemp(outname), efd = mkstemp(errname);
    if (ofd < 0 || efd < 0)
        return -1;
    unlink(outname);
    unlink(errname);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    lseek(ofd, 0, SEEK_SET);
    lseek(efd, 0, SEEK_SET);
    drain(ofd, out, out_cap);
    drain(efd, errbuf, err_cap);
    close(ofd);
    close(efd);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

int test_count_lines(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        if (*p == '\n')
            n++;
    size_t len = strlen(s);
    if (len && s[len - 1] != '\n')
        n++;
    return n;
}

const char *test_tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/radfuse-test-XXXXXX");
    if (!mkdtemp(buf)) {
        fprintf(stderr, "FATAL: mkdtemp failed\n");
        exit(1);
    }
    return buf;
}

void test_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "FATAL: cannot write %s\n", path);
        exit(1);
    }
}

char *test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + used, 1, cap - used, f)) > 0) {
        used += r;
        if (used == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[used] = 0;
        if (n)
            *n = used;
    }
    return buf;
}

int test_dev_alloc(rf_backend *be, test_dev *d, rf_dtype dtype, int ndim, const int64_t *shape, const void *host)
{
    rf_err err;
    memset(d, 0, sizeof *d);
    d->t = rf_tensor_make(dtype, NULL, ndim, shape);
    size_t bytes = (size_t)rf_tensor_numel(&d->t) * rf_dtype_size(dtype);
    void *data;
    if (be->ops->buffer_alloc(be, bytes ? bytes : 4, &d->buf, &data, &err)) {
        fprintf(stderr, "test_dev_alloc: %s\n", err.msg);
        return 1;
    }
    d->t.data = data;
    if (host && be->ops->upload(be, &d->t, host, &err)) {
        fprintf(stderr, "test_dev_alloc: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int test_dev_read(rf_backend *be, const rf_tensor *t, void *host)
{
    rf_err err;
    if (be->ops->download(be, host, t, &err)) {
        fprintf(stderr, "test_dev_read: %s\n", err.msg);
        return 1;
    }
    return 0;
}

void test_dev_free(rf_backend *be, test_dev *d)
{
    if (d->buf)
        be->ops->buffer_free(be, d->buf);
    memset(d, 0, sizeof *d);
}

void test_backends_create(rf_backend **cpu, rf_backend **vk)
{
    rf_err err;
    if (rf_backend_create(cpu, "cpu", 2, &err)) {
        fprintf(stderr, "FATAL: cpu backend: %s\n", err.msg);
        exit(1);
    }
    if (rf_vk_backend_create(vk, -1, 0, &err)) {
        fprintf(stderr, "FATAL: no Vulkan device (install Mesa lavapipe: mesa-vulkan-drivers): %s\n", err.msg);
        rf_backend_destroy(*cpu);
        exit(1);
    }
    printf("vulkan device: %s\n", rf_backend_name(*vk));
}

int test_end_pass(rf_backend *be, int rc, rf_err *err)
{
    rf_err ignored;
    int rc2 = be->ops->end(be, rc == 0, rc ? &ignored : err);
    return rc ? rc : rc2;
}
