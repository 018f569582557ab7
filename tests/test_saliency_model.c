/*
 * Saliency of whole fusion models (rf_saliency_run), on models built for the
 * purpose from the random model maker's directories with some weights set
 * by hand:
 *  - a "quadrant" model whose finding reads only the top-left image
 *    quadrant: identity vision blocks, a vision position embedding that
 *    marks the quadrant's patches, pooling to 2x2 cells (one per quadrant),
 *    and a fusion block whose CLS query attends only to the marked cell
 *    (score gap > 50) and copies its brightness feature to the head. Its
 *    occlusion map puts >= 90% of its positive mass on the quadrant's
 *    patches (the patch-grid map, batched through rf_fusion_forward_batch)
 *    and its peak there on the original grid, although a brighter object
 *    sits outside; its Grad-CAM map concentrates there (>= 90%); rollout's
 *    map gives the quadrant the largest share; the image carries all of the
 *    input weight;
 *  - a "token" model whose finding reads only the text token "pneumonia":
 *    identity BERT blocks, that token's word embedding marked, a text
 *    projection reading the mark, a fusion block attending to it. The top
 *    span is the word "pneumonia" in the note, with weight 1, and no other
 *    span passes the 0.05 floor;
 *  - Grad-CAM of a random model against central differences of the
 *    model's own forward pass (check_gradcam_fd says how);
 *  - random models (joint and cross attention, with images, a prior, notes
 *    and labs): every method runs; maps are on the original grid in [0, 1]
 *    with the peak at a 1; spans lie inside their notes with the top
 *    |weight| 1; input weights sum to 1; and the text rows' gradient x
 *    input equals central differences of the model's own forward pass on
 *    the backend when a text state is scaled by 1 +- 1e-2 (|error| <=
 *    2e-3 + 1e-2 |value|): the fusion backward, the layout and the offsets
 *    checked against the model itself.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fusion/fusion_model.h"
#include "radfuse/saliency.h"
#include "tests/model_maker.h"
#include "tests/quadrant_model.h"
#include "tests/testutil.h"

/* The token the text model reads: "pneumonia" in the shared vocabulary. */
#define TARGET_CH 5

static void make_token_model(const char *dir, int32_t target)
{
    rf_fusion_random_opts o;
    test_model_defaults(&o);
    o.inline_sections = 1;
    o.with_text = 1;
    o.max_text_tokens = 48;
    o.nlabels = 2; /* a one-label head [1, D] is refused by the loader at present */
    test_make_model(dir, &o);
    qm_weights w;
    qm_load(&w, dir);
    /* BERT whose blocks add nothing and whose norms are plain: a token's
     * state depends on its own embedding only */
    char n[128];
    qm_fill(&w, "text.embeddings.LayerNorm.weight", 32, 1.0f);
    qm_zero(&w, "text.embeddings.LayerNorm.bias", 32);
    for (int l = 0; l < 2; l++) {
        const char *z[] = {"attention.output.dense.weight", "attention.output.dense.bias", "output.dense.weight",
                           "output.dense.bias"};
        int64_t sz[] = {32 * 32, 32, 32 * 64, 32};
        for (int i = 0; i < 4; i++) {
            snprintf(n, sizeof n, "text.encoder.layer.%d.%s", l, z[i]);
            qm_zero(&w, n, sz[i]);
        }
        snprintf(n, sizeof n, "text.encoder.layer.%d.attention.output.LayerNorm.weight", l);
        qm_fill(&w, n, 32, 1.0f);
        snprintf(n, sizeof n, "text.encoder.layer.%d.attention.output.LayerNorm.bias", l);
        qm_zero(&w, n, 32);
        snprintf(n, sizeof n, "text.encoder.layer.%d.output.LayerNorm.weight", l);
        qm_fill(&w, n, 32, 1.0f);
        snprintf(n, sizeof n, "text.encoder.layer.%d.output.LayerNorm.bias", l);
        qm_zero(&w, n, 32);
    }
    float *emb = qm_w(&w, "text.embeddings.word_embeddings.weight", 3759 * 32);
    emb[(int64_t)target * 32 + TARGET_CH] += 30.0f;
    /* text rows: the base vector plus the mark on channel 3 */
    float *tp = qm_w(&w, "fusion.text_proj.weight", QM_DF * 32);
    memset(tp, 0, sizeof(float) * QM_DF * 32);
    tp[3 * 32 + TARGET_CH] = 1.0f;
    qm_base_vector(qm_w(&w, "fusion.text_proj.bias", QM_DF), 1.0f);
    qm_fusion_reader(&w, 3, 3, 200.0f);
    float gain[2] = {10.0f, 5.0f}, bias[2] = {-5.0f, 0.0f};
    qm_head(&w, 2, gain, bias);
    qm_save(&w, dir);
}

/* ---- checks shared by every run ---- */

static void check_result(const rf_saliency_result *r, const rf_fusion_study *s, const int *rows, const int *cols,
                         const char *what)
{
    for (int j = 0; j < r->nfindings; j++) {
        const rf_saliency_finding *f = &r->findings[j];
        CHECKF((int)f->nmaps == s->nimages || (!f->maps && f->nmaps == 0), "%s: %zu maps", what, f->nmaps);
        for (size_t i = 0; i < f->nmaps; i++) {
            const rf_result_map *m = &f->maps[i];
            CHECK(m->image == i && m->values);
            size_t n = (size_t)rows[i] * cols[i];
            float mx = 0;
            int bad = 0;
            for (size_t k = 0; k < n; k++) {
                bad += !(m->values[k] >= 0 && m->values[k] <= 1);
                mx = fmaxf(mx, m->values[k]);
            }
            CHECKF(bad == 0, "%s: %d map values outside [0, 1]", what, bad);
            CHECK(m->peak_row >= 0 && m->peak_row < rows[i] && m->peak_col >= 0 && m->peak_col < cols[i]);
            CHECK(m->values[(size_t)m->peak_row * cols[i] + m->peak_col] == mx);
            CHECK(mx == 1.0f || mx == 0.0f);
        }
        double sum = 0;
        for (int k = 0; k < RF_MODALITY_COUNT; k++) {
            CHECK(f->input_weight[k] >= 0);
            sum += f->input_weight[k];
        }
        CHECKF(fabs(sum - 1) < 1e-9, "%s: input weights sum to %g", what, sum);
        float top = 0;
        for (size_t k = 0; k < f->nspans; k++) {
            const rf_result_span *sp = &f->spans[k];
            CHECK((int)sp->note < s->nnotes && sp->begin < sp->end);
            if ((int)sp->note < s->nnotes) {
                const rf_text_encoding *e = &s->notes[sp->note];
                int inside = 0;
                for (int t = 0; t < e->n; t++)
                    inside |= (size_t)e->byte_start[t] <= sp->begin && sp->end <= (size_t)e->byte_end[e->n - 1];
                CHECK(inside);
            }
            CHECK(fabsf(sp->weight) <= 1.0f + 1e-6f);
            if (k)
                CHECK(fabsf(sp->weight) <= fabsf(f->spans[k - 1].weight));
            top = fmaxf(top, fabsf(sp->weight));
        }
        if (f->nspans)
            CHECKF(fabsf(top - 1.0f) < 1e-6f, "%s: top span weight %g", what, (double)top);
    }
}

/* ---- the quadrant model ---- */

/* [3, 64, 64]: the top-left quadrant bright, each of its patches at its own
 * level (Grad-CAM weighs channels, so it sees a patch above its quadrant's
 * mean); noise elsewhere; distractor: a brighter block at patch (3, 3). */
static float *quadrant_image(int distractor)
{
    float *img = test_falloc(3 * 64 * 64);
    test_fill_random(img, 3 * 64 * 64, 11, 0.05f);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++) {
                float *v = &img[(c * 64 + y) * 64 + x];
                if (y < 32 && x < 32)
                    *v += 1.0f + 0.5f * ((y / 16) * 2 + x / 16);
                if (distractor && y >= 48 && x >= 48)
                    *v += 3.0f;
            }
    return img;
}

typedef struct occ_fusion {
    rf_fusion *f;
    const rf_fusion_study *s;
    int calls, largest;
} occ_fusion;

static int score_fusion(void *ctx, const float *variants, int B, float *probs, rf_err *err)
{
    occ_fusion *c = ctx;
    c->calls++;
    if (B > c->largest)
        c->largest = B;
    rf_fusion_output out;
    int rc = rf_fusion_forward_batch(c->f, c->s, 0, variants, B, &out, err);
    if (!rc)
        memcpy(probs, out.probabilities, sizeof(float) * (size_t)B * out.nlabels);
    rf_fusion_output_free(&out);
    return rc;
}

/* Share of the positive mass of a rows x cols map in its top-left quarter. */
static double quarter_share(const float *m, int rows, int cols, int which)
{
    double in = 0, all = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double v = fmax(0, m[(size_t)r * cols + c]);
            all += v;
            int q = (r >= rows / 2) * 2 + (c >= cols / 2);
            if (q == which)
                in += v;
        }
    return all > 0 ? in / all : 0;
}

static void check_quadrant(rf_backend *be, const char *dir)
{
    rf_fusion *f;
    rf_err err;
    if (rf_fusion_load(&f, dir, be, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    for (int distractor = 0; distractor < 2; distractor++) {
        float *img = quadrant_image(distractor);
        rf_fusion_study s = {.height = 64, .width = 64, .images = img, .nimages = 1};
        rf_fusion_output out;
        CHECK(rf_fusion_forward(f, &s, &out, &err) == 0);
        printf("quadrant model: p = %g, %g (logits %g, %g)\n", out.probabilities[0], out.probabilities[1],
               out.logits[0], out.logits[1]);
        CHECK(out.probabilities[0] > 0.2 && out.probabilities[0] < 0.99);

        /* occlusion on the patch grid, through the model's batched forward */
        occ_fusion oc = {f, &s, 0, 0};
        float maps[2 * QM_NPATCH];
        CHECK(rf_saliency_occlusion(img, 3, 64, 64, 16, 1, 1, 5, 2, out.probabilities, score_fusion, &oc, maps,
                                    &err) == 0);
        CHECKF(oc.calls == 4 && oc.largest == 5, "occlusion: %d calls, largest batch %d", oc.calls, oc.largest);
        for (int k = 0; k < 2; k++) {
            double share = quarter_share(maps + k * QM_NPATCH, QM_GRID, QM_GRID, 0);
            printf("quadrant model%s, label %d: occlusion share %.4f\n", distractor ? " with a distractor" : "", k,
                   share);
            CHECKF(share >= 0.9, "occlusion puts %.3f of its mass on the quadrant", share);
        }
        /* the same through rf_saliency_run: on a 4x4 "original" grid, which
         * the model's stretch to 64x64 maps onto the patch centres (the map
         * is the patch-grid map), and on a 128x128 one, smoothed */
        for (int g = 0; g < 2; g++) {
            int rows[1] = {g ? 128 : 4}, cols[1] = {g ? 128 : 4};
            rf_saliency_method methods[3] = {RF_SALIENCY_OCCLUSION, RF_SALIENCY_GRADCAM, RF_SALIENCY_ROLLOUT};
            for (int mi = 0; mi < (distractor ? 1 : 3); mi++) {
                rf_saliency_opts o;
                rf_saliency_opts_init(&o);
                o.method = methods[mi];
                o.occlusion_batch = 7;
                o.sigma = g ? 0.0f : -1.0f;
                rf_saliency_result r;
                int rc = rf_saliency_run(f, &s, rows, cols, &o, &r, &err);
                CHECKF(rc == 0, "%s: %s", rf_saliency_method_name(o.method), err.msg);
                if (rc)
                    continue;
                check_result(&r, &s, rows, cols, rf_saliency_method_name(o.method));
                for (int k = 0; k < r.nfindings; k++) {
                    const rf_result_map *m = &r.findings[k].maps[0];
                    double q[4];
                    for (int i = 0; i < 4; i++)
                        q[i] = quarter_share(m->values, rows[0], cols[0], i);
                    printf("quadrant model%s, label %d, %s on %dx%d%s: quadrant shares %.3f %.3f %.3f %.3f, peak "
                           "(%d, %d)\n",
                           distractor ? " with a distractor" : "", k, rf_saliency_method_name(o.method), rows[0],
                           cols[0], g ? " smoothed" : "", q[0], q[1], q[2], q[3], m->peak_row, m->peak_col);
                    CHECKF(r.findings[k].input_weight[RF_MODALITY_IMAGE] > 0.999, "image input weight %g",
                           r.findings[k].input_weight[RF_MODALITY_IMAGE]);
                    if (o.method == RF_SALIENCY_ROLLOUT) {
                        /* not class specific: the quadrant leads, no more */
                        CHECK(q[0] > q[1] && q[0] > q[2] && q[0] > q[3]);
                        continue;
                    }
                    CHECK(m->peak_row < rows[0] / 2 && m->peak_col < cols[0] / 2);
                    if (!g)
                        CHECKF(q[0] >= 0.9, "%s puts %.3f of its mass on the quadrant",
                               rf_saliency_method_name(o.method), q[0]);
                    else /* smoothing and bilinear reading spread it over the edges */
                        CHECK(q[0] >= 0.6);
                }
                rf_saliency_result_free(&r);
            }
        }
        rf_fusion_output_free(&out);
        free(img);
    }
    rf_fusion_free(f);
}

/* ---- the token model ---- */

static void check_token(rf_backend *be, const char *dir)
{
    rf_fusion *f;
    rf_err err;
    if (rf_fusion_load(&f, dir, be, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    const char *note = "Cough and fever for three days; chest film suggests pneumonia in the left lower lobe.";
    rf_text_encoding enc;
    CHECK(rf_fusion_encode_note(f, note, strlen(note), &enc, &err) == 0);
    rf_fusion_study s = {.notes = &enc, .nnotes = 1};
    rf_saliency_opts o;
    rf_saliency_opts_init(&o);
    o.method = RF_SALIENCY_NONE;
    rf_saliency_result r;
    int rc = rf_saliency_run(f, &s, NULL, NULL, &o, &r, &err);
    CHECKF(rc == 0, "token model: %s", err.msg);
    if (!rc) {
        check_result(&r, &s, NULL, NULL, "token model");
        const rf_saliency_finding *fi = &r.findings[0];
        const char *at = strstr(note, "pneumonia");
        CHECKF(fi->nspans == 1, "token model: %zu spans", fi->nspans);
        if (fi->nspans >= 1) {
            printf("token model: top span \"%.*s\" weight %g (%zu spans)\n",
                   (int)(fi->spans[0].end - fi->spans[0].begin), note + fi->spans[0].begin,
                   (double)fi->spans[0].weight, fi->nspans);
            CHECK(fi->spans[0].begin == (size_t)(at - note) && fi->spans[0].end == (size_t)(at - note) + 9);
            CHECK(fi->spans[0].weight == 1.0f);
        }
        CHECK(fi->input_weight[RF_MODALITY_TEXT] > 0.999);
    }
    rf_saliency_result_free(&r);
    rf_text_encoding_free(&enc);
    rf_fusion_free(f);
}

static double logit_of(rf_fusion *f, const rf_fusion_study *s, int k);

/* ---- Grad-CAM against the model's own forward pass ---- */

/*
 * A random model whose first vision block adds nothing and whose patch
 * embedding gives channel e the mean of the 24 inputs i with i % 32 == e:
 * the last block's input token t is then act_t = W px_t + b + pos_t, and
 * adding the pixel pattern u(v) (u_i = v[i % 32]) to every patch moves
 * every token by v. So the Grad-CAM value of token t before its ReLU,
 * alpha . act_t = (1/N) sum_s grad_s . act_t, is (1/N) times the
 * derivative of the logit along u(act_t) over all patches: central
 * differences of rf_fusion_forward on the backend. The maps (ReLU, divided
 * by the maximum) must agree to 1e-2.
 */
static void check_gradcam_fd(rf_backend *be)
{
    char dir[256];
    rf_fusion_random_opts o;
    test_model_defaults(&o);
    o.inline_sections = 1;
    o.with_text = 0;
    o.seed = 3;
    test_make_model_tmp(dir, sizeof dir, &o);
    qm_weights w;
    qm_load(&w, dir);
    float *pw = qm_w(&w, "vision.embeddings.patch_embeddings.projection.weight", QM_DV * 768);
    for (int e = 0; e < QM_DV; e++)
        for (int i = 0; i < 768; i++)
            pw[e * 768 + i] = i % QM_DV == e ? 1.0f / 24 : 0.0f;
    qm_zero(&w, "vision.encoder.layer.0.attention.output.dense.weight", QM_DV * QM_DV);
    qm_zero(&w, "vision.encoder.layer.0.attention.output.dense.bias", QM_DV);
    qm_zero(&w, "vision.encoder.layer.0.output.dense.weight", QM_DV * QM_IV);
    qm_zero(&w, "vision.encoder.layer.0.output.dense.bias", QM_DV);
    float pb[QM_DV], pos[(1 + QM_NPATCH) * QM_DV];
    memcpy(pb, qm_w(&w, "vision.embeddings.patch_embeddings.projection.bias", QM_DV), sizeof pb);
    memcpy(pos, qm_w(&w, "vision.embeddings.position_embeddings", (1 + QM_NPATCH) * QM_DV), sizeof pos);
    qm_save(&w, dir);
    rf_fusion *f;
    rf_err err;
    if (rf_fusion_load(&f, dir, be, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    float *img = test_falloc(3 * 64 * 64), *var = test_falloc(3 * 64 * 64);
    test_fill_random(img, 3 * 64 * 64, 31, 1.0f);
    rf_fusion_study s = {.height = 64, .width = 64, .images = img, .nimages = 1};
    int rows[1] = {4}, cols[1] = {4};
    rf_saliency_opts so;
    rf_saliency_opts_init(&so);
    so.sigma = -1;
    rf_saliency_result r;
    CHECK(rf_saliency_run(f, &s, rows, cols, &so, &r, &err) == 0);
    double worst = 0;
    int lit = 0;
    for (int k = 0; k < r.nfindings; k++) {
        double fd[QM_NPATCH], mx = 0;
        for (int t = 0; t < QM_NPATCH; t++) {
            /* act_t from the pixels of patch t */
            int py = t / QM_GRID, px = t % QM_GRID;
            double act[QM_DV] = {0};
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < 16; y++)
                    for (int x = 0; x < 16; x++) {
                        int i = c * 256 + y * 16 + x;
                        act[i % QM_DV] += img[(c * 64 + py * 16 + y) * 64 + px * 16 + x] / 24.0;
                    }
            for (int e = 0; e < QM_DV; e++)
                act[e] += pb[e] + pos[(1 + t) * QM_DV + e];
            double z[2];
            const double eps = 1e-2;
            for (int sgn = 0; sgn < 2; sgn++) {
                for (int c = 0; c < 3; c++)
                    for (int y = 0; y < 64; y++)
                        for (int x = 0; x < 64; x++) {
                            int i = c * 256 + (y % 16) * 16 + x % 16;
                            var[(c * 64 + y) * 64 + x] =
                                img[(c * 64 + y) * 64 + x] + (float)((sgn ? -eps : eps) * act[i % QM_DV]);
                        }
                rf_fusion_study sv = s;
                sv.images = var;
                z[sgn] = logit_of(f, &sv, k);
            }
            fd[t] = fmax(0, (z[0] - z[1]) / (2 * eps) / QM_NPATCH);
            mx = fmax(mx, fd[t]);
        }
        const float *m = r.findings[k].maps[0].values;
        lit += mx > 0;
        for (int t = 0; t < QM_NPATCH; t++) {
            double want = mx > 0 ? fd[t] / mx : 0;
            worst = fmax(worst, fabs(m[t] - want));
        }
    }
    printf("Grad-CAM vs central differences of the model: max abs difference of the maps %.3g\n", worst);
    CHECKF(worst <= 1e-2, "Grad-CAM differs from the model's finite differences by %g", worst);
    CHECKF(lit >= 3, "only %d of %d findings have a nonzero Grad-CAM map", lit, r.nfindings);
    rf_saliency_result_free(&r);
    free(img);
    free(var);
    rf_fusion_free(f);
}

/* ---- random models ---- */

static double logit_of(rf_fusion *f, const rf_fusion_study *s, int k)
{
    rf_fusion_output out;
    rf_err err;
    if (rf_fusion_forward(f, s, &out, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    double z = out.logits[k];
    rf_fusion_output_free(&out);
    return z;
}

static double g_fd_worst;

static void check_random(rf_backend *be, int cross)
{
    char dir[256];
    rf_fusion_random_opts o;
    test_model_defaults(&o);
    o.cross_attention = cross;
    o.seed = 7 + cross;
    o.max_text_tokens = 24;
    test_make_model_tmp(dir, sizeof dir, &o);
    rf_fusion *f;
    rf_err err;
    if (rf_fusion_load(&f, dir, be, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    const char *notes[2] = {"No acute findings. Mild pneumonia cannot be excluded.",
                            "Fever and cough; oxygen saturation 91% on room air."};
    rf_text_encoding enc[2];
    for (int i = 0; i < 2; i++)
        CHECK(rf_fusion_encode_note(f, notes[i], strlen(notes[i]), &enc[i], &err) == 0);
    float *img = test_falloc(2 * 3 * 64 * 64), *prior = test_falloc(3 * 64 * 64);
    test_fill_random(img, 2 * 3 * 64 * 64, 21, 1.0f);
    test_fill_random(prior, 3 * 64 * 64, 22, 1.0f);
    rf_lab_token labs[3];
    memset(labs, 0, sizeof labs);
    for (int j = 0; j < 3; j++) {
        labs[j].lab = 3 + 5 * j;
        for (int k = 0; k < RF_LAB_TOKEN_FEATURES; k++)
            labs[j].features[k] = 0.3f * (float)(j - k) / 4;
    }
    rf_fusion_study s = {.height = 64, .width = 64, .images = img, .nimages = 2, .priors = prior, .npriors = 1,
                         .prior_days = 40, .notes = enc, .nnotes = 2, .labs = labs, .nlabs = 3};
    int rows[2] = {100, 64}, cols[2] = {80, 64};
    rf_saliency_method methods[4] = {RF_SALIENCY_NONE, RF_SALIENCY_GRADCAM, RF_SALIENCY_ROLLOUT,
                                     RF_SALIENCY_OCCLUSION};
    for (int mi = 0; mi < 4; mi++) {
        rf_saliency_opts so;
        rf_saliency_opts_init(&so);
        so.method = methods[mi];
        so.occlusion_window = 2;
        rf_saliency_result r;
        int rc = rf_saliency_run(f, &s, rows, cols, &so, &r, &err);
        CHECKF(rc == 0, "%s attention, %s: %s", cross ? "cross" : "joint", rf_saliency_method_name(methods[mi]),
               err.msg);
        if (!rc) {
            CHECK(r.nfindings == 5);
            check_result(&r, &s, rows, cols, rf_saliency_method_name(methods[mi]));
            for (int k = 0; k < r.nfindings; k++)
                for (int m = 0; m < RF_MODALITY_COUNT; m++)
                    CHECK(r.findings[k].input_weight[m] > 0); /* every input is used */
        }
        if (!rc && mi == 0) {
            /* gradient x input of text rows against the model's forward */
            double worst = 0;
            for (int k = 0; k < 5; k += 2) {
                const rf_saliency_finding *fi = &r.findings[k];
                int j = 0;
                for (int n = 0; n < 2; n++)
                    for (int t = -1; t < enc[n].n && j < fi->ntext_attr; t++, j++) {
                        if (t >= 0 && t % 3) /* every third token, and every document vector */
                            continue;
                        float *v = t < 0 ? enc[n].document : enc[n].tokens + (int64_t)t * enc[n].hidden;
                        float *keep = test_falloc(enc[n].hidden);
                        memcpy(keep, v, sizeof(float) * (size_t)enc[n].hidden);
                        const double eps = 1e-2;
                        for (int c = 0; c < enc[n].hidden; c++)
                            v[c] = (float)(keep[c] * (1 + eps));
                        double up = logit_of(f, &s, k);
                        for (int c = 0; c < enc[n].hidden; c++)
                            v[c] = (float)(keep[c] * (1 - eps));
                        double down = logit_of(f, &s, k);
                        memcpy(v, keep, sizeof(float) * (size_t)enc[n].hidden);
                        free(keep);
                        double num = (up - down) / (2 * eps), a = fi->text_attr[j];
                        double e = fabs(num - a);
                        worst = fmax(worst, e / (2e-3 + 1e-2 * fabs(num)));
                        CHECKF(e <= 2e-3 + 1e-2 * fabs(num), "%s: finding %d, note %d token %d: %.6g vs %.6g",
                               cross ? "cross" : "joint", k, n, t, a, num);
                    }
            }
            g_fd_worst = fmax(g_fd_worst, worst);
        }
        rf_saliency_result_free(&r);
    }
    /* bad arguments give an error, never a crash */
    rf_saliency_opts so;
    rf_saliency_opts_init(&so);
    so.finding = 9;
    rf_saliency_result r;
    CHECK(rf_saliency_run(f, &s, rows, cols, &so, &r, &err) == RF_EINVAL);
    rf_saliency_result_free(&r);
    so.finding = 1;
    int zero_rows[2] = {0, 0};
    CHECK(rf_saliency_run(f, &s, zero_rows, cols, &so, &r, &err) == RF_EINVAL);
    rf_saliency_result_free(&r);
    so.finding = 1;
    CHECK(rf_saliency_run(f, &s, rows, cols, &so, &r, &err) == 0 && r.nfindings == 1 && r.findings[0].label == 1);
    rf_saliency_result_free(&r);

    for (int i = 0; i < 2; i++)
        rf_text_encoding_free(&enc[i]);
    free(img);
    free(prior);
    rf_fusion_free(f);
}

int main(void)
{
    rf_backend *be;
    rf_err err;
    if (rf_backend_create(&be, "cpu", 2, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        return 1;
    }
    char dir[256];
    test_tmpdir(dir, sizeof dir);
    test_make_quadrant_model(dir);
    check_quadrant(be, dir);

    rf_vocab *vocab;
    CHECK(rf_vocab_load(test_shared_vocab(), &vocab, &err) == 0);
    int32_t target = rf_vocab_id(vocab, "pneumonia", 9);
    CHECK(target > 0);
    rf_vocab_free(vocab);
    char dir2[256];
    test_tmpdir(dir2, sizeof dir2);
    make_token_model(dir2, target);
    check_token(be, dir2);

    check_gradcam_fd(be);
    check_random(be, 0);
    check_random(be, 1);
    printf("text gradient x input vs central differences: worst error / tolerance %.3g\n", g_fd_worst);
    rf_backend_destroy(be);
    return test_finish("test_saliency_model");
}
