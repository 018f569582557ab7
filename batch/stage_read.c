/*
 * The study-level read of fusion/read.c in two parts, so that a pipeline can
 * run them on different threads: bt_prepare (the study's and the prior's
 * images, preprocessing, notes and labs read, lab tokens: host work that only
 * reads the model's info) and bt_infer (the text encoder, the fusion forward,
 * the findings and saliency: the model's backend, one thread; several
 * studies at a time, their images through the vision encoder in one pass), built on
 * rf_read's own steps (fusion/read_internal.h). Together they give what rf_read gives, warnings and
 * timings in the same order (test_batch_export compares the two).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "batch/batch_internal.h"
#include "fusion/read_internal.h"
#include "radfuse/dicom_input.h"

#define NOMEM() rf_err_set(err, RF_ENOMEM, "out of memory")

/* A warning kept for later (the lab step's, which rf_read gives after the text step's). */
static int late_warn(void *ctx, const char *msg)
{
    bt_prepared *p = ctx;
    char **nl = realloc(p->late, (p->nlate + 1) * sizeof *nl);
    if (!nl)
        return RF_ENOMEM;
    p->late = nl;
    if (!(nl[p->nlate] = strdup(msg)))
        return RF_ENOMEM;
    p->nlate++;
    return RF_OK;
}

static void free_paths(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/*
 * The paths to read study st from: its files, and its zip entries written to
 * SCRATCH/<key>.<tag>.tmp/<k>/<the entry's base name> (the name the result
 * shows, as for the entry itself). Giving the read the archive instead would
 * list every entry of it again for each of its studies. *dir gets the folder
 * (NULL when none), for bt_prepared_free to remove.
 */
static int study_paths(const bt_export *ex, const bt_study *st, const char *scratch, const char *tag, char ***out,
                       int *nout, char **dir, rf_err *err)
{
    *out = NULL;
    *nout = 0;
    *dir = NULL;
    char **v = calloc((size_t)st->npaths + st->nzip + 1, sizeof *v);
    int n = 0, rc = RF_OK;
    if (!v)
        return NOMEM();
    for (int i = 0; i < st->npaths && !rc; i++)
        if (!(v[n++] = strdup(st->paths[i])))
            rc = NOMEM();
    if (!rc && st->nzip) {
        char d[4200];
        snprintf(d, sizeof d, "%s/%s.%s.tmp", scratch ? scratch : ".", st->key, tag);
        bt_remove_tree(d);
        if (mkdir(d, 0777) != 0)
            rc = rf_err_set(err, RF_EIO, "%s: cannot create: %s", d, strerror(errno));
        else if (!(*dir = strdup(d)))
            rc = NOMEM();
        for (size_t k = 0; !rc && k < st->nzip; k++) {
            const rf_input *item = rf_inputs_at(ex->in, st->zip_items[k]);
            const char *slash = strrchr(item->name, '/'), *colon = strrchr(item->name, ':');
            const char *base = slash ? slash + 1 : item->name;
            if (colon && colon + 1 > base)
                base = colon + 1;
            char sub[4300], path[4600];
            snprintf(sub, sizeof sub, "%s/%zu", d, k);
            snprintf(path, sizeof path, "%s/%s", sub, base);
            void *data = NULL;
            size_t size = 0;
            rf_err e;
            pthread_mutex_lock((pthread_mutex_t *)&ex->zip_mu);
            int lrc = rf_inputs_load(ex->in, st->zip_items[k], &data, &size, &e);
            pthread_mutex_unlock((pthread_mutex_t *)&ex->zip_mu);
            if (lrc) {
                /* as the read would say of an entry it cannot load: the file is left out */
                free(data);
                continue;
            }
            FILE *f = NULL;
            if (mkdir(sub, 0777) != 0 || !(f = fopen(path, "wb")) || fwrite(data, 1, size, f) != size) {
                rc = rf_err_set(err, RF_EIO, "%s: cannot write: %s", path, strerror(errno));
            }
            if (f && fclose(f) != 0 && !rc)
                rc = rf_err_set(err, RF_EIO, "%s: cannot write: %s", path, strerror(errno));
            free(data);
            if (!rc && !(v[n++] = strdup(path)))
                rc = NOMEM();
        }
    }
    if (rc) {
        free_paths(v, n);
        return rc;
    }
    *out = v;
    *nout = n;
    return RF_OK;
}

int bt_prepare(const rf_fusion *model, const bt_export *ex, size_t idx, const bt_read_opts *o, bt_prepared *p,
               rf_err *err)
{
    memset(p, 0, sizeof *p);
    const bt_study *st = &ex->studies[idx];
    const rf_fusion_info *info = rf_fusion_get_info(model);
    rf_read_result *r = &p->r;
    int rc = rf_rd_result_init(r, info, o->precision, o->saliency, o->include_phi, err);
    if (rc)
        return rc;

    double t0 = rf_rd_now_ms();
    rf_read_image_rules rules = {info->max_images, info->nimage_modalities, info->image_modalities};
    char **paths = NULL;
    int npaths = 0;
    rc = study_paths(ex, st, o->scratch, "study", &paths, &npaths, &p->unzipped[0], err);
    p->fatal = rc != RF_OK;
    if (!rc)
        rc = rf_read_study_images((const char *const *)paths, npaths, st->uid, 0, &rules, o->include_phi, r, &p->imgs,
                                  err);
    free_paths(paths, npaths);
    const bt_study *pr = st->prior >= 0 ? &ex->studies[st->prior] : NULL;
    if (!rc && st->prior_uid && !pr) {
        if (rf_result_warn(r, "prior study: the export holds no study %s; read without it", st->prior_uid))
            rc = NOMEM();
    } else if (!rc && pr && info->max_prior_images == 0) {
        if (rf_result_warn(r, "the model takes no prior study: the prior was not read"))
            rc = NOMEM();
    } else if (!rc && pr) {
        rf_err e;
        rf_read_image_rules prior_rules = rules;
        prior_rules.max_images = info->max_prior_images;
        rc = study_paths(ex, pr, o->scratch, "prior", &paths, &npaths, &p->unzipped[1], err);
        int prc = rc ? rc
                     : rf_read_study_images((const char *const *)paths, npaths, pr->uid, 1, &prior_rules,
                                            o->include_phi, r, &p->priors, &e);
        free_paths(paths, npaths);
        if (rc) {
            p->fatal = 1; /* the prior's entries could not be written: an output problem */
        } else if (prc) {
            if (rf_result_warn(r, "prior study: %s; read without it", e.msg))
                rc = NOMEM();
        } else {
            rc = rf_rd_prior_age(r, &p->imgs, &p->priors, &p->prior_days, err);
        }
    }
    if (!rc)
        rc = rf_result_time(r, "decode", rf_rd_now_ms() - t0);
    if (!rc) {
        /* one thread per study: the pipeline's parallelism is across studies */
        t0 = rf_rd_now_ms();
        rc = rf_read_preprocess(model, p->imgs.images, p->imgs.count, 1, &p->px, err);
        if (!rc)
            rc = rf_read_preprocess(model, p->priors.images, p->priors.count, 1, &p->ppx, err);
        if (!rc)
            rc = rf_result_time(r, "preprocess", rf_rd_now_ms() - t0);
    }
    if (!rc)
        rc = rf_rd_read_notes_labs(r, (const char *const *)st->notes, st->nnotes, (const char *const *)st->labs,
                                   st->nlabs, o->include_phi, &p->labs, err);
    if (!rc)
        rc = rf_rd_lab_tokens(r, &p->labs, &p->tokens, &p->ntokens, late_warn, p, err);
    /* the decoded pixels are not needed past preprocessing: the queue keeps only the model's inputs */
    for (size_t i = 0; i < p->imgs.count; i++) {
        free(p->imgs.images[i].pixels);
        p->imgs.images[i].pixels = NULL;
    }
    for (size_t i = 0; i < p->priors.count; i++) {
        free(p->priors.images[i].pixels);
        p->priors.images[i].pixels = NULL;
    }
    return rc;
}

/* The text step of one study: its notes through the text encoder, then the
 * lab step's warnings (rf_read's order). */
static int infer_text(rf_fusion *model, bt_prepared *p, rf_text_encoding **enc, rf_err *err)
{
    int rc = rf_rd_encode_notes(model, &p->r, enc, err);
    for (size_t i = 0; !rc && i < p->nlate; i++)
        if (rf_result_warn(&p->r, "%s", p->late[i]))
            rc = NOMEM();
    return rc;
}

/*
 * The vision encoder over the images and priors of the studies ps[i] with
 * go[i] set, in one pass: *states gets the pass's states and start[i] the
 * first image of study i in it; share[i] its part of the pass's time
 * (proportional to its images).
 */
static int infer_vision(rf_fusion *model, bt_prepared *const *ps, const int *go, size_t n, float **states,
                        size_t *start, double *share, int *tokens, rf_err *err)
{
    const rf_fusion_info *info = rf_fusion_get_info(model);
    const rf_preprocess_config *pc = &info->preprocess;
    size_t per = (size_t)pc->channels * pc->height * pc->width, total = 0;
    for (size_t i = 0; i < n; i++) {
        start[i] = total;
        share[i] = 0;
        if (go[i])
            total += ps[i]->imgs.count + ps[i]->priors.count;
    }
    *states = NULL;
    *tokens = 0;
    if (total > (size_t)INT32_MAX)
        return rf_err_set(err, RF_EINVAL, "batch: %zu images in one device batch", total);
    const float **imgs = calloc(total ? total : 1, sizeof *imgs);
    if (!imgs)
        return NOMEM();
    for (size_t i = 0, k = 0; i < n; i++) {
        if (!go[i])
            continue;
        for (size_t j = 0; j < ps[i]->imgs.count; j++)
            imgs[k++] = ps[i]->px + j * per;
        for (size_t j = 0; j < ps[i]->priors.count; j++)
            imgs[k++] = ps[i]->ppx + j * per;
    }
    double t0 = rf_rd_now_ms();
    int rc = rf_fusion_vision(model, imgs, (int)total, pc->height, pc->width, states, tokens, err);
    double ms = rf_rd_now_ms() - t0;
    free(imgs);
    for (size_t i = 0; !rc && i < n; i++)
        if (go[i] && total)
            share[i] = ms * (double)(ps[i]->imgs.count + ps[i]->priors.count) / (double)total;
    return rc;
}

void bt_infer(rf_fusion *model, bt_prepared *const *ps, size_t n, int *rcs, rf_err *errs)
{
    const rf_fusion_info *info = rf_fusion_get_info(model);
    rf_text_encoding **enc = calloc(n ? n : 1, sizeof *enc);
    int *go = calloc(n ? n : 1, sizeof *go);
    size_t *start = calloc(n ? n : 1, sizeof *start);
    double *share = calloc(n ? n : 1, sizeof *share);
    if (!enc || !go || !start || !share) {
        for (size_t i = 0; i < n; i++)
            rcs[i] = rf_err_set(&errs[i], RF_ENOMEM, "out of memory");
        free(enc), free(go), free(start), free(share);
        return;
    }
    /* the text step of each study */
    rf_saliency_method *method = calloc(n ? n : 1, sizeof *method);
    for (size_t i = 0; i < n; i++) {
        rf_err *err = &errs[i];
        rcs[i] = method ? rf_saliency_method_parse(ps[i]->r.saliency, &method[i], err) : NOMEM();
        if (!rcs[i])
            rcs[i] = infer_text(model, ps[i], &enc[i], err);
        go[i] = rcs[i] == RF_OK;
    }
    /* the vision encoder over every image of the batch in one pass; if that
     * fails, each study's forward runs the encoder itself, so that a failure
     * is that study's own */
    float *states = NULL;
    int tokens = 0;
    rf_err verr;
    if (infer_vision(model, ps, go, n, &states, start, share, &tokens, &verr)) {
        free(states);
        states = NULL;
        for (size_t i = 0; i < n; i++)
            share[i] = 0;
    }
    size_t rows = (size_t)tokens * info->vision.info.hidden;
    for (size_t i = 0; i < n; i++) {
        bt_prepared *p = ps[i];
        if (go[i])
            rcs[i] = rf_rd_infer(model, method[i], &p->r, &p->imgs, p->px, &p->priors, p->ppx, p->prior_days, enc[i],
                                 p->tokens, p->ntokens, states ? states + start[i] * rows : NULL, share[i],
                                 &errs[i]);
        if (enc[i])
            for (size_t j = 0; j < p->r.nnotes; j++)
                rf_text_encoding_free(&enc[i][j]);
        free(enc[i]);
    }
    free(states);
    free(method), free(enc), free(go), free(start), free(share);
}

void bt_prepared_release(bt_prepared *p)
{
    free(p->px);
    free(p->ppx);
    rf_read_images_free(&p->imgs);
    rf_read_images_free(&p->priors);
    rf_labs_free(&p->labs);
    free(p->tokens);
    for (size_t i = 0; i < p->nlate; i++)
        free(p->late[i]);
    free(p->late);
    p->px = p->ppx = NULL;
    p->tokens = NULL;
    p->ntokens = 0;
    p->late = NULL;
    p->nlate = 0;
}

void bt_prepared_free(bt_prepared *p)
{
    bt_prepared_release(p);
    rf_result_free(&p->r);
    for (int i = 0; i < 2; i++) {
        if (p->unzipped[i])
            bt_remove_tree(p->unzipped[i]);
        free(p->unzipped[i]);
        p->unzipped[i] = NULL;
    }
}
