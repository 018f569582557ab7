/*
 * The result record (include/radfuse/result.h): freeing, warnings, timings,
 * and the checks the writers run before they write (report/report.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

const char *rf_modality_name(rf_modality k)
{
    switch (k) {
    case RF_MODALITY_IMAGE: return "image";
    case RF_MODALITY_TEXT: return "text";
    case RF_MODALITY_LABS: return "labs";
    case RF_MODALITY_PRIOR: return "prior";
    default: return "?";
    }
}

static void free_image(rf_result_image *im)
{
    free(im->path);
    free(im->source);
    free(im->source_data);
    free(im->sop_instance_uid);
    free(im->sop_class_uid);
    free(im->series_instance_uid);
    free(im->study_instance_uid);
    free(im->modality);
    free(im->view);
    free(im->reason);
    free(im->display);
}

static void free_finding(rf_result_finding *f)
{
    free(f->code);
    free(f->display);
    free(f->coding_system);
    free(f->coding_code);
    for (size_t i = 0; f->maps && i < f->nmaps; i++) {
        free(f->maps[i].values);
        free(f->maps[i].overlay);
        free(f->maps[i].dicom);
        free(f->maps[i].sop_instance_uid);
    }
    free(f->maps);
    free(f->spans);
}

void rf_result_free(rf_read_result *r)
{
    if (!r)
        return;
    free(r->tool_version);
    free(r->created);
    free(r->model.dir);
    free(r->model.name);
    free(r->model.version);
    free(r->model.sha256);
    free(r->model.backend);
    free(r->model.precision);
    free(r->saliency);
    free(r->study.study_instance_uid);
    free(r->study.study_date);
    free(r->study.study_time);
    free(r->study.study_description);
    free(r->study.modalities);
    free(r->study.prior_study_instance_uid);
    free(r->study.prior_study_date);
    free(r->study.accession_number);
    free(r->study.patient_id);
    free(r->study.patient_name);
    free(r->study.patient_birth_date);
    free(r->study.patient_sex);
    for (size_t i = 0; r->images && i < r->nimages; i++)
        free_image(&r->images[i]);
    free(r->images);
    for (size_t i = 0; r->notes && i < r->nnotes; i++) {
        free(r->notes[i].path);
        free(r->notes[i].kind);
        free(r->notes[i].text);
    }
    free(r->notes);
    for (size_t i = 0; r->labs && i < r->nlabs; i++) {
        free(r->labs[i].name);
        free(r->labs[i].loinc);
        free(r->labs[i].unit);
        free(r->labs[i].flag);
    }
    free(r->labs);
    for (size_t i = 0; r->findings && i < r->nfindings; i++)
        free_finding(&r->findings[i]);
    free(r->findings);
    for (size_t i = 0; r->timings && i < r->ntimings; i++)
        free(r->timings[i].stage);
    free(r->timings);
    for (size_t i = 0; r->warnings && i < r->nwarnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    memset(r, 0, sizeof *r);
}

int rf_result_warn(rf_read_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return RF_EINVAL;
    char *line = malloc((size_t)n + 1);
    char **w = line ? realloc(r->warnings, (r->nwarnings + 1) * sizeof *w) : NULL;
    if (!w) {
        free(line);
        return RF_ENOMEM;
    }
    r->warnings = w;
    va_start(ap, fmt);
    vsnprintf(line, (size_t)n + 1, fmt, ap);
    va_end(ap);
    r->warnings[r->nwarnings++] = line;
    return RF_OK;
}

int rf_result_time(rf_read_result *r, const char *stage, double ms)
{
    char *s = strdup(stage ? stage : "");
    rf_result_timing *t = s ? realloc(r->timings, (r->ntimings + 1) * sizeof *t) : NULL;
    if (!t) {
        free(s);
        return RF_ENOMEM;
    }
    r->timings = t;
    r->timings[r->ntimings].stage = s;
    r->timings[r->ntimings].ms = ms;
    r->ntimings++;
    return RF_OK;
}

/* ---- checks ---- */

static int num_bad(double v, double lo, double hi)
{
    return !isfinite(v) || v < lo || v > hi;
}

static int utf8_boundary(const char *text, size_t len, size_t at)
{
    return at == len || ((unsigned char)text[at] & 0xC0) != 0x80;
}

static int check_finding(const rf_read_result *r, size_t fi, const char *what, rf_err *err)
{
    const rf_result_finding *f = &r->findings[fi];
    if (!f->code || !*f->code)
        return rf_err_set(err, RF_EINVAL, "%s: finding %zu has no code", what, fi);
#define BAD(field, v, lo, hi)                                                                                \
    if (num_bad((v), (lo), (hi)))                                                                            \
        return rf_err_set(err, RF_EINVAL, "%s: finding %zu (%s): %s is %g, not a finite number in [%g, %g]", \
                          what, fi, f->code, field, (double)(v), (double)(lo), (double)(hi));
    BAD("probability", f->probability, 0, 1);
    BAD("threshold", f->threshold, 0, 1);
    BAD("logit", f->logit, -HUGE_VAL, HUGE_VAL);
    BAD("temperature", f->temperature, 0, HUGE_VAL);
    if (!(f->temperature > 0))
        return rf_err_set(err, RF_EINVAL, "%s: finding %zu (%s): temperature is 0, not > 0", what, fi, f->code);
    for (int k = 0; k < RF_MODALITY_COUNT; k++)
        BAD(rf_modality_name((rf_modality)k), f->input_weight[k], 0, 1);
    if (f->nmaps && !f->maps)
        return rf_err_set(err, RF_EINVAL, "%s: finding %zu (%s): %zu maps but no map array", what, fi, f->code,
                          f->nmaps);
    for (size_t m = 0; m < f->nmaps; m++) {
        const rf_result_map *map = &f->maps[m];
        if (map->image >= r->nimages)
            return rf_err_set(err, RF_EINVAL, "%s: finding %zu (%s): map %zu refers to image %zu of %zu", what, fi,
                              f->code, m, map->image, r->nimages);
        const rf_result_image *im = &r->images[map->image];
        if (!im->used || !im->display || im->rows <= 0 || im->cols <= 0 || !map->values)
            return rf_err_set(err, RF_EINVAL,
                              "%s: finding %zu (%s): map %zu is on image %zu, which is not used or has no display "
                              "image or no map values",
                              what, fi, f->code, m, map->image);
        if (map->peak_row < 0 || map->peak_row >= im->rows || map->peak_col < 0 || map->peak_col >= im->cols)
            return rf_err_set(err, RF_EINVAL, "%s: finding %zu (%s): map %zu peak (%d, %d) outside the %d x %d image",
                              what, fi, f->code, m, map->peak_row, map->peak_col, im->rows, im->cols);
        size_t n = (size_t)im->rows * (size_t)im->cols;
        for (size_t i = 0; i < n; i++)
            if (num_bad(map->values[i], 0, 1))
                return rf_err_set(err, RF_EINVAL,
                                  "%s: finding %zu (%s): map %zu value at (%zu, %zu) is %g, not in [0, 1]", what, fi,
                                  f->code, m, i / (size_t)im->cols, i % (size_t)im->cols, (double)map->values[i]);
    }
    if (f->nspans && !f->spans)
        return rf_err_set(err, RF_EINVAL, "%s: finding %zu (%s): %zu spans but no span array", what, fi, f->code,
                          f->nspans);
    for (size_t s = 0; s < f->nspans; s++) {
        const rf_result_span *sp = &f->spans[s];
        if (sp->note >= r->nnotes || !r->notes[sp->note].text)
            return rf_err_set(err, RF_EINVAL, "%s: finding %zu (%s): span %zu refers to note %zu of %zu (or one without text)",
                              what, fi, f->code, s, sp->note, r->nnotes);
        const rf_result_note *note = &r->notes[sp->note];
        if (sp->begin >= sp->end || sp->end > note->len || !utf8_boundary(note->text, note->len, sp->begin) ||
            !utf8_boundary(note->text, note->len, sp->end))
            return rf_err_set(err, RF_EINVAL,
                              "%s: finding %zu (%s): span %zu [%zu, %zu) is not a nonempty range of whole UTF-8 "
                              "characters of note %zu (%zu bytes)",
                              what, fi, f->code, s, sp->begin, sp->end, sp->note, note->len);
        BAD("span weight", sp->weight, -1, 1);
    }
#undef BAD
    return RF_OK;
}

int rf_result_check(const rf_read_result *r, const char *what, rf_err *err)
{
    if ((r->nimages && !r->images) || (r->nnotes && !r->notes) || (r->nlabs && !r->labs) ||
        (r->nfindings && !r->findings) || (r->ntimings && !r->timings) || (r->nwarnings && !r->warnings))
        return rf_err_set(err, RF_EINVAL, "%s: a count is set without its array", what);
    for (size_t i = 0; i < r->nimages; i++) {
        const rf_result_image *im = &r->images[i];
        if (!isfinite(im->window_center) || !isfinite(im->window_width))
            return rf_err_set(err, RF_EINVAL, "%s: image %zu: window center/width not finite", what, i);
        if (im->rows < 0 || im->cols < 0 || (im->display && (im->rows == 0 || im->cols == 0)) ||
            (size_t)im->rows * (size_t)im->cols > ((size_t)1 << 31))
            return rf_err_set(err, RF_EINVAL, "%s: image %zu: bad size %d x %d", what, i, im->rows, im->cols);
    }
    for (size_t i = 0; i < r->nnotes; i++)
        if (r->notes[i].len && !r->notes[i].text)
            return rf_err_set(err, RF_EINVAL, "%s: note %zu: %zu bytes but no text", what, i, r->notes[i].len);
    for (size_t i = 0; i < r->nlabs; i++)
        if (!isfinite(r->labs[i].value) || num_bad(r->labs[i].weight, -1, 1))
            return rf_err_set(err, RF_EINVAL, "%s: lab %zu (%s): value %g or weight %g not finite (weight in [-1, 1])",
                              what, i, r->labs[i].name ? r->labs[i].name : "?", r->labs[i].value, r->labs[i].weight);
    for (size_t i = 0; i < r->nfindings; i++) {
        int rc = check_finding(r, i, what, err);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < r->ntimings; i++)
        if (!r->timings[i].stage || num_bad(r->timings[i].ms, 0, HUGE_VAL))
            return rf_err_set(err, RF_EINVAL, "%s: timing %zu (%s): %g ms is not a finite number >= 0", what, i,
                              r->timings[i].stage ? r->timings[i].stage : "?", r->timings[i].ms);
    for (size_t i = 0; i < r->nwarnings; i++)
        if (!r->warnings[i])
            return rf_err_set(err, RF_EINVAL, "%s: warning %zu is NULL", what, i);
    return RF_OK;
}
