/*
 * Checkpoint variants real models come in, each built here from the
 * reference fixtures and checked to load and compute what it should:
 *  - F16 and BF16 weights: equal (1e-6) to an F32 checkpoint holding the same
 *    rounded values, so the conversion at load is exact;
 *  - a task model's prefix ("vit.", "bert.", "dinov2."): equal to the fixture;
 *  - sharded weights with model.safetensors.index.json: equal to the fixture;
 *  - a model reused for a second, larger input (arena growth) and then the
 *    first again: equal results each time.
 * The fixtures' PyTorch outputs (max abs error <= 1e-4) anchor every case.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"

static const char *shared;
static char tmp[64];

typedef struct variant {
    const char *prefix;    /* prepended to every tensor name */
    rf_st_dtype dtype;     /* stored dtype of float tensors */
    int round_through;     /* store F32 values rounded through this dtype (F16/BF16), or 0 */
    int shards;            /* 0: one file; n: n shards + index */
} variant;

static float round_via(float x, rf_st_dtype t)
{
    return t == RF_ST_F16 ? rf_f16_to_f32(rf_f32_to_f16(x)) : rf_bf16_to_f32(rf_f32_to_bf16(x));
}

/* Writes fixture's weights transformed by v into a new directory; returns its path. */
static void write_variant(const char *fixture, const variant *v, const char *name, char *dir, size_t n)
{
    char src[4200], path[4300];
    snprintf(dir, n, "%s/%s", tmp, name);
    mkdir(dir, 0755);
    snprintf(src, sizeof src, "%s/fixtures/reference/%s/config.json", shared, fixture);
    size_t len;
    char *cfg = test_read_file(src, &len);
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_file(path, cfg, len);
    free(cfg);

    snprintf(src, sizeof src, "%s/fixtures/reference/%s/model.safetensors", shared, fixture);
    rf_safetensors *st;
    rf_err err;
    if (rf_safetensors_open(&st, src, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    size_t count = rf_safetensors_count(st);
    rf_st_out *outs = calloc(count, sizeof *outs);
    char **names = calloc(count, sizeof *names);
    void **bufs = calloc(count, sizeof *bufs);
    for (size_t i = 0; i < count; i++) {
        const rf_st_tensor *t = rf_safetensors_at(st, i);
        size_t elems = t->nbytes / 4;
        names[i] = malloc(strlen(v->prefix) + strlen(t->name) + 1);
        sprintf(names[i], "%s%s", v->prefix, t->name);
        outs[i] = (rf_st_out){names[i], t->dtype, t->ndim, t->shape, t->data};
        if (t->dtype != RF_ST_F32)
            continue;
        if (v->dtype == RF_ST_F16 || v->dtype == RF_ST_BF16) {
            uint16_t *h = malloc(elems * 2 + 2);
            for (size_t e = 0; e < elems; e++) {
                float f;
                memcpy(&f, (const char *)t->data + 4 * e, 4);
                h[e] = v->dtype == RF_ST_F16 ? rf_f32_to_f16(f) : rf_f32_to_bf16(f);
            }
            bufs[i] = h;
            outs[i].dtype = v->dtype;
            outs[i].data = h;
        } else if (v->round_through) {
            float *f = malloc(elems * 4 + 4);
            memcpy(f, t->data, elems * 4);
            for (size_t e = 0; e < elems; e++)
                f[e] = round_via(f[e], (rf_st_dtype)v->round_through);
            bufs[i] = f;
            outs[i].data = f;
        }
    }
    if (v->shards == 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CHECKF(rf_safetensors_write(path, outs, count, &err) == 0, "%s", err.msg);
    } else {
        /* tensors dealt round-robin into shards, as an index maps them */
        char *index = malloc(1 << 20);
        size_t used = (size_t)sprintf(index, "{\"metadata\": {}, \"weight_map\": {");
        for (int s = 0; s < v->shards; s++) {
            rf_st_out *part = calloc(count, sizeof *part);
            size_t np = 0;
            char shard[64];
            snprintf(shard, sizeof shard, "model-%05d-of-%05d.safetensors", s + 1, v->shards);
            for (size_t i = (size_t)s; i < count; i += (size_t)v->shards) {
                part[np++] = outs[i];
                used += (size_t)sprintf(index + used, "%s\"%s\": \"%s\"", used > 33 ? ", " : "", outs[i].name, shard);
            }
            snprintf(path, sizeof path, "%s/%s", dir, shard);
            CHECKF(rf_safetensors_write(path, part, np, &err) == 0, "%s", err.msg);
            free(part);
        }
        used += (size_t)sprintf(index + used, "}}");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        test_write_file(path, index, used);
        free(index);
    }
    for (size_t i = 0; i < count; i++) {
        free(names[i]);
        free(bufs[i]);
    }
    free(outs);
    free(names);
    free(bufs);
    rf_safetensors_close(st);
}

/* Inputs of a fixture's io.safetensors, as model inputs (tensors point into io). */
typedef struct fixture_io {
    rf_safetensors *st;
    rf_tensor px, pxb, ids, mask, tt;
    float *px_data, *pxb_data;
    int32_t *ids_data, *mask_data, *tt_data;
} fixture_io;

static void *copy_tensor(const rf_safetensors *st, const char *name, rf_tensor *t, rf_dtype want)
{
    const rf_st_tensor *s = rf_safetensors_find(st, name);
    memset(t, 0, sizeof *t);
    if (!s)
        return NULL;
    void *d = malloc(s->nbytes);
    memcpy(d, s->data, s->nbytes);
    *t = rf_tensor_make(want, d, s->ndim, s->shape);
    return d;
}

static void io_open(fixture_io *io, const char *fixture)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fixtures/reference/%s/io.safetensors", shared, fixture);
    rf_err err;
    if (rf_safetensors_open(&io->st, path, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    io->px_data = copy_tensor(io->st, "pixel_values", &io->px, RF_F32);
    io->pxb_data = copy_tensor(io->st, "pixel_values_b", &io->pxb, RF_F32);
    io->ids_data = copy_tensor(io->st, "input_ids", &io->ids, RF_I32);
    io->mask_data = copy_tensor(io->st, "attention_mask", &io->mask, RF_I32);
    io->tt_data = copy_tensor(io->st, "token_type_ids", &io->tt, RF_I32);
}

static void io_close(fixture_io *io)
{
    free(io->px_data);
    free(io->pxb_data);
    free(io->ids_data);
    free(io->mask_data);
    free(io->tt_data);
    rf_safetensors_close(io->st);
}

static rf_model_inputs inputs_of(const fixture_io *io, int second)
{
    rf_model_inputs in = {0};
    if (io->px_data)
        in.pixel_values = second ? &io->pxb : &io->px;
    if (io->ids_data) {
        in.input_ids = &io->ids;
        in.attention_mask = &io->mask;
        in.token_type_ids = &io->tt;
    }
    return in;
}

/* Runs dir on the fixture's first input; last_hidden_state into a malloc'd copy. */
static float *run(rf_backend *be, const char *dir, const fixture_io *io, int64_t *n)
{
    rf_model *m;
    rf_err err;
    int rc = rf_model_load(&m, dir, be, &err);
    CHECKF(rc == 0, "%s: %s", dir, err.msg);
    if (rc)
        return NULL;
    rf_model_inputs in = inputs_of(io, 0);
    rf_model_outputs out;
    rc = rf_model_forward(m, &in, &out, &err);
    CHECKF(rc == 0, "%s: %s", dir, err.msg);
    rf_model_free(m);
    if (rc)
        return NULL;
    *n = rf_tensor_numel(&out.last_hidden_state);
    float *copy = out.last_hidden_state.data;
    out.last_hidden_state.data = NULL;
    rf_model_outputs_free(&out);
    return copy;
}

static double diff_vs_reference(const fixture_io *io, const char *name, const float *got, int64_t n)
{
    const rf_st_tensor *r = rf_safetensors_find(io->st, name);
    if (!r || (int64_t)(r->nbytes / 4) != n)
        return INFINITY;
    float *ref = malloc(r->nbytes);
    memcpy(ref, r->data, r->nbytes);
    double d = test_max_abs_diff(ref, got, n);
    free(ref);
    return d;
}

static void check_variants(rf_backend *be, const char *fixture, const char *prefix)
{
    fixture_io io;
    io_open(&io, fixture);
    const char *out_name = strcmp(fixture, "timm_vit") == 0 ? "features" : "last_hidden_state";
    char dir[4096], name[128];
    int64_t n = 0, n2 = 0;

    /* prefix and shards: same function as the fixture */
    variant pv = {prefix, RF_ST_F32, 0, 0}, sv = {"", RF_ST_F32, 0, 3};
    snprintf(name, sizeof name, "%s-prefix", fixture);
    write_variant(fixture, &pv, name, dir, sizeof dir);
    float *a = run(be, dir, &io, &n);
    if (a)
        CHECKF(diff_vs_reference(&io, out_name, a, n) <= 1e-4, "%s with prefix '%s' differs from the reference",
               fixture, prefix);
    free(a);
    snprintf(name, sizeof name, "%s-sharded", fixture);
    write_variant(fixture, &sv, name, dir, sizeof dir);
    a = run(be, dir, &io, &n);
    if (a)
        CHECKF(diff_vs_reference(&io, out_name, a, n) <= 1e-4, "%s in 3 shards differs from the reference", fixture);
    free(a);

    /* half-precision storage: exactly the F32 model of the rounded values */
    const rf_st_dtype halves[2] = {RF_ST_F16, RF_ST_BF16};
    for (int h = 0; h < 2; h++) {
        variant hv = {"", halves[h], 0, 0}, rv = {"", RF_ST_F32, (int)halves[h], 0};
        snprintf(name, sizeof name, "%s-%s", fixture, rf_st_dtype_name(halves[h]));
        write_variant(fixture, &hv, name, dir, sizeof dir);
        a = run(be, dir, &io, &n);
        snprintf(name, sizeof name, "%s-%s-as-f32", fixture, rf_st_dtype_name(halves[h]));
        write_variant(fixture, &rv, name, dir, sizeof dir);
        float *b = run(be, dir, &io, &n2);
        if (a && b) {
            double d = test_max_abs_diff(a, b, n);
            double dref = diff_vs_reference(&io, out_name, a, n);
            printf("  %-9s %s weights: vs rounded F32 %.3g, vs PyTorch F32 %.3g\n", fixture,
                   rf_st_dtype_name(halves[h]), d, dref);
            CHECKF(n == n2 && d <= 1e-6, "%s %s: differs from the F32 model of the same values by %g", fixture,
                   rf_st_dtype_name(halves[h]), d);
            /* and still close to full precision: rounding weights is not a different model */
            CHECKF(dref <= (halves[h] == RF_ST_F16 ? 0.02 : 0.2), "%s %s: %g from the F32 reference", fixture,
                   rf_st_dtype_name(halves[h]), dref);
        }
        free(a);
        free(b);
    }
    io_close(&io);
}

/* One model, inputs of two sizes in turn: the arena grows, results stay exact. */
static void check_reuse(rf_backend *be)
{
    fixture_io io;
    io_open(&io, "dinov2");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/fixtures/reference/dinov2", shared);
    rf_model *m;
    rf_err err;
    CHECKF(rf_model_load(&m, dir, be, &err) == 0, "%s", err.msg);
    for (int round = 0; round < 2; round++)
        for (int second = 0; second < 2; second++) {
            rf_model_inputs in = inputs_of(&io, second);
            rf_model_outputs out;
            int rc = rf_model_forward(m, &in, &out, &err);
            CHECKF(rc == 0, "%s", err.msg);
            if (rc)
                continue;
            double d = diff_vs_reference(&io, second ? "last_hidden_state_b" : "last_hidden_state",
                                         out.last_hidden_state.data, rf_tensor_numel(&out.last_hidden_state));
            CHECKF(d <= 1e-4, "dinov2 reuse round %d input %d: %g", round, second, d);
            rf_model_outputs_free(&out);
        }
    rf_model_free(m);
    io_close(&io);
}

int main(void)
{
    shared = test_shared_dir();
    test_tmpdir(tmp, sizeof tmp);
    rf_backend *be;
    rf_err err;
    if (rf_backend_create(&be, "cpu", 2, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        return 1;
    }
    check_variants(be, "hf_vit", "vit.");
    check_variants(be, "bert", "bert.");
    check_variants(be, "dinov2", "dinov2.");
    check_variants(be, "timm_vit", "model.");
    check_reuse(be);
    rf_backend_destroy(be);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return test_finish("test_model_load");
}
