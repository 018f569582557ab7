/*
 * The saliency check of radfuse eval (radfuse/eval.h, docs/eval.md): do a
 * model's maps fall on the lungs? Rows positive for a finding target whose
 * image has lung boxes (a COCO json matched by file name) get the maps
 * `radfuse read` makes (rf_read_saliency on the row's fused inputs); per
 * finding target, the share of each map's mass inside the union of the
 * boxes and whether its peak lies inside (the pointing game), against a
 * uniform map (the boxes' area fraction for both), with bootstrap intervals
 * by patient.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/eval_internal.h"
#include "radfuse/datasets.h"
#include "radfuse/eval.h"
#include "radfuse/fusion.h"
#include "radfuse/read.h"
#include "radfuse/saliency.h"
#include "runtime/fileio.h"

#define BOXES_MAX_BYTES ((size_t)64 << 20)
#define BOXES_MAX_NAME 4096
#define BOXES_MAX_SIDE 65535
#define BOXES_MAX_COORD 1e7

/* ---- the box file ---- */

void rf_eval_boxes_free(rf_eval_boxes *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->count; i++) {
        free(b->images[i].file_name);
        free(b->images[i].boxes);
    }
    free(b->images);
    memset(b, 0, sizeof *b);
}

typedef struct box_image {
    double id;
    rf_eval_boxes_image im;
    int cap;
} box_image;

static int cmp_id(const void *a, const void *b)
{
    double x = ((const box_image *)a)->id, y = ((const box_image *)b)->id;
    return x < y ? -1 : x > y;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const rf_eval_boxes_image *)a)->file_name, ((const rf_eval_boxes_image *)b)->file_name);
}

/* A JSON number that is an integer in [lo, hi]. */
static int int_in(const cJSON *v, double lo, double hi, double *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < lo || v->valuedouble > hi)
        return 0;
    *out = v->valuedouble;
    return 1;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BOXES_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '/')
            return 0;
    return 1;
}

int rf_eval_boxes_parse(const char *name, const char *text, size_t len, rf_eval_boxes *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > BOXES_MAX_BYTES)
        return rf_err_set(err, RF_EFORMAT, "%s: larger than %zu bytes", name, BOXES_MAX_BYTES);
    if (memchr(text, 0, len))
        return rf_err_set(err, RF_EFORMAT, "%s: not a JSON object (a NUL byte)", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        return root ? rf_err_set(err, RF_EFORMAT, "%s: not a JSON object", name)
                    : rf_err_set(err, RF_EFORMAT, "%s: not a JSON object (bad or too deeply nested JSON near byte %zu)",
                                 name, at);
    }
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return rf_err_set(err, RF_EFORMAT, "%s: text after the JSON object at byte %zu", name,
                              (size_t)(p - text));
        }
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(root, "annotations");
    int rc = RF_OK;
    box_image *bi = NULL;
    size_t n = 0;
    if (!cJSON_IsArray(images) || !cJSON_IsArray(anns)) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: not COCO boxes (no \"images\" and \"annotations\" arrays)", name);
        goto done;
    }
    size_t nimg = (size_t)cJSON_GetArraySize(images);
    bi = calloc(nimg ? nimg : 1, sizeof *bi);
    if (!bi) {
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, images)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(it, "file_name");
        double id, w, h;
        if (!cJSON_IsObject(it) || !int_in(cJSON_GetObjectItemCaseSensitive(it, "id"), -9e15, 9e15, &id)) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: images[%zu]: no integer \"id\"", name, n);
            goto done;
        }
        if (!cJSON_IsString(fn) || !name_ok(fn->valuestring)) {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: images[%zu]: \"file_name\" must be a file name (1-%d bytes, no '/' or control "
                            "bytes)",
                            name, n, BOXES_MAX_NAME);
            goto done;
        }
        if (!int_in(cJSON_GetObjectItemCaseSensitive(it, "width"), 1, BOXES_MAX_SIDE, &w) ||
            !int_in(cJSON_GetObjectItemCaseSensitive(it, "height"), 1, BOXES_MAX_SIDE, &h)) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: images[%zu]: \"width\" and \"height\" must be integers in [1, %d]",
                            name, n, BOXES_MAX_SIDE);
            goto done;
        }
        bi[n].id = id;
        bi[n].im.width = (int)w;
        bi[n].im.height = (int)h;
        if (!(bi[n].im.file_name = strdup(fn->valuestring))) {
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            goto done;
        }
        n++;
    }
    qsort(bi, n, sizeof *bi, cmp_id);
    for (size_t i = 1; i < n; i++)
        if (bi[i].id == bi[i - 1].id) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: two images with id %.0f", name, bi[i].id);
            goto done;
        }
    size_t k = 0;
    cJSON_ArrayForEach(it, anns)
    {
        double id;
        if (!cJSON_IsObject(it) || !int_in(cJSON_GetObjectItemCaseSensitive(it, "image_id"), -9e15, 9e15, &id)) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: annotations[%zu]: no integer \"image_id\"", name, k);
            goto done;
        }
        box_image key = {.id = id};
        box_image *hit = n ? bsearch(&key, bi, n, sizeof *bi, cmp_id) : NULL;
        if (!hit) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: annotations[%zu]: image_id %.0f is not an image of the file", name,
                            k, id);
            goto done;
        }
        const cJSON *bb = cJSON_GetObjectItemCaseSensitive(it, "bbox");
        double v[4];
        int ok = cJSON_IsArray(bb) && cJSON_GetArraySize(bb) == 4;
        for (int j = 0; ok && j < 4; j++) {
            const cJSON *x = cJSON_GetArrayItem(bb, j);
            ok = cJSON_IsNumber(x) && isfinite(x->valuedouble) && fabs(x->valuedouble) <= BOXES_MAX_COORD;
            if (ok)
                v[j] = x->valuedouble;
        }
        if (!ok || v[2] < 0 || v[3] < 0) {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: annotations[%zu]: \"bbox\" must be [x, y, width, height], finite, sides >= 0", name,
                            k);
            goto done;
        }
        rf_eval_boxes_image *im = &hit->im;
        if (im->nboxes == hit->cap) {
            int nc = hit->cap ? hit->cap * 2 : 2;
            rf_eval_box *nb = realloc(im->boxes, (size_t)nc * sizeof *nb);
            if (!nb) {
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                goto done;
            }
            im->boxes = nb;
            hit->cap = nc;
        }
        im->boxes[im->nboxes++] = (rf_eval_box){v[0], v[1], v[2], v[3]};
        k++;
    }
    /* images with boxes, by name */
    out->images = calloc(n ? n : 1, sizeof *out->images);
    if (!out->images) {
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (bi[i].im.nboxes) {
            out->images[out->count++] = bi[i].im;
            memset(&bi[i].im, 0, sizeof bi[i].im);
        }
    qsort(out->images, out->count, sizeof *out->images, cmp_name);
    for (size_t i = 1; i < out->count; i++)
        if (!strcmp(out->images[i].file_name, out->images[i - 1].file_name)) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: two images named %s", name, out->images[i].file_name);
            goto done;
        }
done:
    for (size_t i = 0; bi && i < nimg; i++) {
        free(bi[i].im.file_name);
        free(bi[i].im.boxes);
    }
    free(bi);
    cJSON_Delete(root);
    if (rc)
        rf_eval_boxes_free(out);
    return rc;
}

int rf_eval_boxes_load(const char *path, rf_eval_boxes *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    char *text;
    size_t len;
    int rc = rf_read_file(path, BOXES_MAX_BYTES, &text, &len, err);
    if (rc)
        return rc;
    rc = rf_eval_boxes_parse(path, text, len, out, err);
    free(text);
    return rc;
}

const rf_eval_boxes_image *rf_eval_boxes_find(const rf_eval_boxes *b, const char *file_name)
{
    if (!b || !b->count || !file_name)
        return NULL;
    rf_eval_boxes_image key = {.file_name = (char *)file_name};
    return bsearch(&key, b->images, b->count, sizeof *b->images, cmp_name);
}

size_t rf_eval_boxes_mask(const rf_eval_boxes_image *im, int rows, int cols, unsigned char *mask)
{
    double sy = (double)im->height / rows, sx = (double)im->width / cols;
    size_t inside = 0;
    for (int r = 0; r < rows; r++) {
        double y = (r + 0.5) * sy;
        for (int c = 0; c < cols; c++) {
            double x = (c + 0.5) * sx;
            unsigned char in = 0;
            for (int k = 0; k < im->nboxes && !in; k++) {
                const rf_eval_box *b = &im->boxes[k];
                in = x >= b->x && x < b->x + b->w && y >= b->y && y < b->y + b->h;
            }
            mask[(size_t)r * cols + c] = in;
            inside += in;
        }
    }
    return inside;
}

double rf_eval_mass_inside(const float *map, const unsigned char *mask, int rows, int cols, int peak_row, int peak_col,
                           int *hit)
{
    double in = 0, all = 0;
    size_t n = (size_t)rows * (size_t)cols;
    for (size_t i = 0; i < n; i++) {
        double v = map[i] > 0 ? map[i] : 0;
        all += v;
        if (mask[i])
            in += v;
    }
    if (hit)
        *hit = peak_row >= 0 && peak_row < rows && peak_col >= 0 && peak_col < cols &&
               mask[(size_t)peak_row * cols + peak_col];
    return all > 0 ? in / all : NAN;
}

/* ---- bootstrap of a mean ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* numpy's percentile with linear interpolation, q in [0, 1], v sorted */
static double quantile(const double *v, int n, double q)
{
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1)
        return v[n - 1];
    double f = h - lo, a = v[lo], b = v[lo + 1], d = b - a;
    return f >= 0.5 ? b - d * (1 - f) : a + d * f;
}

int rf_eval_mean_ci(const double *v, const int *group, size_t n, int resamples, uint64_t seed, double level,
                    rf_eval_ci *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    out->lo = out->hi = NAN;
    out->resamples = resamples;
    if (resamples < 1 || !(level > 0 && level < 1) || n == 0)
        return rf_err_set(err, RF_EINVAL, "bootstrap: %d resamples at level %g over %zu rows", resamples, level, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || (group && group[i] < 0))
            return rf_err_set(err, RF_EINVAL, "bootstrap: row %zu has no value or a negative group", i);
    /* groups in order of first appearance, as the AUROC bootstrap numbers them:
     * each group's sum and row count */
    int *gid = malloc(n * sizeof *gid);
    double *gsum = calloc(n, sizeof *gsum), *means = malloc((size_t)resamples * sizeof *means);
    long *gcount = calloc(n, sizeof *gcount);
    int rc = RF_OK, G = 0;
    if (!gid || !gsum || !means || !gcount) {
        rc = rf_err_set(err, RF_ENOMEM, "bootstrap: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        int g = (int)i;
        if (group) {
            g = -1;
            for (size_t j = 0; j < i && g < 0; j++)
                if (group[j] == group[i])
                    g = gid[j];
            if (g < 0)
                g = G;
        }
        gid[i] = g;
        if (g == G)
            G++;
        gsum[g] += v[i];
        gcount[g]++;
    }
    rf_eval_rng rng;
    rf_eval_rng_seed(&rng, seed);
    for (int b = 0; b < resamples; b++) {
        double s = 0;
        long m = 0;
        for (int k = 0; k < G; k++) {
            int g = (int)rf_eval_rng_below(&rng, (uint64_t)G);
            s += gsum[g];
            m += gcount[g];
        }
        means[out->used++] = s / (double)m;
    }
    qsort(means, (size_t)out->used, sizeof *means, cmp_double);
    out->lo = quantile(means, out->used, (1 - level) / 2);
    out->hi = quantile(means, out->used, (1 + level) / 2);
done:
    free(gid);
    free(gsum);
    free(means);
    free(gcount);
    return rc;
}

/* ---- the runner's part ---- */

static void target_free(rf_eval_saliency_target *t)
{
    free(t->name);
    t->name = NULL;
}

void rf_eval_saliency_free(rf_eval_saliency *s)
{
    if (!s)
        return;
    free(s->uniform);
    free(s->mass);
    free(s->hit);
    for (int k = 0; k < s->ntargets; k++)
        target_free(&s->targets[k]);
    free(s->targets);
    target_free(&s->overall);
    memset(s, 0, sizeof *s);
}

int rf_eval_saliency_begin(rf_eval_result *r, const rf_eval_opts *o, size_t nrows, rf_err *err)
{
    rf_eval_saliency *s = &r->saliency;
    if (!o->boxes)
        return rf_err_set(err, RF_EINVAL, "eval: saliency needs lung boxes");
    s->method = o->saliency;
    size_t n = (nrows ? nrows : 1) * (size_t)(r->nlabels ? r->nlabels : 1);
    s->uniform = malloc((nrows ? nrows : 1) * sizeof *s->uniform);
    s->mass = malloc(n * sizeof *s->mass);
    s->hit = malloc(n * sizeof *s->hit);
    if (!s->uniform || !s->mass || !s->hit)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    for (size_t i = 0; i < nrows; i++)
        s->uniform[i] = NAN;
    for (size_t i = 0; i < n; i++) {
        s->mass[i] = NAN;
        s->hit[i] = -1;
    }
    return RF_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The row's boxes: by its id, else by the id's last path component. */
static const rf_eval_boxes_image *row_boxes(const rf_eval_boxes *b, const char *id)
{
    const rf_eval_boxes_image *im = rf_eval_boxes_find(b, id);
    const char *slash = strrchr(id, '/');
    return im || !slash ? im : rf_eval_boxes_find(b, slash + 1);
}

int rf_eval_saliency_row(rf_fusion *model, const rf_dataset *ds, const rf_eval_opts *o, rf_eval_result *r, size_t u,
                         size_t row, int want, const rf_fusion_study *s, const rf_read_image *image, rf_err *err)
{
    rf_eval_saliency *sal = &r->saliency;
    const rf_dataset_row *dr = rf_dataset_get(ds, row);
    const rf_eval_boxes_image *im = row_boxes(o->boxes, dr->id);
    if (!im)
        return RF_OK;
    size_t npx = (size_t)image->rows * (size_t)image->cols;
    unsigned char *mask = malloc(npx ? npx : 1);
    if (!mask)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    size_t inside = rf_eval_boxes_mask(im, image->rows, image->cols, mask);
    if (inside == 0) { /* boxes outside the image: nothing to point at */
        free(mask);
        return RF_OK;
    }
    sal->rows_with_boxes++;
    if (!want) {
        free(mask);
        return RF_OK;
    }
    sal->rows_rescaled += im->width != image->cols || im->height != image->rows;
    double t0 = now_s();
    rf_saliency_result sr;
    rf_err e;
    int rc = rf_read_saliency(model, sal->method, s, image, 1, &sr, &e);
    if (rc)
        rc = rc == RF_ENOMEM ? rf_err_set(err, rc, "%s", e.msg)
                             : rf_err_set(err, rc, "saliency of row %s: %s", dr->id, e.msg);
    for (int j = 0; !rc && j < sr.nfindings; j++) {
        const rf_saliency_finding *f = &sr.findings[j];
        if (f->label < 0 || f->label >= r->nlabels || f->nmaps < 1 || !f->maps[0].values)
            continue;
        const rf_result_map *m = &f->maps[0];
        int hit;
        size_t at = u * (size_t)r->nlabels + (size_t)f->label;
        sal->mass[at] = rf_eval_mass_inside(m->values, mask, image->rows, image->cols, m->peak_row, m->peak_col, &hit);
        sal->hit[at] = (signed char)hit;
    }
    rf_saliency_result_free(&sr);
    free(mask);
    if (!rc) {
        sal->uniform[u] = (double)inside / (double)npx;
        sal->rows_mapped++;
    }
    sal->seconds += now_s() - t0;
    return rc;
}

/* Figures of the (row, label) pairs listed. */
static int figures(const rf_eval_opts *o, const rf_eval_result *r, const size_t *us, const int *labels, size_t m,
                   const int *group, rf_eval_saliency_target *t, rf_err *err)
{
    const rf_eval_saliency *sal = &r->saliency;
    double *mass = malloc((m ? m : 1) * sizeof *mass), *hit = malloc((m ? m : 1) * sizeof *hit);
    double *excess = malloc((m ? m : 1) * sizeof *excess);
    int *g = malloc((m ? m : 1) * sizeof *g);
    t->mass_inside = t->uniform_mass = t->pointing = t->uniform_pointing = t->excess = NAN;
    t->mass_ci.lo = t->mass_ci.hi = t->pointing_ci.lo = t->pointing_ci.hi = t->excess_ci.lo = t->excess_ci.hi = NAN;
    int rc = RF_OK;
    if (!mass || !hit || !excess || !g) {
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        goto done;
    }
    size_t n = 0;
    double sm = 0, su = 0, sh = 0;
    for (size_t i = 0; i < m; i++) {
        size_t at = us[i] * (size_t)r->nlabels + (size_t)labels[i];
        if (isnan(sal->mass[at])) {
            t->empty++;
            continue;
        }
        mass[n] = sal->mass[at];
        hit[n] = sal->hit[at] > 0;
        excess[n] = mass[n] - sal->uniform[us[i]];
        g[n] = group[us[i]];
        sm += mass[n];
        sh += hit[n];
        su += sal->uniform[us[i]];
        n++;
    }
    t->n = (long)n;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && g[j] != g[i])
            j++;
        t->patients += j == i;
    }
    if (n == 0)
        goto done;
    t->mass_inside = sm / n;
    t->pointing = sh / n;
    /* a uniform map's share and its peak's chance of falling inside: both the area fraction */
    t->uniform_mass = t->uniform_pointing = su / n;
    t->excess = t->mass_inside - t->uniform_mass;
    if (o->bootstrap > 0 &&
        ((rc = rf_eval_mean_ci(mass, g, n, o->bootstrap, o->seed, 0.95, &t->mass_ci, err)) ||
         (rc = rf_eval_mean_ci(hit, g, n, o->bootstrap, o->seed, 0.95, &t->pointing_ci, err)) ||
         (rc = rf_eval_mean_ci(excess, g, n, o->bootstrap, o->seed, 0.95, &t->excess_ci, err))))
        goto done;
done:
    free(mass);
    free(hit);
    free(excess);
    free(g);
    return rc;
}

int rf_eval_saliency_score(const rf_dataset *ds, const rf_eval_opts *o, rf_eval_result *r, const int *group,
                           rf_err *err)
{
    rf_eval_saliency *sal = &r->saliency;
    size_t U = r->rows_used, cap = U * (size_t)(r->ntargets ? r->ntargets : 1);
    size_t *us = malloc((cap ? cap : 1) * sizeof *us), *all_us = malloc((cap ? cap : 1) * sizeof *all_us);
    int *labels = malloc((cap ? cap : 1) * sizeof *labels), *all_labels = malloc((cap ? cap : 1) * sizeof *all_labels);
    sal->targets = calloc((size_t)(r->ntargets ? r->ntargets : 1), sizeof *sal->targets);
    sal->overall.name = strdup("overall");
    int rc = RF_OK;
    if (!us || !all_us || !labels || !all_labels || !sal->targets || !sal->overall.name) {
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        goto done;
    }
    size_t nall = 0;
    for (int k = 0; k < r->ntargets && !rc; k++) {
        const rf_eval_target *et = &r->targets[k];
        if (!et->finding)
            continue;
        rf_eval_saliency_target *t = &sal->targets[sal->ntargets];
        if (!(t->name = strdup(et->name))) {
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            break;
        }
        sal->ntargets++;
        t->label = et->label;
        size_t m = 0;
        for (size_t u = 0; u < U; u++)
            if (!isnan(sal->uniform[u]) && rf_dataset_get(ds, r->row[u])->targets[et->dataset_target] == RF_TARGET_POS) {
                us[m] = all_us[nall] = u;
                labels[m++] = all_labels[nall++] = et->label;
            }
        rc = figures(o, r, us, labels, m, group, t, err);
    }
    if (!rc)
        rc = figures(o, r, all_us, all_labels, nall, group, &sal->overall, err);
done:
    free(us);
    free(all_us);
    free(labels);
    free(all_labels);
    return rc;
}

/* ---- output ---- */

static cJSON *num(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

static cJSON *pair(const rf_eval_ci *ci)
{
    cJSON *p = cJSON_CreateArray();
    cJSON_AddItemToArray(p, num(ci->lo));
    cJSON_AddItemToArray(p, num(ci->hi));
    return p;
}

static void target_json(cJSON *o, const rf_eval_saliency_target *t)
{
    cJSON_AddNumberToObject(o, "n", (double)t->n);
    cJSON_AddNumberToObject(o, "patients", (double)t->patients);
    cJSON_AddItemToObject(o, "mass_inside", num(t->mass_inside));
    cJSON_AddItemToObject(o, "mass_inside_ci", pair(&t->mass_ci));
    cJSON_AddItemToObject(o, "uniform_mass", num(t->uniform_mass));
    cJSON_AddItemToObject(o, "pointing_hit_rate", num(t->pointing));
    cJSON_AddItemToObject(o, "pointing_hit_rate_ci", pair(&t->pointing_ci));
    cJSON_AddItemToObject(o, "uniform_pointing", num(t->uniform_pointing));
    cJSON *x = cJSON_AddObjectToObject(o, "mass_minus_uniform");
    cJSON_AddItemToObject(x, "delta", num(t->excess));
    cJSON_AddItemToObject(x, "ci", pair(&t->excess_ci));
    cJSON_AddNumberToObject(o, "empty_maps", (double)t->empty);
}

char *rf_eval_saliency_json(const rf_eval_result *r, const char *json)
{
    const rf_eval_saliency *sal = &r->saliency;
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }
    cJSON *s = cJSON_AddObjectToObject(root, "saliency");
    cJSON_AddStringToObject(s, "method", rf_saliency_method_name((rf_saliency_method)sal->method));
    cJSON_AddNumberToObject(s, "rows_with_boxes", (double)sal->rows_with_boxes);
    cJSON_AddNumberToObject(s, "rows_mapped", (double)sal->rows_mapped);
    cJSON_AddNumberToObject(s, "rows_rescaled", (double)sal->rows_rescaled);
    cJSON *ts = cJSON_AddObjectToObject(s, "targets");
    for (int k = 0; k < sal->ntargets; k++)
        target_json(cJSON_AddObjectToObject(ts, sal->targets[k].name), &sal->targets[k]);
    target_json(cJSON_AddObjectToObject(s, "overall"), &sal->overall);
    cJSON_AddNumberToObject(s, "seconds", sal->seconds);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* An interval that may hold negative ends, as [lo, hi]. */
static void fmt_signed_ci(char *buf, size_t n, const rf_eval_ci *ci)
{
    if (isfinite(ci->lo) && isfinite(ci->hi))
        snprintf(buf, n, "[%.3f, %.3f]", ci->lo, ci->hi);
    else
        snprintf(buf, n, "-");
}

static void target_line(FILE *f, int w, const rf_eval_saliency_target *t)
{
    char m[32], mci[32], u[32], x[32], xci[32], p[32], pci[32];
    rf_eval_fmt(m, sizeof m, t->mass_inside);
    rf_eval_fmt_ci(mci, sizeof mci, &t->mass_ci);
    rf_eval_fmt(u, sizeof u, t->uniform_mass);
    rf_eval_fmt(x, sizeof x, t->excess);
    fmt_signed_ci(xci, sizeof xci, &t->excess_ci);
    rf_eval_fmt(p, sizeof p, t->pointing);
    rf_eval_fmt_ci(pci, sizeof pci, &t->pointing_ci);
    fprintf(f, "%-*.*s  %4ld  %8ld  %6s  %-13s  %7s  %6s  %-16s  %8s  %-13s  %5ld\n", w, w, t->name, t->n, t->patients, m,
            mci, u, x, xci, p, pci, t->empty);
}

void rf_eval_saliency_print(const rf_eval_result *r, FILE *f)
{
    const rf_eval_saliency *sal = &r->saliency;
    if (!sal->method)
        return;
    int w = 7;
    for (int k = 0; k < sal->ntargets; k++) {
        int l = (int)strlen(sal->targets[k].name);
        w = l > w ? (l > 32 ? 32 : l) : w;
    }
    fprintf(f,
            "\nsaliency (%s) against the lung boxes: %zu used rows with boxes, %zu of them positive for a finding "
            "and mapped (%zu with boxes rescaled); %.1f s\n",
            rf_saliency_method_name((rf_saliency_method)sal->method), sal->rows_with_boxes, sal->rows_mapped,
            sal->rows_rescaled, sal->seconds);
    fprintf(f, "(mass: the map's share inside the boxes; uniform: the boxes' area fraction, a uniform map's share and "
               "pointing rate; 95%% CI by patient)\n");
    fprintf(f, "%-*s  %4s  %8s  %6s  %-13s  %7s  %6s  %-16s  %8s  %-13s  %5s\n", w, "target", "n", "patients", "mass", "95% CI", "uniform",
            "excess", "95% CI", "pointing", "95% CI", "empty");
    for (int k = 0; k < sal->ntargets; k++)
        target_line(f, w, &sal->targets[k]);
    target_line(f, w, &sal->overall);
}
