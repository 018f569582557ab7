/*
 * Parity with the reference implementations: every checkpoint in
 * shared/fixtures/reference goes through `radfuse model run`, and each output
 * is compared with what PyTorch (transformers / timm) computed for the same
 * input. Tolerance: max abs error <= 1e-4 in fp32, on pools of 1 and 3 threads.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

#define TOLERANCE 1e-4

typedef struct fixture {
    const char *name;
    const char *outputs[4]; /* names that must come out and match */
} fixture;

static const fixture fixtures[] = {
    {"dinov2", {"last_hidden_state", "pooler_output", "last_hidden_state_b", NULL}},
    {"bert", {"last_hidden_state", "pooler_output", NULL}},
    {"hf_vit", {"last_hidden_state", "pooler_output", NULL}},
    {"timm_vit", {"features", "logits", NULL}},
};

static void compare(const char *case_name, const char *device, const rf_safetensors *ref,
                    const rf_safetensors *got, const char *name)
{
    const rf_st_tensor *r = rf_safetensors_find(ref, name);
    const rf_st_tensor *g = rf_safetensors_find(got, name);
    CHECKF(r != NULL, "%s: reference has no '%s'", case_name, name);
    CHECKF(g != NULL, "%s: radfuse wrote no '%s'", case_name, name);
    if (!r || !g)
        return;
    int same_shape = r->ndim == g->ndim && r->dtype == RF_ST_F32 && g->dtype == RF_ST_F32;
    for (int i = 0; same_shape && i < r->ndim; i++)
        same_shape = r->shape[i] == g->shape[i];
    CHECKF(same_shape, "%s: '%s' shape or dtype differs from the reference", case_name, name);
    if (!same_shape)
        return;
    int64_t n = (int64_t)(r->nbytes / 4);
    float *a = malloc(r->nbytes + 4), *b = malloc(g->nbytes + 4);
    memcpy(a, r->data, r->nbytes);
    memcpy(b, g->data, g->nbytes);
    double err = test_max_abs_diff(a, b, n);
    printf("  %-9s %-8s %-20s %lld values  max abs error %.3g\n", case_name, device, name,
           (long long)n, err);
    CHECKF(err <= TOLERANCE, "%s: '%s' max abs error %g > %g", case_name, name, err, TOLERANCE);
    free(a);
    free(b);
}

int main(void)
{
    const char *shared = test_shared_dir();
    const char *bin = test_radfuse_bin();
    char tmp[64];
    test_tmpdir(tmp, sizeof tmp);
    /* device, threads */
    const char *runs[][2] = {{"cpu", "1"}, {"cpu", "3"}, {"vulkan", "1"}};
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        char dir[4096], io[4200], out[4200];
        snprintf(dir, sizeof dir, "%s/fixtures/reference/%s", shared, fixtures[f].name);
        snprintf(io, sizeof io, "%s/io.safetensors", dir);
        for (size_t t = 0; t < sizeof runs / sizeof runs[0]; t++) {
            char label[32];
            snprintf(label, sizeof label, "%s/%s", runs[t][0], runs[t][1]);
            snprintf(out, sizeof out, "%s/%s-%s-%s.safetensors", tmp, fixtures[f].name, runs[t][0], runs[t][1]);
            char *argv[] = {(char *)bin, "model", "run", dir, "--input", io, "--output", out,
                            "--device", (char *)runs[t][0], "--threads", (char *)runs[t][1], NULL};
            char errbuf[4096];
            int status = test_run(argv, NULL, 0, errbuf, sizeof errbuf);
            CHECKF(status == 0, "%s: radfuse model run exited %d: %s", fixtures[f].name, status, errbuf);
            /* nothing on stderr: in particular no "running on the CPU" fallback */
            CHECKF(errbuf[0] == 0, "%s on %s: unexpected message: %s", fixtures[f].name, label, errbuf);
            if (status != 0)
                continue;
            rf_safetensors *ref = NULL, *got = NULL;
            rf_err err;
            CHECKF(rf_safetensors_open(&ref, io, &err) == 0, "%s", err.msg);
            CHECKF(rf_safetensors_open(&got, out, &err) == 0, "%s", err.msg);
            for (int o = 0; ref && got && fixtures[f].outputs[o]; o++)
                compare(fixtures[f].name, label, ref, got, fixtures[f].outputs[o]);
            rf_safetensors_close(ref);
            rf_safetensors_close(got);
            unlink(out);
        }
    }
    rmdir(tmp);
    return test_finish("test_parity");
}
