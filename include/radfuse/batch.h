/*
 * radfuse batch: every study of an export (directory trees, DICOMDIRs, zip
 * files) through the study-level read (read.h), resumably, in parallel and
 * shardable across machines; the library behind `radfuse batch`
 * (docs/batch.md).
 *
 * The pipeline: worker threads decode, render and preprocess a study's images
 * and read its notes and labs, and write the folders of inferred studies; one
 * device stage runs the text encoder, the vision encoder, the fusion model
 * and saliency, over all the prepared studies waiting at once (up to
 * device_batch: their images through the vision encoder in one pass); the
 * committer records studies in results.jsonl and the state. A bound on the
 * studies in flight keeps memory flat whatever the export's size.
 *
 * Durable progress in the output directory DIR: DIR/studies/<key>/ (the
 * read's outputs, renamed into place whole), DIR/results.jsonl (one
 * result.json per line, appended and fsynced), then DIR/state.sqlite
 * (SQLite, WAL, synchronous=FULL) commits the study as done. A restart after
 * a kill at any moment drops a partial last line, records a line that the
 * state lacks, and goes on: no result is lost or repeated. DIR/errors.jsonl
 * lists failed files and studies (written from the state at the end of every
 * run). An output that cannot be written (a full disk) stops the batch with
 * RF_EIO and a state that resumes once the cause is gone.
 *
 * Conventions as in runtime.h: 0 or an RF_E* code with one line in rf_err;
 * no global state; no patient data in messages unless include_phi.
 */
#ifndef RADFUSE_BATCH_H
#define RADFUSE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

struct rf_fusion;

/* A study's key: the first 16 hex digits of SHA-256(StudyInstanceUID),
 * also the name of its folder under DIR/studies/. */
void rf_batch_key(const char *study_uid, char key[17]);
/* The shard of a study among n: the key's first 8 bytes as a big-endian
 * integer, modulo n. Files that belong to no study (unreadable ones) are
 * placed by the same hash of their path relative to the export's root. */
int rf_batch_shard_of(const char *text, int n);

/* Timings of a run, in milliseconds: busy time of each stage (summed over
 * its threads), and the wall time of the pipeline. */
typedef struct rf_batch_stages {
    double discover_ms;   /* listing and grouping the export (before the pipeline) */
    double prepare_ms;    /* workers: decode, render, preprocess, notes and labs */
    double device_ms;     /* the device stage: text, vision, fusion, saliency */
    double write_ms;      /* workers: the studies' folders (overlays, report.html, FHIR, result.json) */
    double commit_ms;     /* the committer: results.jsonl and the state */
    double wall_ms;       /* the pipeline from its first study to its last */
    double device_wait_ms; /* the device stage waiting for prepared studies */
    size_t device_batches; /* batches the device stage ran (each one pass of the vision encoder) */
    size_t device_studies; /* studies in them (device_studies / device_batches: the mean batch) */
    int jobs;
} rf_batch_stages;

/* Progress, given to the callback after each study the writer records. */
typedef struct rf_batch_progress {
    size_t total;         /* studies of this shard */
    size_t done;          /* done, this run and before */
    size_t failed;        /* failed studies (this run and before, unless retried) */
    size_t done_before;   /* already done when this run started */
    size_t run_done;      /* studies processed by this run (done or failed) */
    size_t file_errors;   /* files that belong to no study (unreadable, not DICOM; not the ignored ones) */
    double elapsed_s;     /* since the pipeline started */
    int final;            /* 1 on the last call */
} rf_batch_progress;

/* The files of a study's folder (result.json is always written). */
#define RF_BATCH_OUT_OVERLAYS 1u /* overlays/ (when saliency gives maps) */
#define RF_BATCH_OUT_HTML 2u     /* report.html */
#define RF_BATCH_OUT_FHIR 4u     /* report.fhir.json */
#define RF_BATCH_OUT_DICOM 8u    /* dicom/: Secondary Captures and an SR (patient data) */
#define RF_BATCH_OUT_DEFAULT (RF_BATCH_OUT_OVERLAYS | RF_BATCH_OUT_HTML | RF_BATCH_OUT_FHIR)

/* The device stage's batch: by default up to 8 studies, at most 64. */
#define RF_BATCH_DEVICE_BATCH 8
#define RF_BATCH_MAX_DEVICE_BATCH 64

typedef struct rf_batch_opts {
    const char *root;          /* the export */
    const char *out;           /* DIR */
    const char *manifest;      /* CSV pairing notes, labs and priors with studies, or NULL */
    int jobs;                  /* worker threads; 0: one per core */
    int shard, nshards;        /* this shard of nshards (0 and 1: everything) */
    int retry_failed;          /* run again the studies that failed before */
    const char *saliency;      /* as rf_read_request.saliency; NULL: "none" */
    const char *precision;     /* recorded in results: "fp32" (NULL) or "fp16" */
    int include_phi;           /* patient identifiers and full paths in the results */
    unsigned outputs;          /* RF_BATCH_OUT_* of DIR/studies/<key>/; 0: RF_BATCH_OUT_DEFAULT */
    int queue;                 /* studies waiting between stages; 0: 2 * max(jobs, device_batch) */
    int device_batch;          /* studies the device stage takes at once at most (all prepared ones
                                * waiting, up to this; 1..RF_BATCH_MAX_DEVICE_BATCH); 0: RF_BATCH_DEVICE_BATCH */
    void (*progress)(void *ctx, const rf_batch_progress *p);
    void *progress_ctx;
} rf_batch_opts;

typedef struct rf_batch_summary {
    rf_batch_progress progress;
    rf_batch_stages stages;
    size_t studies_found;      /* studies in the export (all shards) */
    size_t ignored_files;      /* files of the shard that are no DICOM by their name and were left
                                * alone (docs/batch.md): not errors */
    int stopped;               /* 1 when an output could not be written and the batch stopped */
} rf_batch_summary;

/*
 * Runs the batch of opts with model (whose backend the caller made); fills
 * *summary (also after a failure). Returns RF_OK when the run went through
 * (studies may have failed: summary says how many), an RF_E* code when it
 * could not start or had to stop (RF_EIO: an output or the state could not
 * be written; the state resumes).
 */
int rf_batch_run(struct rf_fusion *model, const rf_batch_opts *opts, rf_batch_summary *summary, rf_err *err);

/* One study of a dry run: what would be read. */
typedef struct rf_batch_plan_study {
    const char *uid, *key;
    int instances, nnotes, nlabs, has_prior;
    const char *pairing;       /* "manifest", "folder" or "none" */
    const char *state;         /* "done", "failed" or "pending" (from DIR/state.sqlite when it exists) */
} rf_batch_plan_study;

/*
 * Lists the studies of opts (root, manifest, shard; out only to read the
 * state, which is not created) without reading pixels: fn is called for
 * each study in StudyInstanceUID order, then ignored (when not NULL) for each
 * file of the shard left alone as no DICOM by its name (path relative to the
 * root, and why); *nfile_errors gets the number of files of the shard that
 * belong to no study and are errors, *nignored (when not NULL) the number of
 * ignored ones.
 */
int rf_batch_plan(const rf_batch_opts *opts, void (*fn)(void *ctx, const rf_batch_plan_study *s),
                  void (*ignored)(void *ctx, const char *path, const char *reason), void *ctx, size_t *nfile_errors,
                  size_t *nignored, rf_err *err);

/* What a merge found. */
typedef struct rf_batch_merge_info {
    size_t results;            /* distinct studies in the merged results.jsonl */
    size_t duplicates;         /* identical results met more than once (overlapping shards) */
    size_t errors;             /* lines of the merged errors.jsonl */
    size_t incomplete;         /* studies of the shards' states not yet done or failed */
} rf_batch_merge_info;

/*
 * Combines the output directories dirs[0..n) of shard runs into out (which
 * must not exist or be empty): results.jsonl (the union; a study met twice
 * with the same findings once, with different findings an RF_EINVAL naming
 * it), errors.jsonl (the union, without errors of studies that are done),
 * studies/ (copied). out is a batch directory of its own: a batch run on it
 * finds those studies done. info->incomplete counts the studies that the
 * shards' states list and have not done or failed yet (the merge is written;
 * the caller says it is partial). A directory whose state holds no study
 * count (its run was killed before it had listed the export) is refused
 * (RF_EINVAL naming it), as is one without results.jsonl: whether such a
 * shard is complete cannot be told.
 */
int rf_batch_merge(const char *out, const char *const *dirs, int n, rf_batch_merge_info *info, rf_err *err);

#ifdef __cplusplus
}
#endif
#endif
