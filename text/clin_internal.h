/* What the clinical-language files share (rules, sections, mentions, eval); not public. */
#ifndef RADFUSE_CLIN_INTERNAL_H
#define RADFUSE_CLIN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "radfuse/clinical.h"

#define CLIN_GAP (-1)     /* a phrase word "*": up to CLIN_GAP_MAX words of anything */
#define CLIN_GAP_MAX 3
#define CLIN_PHRASE_MAX 12 /* words per phrase */

/* A word of a note or of a phrase: a run of ASCII letters and digits (and
 * non-ASCII letters), or one of the punctuation marks rules may name. */
typedef struct clin_tok {
    int64_t start, end; /* bytes */
    int32_t id;         /* interned word id, 0 when no rule names it */
    bool word;          /* false for punctuation */
} clin_tok;

/* The next token of s[*pos..len), or false at the end. */
bool clin_next_token(const char *s, size_t len, size_t *pos, clin_tok *t);

typedef struct clin_phrase {
    int32_t n;
    int32_t tok[CLIN_PHRASE_MAX]; /* word ids, CLIN_GAP for "*" */
    int32_t target;               /* finding id (-1: consumes words, names nothing) or trigger index */
} clin_phrase;

/* Phrases indexed by their first word: phrase ids of first word w are
 * order[first[w] .. first[w + 1]). */
typedef struct clin_dict {
    clin_phrase *phrases;
    int32_t n, cap;
    int32_t *first, *order;
} clin_dict;

/* Trigger roles (a phrase may have several: "resolved" before and after). */
enum {
    CLIN_PRE_NEG = 1,
    CLIN_POST_NEG = 2,
    CLIN_PRE_UNC = 4,
    CLIN_POST_UNC = 8,
    CLIN_PSEUDO = 16,
    CLIN_TERM = 32,
    CLIN_POST_TERM = 64, /* ends only the scopes of post-triggers (a comma) */
    CLIN_PRE_PROB = 128,  /* probable existence: the mention stays present, with the hedge as evidence */
    CLIN_POST_PROB = 256,
};

typedef struct clin_trigger {
    int roles;
    int pre_window, post_window; /* words between trigger and mention */
} clin_trigger;

typedef struct clin_finding {
    char *name;
    int parent;
    bool abnormal, normal;
} clin_finding;

typedef struct clin_header {
    char *text;  /* lowercase words separated by single spaces */
    int section; /* index into section names */
} clin_header;

typedef struct clin_section_name {
    char *name;
    bool observation;
} clin_section_name;

/* A MeSH pattern: term and qualifiers, lowercase, whitespace collapsed. */
typedef struct clin_mesh_rule {
    char *buf; /* owns term and quals' strings */
    char *term;
    char **quals;
    int nquals;
    int finding; /* -1: the report has no gold (skip it) */
} clin_mesh_rule;

typedef struct clin_label_rule {
    char *column;
    int finding;
} clin_label_rule;

struct rf_clin_rules {
    /* interned words, lowercase: ids 1..nwords */
    char **words;
    size_t *word_lens;
    int32_t nwords, words_cap;
    int32_t *word_slots; /* open addressing, -1 empty */
    size_t nslots;

    clin_section_name *sections;
    int nsections, free_section;
    clin_header *headers;
    int nheaders;
    char **abbrevs;
    int nabbrevs;

    clin_finding *findings;
    int nfindings;
    clin_dict finding_dict;

    clin_trigger *triggers;
    int ntriggers;
    clin_dict trigger_dict;
    int max_pre_window, max_post_window;

    clin_mesh_rule *mesh;
    int nmesh;
    clin_label_rule *labels;
    int nlabels;
};

/* The id of a word (lowercase bytes), or 0. */
int32_t clin_word_find(const rf_clin_rules *r, const char *s, size_t len);

/* The longest phrase of dict matching toks[i..n): its index and its end
 * (exclusive), or -1. */
int32_t clin_dict_match(const clin_dict *d, const clin_tok *toks, int32_t n, int32_t i, int32_t *end);

/* The built-in tables (data/text/ tables embedded at build time). */
typedef struct clin_table {
    const char *name;
    const char *data;
    size_t len;
} clin_table;
extern const clin_table clin_builtin_tables[];
extern const int clin_builtin_table_count;

/* Appends a mention pass over one sentence s[start..end) (absolute offsets) to doc. */
typedef struct clin_scratch {
    clin_tok *toks;
    int32_t *trig_start_at, *trig_end_at; /* trigger occurrence starting / ending at token j, or -1 */
    int32_t *occ_trigger, *occ_start, *occ_end;
    int32_t cap, occ_cap;
    int64_t mentions_cap;
} clin_scratch;
int clin_mentions_sentence(const rf_clin_rules *r, const char *text, int64_t start, int64_t end, int32_t section,
                           int64_t sentence, clin_scratch *sc, rf_clin_doc *doc, rf_err *err);
void clin_scratch_free(clin_scratch *sc);

#endif
