/*
 * The eval runner (rf_eval_run, radfuse/eval.h): a dataset subset read row by
 * row through a fusion model with every input set of the ablation, then the
 * metrics per target. A row's inputs are built with the functions rf_read
 * uses (rf_read_preprocess, rf_read_note_usable, rf_fusion_encode_note,
 * rf_lab_tokens against rf_read_study_time), so a row scores what `radfuse
 * read` gives the study `radfuse dataset study` makes of it.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/eval_internal.h"
#include "radfuse/datasets.h"
#include "radfuse/eval.h"
#include "radfuse/fusion.h"
#include "radfuse/read.h"
#include "text/csv.h"

static const char *const input_names[RF_EVAL_INPUT_COUNT] = {"fused",        "image",      "text", "labs",
                                                             "fused_masked", "text_masked"};

const char *rf_eval_input_name(rf_eval_input in)
{
    return (unsigned)in < RF_EVAL_INPUT_COUNT ? input_names[in] : "?";
}

void rf_eval_opts_init(rf_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->subset = RF_SPLIT_VAL;
    o->bootstrap = 1000;
    o->seed = 1;
}

void rf_eval_result_free(rf_eval_result *r)
{
    if (!r)
        return;
    free(r->layout);
    free(r->split);
    for (size_t i = 0; i < r->nfailures; i++) {
        free(r->failures[i].id);
        free(r->failures[i].error);
    }
    free(r->failures);
    for (int k = 0; k < r->ntargets; k++)
        free(r->targets[k].name);
    free(r->targets);
    for (int k = 0; k < r->nskipped; k++) {
        free(r->skipped[k].name);
        free(r->skipped[k].reason);
    }
    free(r->skipped);
    free(r->row);
    free(r->prob);
    rf_eval_saliency_free(&r->saliency);
    memset(r, 0, sizeof *r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* An error message without a leading "path: " (dataset paths may hold patient keys). */
static const char *without_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) == 0) {
        msg += n;
        while (*msg == ':' || *msg == ' ')
            msg++;
    }
    return msg;
}

/* Letters and digits only, lower case: "COVID-19" and "covid19" name the same target. */
static void squash(const char *s, char *out, size_t cap)
{
    size_t w = 0;
    for (; *s && w + 1 < cap; s++)
        if (isalnum((unsigned char)*s))
            out[w++] = (char)tolower((unsigned char)*s);
    out[w] = 0;
}

/* The model's label for a dataset target: the same code, else the same
 * letters and digits; -1 when none. */
static int label_for(const rf_fusion_info *info, const char *target)
{
    for (int k = 0; k < info->nlabels; k++)
        if (!strcmp(info->labels[k].code, target))
            return k;
    char a[128], b[128];
    squash(target, a, sizeof a);
    for (int k = 0; k < info->nlabels; k++) {
        squash(info->labels[k].code, b, sizeof b);
        if (a[0] && !strcmp(a, b))
            return k;
    }
    return -1;
}

/* The study time `radfuse dataset study` gives a row (day 0 plus the offset,
 * 12:00), or the source's own date and time; 0 when there is one. */
static int row_time(const rf_dataset_row *row, rf_time *t)
{
    char date[16], tm[16] = "120000";
    time_t secs;
    if (row->time_kind == RF_DATASET_TIME_DATE) {
        secs = (time_t)llround(row->time * 86400.0);
        struct tm g;
        gmtime_r(&secs, &g);
        strftime(date, sizeof date, "%Y%m%d", &g);
        strftime(tm, sizeof tm, "%H%M%S", &g);
    } else {
        long days = row->time_kind == RF_DATASET_TIME_OFFSET ? lround(row->time) : 0;
        struct tm g = {.tm_year = 2020 - 1900, .tm_mon = 0, .tm_mday = 1 + (int)days, .tm_hour = 12};
        secs = timegm(&g);
        gmtime_r(&secs, &g);
        strftime(date, sizeof date, "%Y%m%d", &g);
    }
    return rf_read_study_time(date, tm, t);
}

/* One row's encoded inputs. */
typedef struct row_inputs {
    rf_read_image image;
    float *px;
    rf_labs notes;             /* the parsed note */
    rf_text_encoding enc, enc_masked;
    int has_note, has_masked;
    rf_labs labs;
    rf_lab_token *tokens;
    size_t ntokens;
} row_inputs;

static void row_inputs_free(row_inputs *in)
{
    free(in->image.pixels);
    free(in->px);
    rf_labs_free(&in->notes);
    if (in->has_note)
        rf_text_encoding_free(&in->enc);
    if (in->has_masked)
        rf_text_encoding_free(&in->enc_masked);
    rf_labs_free(&in->labs);
    free(in->tokens);
    memset(in, 0, sizeof *in);
}

typedef struct eval_ctx {
    rf_fusion *model;
    const rf_fusion_info *info;
    const rf_dataset *ds;
    const rf_eval_opts *o;
    rf_eval_result *r;
    const char **extra; /* mask terms from the evaluated targets */
    int nextra;
} eval_ctx;

static int add_failure(rf_eval_result *r, const rf_dataset_row *row, const char *msg)
{
    rf_eval_failure *f = realloc(r->failures, (r->nfailures + 1) * sizeof *f);
    if (!f)
        return RF_ENOMEM;
    r->failures = f;
    f += r->nfailures;
    f->id = strdup(row->id);
    f->line = row->line;
    f->error = strdup(msg);
    if (!f->id || !f->error) {
        free(f->id);
        free(f->error);
        return RF_ENOMEM;
    }
    r->nfailures++;
    return RF_OK;
}

/* Builds row i's inputs; RF_OK with in->px NULL when its image failed (counted). */
static int build_row(eval_ctx *c, size_t i, row_inputs *in, rf_err *err)
{
    const rf_dataset_row *row = rf_dataset_get(c->ds, i);
    rf_eval_result *r = c->r;
    char path[4096];
    rf_err e;
    int rc = rf_dataset_image_path(c->ds, i, path, sizeof path, &e);
    if (!rc)
        rc = rf_eval_image_load(path, &in->image, &e);
    if (rc == RF_ENOMEM)
        return rf_err_set(err, rc, "%s", e.msg);
    if (rc) {
        r->image_failures++;
        return add_failure(r, row, without_path(e.msg, path)) ? rf_err_set(err, RF_ENOMEM, "out of memory") : RF_OK;
    }
    if ((rc = rf_read_preprocess(c->model, &in->image, 1, c->o->threads, &in->px, &e))) {
        /* an image the model's preprocessing refuses is that row's failure too */
        if (rc == RF_ENOMEM)
            return rf_err_set(err, rc, "%s", e.msg);
        r->image_failures++;
        return add_failure(r, row, without_path(e.msg, path)) ? rf_err_set(err, RF_ENOMEM, "out of memory") : RF_OK;
    }

    /* the note: as a note file is read (rf_note_parse), then the text encoder */
    if (row->note[0] && c->info->text.present) {
        /* the note.txt `radfuse dataset study` writes: a "Date:" line, then the note */
        rf_time t;
        char *text = NULL;
        int tlen = row_time(row, &t) == 0 ? asprintf(&text, "Date: %04d-%02d-%02d\n%s", t.year, t.month, t.day,
                                                     row->note)
                                          : asprintf(&text, "%s", row->note);
        if (tlen < 0)
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        rc = rf_note_parse(row->id, text, (size_t)tlen, "note", &in->notes, &e);
        free(text);
        if (rc == RF_ENOMEM)
            return rf_err_set(err, rc, "%s", e.msg);
        if (rc == 0) {
            const rf_note *n = &in->notes.notes[0];
            if (rf_read_note_usable(n->text, n->len)) {
                if ((rc = rf_fusion_encode_note(c->model, n->text, n->len, &in->enc, err)))
                    return rc;
                in->has_note = 1;
                r->with_note++;
                if (c->o->mask_findings) {
                    char *m;
                    size_t mlen;
                    int count;
                    if ((rc = rf_eval_mask_findings(n->text, n->len, c->extra, c->nextra, &m, &mlen, &count, err)))
                        return rc;
                    r->masked_terms += (size_t)count;
                    if (rf_read_note_usable(m, mlen)) {
                        rc = rf_fusion_encode_note(c->model, m, mlen, &in->enc_masked, err);
                        in->has_masked = rc == 0;
                    }
                    free(m);
                    if (rc)
                        return rc;
                }
            }
        } else {
            r->note_failures++;
        }
    }

    /* the labs: the dataset's lab CSV, tokens as of the row's study time */
    if (row->nlabs > 0) {
        rf_time ref;
        int have_ref = row_time(row, &ref) == 0;
        if (rf_dataset_labs(c->ds, i, &in->labs, &e))
            r->lab_failures++;
        else if (in->labs.nlabs &&
                 (rc = rf_lab_tokens(&in->labs, have_ref ? &ref : NULL, &in->tokens, &in->ntokens, &e)))
            return rf_err_set(err, rc, "labs of row %s: %s", row->id, e.msg);
        r->with_labs += in->ntokens > 0;
    }
    return RF_OK;
}

/* The study of one input set. */
static void set_study(eval_ctx *c, const row_inputs *in, rf_eval_input set, rf_fusion_study *out)
{
    const rf_fusion_info *info = c->info;
    rf_fusion_study s;
    memset(&s, 0, sizeof s);
    s.height = info->preprocess.height;
    s.width = info->preprocess.width;
    int image = set == RF_EVAL_FUSED || set == RF_EVAL_IMAGE || set == RF_EVAL_FUSED_MASKED;
    int text = set == RF_EVAL_FUSED || set == RF_EVAL_TEXT;
    int masked = set == RF_EVAL_FUSED_MASKED || set == RF_EVAL_TEXT_MASKED;
    int labs = set == RF_EVAL_FUSED || set == RF_EVAL_LABS || set == RF_EVAL_FUSED_MASKED;
    if (image) {
        s.images = in->px;
        s.nimages = 1;
    }
    if (text && in->has_note) {
        s.notes = &in->enc;
        s.nnotes = 1;
    }
    if (masked && in->has_masked) {
        s.notes = &in->enc_masked;
        s.nnotes = 1;
    }
    if (labs && in->ntokens) {
        s.labs = in->tokens;
        s.nlabs = in->ntokens;
    }
    *out = s;
}

/* The forward pass of one input set into probs[nlabels]. */
static int forward_set(eval_ctx *c, const row_inputs *in, rf_eval_input set, float *probs, rf_err *err)
{
    const rf_fusion_info *info = c->info;
    rf_fusion_study s;
    set_study(c, in, set, &s);
    rf_fusion_output fo;
    int rc = rf_fusion_forward(c->model, &s, &fo, err);
    if (!rc)
        memcpy(probs, fo.probabilities, (size_t)info->nlabels * sizeof *probs);
    rf_fusion_output_free(&fo);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int add_skipped(rf_eval_result *r, const char *name, const char *reason)
{
    rf_eval_skipped *s = realloc(r->skipped, ((size_t)r->nskipped + 1) * sizeof *s);
    if (!s)
        return RF_ENOMEM;
    r->skipped = s;
    s += r->nskipped;
    s->name = strdup(name);
    s->reason = strdup(reason);
    if (!s->name || !s->reason) {
        free(s->name);
        free(s->reason);
        return RF_ENOMEM;
    }
    r->nskipped++;
    return RF_OK;
}

/* The metrics of every target over the used rows. */
static int score_targets(eval_ctx *c, const int *group, rf_err *err)
{
    rf_eval_result *r = c->r;
    const rf_dataset *ds = c->ds;
    const rf_fusion_info *info = c->info;
    int nt = rf_dataset_ntargets(ds), nf = rf_dataset_nfinding_targets(ds);
    size_t U = r->rows_used;
    double *score = malloc((U ? U : 1) * sizeof *score), *fused = malloc((U ? U : 1) * sizeof *fused);
    int *y = malloc((U ? U : 1) * sizeof *y), *g = malloc((U ? U : 1) * sizeof *g);
    r->targets = calloc((size_t)(nt ? nt : 1), sizeof *r->targets);
    if (!score || !fused || !y || !g || !r->targets) {
        free(score);
        free(fused);
        free(y);
        free(g);
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    int rc = RF_OK;
    int sets = c->o->mask_findings ? RF_EVAL_INPUT_COUNT : RF_EVAL_FUSED_MASKED;
    for (int k = 0; k < nt && !rc; k++) {
        const char *name = rf_dataset_target_name(ds, k);
        int lab = label_for(info, name);
        if (lab < 0) {
            rc = add_skipped(r, name, "the model has no label for it");
            continue;
        }
        size_t n = 0;
        long pos = 0;
        for (size_t u = 0; u < U; u++) {
            int v = rf_dataset_get(ds, r->row[u])->targets[k];
            if (v == RF_TARGET_UNKNOWN)
                continue;
            y[n] = v == RF_TARGET_POS;
            g[n] = group[u];
            pos += y[n];
            n++;
        }
        if (pos == 0 || (size_t)pos == n) {
            char why[96];
            snprintf(why, sizeof why, "%s among the %zu rows with a known value", pos ? "no negatives" : "no positives",
                     n);
            rc = add_skipped(r, name, why);
            continue;
        }
        rf_eval_target *t = &r->targets[r->ntargets];
        t->name = strdup(name);
        if (!t->name) {
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            break;
        }
        r->ntargets++;
        t->dataset_target = k;
        t->label = lab;
        t->finding = k < nf;
        t->n = (long)n;
        t->positives = pos;
        t->threshold = info->labels[lab].threshold;
        for (int s = 0; s < RF_EVAL_INPUT_COUNT; s++) {
            t->ablation[s] = t->fused_minus[s] = NAN;
            t->ablation_ci[s].lo = t->ablation_ci[s].hi = NAN;
            t->fused_minus_ci[s].lo = t->fused_minus_ci[s].hi = NAN;
        }
        for (int s = 0; s < sets && !rc; s++) {
            size_t m = 0;
            for (size_t u = 0; u < U; u++)
                if (rf_dataset_get(ds, r->row[u])->targets[k] != RF_TARGET_UNKNOWN) {
                    const float *pu = r->prob + u * RF_EVAL_INPUT_COUNT * (size_t)r->nlabels + (size_t)lab;
                    score[m] = pu[(size_t)s * (size_t)r->nlabels];
                    fused[m++] = pu[0];
                }
            t->ablation[s] = rf_eval_auroc(score, y, n);
            if (s != RF_EVAL_FUSED) {
                t->fused_minus[s] = rf_eval_auroc(fused, y, n) - t->ablation[s];
                if (c->o->bootstrap > 0 && !rc)
                    rc = rf_eval_auroc_diff_ci(fused, score, y, g, n, c->o->bootstrap, c->o->seed, 0.95,
                                               &t->fused_minus_ci[s], err);
            }
            if (c->o->bootstrap > 0)
                rc = rf_eval_auroc_ci(score, y, g, n, c->o->bootstrap, c->o->seed, 0.95, &t->ablation_ci[s], err);
            if (s == RF_EVAL_FUSED) {
                t->auroc = t->ablation[s];
                t->ci = t->ablation_ci[s];
                t->auprc = rf_eval_auprc(score, y, n);
                t->ece = rf_eval_ece(score, y, n, t->bins);
                rf_eval_confusion_at(score, y, n, t->threshold, &t->at_threshold);
            }
        }
    }
    for (int s = 0; s < RF_EVAL_INPUT_COUNT; s++) {
        double sum = 0, sumf = 0;
        int cnt = 0, cntf = 0;
        for (int k = 0; k < r->ntargets; k++) {
            sum += r->targets[k].ablation[s];
            cnt++;
            if (r->targets[k].finding) {
                sumf += r->targets[k].ablation[s];
                cntf++;
            }
        }
        r->macro[s] = cnt && s < sets ? sum / cnt : NAN;
        r->macro_findings[s] = cntf && s < sets ? sumf / cntf : NAN;
    }
    free(score);
    free(fused);
    free(y);
    free(g);
    return rc;
}

typedef struct split_entry {
    char *key;
    rf_split side;
} split_entry;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const split_entry *)a)->key, ((const split_entry *)b)->key);
}

/* The layout's built-in split file (datasets/splits/, fixed at build time),
 * or NULL when the layout has none. */
static const rf_eval_builtin_split *builtin_split(const rf_dataset *ds)
{
    const char *layout = rf_dataset_layout_name(rf_dataset_get_layout(ds));
    for (const rf_eval_builtin_split *b = rf_eval_builtin_splits; b->layout; b++)
        if (!strcmp(b->layout, layout))
            return b;
    return NULL;
}

/* Sides of every row from a built-in split (patientid,split); every patient
 * of the dataset must be in it. */
static int apply_builtin(const rf_dataset *ds, const rf_eval_builtin_split *b, rf_split *side, rf_err *err)
{
    text_csv csv;
    text_csv_opts opts = {.skip_blank = true};
    text_csv_init(&csv, b->source, b->data, b->len, &opts);
    split_entry *e = NULL;
    size_t n = 0, cap = 0;
    bool got;
    int rc = text_csv_read(&csv, &got, err);
    if (!rc && (!got || csv.nfields != 2 || strcmp(text_csv_field(&csv, 0, NULL), "patientid") ||
                strcmp(text_csv_field(&csv, 1, NULL), "split")))
        rc = rf_err_set(err, RF_EFORMAT, "%s (built in): the header must be patientid,split", b->source);
    while (!rc) {
        if ((rc = text_csv_read(&csv, &got, err)) || !got)
            break;
        rf_split s = csv.nfields == 2 ? rf_split_parse(text_csv_field(&csv, 1, NULL)) : RF_SPLIT_NONE;
        if (s == RF_SPLIT_NONE) {
            rc = rf_err_set(err, RF_EFORMAT, "%s (built in): line %zu: not patientid,train|val|test", b->source,
                            csv.line);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            split_entry *ne = realloc(e, cap * sizeof *ne);
            if (!ne) {
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                break;
            }
            e = ne;
        }
        if (!(e[n].key = strdup(text_csv_field(&csv, 0, NULL)))) {
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            break;
        }
        e[n++].side = s;
    }
    text_csv_free(&csv);
    if (!rc) {
        qsort(e, n, sizeof *e, cmp_entry);
        size_t missing = 0, N = rf_dataset_count(ds);
        for (size_t i = 0; i < N; i++) {
            split_entry k = {(char *)rf_dataset_get(ds, i)->patient, RF_SPLIT_NONE};
            const split_entry *hit = n ? bsearch(&k, e, n, sizeof *e, cmp_entry) : NULL;
            side[i] = hit ? hit->side : RF_SPLIT_NONE;
            missing += !hit;
        }
        if (missing)
            rc = rf_err_set(err, RF_EINVAL,
                            "%s: %zu rows are of patients the built-in split (%s, fixed at build time) does not "
                            "have; give --split FILE",
                            rf_dataset_root(ds), missing, b->source);
    }
    for (size_t i = 0; i < n; i++)
        free(e[i].key);
    free(e);
    return rc;
}

int rf_eval_run(rf_fusion *model, const rf_dataset *ds, const rf_eval_opts *opts, rf_eval_result *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    rf_eval_opts defaults;
    if (!opts) {
        rf_eval_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->subset < RF_SPLIT_NONE || opts->subset > RF_SPLIT_TEST || opts->limit < 0 || opts->bootstrap < 0)
        return rf_err_set(err, RF_EINVAL, "eval: bad options (subset %d, limit %ld, bootstrap %d)", opts->subset,
                          opts->limit, opts->bootstrap);
    rf_eval_result *r = out;
    const rf_fusion_info *info = rf_fusion_get_info(model);
    size_t N = rf_dataset_count(ds);
    r->layout = strdup(rf_dataset_layout_name(rf_dataset_get_layout(ds)));
    r->subset = opts->subset;
    r->rows_total = N;
    r->bootstrap = opts->bootstrap;
    r->seed = opts->seed;
    r->mask_findings = opts->mask_findings;
    r->nlabels = info->nlabels;
    if (!r->layout)
        return rf_err_set(err, RF_ENOMEM, "out of memory");

    /* the subset's sides: the split file, else the layout's built-in split
     * file, else the source's split, else the keyed hash */
    rf_split *side = calloc(N ? N : 1, sizeof *side);
    if (!side)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    int rc = RF_OK;
    const char *how = "all";
    if (opts->subset != RF_SPLIT_NONE) {
        int source = 0;
        for (size_t i = 0; i < N && !opts->split_file; i++)
            source |= rf_dataset_get(ds, i)->source_split != RF_SPLIT_NONE;
        const rf_eval_builtin_split *b = opts->split_file ? NULL : builtin_split(ds);
        if (opts->split_file) {
            how = "file";
            rc = rf_dataset_split(ds, opts->split_file, NULL, side, err);
        } else if (b) {
            how = b->source;
            rc = apply_builtin(ds, b, side, err);
        } else if (source) {
            how = "source";
            for (size_t i = 0; i < N; i++)
                side[i] = rf_dataset_get(ds, i)->source_split;
        } else {
            how = "hash";
            rc = rf_dataset_split(ds, NULL, NULL, side, err);
        }
    }
    r->split = strdup(how);
    if (!rc && !r->split)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    size_t *rows = malloc((N ? N : 1) * sizeof *rows);
    if (!rc && !rows)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    size_t nrows = 0;
    for (size_t i = 0; !rc && i < N; i++)
        if (opts->subset == RF_SPLIT_NONE || (int)side[i] == opts->subset)
            rows[nrows++] = i;
    free(side);
    r->rows_subset = nrows;
    if (!rc && opts->limit > 0 && (size_t)opts->limit < nrows)
        nrows = (size_t)opts->limit;
    r->rows_read = nrows;
    if (!rc && nrows == 0)
        rc = rf_err_set(err, RF_EINVAL, "%s: no rows in the %s subset", rf_dataset_root(ds),
                        rf_split_name((rf_split)opts->subset));

    /* extra mask terms: the codes and display names of the labels of the dataset's targets */
    eval_ctx c = {model, info, ds, opts, r, NULL, 0};
    int nt = rf_dataset_ntargets(ds);
    c.extra = calloc((size_t)(2 * nt + 1), sizeof *c.extra);
    if (!rc && !c.extra)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < nt; k++) {
        int lab = label_for(info, rf_dataset_target_name(ds, k));
        if (lab >= 0 && k < rf_dataset_nfinding_targets(ds)) {
            c.extra[c.nextra++] = info->labels[lab].code;
            if (info->labels[lab].display)
                c.extra[c.nextra++] = info->labels[lab].display;
        }
    }

    if (!rc) {
        r->row = malloc(nrows * sizeof *r->row);
        r->prob = malloc(nrows * RF_EVAL_INPUT_COUNT * (size_t)info->nlabels * sizeof *r->prob);
        if (!r->row || !r->prob)
            rc = rf_err_set(err, RF_ENOMEM, "out of memory for %zu rows", nrows);
    }
    if (!rc && opts->saliency)
        rc = rf_eval_saliency_begin(r, opts, nrows, err);
    double t0 = now_s();
    int sets = opts->mask_findings ? RF_EVAL_INPUT_COUNT : RF_EVAL_FUSED_MASKED;
    for (size_t j = 0; !rc && j < nrows; j++) {
        row_inputs in;
        memset(&in, 0, sizeof in);
        rc = build_row(&c, rows[j], &in, err);
        if (!rc && in.px) {
            float *p = r->prob + r->rows_used * RF_EVAL_INPUT_COUNT * (size_t)info->nlabels;
            for (int s = 0; s < RF_EVAL_INPUT_COUNT; s++) {
                if (s >= sets) {
                    for (int k = 0; k < info->nlabels; k++)
                        p[(size_t)s * (size_t)info->nlabels + (size_t)k] = NAN;
                    continue;
                }
                if ((rc = forward_set(&c, &in, (rf_eval_input)s, p + (size_t)s * (size_t)info->nlabels, err)))
                    break;
            }
            /* saliency of a row positive for a finding target the model has a
             * label for, on the fused inputs as `radfuse read` takes them */
            if (!rc && opts->saliency) {
                int want = 0;
                for (int k = 0; k < rf_dataset_nfinding_targets(ds); k++)
                    want |= rf_dataset_get(ds, rows[j])->targets[k] == RF_TARGET_POS &&
                            label_for(info, rf_dataset_target_name(ds, k)) >= 0;
                rf_fusion_study fs;
                set_study(&c, &in, RF_EVAL_FUSED, &fs);
                rc = rf_eval_saliency_row(model, ds, opts, r, r->rows_used, rows[j], want, &fs, &in.image, err);
            }
            if (!rc)
                r->row[r->rows_used++] = rows[j];
        }
        row_inputs_free(&in);
        if (opts->progress)
            opts->progress(opts->progress_ctx, j + 1, nrows);
    }
    r->seconds = now_s() - t0;
    free(rows);
    if (!rc && r->rows_used == 0)
        rc = rf_err_set(err, RF_EINVAL, "%s: none of the %zu rows could be read (%zu images failed%s%s)",
                        rf_dataset_root(ds), nrows, r->image_failures, r->nfailures ? ": " : "",
                        r->nfailures ? r->failures[0].error : "");

    /* patients as groups of the bootstrap (sorted keys, so the numbering is the data's own) */
    int *group = NULL;
    if (!rc) {
        const char **keys = malloc(r->rows_used * sizeof *keys);
        group = malloc(r->rows_used * sizeof *group);
        if (!keys || !group)
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        for (size_t u = 0; !rc && u < r->rows_used; u++)
            keys[u] = rf_dataset_get(ds, r->row[u])->patient;
        if (!rc) {
            qsort(keys, r->rows_used, sizeof *keys, cmp_str);
            size_t np = 0;
            for (size_t u = 0; u < r->rows_used; u++)
                if (u == 0 || strcmp(keys[u], keys[np - 1]))
                    keys[np++] = keys[u];
            r->patients = np;
            for (size_t u = 0; u < r->rows_used; u++) {
                const char *key = rf_dataset_get(ds, r->row[u])->patient;
                const char **hit = bsearch(&key, keys, np, sizeof *keys, cmp_str);
                group[u] = (int)(hit - keys);
            }
        }
        free(keys);
    }
    if (!rc)
        rc = score_targets(&c, group, err);
    if (!rc && opts->saliency)
        rc = rf_eval_saliency_score(ds, opts, r, group, err);
    free(group);
    free(c.extra);
    return rc;
}
