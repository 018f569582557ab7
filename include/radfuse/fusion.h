/*
 * radfuse fusion: the study-level model. A model directory (docs/model-dir.md)
 * holds a vision encoder, an optional text encoder and a fusion transformer
 * whose multi-label head gives one calibrated probability per finding.
 *
 * The fusion input is one sequence of tokens in this order:
 *   [CLS] [image tokens] [prior tokens] [text tokens] [lab tokens]
 * image tokens: per image of the study, the vision encoder's CLS token and
 *   its patch tokens (average-pooled to image_pool_grid x image_pool_grid,
 *   or all of them), projected and given the image modality embedding;
 * prior tokens: the same for the images of a prior study, with the prior
 *   modality embedding and a time embedding of the days between studies;
 * text tokens: per note its document vector, then its content tokens (all
 *   notes together at most max_text_tokens content tokens, earlier notes first),
 *   projected, with the text modality embedding;
 * lab tokens: per lab token (labs.h) the lab's code embedding plus a linear
 *   map of its eight value features, with the labs modality embedding.
 * A modality without input is one learned "absent" token instead. The head
 * reads the final CLS state: logit_k, probability_k = sigmoid(logit_k / T_k)
 * with a temperature T_k per finding, positive when probability_k >=
 * threshold_k (labels.json).
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line naming the file and the key or tensor; no
 * global state. A model is not safe to run from two threads at once.
 */
#ifndef RADFUSE_FUSION_H
#define RADFUSE_FUSION_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/labs.h"
#include "radfuse/preprocess.h"
#include "radfuse/result.h"
#include "radfuse/runtime.h"
#include "radfuse/text.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RF_FUSION_FORMAT "radfuse-model-1"
/* Features of the prior study's time embedding (docs/model-dir.md). */
#define RF_FUSION_TIME_FEATURES 8
/* Entries of the fusion section's "image_modalities". */
#define RF_FUSION_MAX_MODALITIES 8

typedef struct rf_fusion rf_fusion;

/* One finding of labels.json, with the temperature the weights store. */
typedef struct rf_fusion_label {
    const char *code, *display;
    const char *system, *system_code; /* an external coding, or NULL */
    double threshold;                 /* in (0, 1) */
    double temperature;               /* > 0 (tensor fusion.head.temperature) */
} rf_fusion_label;

/* A file that determines the model's outputs, with its SHA-256 (hex). */
typedef struct rf_fusion_file {
    const char *path;  /* as opened: DIR/... */
    const char *name;  /* relative to the model directory, e.g. "vision/model.safetensors" */
    const char *role;  /* "config", "labels", "vocab", "preprocess", "weights" */
    char sha256[65];
    int64_t bytes;
} rf_fusion_file;

/* One encoder of the model. */
typedef struct rf_fusion_encoder {
    int present;        /* the text encoder is optional */
    const char *source; /* "vision/" style subdirectory, or "inline" */
    rf_model_info info;
} rf_fusion_encoder;

typedef struct rf_fusion_info {
    const char *dir;
    const char *name, *version, *format; /* config.json */
    /* SHA-256 (hex) of the lines "<sha256 hex>  <name>\n" of files[] in order:
     * what `sha256sum FILES... | sha256sum` prints, run in the directory */
    char sha256[65];
    const char *backend; /* rf_backend_name */
    rf_fusion_encoder vision, text;

    /* the fusion section */
    int hidden, layers, heads, intermediate;
    const char *hidden_act;
    double layer_norm_eps;
    int cross_attention;    /* "attention": "cross" (1) or "joint" (0) */
    int image_pool_grid;    /* g: g*g pooled patch tokens per image; 0: every patch token */
    int max_text_tokens;    /* content tokens of all notes together */
    int max_images;         /* images of a study the model takes */
    int max_prior_images;   /* images of a prior study (0: no prior input) */
    /* DICOM Modality values of the images the model reads ("image_modalities",
     * e.g. CR, DX); none: any */
    int nimage_modalities;
    char image_modalities[RF_FUSION_MAX_MODALITIES][17];
    int lab_codes;          /* rows of the lab code table (lab ids past it are dropped) */
    int64_t fusion_params;  /* elements of the fusion weights */

    int nlabels;
    const rf_fusion_label *labels;

    /* what the vision encoder takes (preprocessor_config.json, or the
     * defaults docs/model-dir.md states); has_preprocess_file says which */
    rf_preprocess_config preprocess;
    int has_preprocess_file;
    const char *preprocess_path; /* or NULL */

    const char *vocab_path; /* or NULL without a text encoder */
    const char *model_card; /* path of MODEL_CARD.md, or NULL when there is none */

    int nfiles;
    const rf_fusion_file *files; /* hashed, in the fixed order of docs/model-dir.md */
} rf_fusion_info;

/*
 * Loads a model directory onto backend be (which must outlive the model):
 * config.json, the encoders, the fusion weights, labels.json, vocab.txt,
 * preprocessor_config.json, and hashes every file of info.files.
 */
int rf_fusion_load(rf_fusion **out, const char *dir, rf_backend *be, rf_err *err);
void rf_fusion_free(rf_fusion *f);
const rf_fusion_info *rf_fusion_get_info(const rf_fusion *f);

/* Whether dir/config.json is a model directory (has "format" or "fusion");
 * 0 for a plain encoder checkpoint or when it cannot be read. */
int rf_fusion_is_model_dir(const char *dir);

/* A note through the model's text encoder (rf_text_encode with the model's
 * vocabulary and default windows). RF_EINVAL when the model has no text
 * encoder. Free with rf_text_encoding_free. */
int rf_fusion_encode_note(rf_fusion *f, const char *text, size_t len, rf_text_encoding *out, rf_err *err);

/* One study's inputs. Images are preprocessed (rf_preprocess_run with
 * info.preprocess): float CHW, channels = info.vision.info.channels, all of
 * one size height x width. Absent inputs: count 0 (pointers may be NULL). */
typedef struct rf_fusion_study {
    int height, width;
    const float *images; /* [nimages, C, height, width], nimages <= max_images */
    int nimages;
    const float *priors; /* [npriors, C, height, width], npriors <= max_prior_images */
    int npriors;
    double prior_days;   /* days from the prior study to this one (>= 0) */
    const rf_text_encoding *notes; /* from rf_fusion_encode_note */
    int nnotes;
    const rf_lab_token *labs; /* from rf_lab_tokens */
    size_t nlabs;
    /* Optional: the vision encoder's states of the study's images, then its
     * priors, as rf_fusion_vision gives them ([nimages + npriors, 1 + (height
     * / patch) * (width / patch), vision hidden]). When set, the forward takes
     * them instead of running the vision encoder over images and priors (which
     * must still be given: saliency reads them), so that the vision encoder
     * can run over the images of several studies in one pass. NULL: the
     * forward runs the encoder itself, through the same steps. */
    const float *vision;
} rf_fusion_study;

/*
 * Where every token sits in the fusion sequence (rows of a [T, hidden]
 * sequence; row 0 is the fusion CLS). For each modality, rows
 * start[m] .. start[m] + count[m] - 1; absent[m] = 1 when those rows are the
 * single absent token. Order of the ranges: image, prior, text, labs.
 * Image rows: image i (0-based in the study) is rows start[IMAGE] +
 * i * image_tokens .. + image_tokens - 1: its vision CLS token first, then
 * the pooled (or every) patch token in row-major grid order
 * (pool_h x pool_w cells of the vision encoder's grid_h x grid_w patches).
 * Prior rows likewise with start[PRIOR]. Text row j is note text_note[j],
 * content token text_token[j] of its rf_text_encoding (-1: the note's
 * document vector). Lab row j is lab token lab_token[j] of the study's labs.
 */
typedef struct rf_fusion_layout {
    int T;
    int start[RF_MODALITY_COUNT], count[RF_MODALITY_COUNT], absent[RF_MODALITY_COUNT];
    int image_tokens;         /* tokens per image: 1 + pool_h * pool_w */
    int grid_h, grid_w;       /* the vision encoder's patch grid */
    int pool_h, pool_w;       /* the pooled grid (= grid when image_pool_grid is 0) */
    int *text_note, *text_token; /* [count[TEXT]] (NULL when text is absent) */
    int *lab_token;           /* [count[LABS]] (NULL when labs are absent) */
    int text_tokens_dropped;  /* content tokens past max_text_tokens */
    int labs_dropped;         /* lab tokens whose id is past the model's lab table */
} rf_fusion_layout;

/* A forward pass's results for B variants (B = 1 for rf_fusion_forward). */
typedef struct rf_fusion_output {
    int batch, nlabels;
    float *logits;        /* [batch, nlabels] */
    float *probabilities; /* [batch, nlabels]: sigmoid(logit / temperature) */
    int inputs_used[RF_MODALITY_COUNT]; /* 1 where the input was given, 0 where the absent token stood in */
    rf_fusion_layout layout;
} rf_fusion_output;

void rf_fusion_output_free(rf_fusion_output *out);

/* One study through the vision encoder (all images and priors in one batch,
 * or its states from s->vision) and the fusion transformer. *out is zeroed
 * first; free it also on failure. */
int rf_fusion_forward(rf_fusion *f, const rf_fusion_study *s, rf_fusion_output *out, rf_err *err);

/* Image i of the study in the order the vision states take them: its images,
 * then its priors (0 <= i < nimages + npriors), [C, height, width] with the
 * vision encoder's C. */
const float *rf_fusion_study_image(const rf_fusion *f, const rf_fusion_study *s, int i);

/*
 * The vision encoder over n preprocessed images (images[i]: [C, height,
 * width], as rf_fusion_study's images; any number of studies' images) in one
 * pass: its last_hidden_state into *states ([n, *tokens, vision hidden],
 * malloc'd; NULL when n is 0), image i's rows the same as a pass over image i
 * alone gives (on the CPU backend to the bit: test_fusion). Slices of it, a study's images then its priors, are what
 * rf_fusion_study.vision takes. The checks on the size are
 * rf_fusion_forward's.
 */
int rf_fusion_vision(rf_fusion *f, const float *const *images, int n, int height, int width, float **states,
                     int *tokens, rf_err *err);

/*
 * B variants of one image of the study, the rest unchanged (occlusion): image
 * is an index into the study's images, or nimages + j for prior image j;
 * variants is [B, C, height, width]. The B variants go through the vision
 * encoder in one pass (the study's other images in one more), and the B
 * fusion sequences through the fusion transformer in one pass. out->logits
 * and probabilities are [B, nlabels].
 */
int rf_fusion_forward_batch(rf_fusion *f, const rf_fusion_study *s, int image, const float *variants, int B,
                            rf_fusion_output *out, rf_err *err);

/*
 * What saliency starts from, in host memory (malloc'd; free with
 * rf_fusion_trace_free), for one study:
 *   vision [nimages + npriors, vision_tokens, vision_hidden]: the vision
 *     encoder's last_hidden_state (after its final LayerNorm), study images
 *     first, then priors;
 *   vision_last_in: the same shape, the input of the vision encoder's last
 *     block (to differentiate through that block);
 *   sequence [layout.T, hidden]: the fusion input after embeddings, before
 *     the first fusion block;
 *   logits / probabilities [nlabels] of that sequence.
 */
typedef struct rf_fusion_trace {
    int nimages, npriors;
    int vision_tokens, vision_hidden;
    float *vision, *vision_last_in;
    int hidden;
    float *sequence;
    int nlabels;
    float *logits, *probabilities;
    int inputs_used[RF_MODALITY_COUNT];
    rf_fusion_layout layout;
} rf_fusion_trace;

/* The trace of one study. With s->vision, vision is a copy of it and
 * vision_last_in is NULL (the vision encoder does not run): give no states
 * where the last block's input is needed (Grad-CAM). */
int rf_fusion_trace_study(rf_fusion *f, const rf_fusion_study *s, rf_fusion_trace *out, rf_err *err);
void rf_fusion_trace_free(rf_fusion_trace *t);

/* The time embedding's input for a prior taken days before the study
 * (docs/model-dir.md): features[RF_FUSION_TIME_FEATURES]. */
void rf_fusion_time_features(double days, float *features);

#ifdef __cplusplus
}
#endif
#endif
