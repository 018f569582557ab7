/*
 * The images of a study for a read: DICOM inputs listed (rf_inputs), grouped
 * into studies (rf_studies), one study picked, its images chosen by the
 * imaging rules and rendered for display. Every instance of the study ends up
 * in the result, used or skipped, with the reason; nothing here names a file
 * in a warning unless the caller asked for PHI (paths may hold names).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/dicom_input.h"
#include "radfuse/read.h"
#include "radfuse/render.h"
#include "radfuse/study.h"

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

/* A file's name for the result: the path with include_phi, else its base name. */
static char *shown_path(const char *name, int include_phi)
{
    if (include_phi)
        return strdup(name);
    const char *slash = strrchr(name, '/');
    const char *colon = strrchr(name, ':'); /* ARCHIVE:entry/path */
    const char *base = slash ? slash + 1 : name;
    if (colon && colon + 1 > base)
        base = colon + 1;
    return strdup(base);
}

/* The displayed image of frame 0, plus its 8-bit gray copy for overlays. */
static int render_image(const rf_dicom_image *img, rf_read_image *ri, rf_result_image *res, rf_err *err)
{
    int ch = rf_render_channels(img);
    size_t npx = (size_t)img->rows * (size_t)img->columns;
    float *px = malloc(npx * (size_t)ch * sizeof *px);
    uint8_t *gray = malloc(npx);
    if (!px || !gray) {
        free(px);
        free(gray);
        return rf_err_set(err, RF_ENOMEM, "out of memory rendering a %dx%d image", img->rows, img->columns);
    }
    rf_render_info info;
    int rc = rf_render_display(img, 0, NULL, px, NULL, &info, err);
    if (rc) {
        free(px);
        free(gray);
        return rc;
    }
    for (size_t i = 0; i < npx; i++) {
        /* ITU-R 601 luma for color, as the preprocessing's gray conversion */
        float v = ch == 3 ? 0.299f * px[3 * i] + 0.587f * px[3 * i + 1] + 0.114f * px[3 * i + 2] : px[i];
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        gray[i] = (uint8_t)(v * 255.0f + 0.5f);
    }
    ri->pixels = px;
    ri->rows = img->rows;
    ri->cols = img->columns;
    ri->channels = ch;
    res->display = gray;
    res->rows = img->rows;
    res->cols = img->columns;
    if (info.voi == RF_VOI_APPLIED_WINDOW) {
        res->window_center = info.center;
        res->window_width = info.width;
    }
    return RF_OK;
}

static void fill_study(rf_read_result *r, const rf_study *st, const rf_instance *first, int include_phi)
{
    r->study.study_instance_uid = dup_or_null(st->uid);
    r->study.study_date = dup_or_null(st->date);
    r->study.study_time = dup_or_null(st->time);
    r->study.study_description = dup_or_null(st->description);
    r->study.modalities = dup_or_null(st->modalities);
    if (include_phi && first) {
        r->study.accession_number = dup_or_null(first->attrs.accession_number);
        r->study.patient_id = dup_or_null(first->attrs.patient_id);
        r->study.patient_name = dup_or_null(first->attrs.patient_name);
    }
}

/* Whether the model reads images of this modality. */
static int modality_ok(const rf_read_image_rules *rules, const char *modality)
{
    if (rules->nmodalities == 0)
        return 1;
    for (int k = 0; k < rules->nmodalities; k++)
        if (strcmp(rules->modalities[k], modality) == 0)
            return 1;
    return 0;
}

/* "CR, DX": the modalities the model reads, for reasons and errors. */
static void modality_list(const rf_read_image_rules *rules, char *out, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (int k = 0; k < rules->nmodalities && used < n; k++)
        used += (size_t)snprintf(out + used, n - used, "%s%s", k ? ", " : "", rules->modalities[k]);
}

int rf_read_study_images(const char *const *paths, int npaths, const char *study_uid, int prior,
                         const rf_read_image_rules *rules, int include_phi, rf_read_result *r, rf_read_images *out,
                         rf_err *err)
{
    int max_images = rules->max_images;
    size_t wrong_modality = 0;
    char model_mods[RF_REASON];
    modality_list(rules, model_mods, sizeof model_mods);
    const char *what = prior ? "prior study" : "study";
    memset(out, 0, sizeof *out);
    if (npaths <= 0)
        return rf_err_set(err, RF_EINVAL, "no %s given", what);
    rf_inputs *in = NULL;
    int rc = rf_inputs_collect(paths, npaths, NULL, &in, err);
    if (rc)
        return rc;
    rf_studies s;
    rf_studies_init(&s);
    size_t nitems = rf_inputs_count(in), *item_of = calloc(nitems ? nitems : 1, sizeof *item_of);
    size_t unreadable = 0;
    if (!item_of)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory listing the %s", what);
    rf_err e;
    for (size_t i = 0; !rc && i < nitems; i++) {
        const rf_input *item = rf_inputs_at(in, i);
        if (item->kind == RF_INPUT_DICOMDIR)
            continue;
        rf_dicom_image img;
        if (rf_inputs_read(in, i, RF_DICOM_ATTRS | RF_DICOM_NO_PIXELS_OK, &img, &e) ||
            rf_studies_add(&s, item->name, &img, NULL, &e)) {
            unreadable++;
            if (rf_result_warn(r, "%s file %zu: %s", what, i + 1,
                               include_phi ? e.msg : rf_err_without_name(e.msg, item->name)))
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        } else {
            item_of[s.ninst - 1] = i;
        }
        rf_dicom_image_free(&img);
    }
    if (!rc)
        rc = rf_studies_build(&s, err);
    /* the study */
    const rf_study *st = NULL;
    size_t sti = 0;
    if (!rc) {
        for (size_t k = 0; k < s.nstudies; k++)
            if (study_uid ? strcmp(s.studies[k].uid, study_uid) == 0 : 1) {
                st = &s.studies[k];
                sti = k;
                break;
            }
        if (!study_uid && s.nstudies > 1)
            rc = rf_err_set(err, RF_EINVAL, "the %s input holds %zu studies: choose one by StudyInstanceUID", what,
                            s.nstudies);
        else if (!st && study_uid)
            rc = rf_err_set(err, RF_EINVAL, "the %s input holds no study %s", what, study_uid);
        else if (!st)
            rc = rf_err_set(err, RF_EINVAL, "the %s input holds no readable DICOM instance (%zu file%s unreadable)",
                            what, unreadable, unreadable == 1 ? "" : "s");
    }
    const rf_instance *first = NULL;
    for (size_t i = 0; !rc && i < s.ninst && !first; i++)
        if (s.inst[i].study == sti)
            first = &s.inst[i];
    if (first)
        snprintf(out->patient_id, sizeof out->patient_id, "%s", first->attrs.patient_id);
    if (!rc && !prior) {
        fill_study(r, st, first, include_phi);
    } else if (!rc) {
        r->study.prior_study_instance_uid = dup_or_null(st->uid);
        r->study.prior_study_date = dup_or_null(st->date);
    }
    /* every instance of the study, in study order, then the duplicates */
    size_t cap_img = r->nimages, cap_out = 0, used = 0;
    for (size_t pass = 0; !rc && pass < 2; pass++)
        for (size_t si = 0; !rc && si < st->nseries; si++) {
            const rf_series *se = &s.series[st->series[si]];
            size_t count = pass == 0 ? se->count : s.ninst;
            for (size_t k = 0; !rc && k < count; k++) {
                size_t ii = pass == 0 ? se->order[k] : k;
                rf_instance *inst = &s.inst[ii];
                if (pass == 1 && (inst->duplicate_of < 0 || inst->series != st->series[si]))
                    continue;
                if (rf_array_grow((void **)&r->images, &cap_img, r->nimages + 1, sizeof *r->images)) {
                    rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                    break;
                }
                rf_result_image *res = &r->images[r->nimages++];
                res->path = shown_path(inst->name, include_phi);
                res->source = strdup(inst->name);
                res->sop_instance_uid = dup_or_null(inst->attrs.sop_uid);
                res->sop_class_uid = dup_or_null(inst->attrs.sop_class_uid);
                res->series_instance_uid = dup_or_null(inst->attrs.series_uid);
                res->study_instance_uid = dup_or_null(inst->attrs.study_uid);
                res->modality = dup_or_null(inst->attrs.modality);
                res->view = dup_or_null(inst->attrs.view);
                res->prior = prior;
                res->rows = inst->attrs.rows;
                res->cols = inst->attrs.columns;
                char reason[RF_REASON + RF_ERR_MAX + 128];
                snprintf(reason, sizeof reason, "%s", inst->reason);
                if (inst->selected && !modality_ok(rules, inst->attrs.modality)) {
                    wrong_modality++;
                    snprintf(reason, sizeof reason, "selected (%s), but the model reads %s images, not %s",
                             inst->reason, model_mods, inst->attrs.modality[0] ? inst->attrs.modality : "(none)");
                } else if (inst->selected && used >= (size_t)max_images) {
                    snprintf(reason, sizeof reason, "selected (%s), but the model takes at most %d image%s",
                             inst->reason, max_images, max_images == 1 ? "" : "s");
                } else if (inst->selected) {
                    rf_dicom_image img;
                    size_t item = item_of[ii];
                    if (rf_array_grow((void **)&out->images, &cap_out, out->count + 1, sizeof *out->images)) {
                        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                        break;
                    }
                    rf_read_image *ri = &out->images[out->count];
                    if (rf_inputs_read(in, item, RF_DICOM_PIXELS, &img, &e) || render_image(&img, ri, res, &e)) {
                        snprintf(reason, sizeof reason, "selected, but cannot be decoded: %s",
                                 include_phi ? e.msg : rf_err_without_name(e.msg, inst->name));
                        if (rf_result_warn(r, "%s image %s: %s", what, inst->attrs.sop_uid, reason))
                            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                    } else {
                        ri->result_image = r->nimages - 1;
                        if (rf_inputs_at(in, item)->kind == RF_INPUT_ZIP_ENTRY &&
                            rf_inputs_load(in, item, &res->source_data, &res->source_size, &e))
                            rc = rf_err_set(err, RF_EIO, "%s image %s: %s", what, inst->attrs.sop_uid,
                                            include_phi ? e.msg : rf_err_without_name(e.msg, inst->name));
                        out->count++;
                        used++;
                        res->used = 1;
                        if (img.frames > 1)
                            snprintf(reason + strlen(reason), sizeof reason - strlen(reason),
                                     "; frame 1 of %d", img.frames);
                    }
                    rf_dicom_image_free(&img);
                }
                if (!(res->reason = strdup(reason)))
                    rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            }
        }
    if (!rc && out->count == 0 && wrong_modality)
        rc = rf_err_set(err, RF_EINVAL, "the model reads %s images; the %s %s has %s", model_mods, what, st->uid,
                        st->modalities[0] ? st->modalities : "no modality");
    else if (!rc && out->count == 0)
        rc = rf_err_set(err, RF_EINVAL, "no usable image in the %s %s (%zu instance%s; see the reasons in the result)",
                        what, st->uid, (size_t)st->instances, st->instances == 1 ? "" : "s");
    free(item_of);
    rf_studies_free(&s);
    rf_inputs_free(in);
    if (rc)
        rf_read_images_free(out);
    return rc;
}

void rf_read_images_free(rf_read_images *imgs)
{
    for (size_t i = 0; i < imgs->count; i++)
        free(imgs->images[i].pixels);
    free(imgs->images);
    memset(imgs, 0, sizeof *imgs);
}
