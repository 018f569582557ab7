/*
 * rf_read: one study, its prior, notes and labs through a fusion model into
 * an rf_read_result. The steps, each timed: the study's images (read_study.c),
 * preprocessing, notes and labs, the text encoder, the fusion forward, then
 * saliency. Inputs that fail on their own (a note, a lab file) become
 * warnings and the read goes on without them; see read.h for what is fatal.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fusion/read_internal.h"

double rf_rd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

/* A file's name for the result: as given with include_phi, else its base name. */
static char *shown_name(const char *path, int include_phi)
{
    const char *slash = strrchr(path, '/');
    return strdup(include_phi || !slash ? path : slash + 1);
}

/* DICOM DA "YYYYMMDD" to days since 1970-01-01; -1 when not a valid date. */
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

int rf_read_study_time(const char *da, const char *tm, rf_time *t)
{
    if (!da || strlen(da) < 8)
        return -1;
    char iso[32];
    int n = snprintf(iso, sizeof iso, "%.4s-%.2s-%.2s", da, da + 4, da + 6);
    if (tm && strlen(tm) >= 4 && strspn(tm, "0123456789.") >= 4)
        n += snprintf(iso + n, sizeof iso - (size_t)n, "T%.2s:%.2s:%.2s", tm, tm + 2,
                      strlen(tm) >= 6 ? tm + 4 : "00");
    return rf_time_parse_iso(iso, (size_t)n, t) ? -1 : 0;
}

int rf_read_preprocess(const rf_fusion *model, const rf_read_image *images, size_t n, int threads, float **out,
                       rf_err *err)
{
    const rf_preprocess_config *cfg = &rf_fusion_get_info(model)->preprocess;
    size_t per = (size_t)cfg->channels * (size_t)cfg->height * (size_t)cfg->width;
    *out = NULL;
    if (n == 0)
        return RF_OK;
    float *px = malloc(per * n * sizeof *px);
    if (!px)
        return rf_err_set(err, RF_ENOMEM, "out of memory for %zu preprocessed images", n);
    rf_preprocessor *pp;
    int rc = rf_preprocess_create(&pp, cfg, threads, err);
    for (size_t i = 0; !rc && i < n; i++) {
        const rf_read_image *im = &images[i];
        rc = rf_preprocess_run(pp, im->pixels, im->rows, im->cols, im->channels, px + i * per, err);
    }
    if (!rc)
        rf_preprocess_destroy(pp);
    if (rc) {
        free(px);
        return rc;
    }
    *out = px;
    return RF_OK;
}

int rf_read_note_usable(const char *text, size_t len)
{
    return len > 0 && strspn(text, " \t\r\n") < len;
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

int rf_rd_read_notes_labs(rf_read_result *r, const char *const *notes, int nnotes, const char *const *labs, int nlabs,
                          int include_phi, rf_labs *out, rf_err *err)
{
    rf_err e;
    /* notes: each file on its own, so one bad file is one warning */
    for (int i = 0; i < nnotes; i++) {
        size_t before = out->nnotes;
        if (rf_note_read_file(notes[i], "note", out, &e)) {
            if (rf_result_warn(r, "note %d: %s; read without it", i + 1, rf_err_without_name(e.msg, notes[i])))
                return rf_err_set(err, RF_ENOMEM, "out of memory");
            continue;
        }
        for (size_t k = before; k < out->nnotes; k++)
            if (add_note(r, &out->notes[k], notes[i], include_phi))
                return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    for (int i = 0; i < nlabs; i++) {
        size_t before = out->nnotes, issues = out->nissues;
        if (rf_labs_read_file(labs[i], RF_LABS_AUTO, out, &e)) {
            if (rf_result_warn(r, "labs %d: %s; read without it", i + 1, rf_err_without_name(e.msg, labs[i])))
                return rf_err_set(err, RF_ENOMEM, "out of memory");
            continue;
        }
        if (out->nissues > issues &&
            rf_result_warn(r, "labs %d: %zu record%s skipped (run `radfuse text labs` on the file for details)", i + 1,
                           out->nissues - issues, out->nissues - issues == 1 ? "" : "s"))
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        /* notes inside lab files (FHIR DocumentReference, HL7 TX) are notes too */
        for (size_t k = before; k < out->nnotes; k++)
            if (add_note(r, &out->notes[k], labs[i], include_phi))
                return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    return RF_OK;
}

int rf_rd_encode_notes(rf_fusion *model, rf_read_result *r, rf_text_encoding **enc, rf_err *err)
{
    const rf_fusion_info *info = rf_fusion_get_info(model);
    rf_err e;
    *enc = NULL;
    double t0 = rf_rd_now_ms();
    if (r->nnotes && !info->text.present) {
        if (rf_result_warn(r, "the model has no text encoder: %zu note%s not used", r->nnotes,
                           r->nnotes == 1 ? "" : "s"))
            return rf_err_set(err, RF_ENOMEM, "out of memory");
    } else if (r->nnotes) {
        *enc = calloc(r->nnotes, sizeof **enc);
        if (!*enc)
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        for (size_t i = 0; i < r->nnotes; i++) {
            if (!rf_read_note_usable(r->notes[i].text, r->notes[i].len)) {
                if (rf_result_warn(r, "note %zu is empty: not used", i + 1))
                    return rf_err_set(err, RF_ENOMEM, "out of memory");
                continue;
            }
            int rc = rf_fusion_encode_note(model, r->notes[i].text, r->notes[i].len, &(*enc)[i], &e);
            if (rc == RF_ENOMEM)
                return rf_err_set(err, rc, "%s", e.msg);
            if (rc) {
                if (rf_result_warn(r, "note %zu: %s; read without it", i + 1, e.msg))
                    return rf_err_set(err, RF_ENOMEM, "out of memory");
                continue;
            }
            r->notes[i].used = 1;
        }
        if (rf_result_time(r, "text", rf_rd_now_ms() - t0))
            return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    return RF_OK;
}

int rf_rd_lab_tokens(rf_read_result *r, const rf_labs *labs, rf_lab_token **tokens, size_t *ntokens,
                     rf_rd_warn_fn warn, void *ctx, rf_err *err)
{
    rf_err e;
    char msg[256];
    /* as of the study's time: results after it are not used */
    rf_time ref;
    int have_ref = rf_read_study_time(r->study.study_date, r->study.study_time, &ref) == 0;
    if (labs->nlabs) {
        if (!have_ref && warn(ctx, "the study has no date: every lab result is used, whatever its time"))
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        if (rf_lab_tokens(labs, have_ref ? &ref : NULL, tokens, ntokens, &e))
            return rf_err_set(err, RF_EINVAL, "labs: %s", e.msg);
        snprintf(msg, sizeof msg, "labs: %zu result%s, none usable by the model (unknown labs or no numeric value)",
                 labs->nlabs, labs->nlabs == 1 ? "" : "s");
        if (*ntokens == 0 && warn(ctx, msg))
            return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    if (*ntokens) {
        r->labs = calloc(*ntokens, sizeof *r->labs);
        if (!r->labs)
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        for (size_t i = 0; i < *ntokens; i++) {
            const rf_lab *rec = &labs->labs[(*tokens)[i].record];
            const rf_lab_def *def = rf_lab_def_get((*tokens)[i].lab);
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
                return rf_err_set(err, RF_ENOMEM, "out of memory");
        }
    }
    return RF_OK;
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
        return rf_err_set(err, RF_ENOMEM, "out of memory");
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
            return rf_err_set(err, RF_ENOMEM, "out of memory");
        if (!isfinite(f->probability))
            return rf_err_set(err, RF_EFORMAT, "%s: the model gave a non-finite probability for '%s'", info->dir,
                              lab->code);
    }
    return RF_OK;
}

/* The read's saliency call (read.h): every finding with the default options. */
int rf_read_saliency(rf_fusion *model, int method, const rf_fusion_study *s, const rf_read_image *images, size_t n,
                     rf_saliency_result *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    int *rows = calloc(n ? n : 1, sizeof *rows);
    int *cols = calloc(n ? n : 1, sizeof *cols);
    if (!rows || !cols) {
        free(rows);
        free(cols);
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        rows[i] = images[i].rows;
        cols[i] = images[i].cols;
    }
    rf_saliency_opts o;
    rf_saliency_opts_init(&o);
    o.method = (rf_saliency_method)method;
    int rc = rf_saliency_run(model, s, rows, cols, &o, out, err);
    free(rows);
    free(cols);
    return rc;
}

/*
 * Saliency for every finding, moved into the result: maps from study image
 * order to result images, spans from the study's notes to the result's.
 * r->findings are still in label order here.
 */
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

static char *iso_now(void)
{
    char buf[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return strdup(buf);
}

int rf_rd_result_init(rf_read_result *r, const rf_fusion_info *info, const char *precision, const char *saliency,
                      int include_phi, rf_err *err)
{
    r->tool_version = strdup(RADFUSE_VERSION);
    r->created = iso_now();
    r->model.dir = strdup(info->dir);
    r->model.name = dup_or_null(info->name);
    r->model.version = dup_or_null(info->version);
    r->model.sha256 = strdup(info->sha256);
    r->model.backend = strdup(info->backend ? info->backend : "?");
    r->model.precision = strdup(precision ? precision : "fp32");
    r->saliency = strdup(saliency ? saliency : "none");
    r->include_phi = include_phi;
    if (!r->tool_version || !r->created || !r->model.dir || !r->model.sha256 || !r->model.backend ||
        !r->model.precision || !r->saliency)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    return RF_OK;
}

int rf_rd_prior_age(rf_read_result *r, const rf_read_images *imgs, rf_read_images *priors, double *days, rf_err *err)
{
    int rc = RF_OK;
    long a = dicom_days(r->study.study_date), b = dicom_days(r->study.prior_study_date);
    if (strcmp(imgs->patient_id, priors->patient_id) != 0) {
        /* a prior of another patient would be read as this patient's history */
        for (size_t i = 0; i < r->nimages; i++)
            if (r->images[i].prior && r->images[i].used) {
                r->images[i].used = 0;
                free(r->images[i].reason);
                r->images[i].reason = strdup("the prior study is of another patient (PatientID differs)");
            }
        rf_read_images_free(priors);
        free(r->study.prior_study_instance_uid);
        free(r->study.prior_study_date);
        r->study.prior_study_instance_uid = r->study.prior_study_date = NULL;
        if (rf_result_warn(r, "the prior study is of another patient (PatientID differs): read without it"))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        a = b = 0;
    }
    if (priors->count == 0) {
        /* dropped above */
    } else if (a < 0 || b < 0) {
        if (rf_result_warn(r, "the study or the prior has no date: the prior is taken as 0 days old"))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    } else if (b > a) {
        if (rf_result_warn(r, "the prior study is dated after the study: taken as 0 days old"))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    } else {
        *days = (double)(a - b);
    }
    return rc;
}

/* The vision states of the study's images then priors (rf_fusion_vision)
 * into *out, or NULL when the pass fails for a reason of the study's inputs
 * (the forward then says it); an error only when out of memory. */
static int own_vision(rf_fusion *model, const rf_fusion_study *s, float **out, rf_err *err)
{
    int n = s->nimages + s->npriors, tokens;
    const float **imgs = malloc((size_t)n * sizeof *imgs);
    if (!imgs)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        imgs[i] = rf_fusion_study_image(model, s, i);
    rf_err e;
    int rc = rf_fusion_vision(model, imgs, n, s->height, s->width, out, &tokens, &e);
    free(imgs);
    if (rc == RF_ENOMEM)
        return rf_err_set(err, rc, "%s", e.msg);
    return RF_OK;
}

int rf_rd_infer(rf_fusion *model, rf_saliency_method method, rf_read_result *r, const rf_read_images *imgs,
                const float *px, const rf_read_images *priors, const float *ppx, double prior_days,
                const rf_text_encoding *enc, const rf_lab_token *tokens, size_t ntokens, const float *vision,
                double vision_ms, rf_err *err)
{
    const rf_fusion_info *info = rf_fusion_get_info(model);
    int rc = RF_OK;
    double t0;
    rf_fusion_study s;
    memset(&s, 0, sizeof s);
    s.height = info->preprocess.height;
    s.width = info->preprocess.width;
    s.images = px;
    s.nimages = (int)imgs->count;
    s.priors = ppx;
    s.npriors = (int)priors->count;
    s.prior_days = prior_days;
    s.vision = vision;
    /* only the notes that were encoded, in order; note_of maps back */
    rf_text_encoding *notes = NULL;
    size_t *note_of = NULL;
    if (enc) {
        notes = calloc(r->nnotes, sizeof *notes);
        note_of = calloc(r->nnotes, sizeof *note_of);
        if (!notes || !note_of)
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < r->nnotes; i++)
            if (r->notes[i].used) {
                note_of[s.nnotes] = i;
                notes[s.nnotes++] = enc[i];
            }
    }
    s.notes = notes;
    s.labs = tokens;
    s.nlabs = ntokens;

    rf_fusion_output fo;
    memset(&fo, 0, sizeof fo);
    float *own = NULL;
    if (!rc) {
        t0 = rf_rd_now_ms();
        if (!vision && s.nimages + s.npriors > 0) {
            /* the vision states once, for the forward and for the input weights; where
             * they cannot be had the forward runs the encoder and says why */
            rc = own_vision(model, &s, &own, err);
            s.vision = own;
        }
        if (!rc)
            rc = rf_fusion_forward(model, &s, &fo, err);
        if (!rc)
            rc = rf_result_time(r, "fusion", vision_ms + rf_rd_now_ms() - t0);
    }
    if (!rc) {
        for (int m = 0; m < RF_MODALITY_COUNT; m++)
            r->inputs_used[m] = fo.inputs_used[m];
        if (fo.layout.text_tokens_dropped &&
            rf_result_warn(r, "notes: %d token%s past the model's limit of %d not read", fo.layout.text_tokens_dropped,
                           fo.layout.text_tokens_dropped == 1 ? "" : "s", info->max_text_tokens))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        if (!rc && fo.layout.labs_dropped &&
            rf_result_warn(r, "labs: %d result%s the model has no embedding for", fo.layout.labs_dropped,
                           fo.layout.labs_dropped == 1 ? "" : "s"))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    if (!rc)
        rc = fill_findings(info, &fo, r, err);

    /* with method none this still gives each finding's input weights and
     * text spans (gradients through the fusion only); where those cannot be
     * had (fp16 weights) the read goes on without them */
    if (!rc) {
        t0 = rf_rd_now_ms();
        rf_err e;
        int src = attach_saliency(model, method, &s, imgs, note_of, r, &e);
        if (src && method == RF_SALIENCY_NONE && src != RF_ENOMEM) {
            if (rf_result_warn(r, "input weights not computed: %s", e.msg))
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        } else if (src) {
            rc = rf_err_set(err, src, "saliency: %s", e.msg);
        }
        if (!rc)
            rc = rf_result_time(r, "saliency", rf_rd_now_ms() - t0);
    }
    if (!rc)
        qsort(r->findings, r->nfindings, sizeof *r->findings, cmp_findings);
    rf_fusion_output_free(&fo);
    free(own);
    free(notes);
    free(note_of);
    return rc;
}

static int warn_now(void *ctx, const char *msg)
{
    return rf_result_warn(ctx, "%s", msg);
}

int rf_read(rf_fusion *model, const rf_read_request *req, rf_read_result *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    const rf_fusion_info *info = rf_fusion_get_info(model);
    rf_read_result *r = out;
    int rc = rf_rd_result_init(r, info, req->precision, req->saliency, req->include_phi, err);
    if (rc)
        return rc;
    rf_saliency_method method;
    rc = rf_saliency_method_parse(r->saliency, &method, err);
    if (rc)
        return rc;

    /* images: the study, then the prior */
    double t0 = rf_rd_now_ms();
    rf_read_images imgs = {0}, priors = {0};
    rf_read_image_rules rules = {info->max_images, info->nimage_modalities, info->image_modalities};
    rc = rf_read_study_images(req->study, req->nstudy, req->study_uid, 0, &rules, req->include_phi, r, &imgs, err);
    double prior_days = 0;
    if (!rc && req->nprior > 0 && info->max_prior_images == 0) {
        if (rf_result_warn(r, "the model takes no prior study: the prior was not read"))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    } else if (!rc && req->nprior > 0) {
        rf_err e;
        rf_read_image_rules prior_rules = rules;
        prior_rules.max_images = info->max_prior_images;
        if (rf_read_study_images(req->prior, req->nprior, NULL, 1, &prior_rules, req->include_phi, r, &priors, &e)) {
            if (rf_result_warn(r, "prior study: %s; read without it", e.msg))
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        } else {
            rc = rf_rd_prior_age(r, &imgs, &priors, &prior_days, err);
        }
    }
    if (!rc)
        rc = rf_result_time(r, "decode", rf_rd_now_ms() - t0);

    float *px = NULL, *ppx = NULL;
    if (!rc) {
        t0 = rf_rd_now_ms();
        rc = rf_read_preprocess(model, imgs.images, imgs.count, req->threads, &px, err);
        if (!rc)
            rc = rf_read_preprocess(model, priors.images, priors.count, req->threads, &ppx, err);
        if (!rc)
            rc = rf_result_time(r, "preprocess", rf_rd_now_ms() - t0);
    }

    /* notes and labs: read, notes encoded, lab tokens made */
    rf_labs labs;
    memset(&labs, 0, sizeof labs);
    rf_text_encoding *enc = NULL;
    rf_lab_token *tokens = NULL;
    size_t ntokens = 0;
    if (!rc)
        rc = rf_rd_read_notes_labs(r, req->notes, req->nnotes, req->labs, req->nlabs, req->include_phi, &labs, err);
    if (!rc)
        rc = rf_rd_encode_notes(model, r, &enc, err);
    if (!rc)
        rc = rf_rd_lab_tokens(r, &labs, &tokens, &ntokens, warn_now, r, err);
    if (!rc)
        rc = rf_rd_infer(model, method, r, &imgs, px, &priors, ppx, prior_days, enc, tokens, ntokens, NULL, 0, err);

    if (enc)
        for (size_t i = 0; i < r->nnotes; i++)
            rf_text_encoding_free(&enc[i]);
    free(enc);
    free(tokens);
    rf_labs_free(&labs);
    free(px);
    free(ppx);
    rf_read_images_free(&imgs);
    rf_read_images_free(&priors);
    return rc;
}
