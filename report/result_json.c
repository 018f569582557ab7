/*
 * result.json (rf_result_write_json): the whole read as one JSON document,
 * schema RF_RESULT_SCHEMA_VERSION, documented field by field in
 * docs/result-schema.md and as a JSON Schema in docs/result.schema.json.
 * Unknown strings (NULL) are left out; numbers are finite (a NaN or an
 * infinity is refused: it would be a bug upstream, not a value to pass on);
 * patient identifiers and full input paths only with include_phi.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "report/report.h"
#include "runtime/fileio.h"

/* Builder state: the first failure (out of memory, a non-finite number)
 * sticks and every later add is skipped. */
typedef struct jctx {
    int rc;
    const char *path;
    rf_err *err;
} jctx;

static cJSON *attach(jctx *c, cJSON *parent, const char *key, cJSON *item)
{
    if (!item || c->rc) {
        if (!c->rc)
            c->rc = rf_err_set(c->err, RF_ENOMEM, "%s: out of memory", c->path);
        cJSON_Delete(item);
        return NULL;
    }
    if (cJSON_IsArray(parent) ? !cJSON_AddItemToArray(parent, item) : !cJSON_AddItemToObject(parent, key, item)) {
        cJSON_Delete(item);
        c->rc = rf_err_set(c->err, RF_ENOMEM, "%s: out of memory", c->path);
        return NULL;
    }
    return item;
}

static void add_str(jctx *c, cJSON *o, const char *key, const char *v)
{
    if (v && !c->rc)
        attach(c, o, key, cJSON_CreateString(v));
}

static void add_num(jctx *c, cJSON *o, const char *key, double v)
{
    if (c->rc)
        return;
    if (!isfinite(v)) {
        c->rc = rf_err_set(c->err, RF_EINVAL, "%s: %s is %g, not a finite number", c->path, key, v);
        return;
    }
    attach(c, o, key, rf_json_num(v));
}

/* A float field at float precision: 0.83f is written 0.83, not 0.8299999833. */
static void add_numf(jctx *c, cJSON *o, const char *key, float v)
{
    if (c->rc)
        return;
    if (!isfinite(v)) {
        c->rc = rf_err_set(c->err, RF_EINVAL, "%s: %s is %g, not a finite number", c->path, key, (double)v);
        return;
    }
    attach(c, o, key, rf_json_numf(v));
}

static void add_bool(jctx *c, cJSON *o, const char *key, int v)
{
    if (!c->rc)
        attach(c, o, key, cJSON_CreateBool(v != 0));
}

static cJSON *add_obj(jctx *c, cJSON *o, const char *key)
{
    return c->rc ? NULL : attach(c, o, key, cJSON_CreateObject());
}

static cJSON *add_arr(jctx *c, cJSON *o, const char *key)
{
    return c->rc ? NULL : attach(c, o, key, cJSON_CreateArray());
}

static void add_kinds_num(jctx *c, cJSON *o, const char *key, const double *v)
{
    cJSON *k = add_obj(c, o, key);
    for (int i = 0; k && i < RF_MODALITY_COUNT; i++)
        add_num(c, k, rf_modality_name((rf_modality)i), v[i]);
}

static void add_study(jctx *c, cJSON *root, const rf_read_result *r)
{
    cJSON *s = add_obj(c, root, "study");
    if (!s)
        return;
    add_str(c, s, "study_instance_uid", r->study.study_instance_uid);
    add_str(c, s, "study_date", r->study.study_date);
    add_str(c, s, "study_time", r->study.study_time);
    add_str(c, s, "study_description", r->study.study_description);
    add_str(c, s, "modalities", r->study.modalities);
    add_str(c, s, "prior_study_instance_uid", r->study.prior_study_instance_uid);
    add_str(c, s, "prior_study_date", r->study.prior_study_date);
    if (!r->include_phi)
        return; /* even when the caller filled them */
    add_str(c, s, "accession_number", r->study.accession_number);
    cJSON *p = add_obj(c, s, "patient");
    if (!p)
        return;
    add_str(c, p, "id", r->study.patient_id);
    add_str(c, p, "name", r->study.patient_name);
    add_str(c, p, "birth_date", r->study.patient_birth_date);
    add_str(c, p, "sex", r->study.patient_sex);
}

static void add_images(jctx *c, cJSON *root, const rf_read_result *r)
{
    cJSON *a = add_arr(c, root, "images");
    for (size_t i = 0; a && i < r->nimages; i++) {
        const rf_result_image *im = &r->images[i];
        cJSON *o = attach(c, a, NULL, cJSON_CreateObject());
        if (!o)
            return;
        add_num(c, o, "index", (double)i);
        add_str(c, o, "file", rf_result_shown_path(r, im->path));
        add_num(c, o, "frame", im->frame);
        add_str(c, o, "sop_instance_uid", im->sop_instance_uid);
        add_str(c, o, "sop_class_uid", im->sop_class_uid);
        add_str(c, o, "series_instance_uid", im->series_instance_uid);
        add_str(c, o, "study_instance_uid", im->study_instance_uid);
        add_str(c, o, "modality", im->modality);
        add_str(c, o, "view", im->view);
        add_bool(c, o, "used", im->used);
        add_bool(c, o, "prior", im->prior);
        add_str(c, o, "reason", im->reason ? im->reason : "");
        add_num(c, o, "rows", im->rows);
        add_num(c, o, "cols", im->cols);
        if (im->window_width > 0) {
            cJSON *w = add_obj(c, o, "window");
            if (w) {
                add_num(c, w, "center", im->window_center);
                add_num(c, w, "width", im->window_width);
            }
        }
    }
}

static void add_notes_labs(jctx *c, cJSON *root, const rf_read_result *r)
{
    cJSON *a = add_arr(c, root, "notes");
    for (size_t i = 0; a && i < r->nnotes; i++) {
        const rf_result_note *n = &r->notes[i];
        cJSON *o = attach(c, a, NULL, cJSON_CreateObject());
        if (!o)
            return;
        add_num(c, o, "index", (double)i);
        add_str(c, o, "file", rf_result_shown_path(r, n->path));
        add_str(c, o, "kind", n->kind);
        add_num(c, o, "bytes", (double)n->len);
        add_bool(c, o, "used", n->used);
    }
    a = add_arr(c, root, "labs");
    for (size_t i = 0; a && i < r->nlabs; i++) {
        const rf_result_lab *l = &r->labs[i];
        cJSON *o = attach(c, a, NULL, cJSON_CreateObject());
        if (!o)
            return;
        add_str(c, o, "name", l->name ? l->name : "");
        add_str(c, o, "loinc", l->loinc);
        add_num(c, o, "value", l->value);
        add_str(c, o, "unit", l->unit);
        add_str(c, o, "flag", l->flag);
        add_num(c, o, "weight", l->weight);
    }
}

static void add_finding(jctx *c, cJSON *a, const rf_read_result *r, const rf_result_finding *f)
{
    cJSON *o = attach(c, a, NULL, cJSON_CreateObject());
    if (!o)
        return;
    add_str(c, o, "code", f->code);
    add_str(c, o, "display", f->display ? f->display : f->code);
    if (f->coding_system && f->coding_code) {
        cJSON *cd = add_obj(c, o, "coding");
        add_str(c, cd, "system", f->coding_system);
        add_str(c, cd, "code", f->coding_code);
    }
    add_num(c, o, "probability", f->probability);
    add_num(c, o, "threshold", f->threshold);
    add_bool(c, o, "positive", f->positive);
    add_num(c, o, "logit", f->logit);
    add_num(c, o, "temperature", f->temperature);
    add_kinds_num(c, o, "input_weights", f->input_weight);
    cJSON *ie = add_arr(c, o, "image_evidence");
    for (size_t m = 0; ie && m < f->nmaps; m++) {
        const rf_result_map *map = &f->maps[m];
        cJSON *e = attach(c, ie, NULL, cJSON_CreateObject());
        if (!e)
            return;
        add_num(c, e, "image", (double)map->image);
        add_str(c, e, "overlay", map->overlay);
        cJSON *pk = add_obj(c, e, "peak");
        if (pk) {
            add_num(c, pk, "row", map->peak_row);
            add_num(c, pk, "col", map->peak_col);
        }
        const rf_result_image *im = &r->images[map->image];
        add_numf(c, e, "peak_value", map->values[(size_t)map->peak_row * (size_t)im->cols + (size_t)map->peak_col]);
        add_str(c, e, "dicom", map->dicom);
        add_str(c, e, "dicom_sop_instance_uid", map->sop_instance_uid);
    }
    cJSON *te = add_arr(c, o, "text_evidence");
    for (size_t s = 0; te && s < f->nspans; s++) {
        const rf_result_span *sp = &f->spans[s];
        cJSON *e = attach(c, te, NULL, cJSON_CreateObject());
        if (!e)
            return;
        add_num(c, e, "note", (double)sp->note);
        add_num(c, e, "begin", (double)sp->begin);
        add_num(c, e, "end", (double)sp->end);
        add_numf(c, e, "weight", sp->weight);
        char *text = strndup(r->notes[sp->note].text + sp->begin, sp->end - sp->begin);
        if (!text && !c->rc)
            c->rc = rf_err_set(c->err, RF_ENOMEM, "%s: out of memory", c->path);
        add_str(c, e, "text", text);
        free(text);
    }
}

static cJSON *build(jctx *c, const rf_read_result *r)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        c->rc = rf_err_set(c->err, RF_ENOMEM, "%s: out of memory", c->path);
        return NULL;
    }
    add_str(c, root, "schema_version", RF_RESULT_SCHEMA_VERSION);
    cJSON *t = add_obj(c, root, "tool");
    add_str(c, t, "name", "radfuse");
    add_str(c, t, "version", r->tool_version ? r->tool_version : RADFUSE_VERSION);
    add_str(c, root, "created", r->created);
    cJSON *m = add_obj(c, root, "model");
    add_str(c, m, "dir", r->model.dir);
    add_str(c, m, "name", r->model.name);
    add_str(c, m, "version", r->model.version);
    add_str(c, m, "sha256", r->model.sha256);
    add_str(c, m, "backend", r->model.backend);
    add_str(c, m, "precision", r->model.precision);
    add_str(c, root, "saliency", r->saliency ? r->saliency : "none");
    add_bool(c, root, "include_phi", r->include_phi);
    add_study(c, root, r);
    cJSON *u = add_obj(c, root, "inputs_used");
    for (int k = 0; u && k < RF_MODALITY_COUNT; k++)
        add_bool(c, u, rf_modality_name((rf_modality)k), r->inputs_used[k]);
    add_images(c, root, r);
    add_notes_labs(c, root, r);
    size_t *order = rf_result_order(r);
    if (!order && !c->rc)
        c->rc = rf_err_set(c->err, RF_ENOMEM, "%s: out of memory", c->path);
    cJSON *fa = add_arr(c, root, "findings");
    for (size_t i = 0; fa && order && i < r->nfindings; i++)
        add_finding(c, fa, r, &r->findings[order[i]]);
    free(order);
    cJSON *ta = add_arr(c, root, "timings");
    for (size_t i = 0; ta && i < r->ntimings; i++) {
        cJSON *o = attach(c, ta, NULL, cJSON_CreateObject());
        add_str(c, o, "stage", r->timings[i].stage);
        add_num(c, o, "ms", r->timings[i].ms);
    }
    cJSON *wa = add_arr(c, root, "warnings");
    for (size_t i = 0; wa && i < r->nwarnings; i++)
        attach(c, wa, NULL, cJSON_CreateString(r->warnings[i]));
    return root;
}

/* The document's text with a final newline; errors name what. */
static int json_text(const rf_read_result *r, const char *what, char **out, size_t *len, rf_err *err)
{
    *out = NULL;
    *len = 0;
    int rc = rf_result_check(r, what, err);
    if (rc)
        return rc;
    jctx c = {0, what, err};
    cJSON *root = build(&c, r);
    char *text = c.rc ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    if (c.rc) {
        free(text);
        return c.rc;
    }
    size_t n = text ? strlen(text) : 0;
    char *t = text ? realloc(text, n + 2) : NULL;
    if (!t) {
        free(text);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", what);
    }
    t[n] = '\n';
    t[n + 1] = 0;
    *out = t;
    *len = n + 1;
    return RF_OK;
}

int rf_result_json(const rf_read_result *r, char **out, size_t *len, rf_err *err)
{
    return json_text(r, "result.json", out, len, err);
}

int rf_result_write_json(const rf_read_result *r, const char *path, rf_err *err)
{
    char *text;
    size_t n;
    int rc = json_text(r, path, &text, &n, err);
    if (rc)
        return rc;
    rc = rf_write_file_atomic(path, text, n, err);
    free(text);
    return rc;
}
