/*
 * A note tokenized and encoded end to end, against a BERT written
 * independently in PyTorch (tests/data/make_note_bert_expected.py, itself
 * checked against transformers' outputs for the same fixture): the fixture
 * BertModel (shared/fixtures/reference/bert) with the tokenizer's vocab.txt,
 * on the CPU backend and on Vulkan (lavapipe in CI). Short notes fit one
 * window; a long one goes through the overlapping-window rule of text.h.
 * Tolerance: 1e-4 max abs error in fp32, as for the foundation's parity tests.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/text.h"
#include "tests/testutil.h"

#define TOL 1e-4

static const rf_st_tensor *want(const rf_safetensors *st, const char *name)
{
    const rf_st_tensor *t = rf_safetensors_find(st, name);
    if (!t) {
        fprintf(stderr, "expected tensor %s missing\n", name);
        exit(1);
    }
    return t;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) /* NaN counts */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static char *read_text(const char *name, size_t *n)
{
    const char *src = getenv("RADFUSE_SOURCE");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/%s", src ? src : ".", name);
    char *t = test_read_file(path, n);
    if (!t) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    return t;
}

static void run_on(rf_backend *be, const char *label, const rf_vocab *vocab, const rf_safetensors *st)
{
    char dir[4096];
    rf_err err;
    rf_model *m;
    snprintf(dir, sizeof dir, "%s/fixtures/reference/bert", test_shared_dir());
    CHECKF(rf_model_load(&m, dir, be, &err) == 0, "%s", err.msg);
    if (!m)
        return;
    int hidden = rf_model_get_info(m)->hidden;
    for (int c = 0; c < 6; c++) {
        char name[64];
        size_t n;
        snprintf(name, sizeof name, "note_bert_case%d.txt", c);
        char *text = read_text(name, &n);
        rf_text_encoding enc;
        CHECKF(rf_text_encode(m, vocab, text, n, NULL, &enc, &err) == 0, "%s", err.msg);
        snprintf(name, sizeof name, "case%d.input_ids", c);
        const rf_st_tensor *ids = want(st, name);
        snprintf(name, sizeof name, "case%d.last_hidden_state", c);
        const rf_st_tensor *h = want(st, name);
        int32_t T = (int32_t)ids->shape[0];
        CHECKF(enc.n == T - 2 && enc.windows == 1, "%s case %d: %d tokens", label, c, enc.n);
        if (enc.n == T - 2) {
            CHECK(memcmp(enc.ids, (const int32_t *)ids->data + 1, (size_t)enc.n * sizeof(int32_t)) == 0);
            const float *ref = h->data;
            double d_doc = max_diff(enc.document, ref, (size_t)hidden);
            double d_tok = max_diff(enc.tokens, ref + hidden, (size_t)enc.n * (size_t)hidden);
            CHECKF(d_doc <= TOL && d_tok <= TOL, "%s case %d: [CLS] %.2e tokens %.2e", label, c, d_doc, d_tok);
        }
        rf_text_encoding_free(&enc);
        free(text);
    }
    /* the long note: 281 tokens in windows of 62 with stride 31, in batches of 4 */
    size_t n;
    char *text = read_text("note_bert_long.txt", &n);
    rf_text_encoding enc;
    rf_text_window win = {.batch = 4};
    CHECKF(rf_text_encode(m, vocab, text, n, &win, &enc, &err) == 0, "%s", err.msg);
    const rf_st_tensor *ids = want(st, "long.input_ids"), *tok = want(st, "long.tokens"),
                       *doc = want(st, "long.document");
    CHECKF(enc.n == ids->shape[0] && enc.windows == 9, "%s long: %d tokens, %d windows", label, enc.n, enc.windows);
    if (enc.n == ids->shape[0]) {
        CHECK(memcmp(enc.ids, ids->data, (size_t)enc.n * sizeof(int32_t)) == 0);
        double d_tok = max_diff(enc.tokens, tok->data, (size_t)enc.n * (size_t)hidden);
        double d_doc = max_diff(enc.document, doc->data, (size_t)hidden);
        CHECKF(d_doc <= TOL && d_tok <= TOL, "%s long: document %.2e tokens %.2e", label, d_doc, d_tok);
        /* spans point into the note */
        for (int32_t i = 0; i < enc.n; i++)
            CHECK(enc.byte_start[i] < enc.byte_end[i] && (size_t)enc.byte_end[i] <= n);
    }
    rf_text_encoding_free(&enc);

    /* windows that do not fit, strides that skip tokens, a vocab past the model's */
    rf_text_window big = {.window_tokens = 63};
    CHECK(rf_text_encode(m, vocab, text, n, &big, &enc, &err) == RF_EINVAL && strstr(err.msg, "positions"));
    rf_text_window skip = {.window_tokens = 10, .stride = 11};
    CHECK(rf_text_encode(m, vocab, text, n, &skip, &enc, &err) == RF_EINVAL && strstr(err.msg, "stride"));
    CHECK(rf_text_encode(m, vocab, "emphysema", 9, NULL, &enc, &err) == RF_EINVAL && strstr(err.msg, "vocab"));
    /* an empty note: [CLS] [SEP] */
    CHECK(rf_text_encode(m, vocab, "", 0, NULL, &enc, &err) == 0 && enc.n == 0 && enc.windows == 1);
    rf_text_encoding_free(&enc);
    free(text);
    rf_model_free(m);
}

int main(void)
{
    char path[4096];
    rf_err err;
    rf_vocab *vocab;
    snprintf(path, sizeof path, "%s/fixtures/tokenizer/vocab.txt", test_shared_dir());
    CHECKF(rf_vocab_load(path, &vocab, &err) == 0, "%s", err.msg);
    const char *src = getenv("RADFUSE_SOURCE");
    snprintf(path, sizeof path, "%s/tests/data/note_bert_expected.safetensors", src ? src : ".");
    rf_safetensors *st;
    CHECKF(rf_safetensors_open(&st, path, &err) == 0, "%s", err.msg);
    if (!vocab || !st)
        return test_finish("test_text_encoder");
    rf_backend *cpu, *vk;
    test_backends_create(&cpu, &vk);
    run_on(cpu, "cpu", vocab, st);
    run_on(vk, "vulkan", vocab, st);
    rf_backend_destroy(cpu);
    rf_backend_destroy(vk);
    rf_safetensors_close(st);
    rf_vocab_free(vocab);
    return test_finish("test_text_encoder");
}
