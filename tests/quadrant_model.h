/*
 * A fusion model directory built to look at one image quadrant, for the
 * saliency tests (test_saliency_model.c, test_eval_saliency.c): the random
 * model maker's inline layout (64x64 images, 4x4 patches, pooling to 2x2
 * cells, two labels) with weights set by hand so that each finding reads
 * only the top-left quadrant's brightness: identity vision blocks, a vision
 * position embedding that marks the quadrant's patches, and a fusion block
 * whose CLS query attends only to the marked cell (score gap > 50) and
 * copies its brightness feature to the head. The weight editor it is built
 * with (qm_load, qm_w, qm_save) serves other hand-set models too.
 */
#ifndef RADFUSE_TESTS_QUADRANT_MODEL_H
#define RADFUSE_TESTS_QUADRANT_MODEL_H

#include <stdint.h>

/* A model directory's model.safetensors, every tensor f32, held for editing. */
typedef struct qm_weights {
    int n;
    char *names[512];
    int ndim[512];
    int64_t shape[512][8];
    float *data[512];
    int64_t numel[512];
} qm_weights;

/* The random model's sizes the hand-set weights assume. */
enum { QM_DV = 32, QM_DF = 32, QM_IV = 64, QM_IF = 64, QM_GRID = 4, QM_NPATCH = 16 };
#define QM_BASE 10.0f /* the base vector's entries: keeps LayerNorm nearly linear */
#define QM_SCORE 2000.0f

/* Reads dir/model.safetensors; exits the test with a message on failure. */
void qm_load(qm_weights *w, const char *dir);
/* The tensor called name, which must have numel elements (else exits). */
float *qm_w(qm_weights *w, const char *name, int64_t numel);
void qm_zero(qm_weights *w, const char *name, int64_t numel);
void qm_fill(qm_weights *w, const char *name, int64_t numel, float v);
/* Writes dir/model.safetensors back and frees w. */
void qm_save(qm_weights *w, const char *dir);

/* A zero-sum vector of +-v on channels 4..31: every token carries it, so
 * LayerNorm's scale hardly moves with the features on channels 0..3. */
void qm_base_vector(float *x, float v);
/* Block 0 of the fusion: every query is constant, the key of a row is its
 * channel key_ch, the value its channel val_ch, written to channel 2 of
 * the residual; block 1 and both MLPs do nothing. */
void qm_fusion_reader(qm_weights *w, int key_ch, int val_ch, float score);
/* Head: every label reads channel 2 with gain[k], bias bias[k], temperature 1. */
void qm_head(qm_weights *w, int K, const float *gain, const float *bias);

/* Writes the quadrant model into dir (created when missing). */
void test_make_quadrant_model(const char *dir);

#endif
