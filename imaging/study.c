#define _GNU_SOURCE /* qsort_r */
/*
 * Studies (include/radfuse/study.h): instances grouped by StudyInstanceUID
 * and SeriesInstanceUID, ordered, duplicates (the same SOPInstanceUID more
 * than once) listed once; then imaging/select.c chooses.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/study.h"

void rf_studies_init(rf_studies *s)
{
    memset(s, 0, sizeof *s);
}

int rf_studies_add(rf_studies *s, const char *name, const rf_dicom_image *attrs, const char *sha256, rf_err *err)
{
    static const struct {
        size_t off;
        const char *what;
    } uids[] = {
        {offsetof(rf_dicom_image, study_uid), "StudyInstanceUID (0020,000D)"},
        {offsetof(rf_dicom_image, series_uid), "SeriesInstanceUID (0020,000E)"},
        {offsetof(rf_dicom_image, sop_uid), "SOPInstanceUID (0008,0018)"},
    };
    for (size_t k = 0; k < sizeof uids / sizeof *uids; k++)
        if (!((const char *)attrs + uids[k].off)[0])
            return rf_err_set(err, RF_EFORMAT, "%s: no %s: cannot be placed in a study", name, uids[k].what);
    if (s->ninst == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        rf_instance *v = realloc(s->inst, cap * sizeof *v);
        if (!v)
            return rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
        s->inst = v;
        s->cap = cap;
    }
    rf_instance *in = &s->inst[s->ninst];
    memset(in, 0, sizeof *in);
    if (!(in->name = strdup(name)))
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
    in->attrs = *attrs;
    /* pointers stay with the caller */
    in->attrs.pixels = NULL;
    in->attrs.pixels_size = 0;
    memset(&in->attrs.display.modality_lut, 0, sizeof in->attrs.display.modality_lut);
    memset(&in->attrs.display.voi_lut, 0, sizeof in->attrs.display.voi_lut);
    memset(in->attrs.display.palette, 0, sizeof in->attrs.display.palette);
    if (sha256)
        snprintf(in->pixel_sha256, sizeof in->pixel_sha256, "%s", sha256);
    in->duplicate_of = -1;
    s->ninst++;
    return RF_OK;
}

/* ---- ordering ---- */

/* Position along the slice normal; 0 when the geometry is absent or degenerate. */
static int slice_position(const rf_dicom_image *m, double *out)
{
    if (!m->has_orientation || !m->has_position)
        return 0;
    const double *r = m->orientation, *c = m->orientation + 3;
    double n[3] = {r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]};
    double len = sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
    if (!(len > 1e-6) || !isfinite(len))
        return 0;
    double d = (n[0] * m->position[0] + n[1] * m->position[1] + n[2] * m->position[2]) / len;
    if (!isfinite(d))
        return 0;
    *out = d;
    return 1;
}

static int cmp_int_present(int ha, int a, int hb, int b)
{
    if (ha != hb)
        return ha ? -1 : 1; /* present first */
    if (!ha)
        return 0;
    return (a > b) - (a < b);
}

static int cmp_instance(const void *pa, const void *pb, void *ctx)
{
    const rf_instance *inst = ctx;
    const rf_instance *a = &inst[*(const size_t *)pa], *b = &inst[*(const size_t *)pb];
    int c = cmp_int_present(a->attrs.has_instance_number, a->attrs.instance_number, b->attrs.has_instance_number,
                            b->attrs.instance_number);
    if (c)
        return c;
    double da = 0, db = 0;
    int ha = slice_position(&a->attrs, &da), hb = slice_position(&b->attrs, &db);
    if (ha != hb)
        return ha ? -1 : 1;
    if (ha && da != db)
        return da < db ? -1 : 1;
    c = strcmp(a->attrs.sop_uid, b->attrs.sop_uid);
    return c ? c : strcmp(a->name, b->name);
}

/* For duplicates: SOPInstanceUID, then name (the first name is listed). */
static int cmp_sop(const void *pa, const void *pb, void *ctx)
{
    const rf_instance *inst = ctx;
    const rf_instance *a = &inst[*(const size_t *)pa], *b = &inst[*(const size_t *)pb];
    int c = strcmp(a->attrs.sop_uid, b->attrs.sop_uid);
    return c ? c : strcmp(a->name, b->name);
}

/* For grouping: study, then series UID. */
static int cmp_group(const void *pa, const void *pb, void *ctx)
{
    const rf_instance *inst = ctx;
    const rf_instance *a = &inst[*(const size_t *)pa], *b = &inst[*(const size_t *)pb];
    int c = strcmp(a->attrs.study_uid, b->attrs.study_uid);
    return c ? c : strcmp(a->attrs.series_uid, b->attrs.series_uid);
}

static int cmp_series(const void *pa, const void *pb, void *ctx)
{
    const rf_studies *set = ctx;
    const rf_series *a = &set->series[*(const size_t *)pa], *b = &set->series[*(const size_t *)pb];
    int c = cmp_int_present(a->has_number, a->number, b->has_number, b->number);
    return c ? c : strcmp(a->uid, b->uid);
}

static int cmp_study(const void *pa, const void *pb, void *ctx)
{
    const rf_studies *set = ctx;
    const rf_study *a = &set->studies[*(const size_t *)pa], *b = &set->studies[*(const size_t *)pb];
    int c = strcmp(a->date, b->date);
    if (!c)
        c = strcmp(a->time, b->time);
    return c ? c : strcmp(a->uid, b->uid);
}

/* Adds m to the sorted, space-separated set of modalities (cut at RF_DICOM_STR). */
static void add_modality(rf_study *st, const char *m)
{
    if (!*m)
        return;
    const char *words[RF_DICOM_STR / 2 + 1];
    size_t lens[RF_DICOM_STR / 2 + 1], n = 0, lm = strlen(m);
    char copy[RF_DICOM_STR];
    memcpy(copy, st->modalities, sizeof copy);
    int placed = 0;
    for (char *save = NULL, *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        int c = strcmp(m, t);
        if (c == 0)
            return;
        if (c < 0 && !placed) {
            words[n] = m, lens[n++] = lm;
            placed = 1;
        }
        words[n] = t, lens[n++] = strlen(t);
    }
    if (!placed)
        words[n] = m, lens[n++] = lm;
    char out[RF_DICOM_STR];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + (k ? 1 : 0) + lens[i] + 1 > sizeof out)
            break;
        if (k)
            out[k++] = ' ';
        memcpy(out + k, words[i], lens[i]);
        k += lens[i];
    }
    out[k] = 0;
    memcpy(st->modalities, out, k + 1);
}

/* snprintf that may cut: notes quote names of any length */
static void say(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

int rf_studies_build(rf_studies *s, rf_err *err)
{
    size_t n = s->ninst;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (!idx)
        return rf_err_set(err, RF_ENOMEM, "out of memory grouping instances");
    for (size_t i = 0; i < n; i++)
        idx[i] = i;

    /* duplicates: the same SOPInstanceUID again is a copy of the first by name */
    qsort_r(idx, n, sizeof *idx, cmp_sop, s->inst);
    for (size_t i = 1, first = 0; i < n; i++) {
        rf_instance *a = &s->inst[idx[first]], *b = &s->inst[idx[i]];
        if (strcmp(a->attrs.sop_uid, b->attrs.sop_uid) != 0) {
            first = i;
            continue;
        }
        b->duplicate_of = (long)idx[first];
        a->duplicates++;
        const char *differs = "";
        if (*a->pixel_sha256 && *b->pixel_sha256 && strcmp(a->pixel_sha256, b->pixel_sha256) != 0)
            differs = "; its pixel data differs";
        else if (strcmp(a->attrs.series_uid, b->attrs.series_uid) != 0 ||
                 strcmp(a->attrs.study_uid, b->attrs.study_uid) != 0)
            differs = "; its study or series UID differs";
        say(b->reason, sizeof b->reason, "duplicate: SOPInstanceUID already read from %s (listed there)%s",
                 a->name, differs);
    }

    /* groups of study and series UID, in sorted order */
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (s->inst[i].duplicate_of < 0)
            idx[m++] = i;
    qsort_r(idx, m, sizeof *idx, cmp_group, s->inst);
    size_t nseries = 0, nstudies = 0;
    for (size_t i = 0; i < m; i++) {
        const rf_instance *a = &s->inst[idx[i]], *p = i ? &s->inst[idx[i - 1]] : NULL;
        int new_study = !p || strcmp(a->attrs.study_uid, p->attrs.study_uid) != 0;
        nstudies += new_study;
        nseries += new_study || strcmp(a->attrs.series_uid, p->attrs.series_uid) != 0;
    }
    s->series = calloc(nseries ? nseries : 1, sizeof *s->series);
    s->studies = calloc(nstudies ? nstudies : 1, sizeof *s->studies);
    s->study_order = malloc((nstudies ? nstudies : 1) * sizeof *s->study_order);
    size_t *series_of_study = malloc((nseries ? nseries : 1) * sizeof *series_of_study);
    if (!s->series || !s->studies || !s->study_order || !series_of_study) {
        free(idx);
        free(series_of_study);
        return rf_err_set(err, RF_ENOMEM, "out of memory grouping instances");
    }
    int rc = RF_OK;
    for (size_t i = 0, start = 0; i <= m && !rc; i++) {
        const rf_instance *a = i < m ? &s->inst[idx[i]] : NULL, *p = i ? &s->inst[idx[i - 1]] : NULL;
        int new_study = a && (!p || strcmp(a->attrs.study_uid, p->attrs.study_uid) != 0);
        int new_series = a && (new_study || strcmp(a->attrs.series_uid, p->attrs.series_uid) != 0);
        if (i > 0 && (!a || new_series)) {
            /* close the series [start, i) */
            rf_series *se = &s->series[s->nseries - 1];
            se->count = i - start;
            if (!(se->order = malloc(se->count * sizeof *se->order))) {
                rc = rf_err_set(err, RF_ENOMEM, "out of memory grouping instances");
                break;
            }
            memcpy(se->order, idx + start, se->count * sizeof *se->order);
            qsort_r(se->order, se->count, sizeof *se->order, cmp_instance, s->inst);
        }
        if (!a)
            break;
        if (new_study) {
            rf_study *st = &s->studies[s->nstudies];
            s->study_order[s->nstudies] = s->nstudies;
            s->nstudies++;
            snprintf(st->uid, sizeof st->uid, "%s", a->attrs.study_uid);
            snprintf(st->description, sizeof st->description, "%s", a->attrs.study_description);
            snprintf(st->date, sizeof st->date, "%s", a->attrs.study_date);
            snprintf(st->time, sizeof st->time, "%s", a->attrs.study_time);
        }
        if (new_series) {
            rf_series *se = &s->series[s->nseries++];
            se->study = s->nstudies - 1;
            series_of_study[s->nseries - 1] = se->study;
            snprintf(se->uid, sizeof se->uid, "%s", a->attrs.series_uid);
            snprintf(se->modality, sizeof se->modality, "%s", a->attrs.modality);
            snprintf(se->description, sizeof se->description, "%s", a->attrs.series_description);
            se->number = a->attrs.series_number;
            se->has_number = a->attrs.has_series_number;
            start = i;
        }
        rf_study *st = &s->studies[s->nstudies - 1];
        rf_series *se = &s->series[s->nseries - 1];
        s->inst[idx[i]].study = s->nstudies - 1;
        s->inst[idx[i]].series = s->nseries - 1;
        long frames = !a->attrs.has_pixel_data ? 0 : a->attrs.frames > 0 ? a->attrs.frames : 1;
        se->frames += frames;
        st->frames += frames;
        st->instances++;
        add_modality(st, a->attrs.modality);
    }
    free(idx);
    /* each study's series, in order */
    for (size_t k = 0; k < s->nstudies && !rc; k++) {
        rf_study *st = &s->studies[k];
        for (size_t j = 0; j < s->nseries; j++)
            st->nseries += series_of_study[j] == k;
        if (!(st->series = malloc((st->nseries ? st->nseries : 1) * sizeof *st->series))) {
            rc = rf_err_set(err, RF_ENOMEM, "out of memory grouping instances");
            break;
        }
        size_t w = 0;
        for (size_t j = 0; j < s->nseries; j++)
            if (series_of_study[j] == k)
                st->series[w++] = j;
        qsort_r(st->series, st->nseries, sizeof *st->series, cmp_series, s);
    }
    free(series_of_study);
    if (rc)
        return rc;
    qsort_r(s->study_order, s->nstudies, sizeof *s->study_order, cmp_study, s);
    for (size_t i = 0; i < n; i++)
        if (s->inst[i].duplicate_of >= 0) {
            s->inst[i].study = s->inst[s->inst[i].duplicate_of].study;
            s->inst[i].series = s->inst[s->inst[i].duplicate_of].series;
            s->studies[s->inst[i].study].duplicates++;
        }
    rf_select_studies(s);
    for (size_t j = 0; j < s->nseries; j++) {
        rf_series *se = &s->series[j];
        rf_study *st = &s->studies[se->study];
        for (size_t k = 0; k < se->count; k++) {
            const rf_instance *in = &s->inst[se->order[k]];
            if (in->selected) {
                se->selected++;
                st->selected++;
                st->selected_frames += in->attrs.frames > 0 ? in->attrs.frames : 1;
            }
        }
    }
    return RF_OK;
}

void rf_studies_free(rf_studies *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ninst; i++)
        free(s->inst[i].name);
    free(s->inst);
    for (size_t j = 0; j < s->nseries; j++)
        free(s->series[j].order);
    free(s->series);
    for (size_t k = 0; k < s->nstudies; k++)
        free(s->studies[k].series);
    free(s->studies);
    free(s->study_order);
    memset(s, 0, sizeof *s);
}
