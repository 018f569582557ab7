/*
 * radfuse saliency: where a fusion model's finding comes from. Three image
 * methods and one text method:
 *   - Grad-CAM on the last vision block: the gradient of a finding's logit
 *     through the head, the final norm, the fusion blocks, the image
 *     projection and pooling, the vision final norm and the last vision
 *     block (host backward passes, fusion/grad.h), to the last block's input
 *     tokens; map = ReLU(sum_c mean_tokens(grad_c) act_c) per patch;
 *   - attention rollout over the vision blocks (0.5 identity mix, rows
 *     renormalized), carried through the fusion blocks' rollout from the
 *     fusion CLS row to the image tokens;
 *   - occlusion: patch-aligned windows of the preprocessed image replaced by
 *     its per-channel mean, scored in batches by the fusion model (on the
 *     GPU when the model runs there); the drop in probability per window,
 *     averaged per patch;
 *   - text: gradient x input of the text encoder states (the inputs of the
 *     fusion's text projection), merged per word and mapped to byte spans
 *     of the notes.
 * Gradient x input summed per modality gives each finding's input_weight.
 * Maps are placed on each image's original pixel grid through the inverse of
 * the preprocessing geometry, smoothed with a Gaussian by FFT (FFTW),
 * normalized to [0, 1], with the peak's location.
 *
 * FFTW's planner is not thread safe: the smoothing creates and destroys its
 * plans (FFTW_ESTIMATE) on the calling thread and forgets FFTW's wisdom
 * afterwards, so no two threads of a process may run it, or any other FFTW
 * planning, at the same time.
 *
 * Conventions as in runtime.h: 0 or an RF_E* code with one line in rf_err;
 * no global state of radfuse's own (FFTW's planner, above, is the exception).
 */
#ifndef RADFUSE_SALIENCY_H
#define RADFUSE_SALIENCY_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/fusion.h"
#include "radfuse/preprocess.h"
#include "radfuse/result.h"
#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum rf_saliency_method {
    RF_SALIENCY_NONE = 0,
    RF_SALIENCY_GRADCAM,
    RF_SALIENCY_ROLLOUT,
    RF_SALIENCY_OCCLUSION,
} rf_saliency_method;

/* "none", "gradcam", "rollout", "occlusion". */
const char *rf_saliency_method_name(rf_saliency_method m);
/* The method of a name above; RF_EINVAL naming the choices otherwise. */
int rf_saliency_method_parse(const char *name, rf_saliency_method *out, rf_err *err);

typedef struct rf_saliency_opts {
    rf_saliency_method method;
    int finding;            /* label index, or -1: every finding */
    /* Gaussian smoothing of the maps, sigma in original pixels; 0: half of
     * a patch's footprint on the original image; < 0: no smoothing */
    float sigma;
    int occlusion_window;   /* occluding window side, in patches (1) */
    int occlusion_stride;   /* window step, in patches (1) */
    int occlusion_batch;    /* variants per batched forward pass (16) */
    int max_spans;          /* text spans kept per finding, by |weight| (32) */
    float min_span_weight;  /* spans with |weight| below this are dropped (0.05) */
} rf_saliency_opts;

void rf_saliency_opts_init(rf_saliency_opts *o);

/* One finding's evidence. maps[i] is study image i (priors have none), its
 * .image = i; spans[j].note indexes the study's notes (rf_fusion_study). */
typedef struct rf_saliency_finding {
    int label;
    double logit, probability;
    rf_result_map *maps;
    size_t nmaps;
    rf_result_span *spans; /* by decreasing |weight| */
    size_t nspans;
    double input_weight[RF_MODALITY_COUNT];
    /* gradient x input of each text row of the fusion sequence, in layout
     * order (rf_fusion_layout: a note's document vector, then its tokens),
     * before merging and normalization; NULL when text is absent */
    double *text_attr;
    int ntext_attr;
} rf_saliency_finding;

typedef struct rf_saliency_result {
    rf_saliency_finding *findings;
    int nfindings;
} rf_saliency_result;

/*
 * Runs o->method (RF_SALIENCY_NONE: input weights and text spans only) for
 * one finding or all, on study s as rf_fusion_forward takes it. rows[i] x
 * cols[i] is study image i's original grid (what the preprocessing took).
 * Gradient methods need the weights in fp32 (RF_EUNSUP otherwise, saying
 * so). *out is zeroed first; free it with rf_saliency_result_free, also
 * after a failure.
 */
int rf_saliency_run(rf_fusion *f, const rf_fusion_study *s, const int *rows, const int *cols,
                    const rf_saliency_opts *o, rf_saliency_result *out, rf_err *err);
void rf_saliency_result_free(rf_saliency_result *r);

/* ---- map geometry ---- */

/*
 * A map over the model input (mh x mw cells evenly covering the in_h x in_w
 * preprocessed image: the patch grid, or one cell per pixel) onto the
 * original rows x cols grid that g (rf_preprocess_geometry) placed in the
 * input: original pixel centre (r + 0.5, c + 0.5) lands at input
 * ((r + 0.5) resized_h / rows + top, (c + 0.5) resized_w / cols + left), and
 * the map is read there bilinearly between cell centres (clamped at the
 * grid's edges). Pixels the crop cut away get 0. out: rows * cols.
 */
int rf_saliency_to_original(const float *map, int mh, int mw, int in_h, int in_w, const rf_preprocess_geom *g,
                            int rows, int cols, float *out, rf_err *err);

/* Gaussian smoothing of img (rows x cols) in place by FFT (r2c, product with
 * the kernel's transform, c2r): the kernel is sampled, truncated at
 * ceil(4 sigma) and normalized; the image is zero padded (no wrap-around)
 * and the result divided by the kernel mass inside the image, so borders
 * are not darkened. sigma <= 0 leaves img as it is. */
int rf_saliency_smooth(float *img, int rows, int cols, float sigma, rf_err *err);

/* Negative values to 0, then divided by the maximum (an all-zero map stays
 * zero); the peak is the first maximum in row-major order. */
void rf_saliency_normalize(float *img, int rows, int cols, int *peak_row, int *peak_col);

/* ---- method cores, on plain host arrays ---- */

/* Grad-CAM over n tokens of width c (act and grad [n, c]):
 * map[t] = max(0, sum_j mean_t'(grad[t', j]) act[t, j]). */
int rf_saliency_gradcam(const double *act, const double *grad, int n, int c, float *map, rf_err *err);

/*
 * Attention rollout of L layers of attention probs[l] [H, T, T] (rows sum to
 * 1, or 0 for fully masked rows): A_l = mean over heads, then 0.5 A_l +
 * 0.5 I, rows renormalized to sum 1; rollout = A_L ... A_1 into out [T, T]
 * (row t: how much of token t's final state comes from each input token).
 */
int rf_saliency_rollout(const double *const *probs, int L, int H, int T, double *out, rf_err *err);
/* One layer of the vector form: v [T] = v^T (0.5 mean_h(probs) + 0.5 I),
 * rows renormalized (probs [H, T, T]). Walking the layers from the last to
 * the first gives w^T rollout. */
int rf_saliency_rollout_step(const double *probs, int H, int T, double *v, rf_err *err);
/* w^T rollout for a weighting w [T] of the final tokens (w = e_0: the CLS
 * row), into out [T], in O(L T^2) without the T x T product. */
int rf_saliency_rollout_row(const double *const *probs, int L, int H, int T, const double *w, double *out,
                            rf_err *err);

/* The scoring callback of occlusion: probabilities [B, nlabels] of B
 * variants [B, C, H, W] of one preprocessed image. */
typedef int (*rf_saliency_score_fn)(void *ctx, const float *variants, int B, float *probs, rf_err *err);

/*
 * Occlusion of image [C, H, W] (H, W multiples of patch): windows of
 * window x window patches every stride patches (the last window of a side
 * moved back to end at the image's edge), each filled with the image's
 * per-channel mean, scored batch at a time; maps[k * gh * gw + cell] =
 * mean over the windows covering patch cell of (base[k] - p_k(window)),
 * for the nlabels findings, gh = H / patch, gw = W / patch.
 */
int rf_saliency_occlusion(const float *image, int C, int H, int W, int patch, int window, int stride, int batch,
                          int nlabels, const float *base, rf_saliency_score_fn score, void *ctx, float *maps,
                          rf_err *err);

/*
 * Token attributions to word spans: token i of note note[i] spans bytes
 * [bstart[i], bend[i]) and carries attr[i]; tokens with cont[i] set
 * (WordPiece "##" pieces) join the word before them in the same note. Words
 * sum their tokens' attributions; weights are divided by the largest |sum|;
 * spans with |weight| >= min_weight are kept, at most max_spans, by
 * decreasing |weight| (ties: earlier first). *out is malloc'd (NULL when
 * none).
 */
int rf_saliency_text_spans(const double *attr, const int *note, const int32_t *bstart, const int32_t *bend,
                           const uint8_t *cont, int n, int max_spans, float min_weight, rf_result_span **out,
                           size_t *nout, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
