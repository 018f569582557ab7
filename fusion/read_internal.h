/*
 * The steps of rf_read (fusion/read.c) that radfuse batch's split read
 * (batch/stage_read.c) runs on its own threads: one code for both, so that a
 * batch gives what `radfuse read` gives, warnings and timings in the same
 * order. Not part of the library's API. Conventions as in read.h; "out of
 * memory" in err for a warning or a copy that cannot be made.
 */
#ifndef RADFUSE_FUSION_READ_INTERNAL_H
#define RADFUSE_FUSION_READ_INTERNAL_H

#include "radfuse/fusion.h"
#include "radfuse/read.h"
#include "radfuse/saliency.h"

/* A monotonic clock in milliseconds, for the result's timings. */
double rf_rd_now_ms(void);

/* The result's header: tool, creation time, model (info), precision and
 * saliency (NULL: "fp32", "none"), include_phi. */
int rf_rd_result_init(rf_read_result *r, const rf_fusion_info *info, const char *precision, const char *saliency,
                      int include_phi, rf_err *err);

/* After the prior was read into *priors: drops it (warning, priors freed)
 * when it is of another patient than imgs, else sets *days to its age, or
 * leaves it 0 with a warning when a date is missing or out of order. */
int rf_rd_prior_age(rf_read_result *r, const rf_read_images *imgs, rf_read_images *priors, double *days,
                    rf_err *err);

/* The notes and lab files into *labs, each file on its own (a warning for
 * one that fails), their notes appended to r->notes. */
int rf_rd_read_notes_labs(rf_read_result *r, const char *const *notes, int nnotes, const char *const *labs, int nlabs,
                          int include_phi, rf_labs *out, rf_err *err);

/* The text encoder over r->notes into *enc (r->nnotes entries, NULL when
 * none is encoded; free each with rf_text_encoding_free, also after a
 * failure), timed as "text". */
int rf_rd_encode_notes(rf_fusion *model, rf_read_result *r, rf_text_encoding **enc, rf_err *err);

/* Where a step's warnings go: rf_read adds them to the result at once, the
 * batch keeps them for after its text step. Nonzero when out of memory. */
typedef int (*rf_rd_warn_fn)(void *ctx, const char *msg);

/* The lab tokens of labs as of the study's time (r->study), into *tokens
 * (malloc'd), and r->labs from them. */
int rf_rd_lab_tokens(rf_read_result *r, const rf_labs *labs, rf_lab_token **tokens, size_t *ntokens,
                     rf_rd_warn_fn warn, void *ctx, rf_err *err);

/* The fusion forward over the preprocessed images (px, ppx), the encoded
 * notes (enc: the used r->notes) and the lab tokens, timed as "fusion"; the
 * findings, the saliency method's evidence ("saliency") and the findings
 * sorted by probability, into r. vision: the vision encoder's states of the
 * images then the priors (rf_fusion_vision, rf_fusion_study.vision), made
 * beforehand in vision_ms (added to "fusion"), or NULL to make them here
 * (rf_fusion_vision over the study's images and priors); the forward and the
 * input weights take them, so that the encoder runs once (Grad-CAM runs it
 * again: it needs the last block's input). */
int rf_rd_infer(rf_fusion *model, rf_saliency_method method, rf_read_result *r, const rf_read_images *imgs,
                const float *px, const rf_read_images *priors, const float *ppx, double prior_days,
                const rf_text_encoding *enc, const rf_lab_token *tokens, size_t ntokens, const float *vision,
                double vision_ms, rf_err *err);

#endif
