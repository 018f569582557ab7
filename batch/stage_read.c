/*
 * The study-level read of fusion/read.c in two parts, so that a pipeline can
 * run them on different threads: bt_prepare (the study's and the prior's
 * images, preprocessing, notes and labs read, lab tokens: host work that only
 * reads the model's info) and bt_infer (the text encoder, the fusion forward,
 * the findings and saliency: the model's backend, one thread), built on
 * read.h's helpers. Together they give what rf_read gives, warnings and
 * timings in the same order (test_batch_export compares the two).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>

#include "batch/batch_internal.h"
#include "radfuse/dicom_input.h"
#include "radfuse/saliency.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

static char *shown_name(const char *path, int include_phi)
{
    const char *slash = strrchr(path, '/');
    return strdup(include_phi || !slash ? path : slash + 1);
}

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

static long dicom_days(const char *da)
{
    if (!da || strlen(da) < 8)
        return -1;
    char iso[11];
    snprintf(iso, sizeof iso, "%.4s-%.2s-%.2s", da, da + 4, da + 6);
    rf_time t;
    if (rf_time_parse_iso(iso, 10, &t))
        return -1;
    bool zoned;
    return (long)(rf_time_unix(&t, &zoned) / 86400);
}

static int study_time(const rf_read_result *r, rf_time *t)
{
    return rf_read_study_time(r->study.study_date, r->study.study_time, t);
}

static char *iso_now(void)
{
    char buf[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return strdup(buf);
}

/* A warning kept for later (the lab step's, which rf_read gives after the text step's). */
static int late_warn(bt_prepared *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int late_warn(bt_prepared *p, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char **nl = realloc(p->late, (p->nlate + 1) * sizeof *nl);
    if (!nl)
        return RF_ENOMEM;
    p->late = nl;
    if (!(nl[p->nlate] = strdup(buf)))
        return RF_ENOMEM;
    p->nlate++;
    return RF_OK;
}

/* One thread per study: the pipeline's parallelism is across studies. */
static int preprocess(const rf_fusion *model, const rf_read_images *imgs, float **out, rf_err *err)
{
    return rf_read_preprocess(model, imgs->images, imgs->count, 1, out, err);
}

static int add_note(rf_read_result *r, const rf_note *note, const char *path, int include_phi)
{
    rf_result_note *nn = realloc(r->notes, (r->nnotes + 1) * sizeof *nn);
    if (!nn)
        return RF_ENOMEM;
    r->notes = nn;
    rf_result_note *n = &r->notes[r->nnotes];
    memset(n, 0, sizeof *n);
    n->path = shown_name(path, include_phi);
    n->kind = strdup(note->kind ? note->kind : "note");
    n->text = malloc(note->len + 1);
    if (!n->path || !n->kind || !n->text) {
        free(n->path);
        free(n->kind);
        free(n->text);
        return RF_ENOMEM;
    }
    memcpy(n->text, note->text, note->len);
    n->text[note->len] = 0;
    n->len = note->len;
    r->nnotes++;
    return RF_OK;
}

#define NOMEM() rf_err_set(err, RF_ENOMEM, "out of memory")

/* Notes and labs read (warnings for what fails), lab tokens as of the study's time. */
static int notes_labs(const bt_study *st, const bt_read_opts *o, bt_prepared *p, rf_err *err)
{
    rf_read_result *r = &p->r;
    rf_err e;
    for (int i = 0; i < st->nnotes; i++) {
        size_t before = p->labs.nnotes;
        if (rf_note_read_file(st->notes[i], "note", &p->labs, &e)) {
            if (rf_result_warn(r, "note %d: %s; read without it", i + 1, without_path(e.msg, st->notes[i])))
                return NOMEM();
            continue;
        }
        for (size_t k = before; k < p->labs.nnotes; k++)
            if (add_note(r, &p->labs.notes[k], st->notes[i], o->include_phi))
                return NOMEM();
    }
    for (int i = 0; i < st->nlabs; i++) {
        size_t before = p->labs.nnotes, issues = p->labs.nissues;
        if (rf_labs_read_file(st->labs[i], RF_LABS_AUTO, &p->labs, &e)) {
            if (rf_result_warn(r, "labs %d: %s; read without it", i + 1, without_path(e.msg, st->labs[i])))
                return NOMEM();
            continue;
        }
        if (p->labs.nissues > issues &&
            rf_result_warn(r, "labs %d: %zu record%s skipped (run `radfuse text labs` on the file for details)", i + 1,
                           p->labs.nissues - issues, p->labs.nissues - issues == 1 ? "" : "s"))
            return NOMEM();
        for (size_t k = before; k < p->labs.nnotes; k++)
            if (add_note(r, &p->labs.notes[k], st->labs[i], o->include_phi))
                return NOMEM();
    }
    rf_time ref;
    int have_ref = study_time(r, &ref) == 0;
    if (p->labs.nlabs) {
        if (!have_ref && late_warn(p, "the study has no date: every lab result is used, whatever its time"))
            return NOMEM();
        if (rf_lab_tokens(&p->labs, have_ref ? &ref : NULL, &p->tokens, &p->ntokens, &e))
            return rf_err_set(err, RF_EINVAL, "labs: %s", e.msg);
        if (p->ntokens == 0 && late_warn(p, "labs: %zu result%s, none usable by the model (unknown labs or no "
                                            "numeric value)", p->labs.nlabs, p->labs.nlabs == 1 ? "" : "s"))
            return NOMEM();
    }
    if (p->ntokens) {
        r->labs = calloc(p->ntokens, sizeof *r->labs);
        if (!r->labs)
            return NOMEM();
        for (size_t i = 0; i < p->ntokens; i++) {
            const rf_lab *rec = &p->labs.labs[p->tokens[i].record];
            const rf_lab_def *def = rf_lab_def_get(p->tokens[i].lab);
            rf_result_lab *l = &r->labs[r->nlabs++];
            l->name = strdup(def ? def->name : rec->name ? rec->name : "?");
            l->loinc = dup_or_null(rec->loinc);
            l->value = rec->has_norm ? rec->value_norm : rec->value;
            l->unit = dup_or_null(rec->has_norm ? rec->unit : rec->unit_raw);
            l->flag = dup_or_null(rec->flags & RF_LAB_CRITICAL ? "critical"
                                  : rec->flags & RF_LAB_LOW    ? "low"
                                  : rec->flags & RF_LAB_HIGH   ? "high"
                                                               : NULL);
            if (!l->name)
                return NOMEM();
        }
    }
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
    r->tool_version = strdup(RADFUSE_VERSION);
    r->created = iso_now();
    r->model.dir = strdup(info->dir);
    r->model.name = dup_or_null(info->name);
    r->model.version = dup_or_null(info->version);
    r->model.sha256 = strdup(info->sha256);
    r->model.backend = strdup(info->backend ? info->backend : "?");
    r->model.precision = strdup(o->precision ? o->precision : "fp32");
    r->saliency = strdup(o->saliency ? o->saliency : "none");
    r->include_phi = o->include_phi;
    if (!r->tool_version || !r->created || !r->model.dir || !r->model.sha256 || !r->model.backend ||
        !r->model.precision || !r->saliency)
        return NOMEM();

    double t0 = now_ms();
    rf_read_image_rules rules = {info->max_images, info->nimage_modalities, info->image_modalities};
    char **paths = NULL;
    int npaths = 0;
    int rc = study_paths(ex, st, o->scratch, "study", &paths, &npaths, &p->unzipped[0], err);
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
            long a = dicom_days(r->study.study_date), b = dicom_days(r->study.prior_study_date);
            if (strcmp(p->imgs.patient_id, p->priors.patient_id) != 0) {
                for (size_t i = 0; i < r->nimages; i++)
                    if (r->images[i].prior && r->images[i].used) {
                        r->images[i].used = 0;
                        free(r->images[i].reason);
                        r->images[i].reason = strdup("the prior study is of another patient (PatientID differs)");
                    }
                rf_read_images_free(&p->priors);
                free(r->study.prior_study_instance_uid);
                free(r->study.prior_study_date);
                r->study.prior_study_instance_uid = r->study.prior_study_date = NULL;
                if (rf_result_warn(r, "the prior study is of another patient (PatientID differs): read without it"))
                    rc = NOMEM();
                a = b = 0;
            }
            if (p->priors.count == 0) {
                /* dropped above */
            } else if (a < 0 || b < 0) {
                if (rf_result_warn(r, "the study or the prior has no date: the prior is taken as 0 days old"))
                    rc = NOMEM();
            } else if (b > a) {
                if (rf_result_warn(r, "the prior study is dated after the study: taken as 0 days old"))
                    rc = NOMEM();
            } else {
                p->prior_days = (double)(a - b);
            }
        }
    }
    if (!rc)
        rc = rf_result_time(r, "decode", now_ms() - t0);
    if (!rc) {
        t0 = now_ms();
        rc = preprocess(model, &p->imgs, &p->px, err);
        if (!rc)
            rc = preprocess(model, &p->priors, &p->ppx, err);
        if (!rc)
            rc = rf_result_time(r, "preprocess", now_ms() - t0);
    }
    if (!rc)
        rc = notes_labs(st, o, p, err);
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

static int cmp_findings(const void *a, const void *b)
{
    const rf_result_finding *x = a, *y = b;
    return x->probability < y->probability ? 1 : x->probability > y->probability ? -1 : strcmp(x->code, y->code);
}

static int fill_findings(const rf_fusion_info *info, const rf_fusion_output *fo, rf_read_result *r, rf_err *err)
{
    r->findings = calloc((size_t)info->nlabels, sizeof *r->findings);
    if (!r->findings)
        return NOMEM();
    for (int k = 0; k < info->nlabels; k++) {
        const rf_fusion_label *lab = &info->labels[k];
        rf_result_finding *f = &r->findings[r->nfindings++];
        f->code = strdup(lab->code);
        f->display = strdup(lab->display ? lab->display : lab->code);
        f->coding_system = dup_or_null(lab->system);
        f->coding_code = dup_or_null(lab->system_code);
        f->logit = fo->logits[k];
        f->temperature = lab->temperature;
        f->probability = fo->probabilities[k];
        f->threshold = lab->threshold;
        f->positive = f->probability >= f->threshold;
        if (!f->code || !f->display)
            return NOMEM();
        if (!isfinite(f->probability))
            return rf_err_set(err, RF_EFORMAT, "%s: the model gave a non-finite probability for '%s'", info->dir,
                              lab->code);
    }
    return RF_OK;
}

static int attach_saliency(rf_fusion *model, rf_saliency_method method, const rf_fusion_study *s,
                           const rf_read_images *imgs, const size_t *note_of, rf_read_result *r, rf_err *err)
{
    rf_saliency_result sr;
    int rc = rf_read_saliency(model, (int)method, s, imgs->images, imgs->count, &sr, err);
    for (int j = 0; !rc && j < sr.nfindings; j++) {
        rf_saliency_finding *sf = &sr.findings[j];
        if (sf->label < 0 || (size_t)sf->label >= r->nfindings)
            continue;
        rf_result_finding *f = &r->findings[sf->label];
        for (int m = 0; m < RF_MODALITY_COUNT; m++)
            f->input_weight[m] = sf->input_weight[m];
        for (size_t i = 0; i < sf->nmaps; i++)
            sf->maps[i].image = imgs->images[sf->maps[i].image].result_image;
        for (size_t i = 0; i < sf->nspans; i++)
            sf->spans[i].note = note_of ? note_of[sf->spans[i].note] : sf->spans[i].note;
        f->maps = sf->maps;
        f->nmaps = sf->nmaps;
        f->spans = sf->spans;
        f->nspans = sf->nspans;
        sf->maps = NULL;
        sf->nmaps = 0;
        sf->spans = NULL;
        sf->nspans = 0;
    }
    rf_saliency_result_free(&sr);
    return rc;
}

int bt_infer(rf_fusion *model, bt_prepared *p, rf_err *err)
{
    const rf_fusion_info *info = rf_fusion_get_info(model);
    rf_read_result *r = &p->r;
    rf_saliency_method method;
    int rc = rf_saliency_method_parse(r->saliency, &method, err);
    if (rc)
        return rc;
    /* the text encoder over every note */
    rf_text_encoding *enc = NULL;
    rf_err e;
    double t0 = now_ms();
    if (r->nnotes && !info->text.present) {
        if (rf_result_warn(r, "the model has no text encoder: %zu note%s not used", r->nnotes,
                           r->nnotes == 1 ? "" : "s"))
            rc = NOMEM();
    } else if (r->nnotes) {
        if (!(enc = calloc(r->nnotes, sizeof *enc)))
            rc = NOMEM();
        for (size_t i = 0; !rc && i < r->nnotes; i++) {
            if (!rf_read_note_usable(r->notes[i].text, r->notes[i].len)) {
                if (rf_result_warn(r, "note %zu is empty: not used", i + 1))
                    rc = NOMEM();
                continue;
            }
            int erc = rf_fusion_encode_note(model, r->notes[i].text, r->notes[i].len, &enc[i], &e);
            if (erc == RF_ENOMEM) {
                rc = rf_err_set(err, erc, "%s", e.msg);
            } else if (erc) {
                if (rf_result_warn(r, "note %zu: %s; read without it", i + 1, e.msg))
                    rc = NOMEM();
            } else {
                r->notes[i].used = 1;
            }
        }
        if (!rc && rf_result_time(r, "text", now_ms() - t0))
            rc = NOMEM();
    }
    for (size_t i = 0; !rc && i < p->nlate; i++)
        if (rf_result_warn(r, "%s", p->late[i]))
            rc = NOMEM();

    rf_fusion_study s;
    memset(&s, 0, sizeof s);
    s.height = info->preprocess.height;
    s.width = info->preprocess.width;
    s.images = p->px;
    s.nimages = (int)p->imgs.count;
    s.priors = p->ppx;
    s.npriors = (int)p->priors.count;
    s.prior_days = p->prior_days;
    rf_text_encoding *notes = NULL;
    size_t *note_of = NULL;
    if (!rc && enc) {
        notes = calloc(r->nnotes, sizeof *notes);
        note_of = calloc(r->nnotes, sizeof *note_of);
        if (!notes || !note_of)
            rc = NOMEM();
        for (size_t i = 0; !rc && i < r->nnotes; i++)
            if (r->notes[i].used) {
                note_of[s.nnotes] = i;
                notes[s.nnotes++] = enc[i];
            }
    }
    s.notes = notes;
    s.labs = p->tokens;
    s.nlabs = p->ntokens;

    rf_fusion_output fo;
    memset(&fo, 0, sizeof fo);
    if (!rc) {
        t0 = now_ms();
        rc = rf_fusion_forward(model, &s, &fo, err);
        if (!rc)
            rc = rf_result_time(r, "fusion", now_ms() - t0);
    }
    if (!rc) {
        for (int m = 0; m < RF_MODALITY_COUNT; m++)
            r->inputs_used[m] = fo.inputs_used[m];
        if (fo.layout.text_tokens_dropped &&
            rf_result_warn(r, "notes: %d token%s past the model's limit of %d not read", fo.layout.text_tokens_dropped,
                           fo.layout.text_tokens_dropped == 1 ? "" : "s", info->max_text_tokens))
            rc = NOMEM();
        if (!rc && fo.layout.labs_dropped &&
            rf_result_warn(r, "labs: %d result%s the model has no embedding for", fo.layout.labs_dropped,
                           fo.layout.labs_dropped == 1 ? "" : "s"))
            rc = NOMEM();
    }
    if (!rc)
        rc = fill_findings(info, &fo, r, err);
    if (!rc) {
        t0 = now_ms();
        int src = attach_saliency(model, method, &s, &p->imgs, note_of, r, &e);
        if (src && method == RF_SALIENCY_NONE && src != RF_ENOMEM) {
            if (rf_result_warn(r, "input weights not computed: %s", e.msg))
                rc = NOMEM();
        } else if (src) {
            rc = rf_err_set(err, src, "saliency: %s", e.msg);
        }
        if (!rc)
            rc = rf_result_time(r, "saliency", now_ms() - t0);
    }
    if (!rc)
        qsort(r->findings, r->nfindings, sizeof *r->findings, cmp_findings);
    rf_fusion_output_free(&fo);
    free(notes);
    free(note_of);
    if (enc)
        for (size_t i = 0; i < r->nnotes; i++)
            rf_text_encoding_free(&enc[i]);
    free(enc);
    return rc;
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
