/*
 * Internal to radfuse eval: the split files of datasets/splits/, built into
 * the library by datasets/eval_embed_splits.cmake, so that `radfuse eval`
 * reads a layout's fixed split by default.
 */
#ifndef RADFUSE_EVAL_INTERNAL_H
#define RADFUSE_EVAL_INTERNAL_H

#include <stddef.h>

typedef struct rf_eval_builtin_split {
    const char *layout; /* rf_dataset_layout_name */
    const char *source; /* "datasets/splits/<layout>.csv" */
    const char *data;   /* the file's bytes (patientid,split) */
    size_t len;
} rf_eval_builtin_split;

/* Terminated by an entry with layout NULL. */
extern const rf_eval_builtin_split rf_eval_builtin_splits[];

#endif
