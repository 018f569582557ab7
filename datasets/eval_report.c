/*
 * The eval result as JSON (rf_eval_json: the structure docs/eval.md gives,
 * with the required keys first) and as readable tables
 * (rf_eval_print). Values that are not defined (an interval without a usable
 * resample, a set not read) are JSON null and "-" in the tables.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/datasets.h"
#include "radfuse/eval.h"
#include "datasets/eval_internal.h"
#include "radfuse/fusion.h"

static cJSON *num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *pair(double a, double b)
{
    cJSON *p = cJSON_CreateArray();
    cJSON_AddItemToArray(p, num(a));
    cJSON_AddItemToArray(p, num(b));
    return p;
}

static int sets_read(const rf_eval_result *r)
{
    return r->mask_findings ? RF_EVAL_INPUT_COUNT : RF_EVAL_FUSED_MASKED;
}

/* {"image", "text", "labs", "fused"[, "fused_masked", "text_masked"]} of v. */
static cJSON *by_set(const rf_eval_result *r, const double *v)
{
    static const rf_eval_input order[RF_EVAL_INPUT_COUNT] = {RF_EVAL_IMAGE, RF_EVAL_TEXT, RF_EVAL_LABS,
                                                             RF_EVAL_FUSED, RF_EVAL_FUSED_MASKED, RF_EVAL_TEXT_MASKED};
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < RF_EVAL_INPUT_COUNT; i++)
        if ((int)order[i] < sets_read(r))
            cJSON_AddItemToObject(o, rf_eval_input_name(order[i]), num(v[order[i]]));
    return o;
}

char *rf_eval_json(const rf_eval_result *r, const rf_fusion *model)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *targets = cJSON_AddObjectToObject(root, "targets");
    for (int k = 0; k < r->ntargets; k++) {
        const rf_eval_target *t = &r->targets[k];
        cJSON *o = cJSON_AddObjectToObject(targets, t->name);
        cJSON_AddNumberToObject(o, "n", (double)t->n);
        cJSON_AddNumberToObject(o, "positives", (double)t->positives);
        cJSON_AddItemToObject(o, "auroc", num(t->auroc));
        cJSON_AddItemToObject(o, "auroc_ci", pair(t->ci.lo, t->ci.hi));
        cJSON_AddItemToObject(o, "ece", num(t->ece));
        cJSON_AddItemToObject(o, "ablation", by_set(r, t->ablation));
        /* beyond the required keys */
        cJSON_AddStringToObject(o, "kind", t->finding ? "finding" : "outcome");
        cJSON_AddStringToObject(o, "label", rf_fusion_get_info(model)->labels[t->label].code);
        cJSON_AddItemToObject(o, "auprc", num(t->auprc));
        cJSON_AddNumberToObject(o, "bootstrap_used", t->ci.used);
        cJSON *aci = cJSON_AddObjectToObject(o, "ablation_ci");
        for (int s = 0; s < sets_read(r); s++)
            cJSON_AddItemToObject(aci, rf_eval_input_name((rf_eval_input)s),
                                  pair(t->ablation_ci[s].lo, t->ablation_ci[s].hi));
        cJSON *fm = cJSON_AddObjectToObject(o, "fused_minus");
        for (int s = 1; s < sets_read(r); s++) {
            cJSON *x = cJSON_AddObjectToObject(fm, rf_eval_input_name((rf_eval_input)s));
            cJSON_AddItemToObject(x, "delta", num(t->fused_minus[s]));
            cJSON_AddItemToObject(x, "ci", pair(t->fused_minus_ci[s].lo, t->fused_minus_ci[s].hi));
        }
        cJSON_AddNumberToObject(o, "threshold", t->threshold);
        cJSON_AddItemToObject(o, "sensitivity", num(t->at_threshold.sensitivity));
        cJSON_AddItemToObject(o, "specificity", num(t->at_threshold.specificity));
        cJSON *cm = cJSON_AddObjectToObject(o, "confusion");
        cJSON_AddNumberToObject(cm, "tp", (double)t->at_threshold.tp);
        cJSON_AddNumberToObject(cm, "fp", (double)t->at_threshold.fp);
        cJSON_AddNumberToObject(cm, "tn", (double)t->at_threshold.tn);
        cJSON_AddNumberToObject(cm, "fn", (double)t->at_threshold.fn);
        cJSON *rel = cJSON_AddArrayToObject(o, "reliability");
        for (int b = 0; b < RF_EVAL_BINS; b++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "bin", b);
            cJSON_AddNumberToObject(x, "lo", t->bins[b].lo);
            cJSON_AddNumberToObject(x, "hi", t->bins[b].hi);
            cJSON_AddNumberToObject(x, "count", (double)t->bins[b].count);
            cJSON_AddItemToObject(x, "confidence", t->bins[b].count ? num(t->bins[b].confidence) : cJSON_CreateNull());
            cJSON_AddItemToObject(x, "accuracy", t->bins[b].count ? num(t->bins[b].accuracy) : cJSON_CreateNull());
            cJSON_AddItemToArray(rel, x);
        }
    }
    cJSON_AddItemToObject(root, "macro_auroc", by_set(r, r->macro));
    cJSON_AddItemToObject(root, "macro_auroc_findings", by_set(r, r->macro_findings));
    cJSON *sk = cJSON_AddObjectToObject(root, "skipped_targets");
    for (int k = 0; k < r->nskipped; k++)
        cJSON_AddStringToObject(sk, r->skipped[k].name, r->skipped[k].reason);

    cJSON *d = cJSON_AddObjectToObject(root, "dataset");
    cJSON_AddStringToObject(d, "layout", r->layout);
    cJSON_AddStringToObject(d, "subset", r->subset == 0 ? "all" : rf_split_name((rf_split)r->subset));
    cJSON_AddStringToObject(d, "split", r->split);
    cJSON_AddNumberToObject(d, "rows", (double)r->rows_total);
    cJSON_AddNumberToObject(d, "rows_subset", (double)r->rows_subset);
    cJSON_AddNumberToObject(d, "rows_read", (double)r->rows_read);
    cJSON_AddNumberToObject(d, "rows_used", (double)r->rows_used);
    cJSON_AddNumberToObject(d, "patients", (double)r->patients);
    cJSON_AddNumberToObject(d, "with_note", (double)r->with_note);
    cJSON_AddNumberToObject(d, "with_labs", (double)r->with_labs);
    cJSON_AddNumberToObject(d, "image_failures", (double)r->image_failures);
    cJSON_AddNumberToObject(d, "note_failures", (double)r->note_failures);
    cJSON_AddNumberToObject(d, "lab_failures", (double)r->lab_failures);
    cJSON *fl = cJSON_AddArrayToObject(d, "failures");
    for (size_t i = 0; i < r->nfailures; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "id", r->failures[i].id);
        cJSON_AddNumberToObject(x, "line", (double)r->failures[i].line);
        cJSON_AddStringToObject(x, "error", r->failures[i].error);
        cJSON_AddItemToArray(fl, x);
    }

    const rf_fusion_info *info = rf_fusion_get_info(model);
    cJSON *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "name", info->name ? info->name : "");
    cJSON_AddStringToObject(m, "version", info->version ? info->version : "");
    cJSON_AddStringToObject(m, "sha256", info->sha256);
    cJSON_AddStringToObject(m, "backend", info->backend ? info->backend : "");

    cJSON *b = cJSON_AddObjectToObject(root, "bootstrap");
    cJSON_AddNumberToObject(b, "resamples", r->bootstrap);
    cJSON_AddNumberToObject(b, "seed", (double)r->seed);
    cJSON_AddNumberToObject(b, "level", 0.95);
    cJSON_AddStringToObject(b, "unit", "patient");
    cJSON *mk = cJSON_AddObjectToObject(root, "mask_findings");
    cJSON_AddBoolToObject(mk, "enabled", r->mask_findings);
    cJSON_AddNumberToObject(mk, "replacements", (double)r->masked_terms);
    cJSON_AddNumberToObject(root, "seconds", r->seconds);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

static int put(char **p, size_t *n, size_t *cap, const char *s, size_t len)
{
    if (*n + len + 1 > *cap) {
        size_t c = (*n + len + 1) * 2;
        char *q = realloc(*p, c);
        if (!q)
            return -1;
        *p = q, *cap = c;
    }
    memcpy(*p + *n, s, len);
    *n += len;
    (*p)[*n] = 0;
    return 0;
}

/* A CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(char **p, size_t *n, size_t *cap, const char *v, int *oom)
{
    if (!strpbrk(v, ",\"\r\n")) {
        *oom |= put(p, n, cap, v, strlen(v));
        return;
    }
    *oom |= put(p, n, cap, "\"", 1);
    for (; *v; v++)
        *oom |= *v == '"' ? put(p, n, cap, "\"\"", 2) : put(p, n, cap, v, 1);
    *oom |= put(p, n, cap, "\"", 1);
}

char *rf_eval_predictions_csv(const rf_eval_result *r, const rf_fusion *model, const rf_dataset *ds)
{
    const rf_fusion_info *info = rf_fusion_get_info(model);
    char *p = NULL, num[40];
    size_t n = 0, cap = 0;
    int oom = put(&p, &n, &cap, "id,input", 8);
    for (int k = 0; k < info->nlabels; k++) {
        oom |= put(&p, &n, &cap, ",", 1);
        csv_field(&p, &n, &cap, info->labels[k].code, &oom);
    }
    oom |= put(&p, &n, &cap, "\n", 1);
    for (size_t u = 0; u < r->rows_used && !oom; u++) {
        for (int s = 0; s < sets_read(r); s++) {
            csv_field(&p, &n, &cap, rf_dataset_get(ds, r->row[u])->id, &oom);
            oom |= put(&p, &n, &cap, ",", 1);
            oom |= put(&p, &n, &cap, rf_eval_input_name((rf_eval_input)s), strlen(rf_eval_input_name((rf_eval_input)s)));
            const float *pr = r->prob + (u * RF_EVAL_INPUT_COUNT + (size_t)s) * (size_t)r->nlabels;
            for (int k = 0; k < r->nlabels; k++) {
                int len = snprintf(num, sizeof num, ",%.9g", (double)pr[k]);
                oom |= put(&p, &n, &cap, num, (size_t)len);
            }
            oom |= put(&p, &n, &cap, "\n", 1);
        }
    }
    if (oom) {
        free(p);
        return NULL;
    }
    return p;
}

void rf_eval_fmt(char *buf, size_t n, double v)
{
    if (isfinite(v))
        snprintf(buf, n, "%.3f", v);
    else
        snprintf(buf, n, "-");
}

void rf_eval_fmt_ci(char *buf, size_t n, const rf_eval_ci *ci)
{
    if (isfinite(ci->lo) && isfinite(ci->hi))
        snprintf(buf, n, "%.3f-%.3f", ci->lo, ci->hi);
    else
        snprintf(buf, n, "-");
}

void rf_eval_print(const rf_eval_result *r, const rf_fusion *model, FILE *f)
{
    const rf_fusion_info *info = rf_fusion_get_info(model);
    fprintf(f, "dataset %s, subset %s (split: %s): %zu of %zu rows read, %zu used, %zu patients\n", r->layout,
            r->subset == 0 ? "all" : rf_split_name((rf_split)r->subset), r->split, r->rows_read, r->rows_subset,
            r->rows_used, r->patients);
    fprintf(f, "inputs: %zu with a note, %zu with labs; %zu image%s failed", r->with_note, r->with_labs,
            r->image_failures, r->image_failures == 1 ? "" : "s");
    if (r->note_failures || r->lab_failures)
        fprintf(f, ", %zu note%s and %zu lab set%s unreadable", r->note_failures, r->note_failures == 1 ? "" : "s",
                r->lab_failures, r->lab_failures == 1 ? "" : "s");
    fprintf(f, "\nmodel: %s %s on %s; %d bootstrap resamples of patients (seed %llu); %.1f s\n\n",
            info->name ? info->name : "?", info->version ? info->version : "", info->backend ? info->backend : "?",
            r->bootstrap, (unsigned long long)r->seed, r->seconds);

    int w = 6;
    for (int k = 0; k < r->ntargets; k++) {
        int l = (int)strlen(r->targets[k].name);
        w = l > w ? (l > 32 ? 32 : l) : w;
    }
    char a[32], ci[32], p[32], e[32], se[32], sp[32];
    fprintf(f, "%-*s  %5s  %4s  %6s  %-13s  %6s  %6s  %9s  %5s  %5s\n", w, "target", "n", "pos", "AUROC", "95% CI",
            "AUPRC", "ECE", "threshold", "sens", "spec");
    for (int k = 0; k < r->ntargets; k++) {
        const rf_eval_target *t = &r->targets[k];
        rf_eval_fmt(a, sizeof a, t->auroc);
        rf_eval_fmt_ci(ci, sizeof ci, &t->ci);
        rf_eval_fmt(p, sizeof p, t->auprc);
        rf_eval_fmt(e, sizeof e, t->ece);
        rf_eval_fmt(se, sizeof se, t->at_threshold.sensitivity);
        rf_eval_fmt(sp, sizeof sp, t->at_threshold.specificity);
        fprintf(f, "%-*.*s  %5ld  %4ld  %6s  %-13s  %6s  %6s  %9.2f  %5s  %5s\n", w, w, t->name, t->n, t->positives, a,
                ci, p, e, t->threshold, se, sp);
    }

    int sets = r->mask_findings ? RF_EVAL_INPUT_COUNT : RF_EVAL_FUSED_MASKED;
    fprintf(f, "\nablation (AUROC, 95%% CI):\n%-*s", w, "target");
    for (int s = 0; s < sets; s++)
        fprintf(f, "  %-19s", rf_eval_input_name((rf_eval_input)s));
    fputc('\n', f);
    for (int k = 0; k < r->ntargets; k++) {
        const rf_eval_target *t = &r->targets[k];
        fprintf(f, "%-*.*s", w, w, t->name);
        for (int s = 0; s < sets; s++) {
            char cell[72];
            rf_eval_fmt(a, sizeof a, t->ablation[s]);
            rf_eval_fmt_ci(ci, sizeof ci, &t->ablation_ci[s]);
            snprintf(cell, sizeof cell, "%s %s", a, ci);
            fprintf(f, "  %-19s", cell);
        }
        fputc('\n', f);
    }
    fprintf(f, "%-*s", w, "macro");
    for (int s = 0; s < sets; s++) {
        rf_eval_fmt(a, sizeof a, r->macro[s]);
        fprintf(f, "  %-19s", a);
    }
    fprintf(f, "\n\nfused minus each set (AUROC difference, paired 95%% CI):\n%-*s", w, "target");
    for (int s = 1; s < sets; s++)
        fprintf(f, "  %-21s", rf_eval_input_name((rf_eval_input)s));
    fputc('\n', f);
    for (int k = 0; k < r->ntargets; k++) {
        const rf_eval_target *t = &r->targets[k];
        fprintf(f, "%-*.*s", w, w, t->name);
        for (int s = 1; s < sets; s++) {
            char cell[72];
            if (isfinite(t->fused_minus_ci[s].lo))
                snprintf(cell, sizeof cell, "%+.3f %+.3f..%+.3f", t->fused_minus[s], t->fused_minus_ci[s].lo,
                         t->fused_minus_ci[s].hi);
            else if (isfinite(t->fused_minus[s]))
                snprintf(cell, sizeof cell, "%+.3f", t->fused_minus[s]);
            else
                snprintf(cell, sizeof cell, "-");
            fprintf(f, "  %-21s", cell);
        }
        fputc('\n', f);
    }
    if (r->mask_findings)
        fprintf(f, "(masked: %zu finding name%s replaced by [MASK] in the notes)\n", r->masked_terms,
                r->masked_terms == 1 ? "" : "s");

    for (int k = 0; k < r->ntargets; k++) {
        const rf_eval_target *t = &r->targets[k];
        fprintf(f, "\nreliability of %s (fused; ECE %s):\n  bin        count  confidence  accuracy\n", t->name,
                (rf_eval_fmt(e, sizeof e, t->ece), e));
        for (int b = 0; b < RF_EVAL_BINS; b++) {
            if (!t->bins[b].count) {
                fprintf(f, "  %.1f-%.1f  %5ld\n", t->bins[b].lo, t->bins[b].hi, 0L);
                continue;
            }
            fprintf(f, "  %.1f-%.1f  %5ld  %10.3f  %8.3f\n", t->bins[b].lo, t->bins[b].hi, t->bins[b].count,
                    t->bins[b].confidence, t->bins[b].accuracy);
        }
    }
    if (r->nskipped) {
        fprintf(f, "\nnot evaluated:\n");
        for (int k = 0; k < r->nskipped; k++)
            fprintf(f, "  %s: %s\n", r->skipped[k].name, r->skipped[k].reason);
    }
    if (r->nfailures) {
        fprintf(f, "\nrows left out (%zu):\n", r->nfailures);
        for (size_t i = 0; i < r->nfailures && i < 20; i++)
            fprintf(f, "  %s (line %ld): %s\n", r->failures[i].id, r->failures[i].line, r->failures[i].error);
        if (r->nfailures > 20)
            fprintf(f, "  ... and %zu more (--json lists every one)\n", r->nfailures - 20);
    }
}
