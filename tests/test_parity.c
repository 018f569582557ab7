/*
 * Parity with the reference implementations: every checkpoint in
 * shared/fixtures/reference goes through `radfuse model run`, and each output
 * is compared with what PyTorch (transformers / timm) computed for the same
 * input. Tolerance: max abs error <= 1e-4 in fp32, on pools of 1 and 3 threads
 * and on Vulkan.
 *
 * Vulkan with --precision fp16 (weights of linear layers and of the patch
 * embedding stored as IEEE halves, accumulation and everything else fp32)
 * is compared with the same fp32 PyTorch outputs at TOLERANCE_FP16 = 1e-2.
 * Why: rounding a weight to fp16 changes it by at most 2^-11 ~ 4.9e-4 of
 * itself (uniformly within that, in random directions), so a K-term dot
 * product moves by about 2^-11 / sqrt(3) * sqrt(sum_k (x_k w_k)^2): a few
 * 1e-4 of an output of size one, a little more where K-term sums are
 * larger; with 2 layers of 4 linears each (qkv, proj, fc1, fc2; LayerNorm
 * keeps the scale fixed) plus the patch embedding and the pooler, the
 * outputs should be off by around 1e-3. Measured on lavapipe (hidden 64,
 * MLP 128/256, 2 layers): worst 8.2e-4 (dinov2 last_hidden_state), hf_vit
 * 6.8e-4, timm_vit 7.1e-4, bert 1.1e-4 (pooler). 1e-2 leaves a margin of 12x
 * and stays far below what a wrong kernel gives (errors of order one). The
 * same errors also show that fp16 really ran: each fp16 fixture must be off
 * by more than FP16_MIN_ERROR = 2e-5, five times the worst fp32 error here
 * (3.7e-6), so a --precision the CLI ignored would fail.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

#define TOLERANCE 1e-4
#define TOLERANCE_FP16 1e-2
#define FP16_MIN_ERROR 2e-5

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

static double compare(const char *case_name, const char *device, double tolerance, const rf_safetensors *ref,
                    const rf_safetensors *got, const char *name)
{
    const rf_st_tensor *r = rf_safetensors_find(ref, name);
    const rf_st_tensor *g = rf_safetensors_find(got, name);
    CHECKF(r != NULL, "%s: reference has no '%s'", case_name, name);
    CHECKF(g != NULL, "%s: radfuse wrote no '%s'", case_name, name);
    if (!r || !g)
        return -1;
    int same_shape = r->ndim == g->ndim && r->dtype == RF_ST_F32 && g->dtype == RF_ST_F32;
    for (int i = 0; same_shape && i < r->ndim; i++)
        same_shape = r->shape[i] == g->shape[i];
    CHECKF(same_shape, "%s: '%s' shape or dtype differs from the reference", case_name, name);
    if (!same_shape)
        return -1;
    int64_t n = (int64_t)(r->nbytes / 4);
    float *a = malloc(r->nbytes + 4), *b = malloc(g->nbytes + 4);
    memcpy(a, r->data, r->nbytes);
    memcpy(b, g->data, g->nbytes);
    double err = test_max_abs_diff(a, b, n);
    printf("  %-9s %-13s %-20s %lld values  max abs error %.3g (tolerance %g)\n", case_name, device, name,
           (long long)n, err, tolerance);
    CHECKF(err <= tolerance, "%s on %s: '%s' max abs error %g > %g", case_name, device, name, err, tolerance);
    free(a);
    free(b);
    return err;
}

int main(void)
{
    const char *shared = test_shared_dir();
    const char *bin = test_radfuse_bin();
    char tmp[64];
    test_tmpdir(tmp, sizeof tmp);
    struct {
        const char *device, *threads, *precision;
        double tolerance;
    } runs[] = {{"cpu", "1", "fp32", TOLERANCE},
                {"cpu", "3", "fp32", TOLERANCE},
                {"vulkan", "1", "fp32", TOLERANCE},
                {"vulkan", "1", "fp16", TOLERANCE_FP16}};
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        char dir[4096], io[4200], out[4200];
        snprintf(dir, sizeof dir, "%s/fixtures/reference/%s", shared, fixtures[f].name);
        snprintf(io, sizeof io, "%s/io.safetensors", dir);
        for (size_t t = 0; t < sizeof runs / sizeof runs[0]; t++) {
            char label[48];
            snprintf(label, sizeof label, "%s/%s/%s", runs[t].device, runs[t].threads, runs[t].precision);
            snprintf(out, sizeof out, "%s/%s-%s-%s-%s.safetensors", tmp, fixtures[f].name, runs[t].device,
                     runs[t].threads, runs[t].precision);
            char *argv[] = {(char *)bin, "model", "run", dir, "--input", io, "--output", out,
                            "--device", (char *)runs[t].device, "--threads", (char *)runs[t].threads,
                            "--precision", (char *)runs[t].precision, NULL};
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
            double worst = 0;
            for (int o = 0; ref && got && fixtures[f].outputs[o]; o++) {
                double e = compare(fixtures[f].name, label, runs[t].tolerance, ref, got, fixtures[f].outputs[o]);
                if (e > worst)
                    worst = e;
            }
            if (strcmp(runs[t].precision, "fp16") == 0)
                CHECKF(worst > FP16_MIN_ERROR, "%s on %s: worst error %g is that of fp32: was fp16 used?",
                       fixtures[f].name, label, worst);
            rf_safetensors_close(ref);
            rf_safetensors_close(got);
            unlink(out);
        }
    }
    rmdir(tmp);
    return test_finish("test_parity");
}
