/*
 * radfuse clinical language: what a report or note says about findings.
 *
 * A note is split into sections (FINDINGS:, IMPRESSION:, INDICATION:, ...;
 * text before any header is the free-note section) and sentences, each with
 * its span. Finding mentions come from a vocabulary of phrases (the 14
 * CheXpert observations, pneumonia subtypes, COVID-19 and more), and each
 * mention's status (present, absent, uncertain) from trigger rules with scopes
 * in the NegEx/ConText tradition: pre- and post-negation, pre- and
 * post-uncertainty, pseudo-triggers that look like negations but are not
 * ("no change in"), terminators that end a scope ("but"), each with a window
 * in words. Every rule lives in a table (data/text/, docs/text.md):
 * the tables are built into the library, and a directory of replacements can
 * be loaded instead.
 *
 * Spans are half-open, both in bytes of the UTF-8 input and in code points
 * (as Python's str indexes it). The input must be valid UTF-8; NUL and other
 * control characters are kept, end a sentence, and are counted. Time and
 * memory are linear in the input.
 *
 * Conventions as in runtime.h: fallible functions return 0 or an RF_E* code
 * and fill rf_err with one line; nothing here keeps global state.
 */
#ifndef RADFUSE_CLINICAL_H
#define RADFUSE_CLINICAL_H

#include <stddef.h>
#include <stdint.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- rules ---------------------------------------------------------------- */

/* The rule tables: sections, findings, triggers, the MeSH and label maps. */
typedef struct rf_clin_rules rf_clin_rules;

/* The table files, by the name each has under data/text/ and in a rules directory. */
#define RF_CLIN_TABLES "sections.tsv, findings.tsv, triggers.tsv, mesh_map.tsv, label_map.tsv"

/*
 * Loads the rules. dir NULL: the tables built into the library. Otherwise each
 * of the RF_CLIN_TABLES files present in dir replaces the built-in table of
 * that name (a directory holding only findings.tsv changes the vocabulary and
 * keeps the rest; rows of the built-in maps that name findings the new
 * vocabulary lacks are dropped, while such rows in a map read from dir are
 * errors). A malformed table fails with the file and line.
 */
int rf_clin_rules_load(const char *dir, rf_clin_rules **out, rf_err *err);
void rf_clin_rules_free(rf_clin_rules *rules);

/* Findings are numbered 0..count-1 in the order findings.tsv declares them. */
int rf_clin_finding_count(const rf_clin_rules *rules);
/* The finding's name ("Pleural Effusion"), or NULL when id is out of range. */
const char *rf_clin_finding_name(const rf_clin_rules *rules, int id);
/* The finding's parent in the hierarchy (Pneumonia's is Lung Opacity), or -1. */
int rf_clin_finding_parent(const rf_clin_rules *rules, int id);
/* The id of a finding by name (exact), or -1. */
int rf_clin_finding_id(const rf_clin_rules *rules, const char *name);

/* ---- extraction ------------------------------------------------------------- */

typedef enum rf_clin_status {
    RF_CLIN_PRESENT = 0,
    RF_CLIN_ABSENT = 1,   /* negated */
    RF_CLIN_UNCERTAIN = 2,
} rf_clin_status;

/* "present", "absent" or "uncertain". */
const char *rf_clin_status_name(rf_clin_status s);

/* A half-open span of the input: bytes and code points. */
typedef struct rf_clin_span {
    int64_t byte_start, byte_end;
    int64_t start, end;
} rf_clin_span;

typedef struct rf_clin_section {
    const char *name;  /* canonical ("FINDINGS"); the rules own the string */
    int observation;   /* 1: the section reports what the study shows; 0: context (indication, history) */
    rf_clin_span header; /* the header with its colon; empty for the free-note section */
    rf_clin_span body;
} rf_clin_section;

typedef struct rf_clin_sentence {
    int32_t section;
    rf_clin_span span; /* trimmed of surrounding whitespace, with its final '.' */
} rf_clin_sentence;

typedef struct rf_clin_mention {
    int32_t finding;
    rf_clin_status status;
    int32_t section, sentence;
    rf_clin_span span;    /* the matched phrase */
    rf_clin_span trigger; /* the trigger that set the status; empty (0, 0) when present by default */
} rf_clin_mention;

typedef struct rf_clin_doc {
    rf_clin_section *sections;
    int32_t n_sections;
    rf_clin_sentence *sentences;
    int64_t n_sentences;
    rf_clin_mention *mentions;
    int64_t n_mentions;
    int64_t control_chars;  /* NUL and other C0 controls (not tab/LF/CR/FF) kept as sentence breaks */
    int64_t forced_breaks;  /* sentences cut at RF_CLIN_SENTENCE_MAX bytes */
} rf_clin_doc;

/* A sentence longer than this many bytes is cut at the next whitespace (at
 * most 256 bytes on, else anywhere on a code point boundary): no rule scope is
 * that long, and a bounded sentence keeps memory linear. */
#define RF_CLIN_SENTENCE_MAX 8192

/*
 * Sections, sentences and finding mentions of len bytes of text. Fails on
 * invalid UTF-8 (naming the byte offset) or when out of memory; on failure
 * *out holds no allocation.
 */
int rf_clin_extract(const rf_clin_rules *rules, const char *text, size_t len, rf_clin_doc *out, rf_err *err);
void rf_clin_doc_free(rf_clin_doc *doc);

/* Report-level value of one finding. */
enum {
    RF_CLIN_LABEL_NONE = 0,      /* not mentioned */
    RF_CLIN_LABEL_ABSENT = 1,    /* only negated mentions */
    RF_CLIN_LABEL_UNCERTAIN = 2, /* an uncertain mention, none present */
    RF_CLIN_LABEL_PRESENT = 3,
};

/*
 * Report-level labels (labels[rf_clin_finding_count]) from the mentions in
 * observation sections: the strongest status over a finding's own mentions
 * and its descendants' (present > uncertain > absent > not mentioned). The
 * finding flagged "normal" in findings.tsv (No Finding) is derived: present
 * when no finding flagged "abnormal" is present or uncertain, else absent.
 */
void rf_clin_labels(const rf_clin_rules *rules, const rf_clin_doc *doc, uint8_t *labels);

/* ---- evaluation against coded reports ---------------------------------------- */

typedef enum rf_clin_split {
    RF_CLIN_SPLIT_ALL = 0,
    RF_CLIN_SPLIT_DEV = 1,     /* even uid: the reports the rules were tuned on */
    RF_CLIN_SPLIT_HELDOUT = 2, /* odd uid: not looked at while tuning */
} rf_clin_split;

typedef struct rf_clin_eval_opts {
    rf_clin_split split;
    int min_support;        /* findings in the macro average: at least this many positives in the whole file (0: 50) */
    int uncertain_positive; /* 0: only a present label is positive (default); 1: an uncertain one too */
    const char *labels_csv; /* NULL: gold from the MeSH column through mesh_map.tsv; else a label file
                               ("filename" CXR<uid>, one 0/1 column per label) through label_map.tsv */
    size_t labels_len;      /* bytes of labels_csv */
    const char *labels_name; /* for messages */
} rf_clin_eval_opts;

typedef struct rf_clin_score {
    int64_t tp, fp, fn, tn;
    int64_t support;        /* gold positives in the evaluated reports */
    int64_t support_all;    /* gold positives in the whole file (what min_support is checked against) */
    double precision, recall, f1;
    int in_macro;           /* counted in macro_f1 */
    int gold;               /* 1 when the gold standard names this finding at all */
} rf_clin_score;

typedef struct rf_clin_eval {
    int n_findings;          /* rf_clin_finding_count */
    rf_clin_score *per;      /* by finding id */
    double macro_f1;         /* over in_macro findings; 0 when none */
    int n_macro;
    int64_t n_reports;       /* evaluated */
    int64_t n_skipped;       /* in the split but without gold (MeSH "No Indexing", no label row) */
} rf_clin_eval;

/*
 * Evaluates extraction on reports in the Indiana University layout (columns
 * uid, MeSH, findings, impression; any order, others ignored): each report's
 * findings and impression go through rf_clin_extract as one note with those
 * headers, and rf_clin_labels is scored against the gold standard per finding
 * (precision, recall, F1; 0 where undefined). Gold from MeSH: a report is
 * positive for a finding when one of its MeSH terms maps to it or to a
 * descendant (mesh_map.tsv). Errors name the file and line.
 */
int rf_clin_eval_iu(const rf_clin_rules *rules, const char *csv, size_t len, const char *name,
                    const rf_clin_eval_opts *opts, rf_clin_eval *out, rf_err *err);
void rf_clin_eval_free(rf_clin_eval *ev);

#ifdef __cplusplus
}
#endif
#endif
