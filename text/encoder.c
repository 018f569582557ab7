/*
 * The text encoder: a note of any length through a BERT whose window is
 * shorter. The note is tokenized once; overlapping windows go through the
 * model in batches; every token keeps its state from the window where it has
 * the most context, and the note's vector is the windows' [CLS] states
 * weighted by the tokens each window was chosen for (the rule in text.h).
 */
#include <stdlib.h>
#include <string.h>

#include "radfuse/text.h"

void rf_text_encoding_free(rf_text_encoding *enc)
{
    if (!enc)
        return;
    free(enc->tokens);
    free(enc->document);
    free(enc->ids);
    free(enc->byte_start);
    free(enc->byte_end);
    free(enc->start);
    free(enc->end);
    memset(enc, 0, sizeof *enc);
}

/* Copies the content tokens (all but [CLS] and [SEP]) of tk into enc. */
static int take_tokens(const rf_tokens *tk, rf_text_encoding *enc)
{
    int32_t n = tk->n - 2;
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(int32_t);
    enc->n = n;
    enc->ids = malloc(bytes);
    enc->byte_start = malloc(bytes);
    enc->byte_end = malloc(bytes);
    enc->start = malloc(bytes);
    enc->end = malloc(bytes);
    if (!enc->ids || !enc->byte_start || !enc->byte_end || !enc->start || !enc->end)
        return -1;
    memcpy(enc->ids, tk->ids + 1, (size_t)n * sizeof(int32_t));
    memcpy(enc->byte_start, tk->byte_start + 1, (size_t)n * sizeof(int32_t));
    memcpy(enc->byte_end, tk->byte_end + 1, (size_t)n * sizeof(int32_t));
    memcpy(enc->start, tk->start + 1, (size_t)n * sizeof(int32_t));
    memcpy(enc->end, tk->end + 1, (size_t)n * sizeof(int32_t));
    return 0;
}

int rf_text_encode(rf_model *model, const rf_vocab *vocab, const char *text, size_t len, const rf_text_window *win,
                   rf_text_encoding *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    const rf_model_info *info = rf_model_get_info(model);
    if (info->arch != RF_ARCH_BERT)
        return rf_err_set(err, RF_EINVAL, "text encoder: the model is %s, not a BERT", rf_arch_name(info->arch));
    int32_t positions = info->max_positions, hidden = info->hidden;
    int32_t W = win && win->window_tokens ? win->window_tokens : positions - 2;
    int32_t S = win && win->stride ? win->stride : (W / 2 > 0 ? W / 2 : 1);
    int32_t batch = win && win->batch ? win->batch : 8;
    if (W < 1 || W + 2 > positions)
        return rf_err_set(err, RF_EINVAL, "text encoder: a window of %d tokens (+2) does not fit the model's %d positions",
                          W, positions);
    if (S < 1 || S > W)
        return rf_err_set(err, RF_EINVAL, "text encoder: stride %d must be in [1, %d] or tokens would be skipped", S, W);
    if (batch < 1 || batch > 4096)
        return rf_err_set(err, RF_EINVAL, "text encoder: batch %d must be in [1, 4096]", batch);

    rf_tokens tk;
    size_t cap = 2 * len + 2;
    int rc = rf_wordpiece_encode(vocab, text, len, cap > INT32_MAX ? INT32_MAX : (int32_t)cap, &tk, err);
    if (rc)
        return rc;
    int32_t cls = tk.ids[0], sep = tk.ids[tk.n - 1];
    for (int32_t i = 0; i < tk.n; i++)
        if (tk.ids[i] >= info->vocab_size) {
            rc = rf_err_set(err, RF_EINVAL,
                            "text encoder: token '%s' has id %d, past the model's %d embeddings (vocab and model differ)",
                            rf_vocab_token(vocab, tk.ids[i]), tk.ids[i], info->vocab_size);
            rf_tokens_free(&tk);
            return rc;
        }
    if (take_tokens(&tk, out)) {
        rf_tokens_free(&tk);
        rf_text_encoding_free(out);
        return rf_err_set(err, RF_ENOMEM, "text encoder: out of memory");
    }
    rf_tokens_free(&tk);

    int32_t N = out->n, T = (N < W ? N : W) + 2;
    int32_t windows = N <= W ? 1 : 1 + (N - W + S - 1) / S;
    int32_t pad = rf_vocab_id(vocab, "[PAD]", 5);
    if (pad < 0 || pad >= info->vocab_size)
        pad = 0; /* masked out: any valid id will do */
    out->hidden = hidden;
    out->windows = windows;
    out->tokens = calloc((size_t)(N > 0 ? N : 1) * (size_t)hidden, sizeof(float));
    out->document = calloc((size_t)hidden, sizeof(float));
    float *cls_state = malloc((size_t)windows * (size_t)hidden * sizeof(float));
    int32_t *best = malloc((size_t)(N > 0 ? N : 1) * sizeof(int32_t));   /* context of the chosen window */
    int32_t *owner = malloc((size_t)(N > 0 ? N : 1) * sizeof(int32_t));  /* the chosen window */
    int32_t *ids = malloc((size_t)batch * (size_t)T * sizeof(int32_t));
    int32_t *mask = malloc((size_t)batch * (size_t)T * sizeof(int32_t));
    int32_t *types = calloc((size_t)batch * (size_t)T, sizeof(int32_t));
    if (!out->tokens || !out->document || !cls_state || !best || !owner || !ids || !mask || !types) {
        rc = rf_err_set(err, RF_ENOMEM, "text encoder: out of memory for %d tokens", N);
        goto done;
    }
    for (int32_t j = 0; j < N; j++)
        best[j] = -1;

    for (int32_t w0 = 0; w0 < windows; w0 += batch) {
        int32_t b = windows - w0 < batch ? windows - w0 : batch;
        for (int32_t k = 0; k < b; k++) {
            int32_t start = (w0 + k) * S, n = N - start < W ? N - start : W;
            int32_t *row = ids + (size_t)k * T, *m = mask + (size_t)k * T;
            row[0] = cls;
            memcpy(row + 1, out->ids + start, (size_t)n * sizeof(int32_t));
            row[n + 1] = sep;
            for (int32_t t = 0; t < T; t++) {
                m[t] = t < n + 2;
                if (t >= n + 2)
                    row[t] = pad;
            }
        }
        int64_t shape[2] = {b, T};
        rf_tensor tid = rf_tensor_make(RF_I32, ids, 2, shape), tmask = rf_tensor_make(RF_I32, mask, 2, shape),
                  ttype = rf_tensor_make(RF_I32, types, 2, shape);
        rf_model_inputs in = {.input_ids = &tid, .attention_mask = &tmask, .token_type_ids = &ttype};
        rf_model_outputs o;
        if ((rc = rf_model_forward(model, &in, &o, err)))
            goto done;
        const float *h = o.last_hidden_state.data;
        for (int32_t k = 0; k < b; k++) {
            int32_t w = w0 + k, start = w * S, n = N - start < W ? N - start : W;
            const float *base = h + (size_t)k * (size_t)T * (size_t)hidden;
            memcpy(cls_state + (size_t)w * hidden, base, (size_t)hidden * sizeof(float));
            for (int32_t i = 0; i < n; i++) {
                int32_t j = start + i, ctx = i < n - 1 - i ? i : n - 1 - i;
                if (ctx > best[j]) { /* strictly more context: the earlier window wins ties */
                    best[j] = ctx;
                    owner[j] = w;
                    memcpy(out->tokens + (size_t)j * hidden, base + (size_t)(i + 1) * hidden,
                           (size_t)hidden * sizeof(float));
                }
            }
        }
        rf_model_outputs_free(&o);
    }
    if (N == 0) {
        memcpy(out->document, cls_state, (size_t)hidden * sizeof(float));
    } else {
        /* sum in double: a long note has many windows */
        double *acc = calloc((size_t)hidden, sizeof(double));
        if (!acc) {
            rc = rf_err_set(err, RF_ENOMEM, "text encoder: out of memory");
            goto done;
        }
        for (int32_t j = 0; j < N; j++)
            for (int32_t c = 0; c < hidden; c++)
                acc[c] += cls_state[(size_t)owner[j] * hidden + c];
        for (int32_t c = 0; c < hidden; c++)
            out->document[c] = (float)(acc[c] / N);
        free(acc);
    }
done:
    free(cls_state);
    free(best);
    free(owner);
    free(ids);
    free(mask);
    free(types);
    if (rc)
        rf_text_encoding_free(out);
    return rc;
}
