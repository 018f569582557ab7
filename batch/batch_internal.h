/*
 * Internal to radfuse_batch: the export as discovered (discover.c), the read
 * split into a worker part and a device part (stage_read.c), the durable
 * state (state.c).
 */
#ifndef RADFUSE_BATCH_INTERNAL_H
#define RADFUSE_BATCH_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "radfuse/batch.h"
#include "radfuse/fusion.h"
#include "radfuse/read.h"
#include "radfuse/result.h"

/* ---- the export (discover.c) ---- */

typedef enum bt_pairing { BT_PAIR_NONE = 0, BT_PAIR_MANIFEST, BT_PAIR_FOLDER } bt_pairing;

typedef struct bt_study {
    char *uid;
    char key[17];
    int shard_hit;            /* in this run's shard */
    char **paths;             /* the files holding its instances */
    int npaths;
    size_t *zip_items;        /* its instances in zip files: items of bt_export.in */
    size_t nzip;
    int instances;
    char **notes, **labs;
    int nnotes, nlabs;
    char *prior_uid;          /* from the manifest, or NULL */
    long prior;               /* index of the prior study in the export, or -1 */
    bt_pairing pairing;
    char *accession;          /* for the manifest only; never written */
} bt_study;

typedef struct bt_file_error {
    char *name;               /* relative to the root (or "manifest line N") */
    char *reason;             /* one line, without the name */
    const char *stage;        /* "discover", "manifest" */
    int shard_hit;
} bt_file_error;

typedef struct bt_export {
    bt_study *studies;        /* sorted by uid */
    size_t n;
    struct rf_inputs *in;     /* the listing: zip entries are read from it */
    pthread_mutex_t zip_mu;   /* libzip's archive handles are not for two threads at once */
    bt_file_error *errors;
    size_t nerrors;
    bt_file_error *ignored;   /* files that are no DICOM by their name (bt_not_dicom_name): not errors */
    size_t nignored;
} bt_export;

/* Whether a file's name says it is no DICOM (docs/batch.md): a document,
 * table, web page or picture extension (.txt, .md, .html, .pdf, .csv, .json,
 * .png, ...), a dataset's document by its stem (README, LICENSE,
 * ATTRIBUTION, ... with any or no extension) or a desktop's leftover
 * (.DS_Store, Thumbs.db). Such a file that does not read as DICOM and has
 * no DICM preamble is ignored; any other file that does not read is a bad
 * file. Zip entries and DICOMDIRs are never ignored. */
int bt_not_dicom_name(const char *name);

/* Lists root (files' headers read by `threads` threads), groups the instances
 * by study, pairs notes and labs (manifest, else the folder convention),
 * marks the shard's studies and errors. */
int bt_discover(const char *root, const char *manifest, int shard, int nshards, int threads, bt_export *ex,
                rf_err *err);
void bt_export_free(bt_export *ex);

/* ---- the read in two parts (stage_read.c) ---- */

/* A study between the workers and the device stage. */
typedef struct bt_prepared {
    rf_read_result r;
    rf_read_images imgs, priors;
    float *px, *ppx;
    double prior_days;
    rf_labs labs;
    rf_lab_token *tokens;
    size_t ntokens;
    char **late;              /* warnings of the lab step, added after the text step's as rf_read orders them */
    size_t nlate;
    char *unzipped[2];        /* folders of the study's and the prior's zip entries, removed by bt_prepared_free */
    int fatal;                /* the failure is the output directory's (zip entries not written), not the study's */
} bt_prepared;

typedef struct bt_read_opts {
    const char *scratch;      /* where a study's zip entries are written for its read (DIR) */
    const char *saliency;     /* NULL: "none" */
    const char *precision;    /* NULL: "fp32" */
    int include_phi;
} bt_read_opts;

/* The worker part of rf_read for study i of ex: the study's images and the
 * prior's, preprocessed; the notes and labs read and the lab tokens made.
 * Uses only the model's info (safe beside the device stage). *p is zeroed
 * first; free with bt_prepared_free, also after a failure (p->r keeps the
 * warnings). */
int bt_prepare(const struct rf_fusion *model, const bt_export *ex, size_t i, const bt_read_opts *o, bt_prepared *p,
               rf_err *err);
/* The device part for n studies at once: per study the text encoder over its
 * notes; then the vision encoder over the images and priors of all of them
 * in one pass (rf_fusion_vision); then per study the fusion forward from its
 * part of that pass, the findings and saliency, into ps[i]->r, as rf_read
 * would give them. rcs[i] and errs[i] get each study's outcome: one study's
 * failure is not the others' (when the shared pass fails, each study's
 * forward runs the encoder over its own images instead). */
void bt_infer(struct rf_fusion *model, bt_prepared *const *ps, size_t n, int *rcs, rf_err *errs);
/* Frees what p holds besides p->r. */
void bt_prepared_release(bt_prepared *p);
/* Frees all of p. */
void bt_prepared_free(bt_prepared *p);

/* ---- the state (state.c) ---- */

typedef struct bt_state bt_state;

typedef enum bt_status { BT_PENDING = 0, BT_DONE, BT_FAILED } bt_status;

/* Opens (creating) DIR/state.sqlite and DIR/results.jsonl, removes what a
 * killed run left (temporary files and folders), cuts a partial last line
 * from results.jsonl and records lines the state lacks. model_sha256 is
 * checked against the one the state was made with. */
int bt_state_open(bt_state **out, const char *dir, const char *model_sha256, rf_err *err);
/* Opens an existing state read-only (dry runs, merges); RF_EIO when there is none. */
int bt_state_open_readonly(bt_state **out, const char *dir, rf_err *err);
void bt_state_close(bt_state *st);
bt_status bt_state_status(bt_state *st, const char *key);
/* Replaces the discovery and manifest errors of this shard (one transaction). */
int bt_state_set_file_errors(bt_state *st, const bt_export *ex, rf_err *err);
/* Records the shard, its study count and the export's. */
int bt_state_set_meta(bt_state *st, const char *name, const char *value, rf_err *err);
int bt_state_get_meta(bt_state *st, const char *name, char *value, size_t cap);
/* What the writer records of one study: done (line: one JSON line,
 * '\n'-terminated) or failed (stage, reason). */
typedef struct bt_record {
    const char *key, *uid;
    const char *line;
    size_t len;
    const char *stage, *reason;
} bt_record;
/* Records n studies: the done ones' lines appended to results.jsonl and
 * fsynced, then one transaction of the state for all n. On a failed append
 * the lines of this call are cut again and nothing is recorded (*kept 0);
 * when only the transaction fails, the lines stay (*kept 1) and the next
 * open records them. */
int bt_state_record(bt_state *st, const bt_record *recs, size_t n, int *kept, rf_err *err);
/* Counts of this state: studies done, failed; file errors. */
void bt_state_counts(bt_state *st, size_t *done, size_t *failed, size_t *file_errors);
/* DIR/errors.jsonl from the state, atomically. */
int bt_state_write_errors(bt_state *st, rf_err *err);

/* Removes a tree (files and folders); missing is fine. */
int bt_remove_tree(const char *path);
/* fsyncs a directory. */
int bt_sync_dir(const char *dir, rf_err *err);

#endif
