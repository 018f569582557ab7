/*
 * radfuse eval's saliency check (datasets/eval_saliency.c, docs/eval.md):
 *  - a "quadrant" model (tests/quadrant_model.c: identity
 *    vision blocks, a position embedding marking the top-left quadrant's
 *    patches, pooling to one cell per quadrant, a fusion block whose CLS
 *    attends only to the marked cell), labels covid19 and pneumonia, read
 *    through rf_eval_run on a covid-chestxray layout made here (PNG images
 *    of three sizes, positive and negative rows of four patients, one
 *    without boxes): with lung boxes covering the top-left quadrant (two
 *    overlapping boxes, on the image's grid and on one twice as large),
 *    Grad-CAM's mass inside is
 *    >= 0.9 and the pointing game 1 for every finding target; with boxes on
 *    the bottom-right quadrant, mass <= 0.05 and pointing 0; the uniform
 *    baseline equals the boxes' area fraction computed here from the box
 *    coordinates (union = sum - overlap); intervals contain the mean;
 *    negative rows and rows without boxes get no map;
 *  - a row's map is the one rf_read_saliency gives for the same study
 *    (the read's call), checked by recomputing the mass from it;
 *  - the mean bootstrap: constant values give a point interval, the same
 *    seed the same interval, a patient drawn whole;
 *  - the box parser: valid COCO with escapes; hostile files (not JSON,
 *    nesting 100000 deep, a NUL, text after the object, missing arrays,
 *    mistyped fields, non-finite or negative boxes, unknown image ids,
 *    duplicate ids and names, paths as names, sizes out of range) refused
 *    with one line naming the file;
 *  - `radfuse eval --saliency gradcam --boxes FILE --json`: the "saliency"
 *    object with its keys and figures in [0, 1]; the table; a hostile box
 *    file is exit 2 with one line; --saliency without --boxes is usage.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fusion/fusion_model.h"
#include "radfuse/datasets.h"
#include "radfuse/eval.h"
#include "radfuse/read.h"
#include "radfuse/saliency.h"
#include "tests/model_maker.h"
#include "tests/quadrant_model.h"
#include "tests/testutil.h"

/* ---- the dataset ---- */

/* An 8-bit grayscale PNG: mid grey (0 after the model's normalization) with
 * faint deterministic texture; positive rows have the top-left quadrant
 * brighter, most of all its top-left patch. */
static void write_png(const char *path, int rows, int cols, int positive)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "FATAL: cannot write %s\n", path);
        exit(1);
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "FATAL: libpng failed on %s\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)cols, (png_uint_32)rows, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    unsigned char *line = malloc((size_t)cols);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            int v = 128 + ((r * 7 + c * 13) % 5) - 2;
            /* the model's patches: a 4 x 4 grid over the stretched image */
            int pr = r * 4 / rows, pc = c * 4 / cols;
            if (positive && pr < 2 && pc < 2)
                v = pr == 0 && pc == 0 ? 255 : 150;
            line[c] = (unsigned char)v;
        }
        png_write_row(png, line);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(line);
    fclose(f);
}

typedef struct img_row {
    const char *file, *patient, *finding;
    int rows, cols;
} img_row;

static const img_row g_rows[] = {
    {"a1.png", "p1", "COVID-19", 128, 128},   {"a2.png", "p1", "COVID-19", 96, 160},
    {"b1.png", "p2", "Pneumonia/Viral/COVID-19", 200, 152}, {"b2.png", "p2", "No Finding", 128, 128},
    {"c1.png", "p3", "COVID-19", 128, 128},   {"c2.png", "p3", "No Finding", 96, 160},
    {"d1.png", "p4", "COVID-19", 128, 128}, /* no boxes */
};
#define NROWS (int)(sizeof g_rows / sizeof *g_rows)

static void make_dataset(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/images", dir);
    if (mkdir(path, 0755)) {
        fprintf(stderr, "FATAL: cannot make %s\n", path);
        exit(1);
    }
    char *csv = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&csv, &len);
    fprintf(m, "patientid,offset,sex,age,finding,survival,intubated,intubation_present,went_icu,in_icu,"
               "needed_supplemental_O2,extubated,temperature,pO2_saturation,leukocyte_count,neutrophil_count,"
               "lymphocyte_count,view,modality,date,location,folder,filename,doi,url,license,clinical_notes,"
               "other_notes\n");
    for (int i = 0; i < NROWS; i++) {
        const img_row *r = &g_rows[i];
        fprintf(m, "%s,0,M,50,%s,,,,,,,,,,,,,PA,X-ray,,,images,%s,,,CC BY 4.0,,\n", r->patient, r->finding, r->file);
        snprintf(path, sizeof path, "%s/images/%s", dir, r->file);
        write_png(path, r->rows, r->cols, strcmp(r->finding, "No Finding") != 0);
    }
    fclose(m);
    snprintf(path, sizeof path, "%s/metadata.csv", dir);
    test_write_file(path, csv, len);
    free(csv);
}

/* Boxes of every row but the last (the dataset's d1 has none), two boxes
 * each: where = 0: covering the top-left quadrant (two overlapping boxes, a
 * little past it), on the image's grid (scale 1) or one twice as large
 * (scale 2); where = 3: the bottom-right quadrant. The expected union
 * fraction of each row into frac. */
static char *boxes_json(int where, int scale, double *frac)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *cats = cJSON_AddArrayToObject(root, "categories");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "id", 1);
    cJSON_AddStringToObject(c, "name", "Right Lung");
    cJSON_AddItemToArray(cats, c);
    cJSON *ims = cJSON_AddArrayToObject(root, "images"), *anns = cJSON_AddArrayToObject(root, "annotations");
    int ann = 1;
    for (int i = 0; i < NROWS - 1; i++) {
        const img_row *r = &g_rows[i];
        int W = r->cols * scale, H = r->rows * scale;
        cJSON *im = cJSON_CreateObject();
        cJSON_AddNumberToObject(im, "id", 100 + i);
        cJSON_AddStringToObject(im, "file_name", r->file);
        cJSON_AddNumberToObject(im, "width", W);
        cJSON_AddNumberToObject(im, "height", H);
        cJSON_AddItemToArray(ims, im);
        /* in the image's pixels (whole pixels, so that the boxes' areas are
         * pixel counts on either grid): the quadrant as [x0, x0 + a) and
         * [x0 + b, x0 + w/2 + e), overlapping on [b, a); on the top-left
         * quadrant the second box reaches e columns and f rows past it */
        int w = r->cols, h = r->rows, x0 = where ? w / 2 : 0, y0 = where ? h / 2 : 0;
        int a = w / 2 * 5 / 8, b = w / 2 * 3 / 8, e = where ? 0 : w / 16, fr = where ? 0 : h / 16;
        double box[2][4] = {{x0, y0, a, h / 2}, {x0 + b, y0, w / 2 - b + e, h / 2 + fr}};
        for (int k = 0; k < 2; k++) {
            for (int j = 0; j < 4; j++)
                box[k][j] *= scale;
            cJSON *an = cJSON_CreateObject();
            cJSON_AddNumberToObject(an, "id", ann++);
            cJSON_AddNumberToObject(an, "image_id", 100 + i);
            cJSON_AddNumberToObject(an, "category_id", 1 + k);
            cJSON_AddItemToObject(an, "bbox", cJSON_CreateDoubleArray(box[k], 4));
            cJSON_AddItemToArray(anns, an);
        }
        /* the union's area: the sum less the overlap [b, a) x [0, h / 2), over the image's area */
        double area = (double)a * (h / 2) + (double)(w / 2 - b + e) * (h / 2 + fr) - (double)(a - b) * (h / 2);
        frac[i] = area / ((double)w * h);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* ---- checks ---- */

static void check_bootstrap(void)
{
    rf_err err;
    rf_eval_ci a, b;
    double v[6] = {0.4, 0.4, 0.4, 0.4, 0.4, 0.4};
    int g[6] = {0, 0, 1, 1, 2, 2};
    CHECK(rf_eval_mean_ci(v, g, 6, 200, 1, 0.95, &a, &err) == 0 && a.used == 200);
    CHECKF(fabs(a.lo - 0.4) < 1e-12 && fabs(a.hi - 0.4) < 1e-12, "%g %g", a.lo, a.hi);
    /* a patient is drawn whole: patient 5 has one row of 0, patient 9 three
     * rows of 1; a resample of two patients has mean 0, 3/4 or 1, and the
     * ends of the 50% interval (quantiles 0.25 and 0.75, seed 3) land on
     * those values (drawing rows would allow 1/4 and 1/2 too) */
    double w[4] = {0, 1, 1, 1};
    int h[4] = {5, 9, 9, 9};
    CHECK(rf_eval_mean_ci(w, h, 4, 500, 3, 0.5, &a, &err) == 0);
    double allowed[3] = {0, 0.75, 1};
    int ok_lo = 0, ok_hi = 0;
    for (int i = 0; i < 3; i++) {
        ok_lo |= fabs(a.lo - allowed[i]) < 1e-12;
        ok_hi |= fabs(a.hi - allowed[i]) < 1e-12;
    }
    CHECKF(ok_lo && ok_hi, "interval %g-%g from draws of whole patients", a.lo, a.hi);
    double x[8] = {0.1, 0.9, 0.3, 0.5, 0.7, 0.2, 0.8, 0.6};
    int gx[8] = {0, 0, 1, 1, 2, 3, 3, 4};
    CHECK(rf_eval_mean_ci(x, gx, 8, 300, 7, 0.95, &a, &err) == 0);
    CHECK(rf_eval_mean_ci(x, gx, 8, 300, 7, 0.95, &b, &err) == 0);
    CHECK(a.lo == b.lo && a.hi == b.hi && a.lo < 0.5125 && a.hi > 0.5125 && a.lo >= 0.1 && a.hi <= 0.9);
    CHECK(rf_eval_mean_ci(x, gx, 8, 300, 8, 0.95, &b, &err) == 0 && (a.lo != b.lo || a.hi != b.hi));
    CHECK(rf_eval_mean_ci(x, gx, 0, 300, 8, 0.95, &b, &err) == RF_EINVAL);
    double bad[2] = {0.1, NAN};
    CHECK(rf_eval_mean_ci(bad, NULL, 2, 300, 8, 0.95, &b, &err) == RF_EINVAL);
}

static void check_mask(void)
{
    /* integer boxes on their own grid cover w * h pixels; the union once */
    rf_eval_box bx[2] = {{2, 1, 5, 3}, {4, 2, 4, 4}};
    rf_eval_boxes_image im = {(char *)"x.png", 10, 8, bx, 2};
    unsigned char mask[80];
    size_t in = rf_eval_boxes_mask(&im, 8, 10, mask);
    /* 15 + 16 - overlap [4, 7) x [2, 4) = 6 */
    CHECKF(in == 25, "%zu pixels inside", in);
    CHECK(mask[1 * 10 + 2] && !mask[1 * 10 + 1] && !mask[0 * 10 + 2] && mask[5 * 10 + 7] && !mask[6 * 10 + 7]);
    /* the same boxes on a grid twice as fine: half the pixels each way */
    rf_eval_boxes_image im2 = {(char *)"x.png", 20, 16, bx, 2};
    CHECK(rf_eval_boxes_mask(&im2, 8, 10, mask) == 7);
    float map[80] = {0};
    int hit;
    map[1 * 10 + 2] = 1.0f;
    map[0] = 1.0f;
    rf_eval_boxes_mask(&im, 8, 10, mask);
    CHECK(fabs(rf_eval_mass_inside(map, mask, 8, 10, 1, 2, &hit) - 0.5) < 1e-12 && hit == 1);
    CHECK(rf_eval_mass_inside(map, mask, 8, 10, 0, 0, &hit) == 0.5 && hit == 0);
    memset(map, 0, sizeof map);
    CHECK(isnan(rf_eval_mass_inside(map, mask, 8, 10, 0, 0, &hit)));
}

static void hostile(const char *what, const char *text, size_t len, const char *expect)
{
    rf_eval_boxes b;
    rf_err err;
    int rc = rf_eval_boxes_parse("boxes.json", text, len, &b, &err);
    CHECKF(rc == RF_EFORMAT, "%s: accepted (rc %d)", what, rc);
    if (rc) {
        CHECKF(!strchr(err.msg, '\n') && !strncmp(err.msg, "boxes.json: ", 12) && strstr(err.msg, expect),
               "%s: message '%s' (wanted '%s')", what, err.msg, expect);
        CHECK(b.count == 0 && b.images == NULL);
    }
    rf_eval_boxes_free(&b);
}

#define HOSTILE(what, s, expect) hostile(what, s, sizeof s - 1, expect)
#define IMG "{\"id\":1,\"file_name\":\"a.png\",\"width\":10,\"height\":8}"
#define ANN "{\"image_id\":1,\"bbox\":[1,2,3,4]}"

static void check_parser(void)
{
    rf_eval_boxes b;
    rf_err err;
    const char ok[] = "{\"images\":[" IMG ",{\"id\":2,\"file_name\":\"caf\\u00e9 b.jpg\",\"width\":3,\"height\":3},"
                      "{\"id\":3,\"file_name\":\"none.png\",\"width\":3,\"height\":3}],"
                      "\"annotations\":[" ANN ",{\"image_id\":2,\"bbox\":[0,0,1.5,2]},"
                      "{\"image_id\":1,\"bbox\":[0,0,0,0],\"category_id\":2}]}\n";
    CHECKF(rf_eval_boxes_parse("boxes.json", ok, sizeof ok - 1, &b, &err) == 0, "%s", err.msg);
    CHECK(b.count == 2); /* none.png has no box */
    const rf_eval_boxes_image *a = rf_eval_boxes_find(&b, "a.png"), *c = rf_eval_boxes_find(&b, "caf\xc3\xa9 b.jpg");
    CHECK(a && a->nboxes == 2 && a->width == 10 && a->height == 8 && a->boxes[0].x == 1 && a->boxes[0].h == 4);
    CHECK(c && c->nboxes == 1 && c->boxes[0].w == 1.5);
    CHECK(!rf_eval_boxes_find(&b, "none.png") && !rf_eval_boxes_find(&b, "b.jpg"));
    rf_eval_boxes_free(&b);

    HOSTILE("empty", "", "not a JSON object");
    HOSTILE("an array", "[]", "not a JSON object");
    HOSTILE("truncated", "{\"images\":[", "not a JSON object");
    HOSTILE("NUL", "{\"images\":[],\0\"annotations\":[]}", "NUL");
    HOSTILE("text after", "{\"images\":[],\"annotations\":[]} {}", "text after");
    HOSTILE("no annotations", "{\"images\":[]}", "no \"images\" and \"annotations\"");
    HOSTILE("images an object", "{\"images\":{},\"annotations\":[]}", "no \"images\"");
    HOSTILE("image a number", "{\"images\":[1],\"annotations\":[]}", "images[0]");
    HOSTILE("id a string", "{\"images\":[{\"id\":\"1\",\"file_name\":\"a\",\"width\":1,\"height\":1}],\"annotations\":[]}",
            "images[0]: no integer \"id\"");
    HOSTILE("id fractional", "{\"images\":[{\"id\":1.5,\"file_name\":\"a\",\"width\":1,\"height\":1}],\"annotations\":[]}",
            "images[0]: no integer \"id\"");
    HOSTILE("no file name", "{\"images\":[{\"id\":1,\"width\":1,\"height\":1}],\"annotations\":[]}", "file_name");
    HOSTILE("a path", "{\"images\":[{\"id\":1,\"file_name\":\"../etc/x\",\"width\":1,\"height\":1}],\"annotations\":[]}",
            "file_name");
    HOSTILE("control byte", "{\"images\":[{\"id\":1,\"file_name\":\"a\\nb\",\"width\":1,\"height\":1}],\"annotations\":[]}",
            "file_name");
    HOSTILE("empty name", "{\"images\":[{\"id\":1,\"file_name\":\"\",\"width\":1,\"height\":1}],\"annotations\":[]}",
            "file_name");
    HOSTILE("width 0", "{\"images\":[{\"id\":1,\"file_name\":\"a\",\"width\":0,\"height\":1}],\"annotations\":[]}",
            "\"width\" and \"height\"");
    HOSTILE("height huge", "{\"images\":[{\"id\":1,\"file_name\":\"a\",\"width\":1,\"height\":1e300}],\"annotations\":[]}",
            "\"width\" and \"height\"");
    HOSTILE("width infinite", "{\"images\":[{\"id\":1,\"file_name\":\"a\",\"width\":1e999,\"height\":1}],\"annotations\":[]}",
            "\"width\" and \"height\"");
    HOSTILE("duplicate id", "{\"images\":[" IMG "," IMG "],\"annotations\":[]}", "two images with id 1");
    HOSTILE("duplicate name",
            "{\"images\":[" IMG ",{\"id\":2,\"file_name\":\"a.png\",\"width\":1,\"height\":1}],"
            "\"annotations\":[" ANN ",{\"image_id\":2,\"bbox\":[0,0,1,1]}]}",
            "two images named a.png");
    HOSTILE("unknown image", "{\"images\":[" IMG "],\"annotations\":[{\"image_id\":7,\"bbox\":[1,2,3,4]}]}",
            "annotations[0]: image_id 7 is not an image");
    HOSTILE("no image id", "{\"images\":[" IMG "],\"annotations\":[{\"bbox\":[1,2,3,4]}]}", "annotations[0]");
    HOSTILE("bbox short", "{\"images\":[" IMG "],\"annotations\":[" ANN ",{\"image_id\":1,\"bbox\":[1,2,3]}]}",
            "annotations[1]: \"bbox\"");
    HOSTILE("bbox strings", "{\"images\":[" IMG "],\"annotations\":[{\"image_id\":1,\"bbox\":[\"1\",2,3,4]}]}",
            "\"bbox\"");
    HOSTILE("bbox infinite", "{\"images\":[" IMG "],\"annotations\":[{\"image_id\":1,\"bbox\":[1,2,1e999,4]}]}",
            "\"bbox\"");
    HOSTILE("bbox negative", "{\"images\":[" IMG "],\"annotations\":[{\"image_id\":1,\"bbox\":[1,2,3,-4]}]}",
            "\"bbox\"");
    HOSTILE("bbox null", "{\"images\":[" IMG "],\"annotations\":[{\"image_id\":1,\"bbox\":null}]}", "\"bbox\"");
    HOSTILE("annotation a string", "{\"images\":[" IMG "],\"annotations\":[\"x\"]}", "annotations[0]");
    /* nesting far past cJSON's limit: refused, no deep recursion */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    size_t n = 0;
    n += (size_t)sprintf(deep, "{\"images\":");
    for (size_t i = 0; i < depth; i++)
        deep[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[n++] = ']';
    n += (size_t)sprintf(deep + n, ",\"annotations\":[]}");
    hostile("nested 100000 deep", deep, n, "not a JSON object");
    free(deep);
    /* a missing file, named */
    CHECK(rf_eval_boxes_load("/nonexistent/boxes.json", &b, &err) != 0 && strstr(err.msg, "/nonexistent/boxes.json"));
}

/* ---- the runner ---- */

static void run_eval(rf_fusion *f, const rf_dataset *ds, const rf_eval_boxes *boxes, rf_eval_result *r)
{
    rf_eval_opts o;
    rf_eval_opts_init(&o);
    o.subset = RF_SPLIT_NONE;
    o.bootstrap = 200;
    o.saliency = RF_SALIENCY_GRADCAM;
    o.boxes = boxes;
    rf_err err;
    int rc = rf_eval_run(f, ds, &o, r, &err);
    CHECKF(rc == 0, "%s", err.msg);
}

static void load_boxes(const char *dir, const char *name, const char *text, rf_eval_boxes *b, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", dir, name);
    test_write_file(path, text, strlen(text));
    rf_err err;
    if (rf_eval_boxes_load(path, b, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
}

static const rf_eval_saliency_target *sal_target(const rf_eval_result *r, const char *name)
{
    for (int k = 0; k < r->saliency.ntargets; k++)
        if (!strcmp(r->saliency.targets[k].name, name))
            return &r->saliency.targets[k];
    return NULL;
}

/* The mapped rows: positive (not "No Finding") with boxes (all but the last). */
static const int mapped[] = {0, 1, 2, 4};

static void check_runs(rf_backend *be, const char *model_dir, const char *data, const char *tmp)
{
    rf_fusion *f;
    rf_dataset *ds;
    rf_err err;
    if (rf_fusion_load(&f, model_dir, be, &err) || rf_dataset_open(&ds, data, RF_DATASET_AUTO, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        exit(1);
    }
    for (int where = 0; where <= 3; where += 3)
        for (int scale = 1; scale <= (where ? 1 : 2); scale++) {
            double frac[NROWS];
            char *text = boxes_json(where, scale, frac), path[4200];
            rf_eval_boxes boxes;
            load_boxes(tmp, "boxes.json", text, &boxes, path, sizeof path);
            free(text);
            rf_eval_result r;
            run_eval(f, ds, &boxes, &r);
            const rf_eval_saliency *s = &r.saliency;
            CHECKF(s->rows_with_boxes == 6 && s->rows_mapped == 4 && s->rows_rescaled == (scale == 2 ? 4u : 0u),
                   "rows with boxes %zu, mapped %zu, rescaled %zu", s->rows_with_boxes, s->rows_mapped,
                   s->rows_rescaled);
            CHECKF(s->ntargets == 2, "%d saliency targets", s->ntargets);
            double uni = 0;
            for (int i = 0; i < 4; i++)
                uni += frac[mapped[i]] / 4;
            for (int k = 0; k < 3; k++) {
                const rf_eval_saliency_target *t = k < 2 ? sal_target(&r, k ? "pneumonia" : "covid19") : &s->overall;
                CHECK(t != NULL);
                if (!t)
                    continue;
                printf("boxes on quadrant %d (grid x%d), %s: n %ld, mass %.4f [%.4f, %.4f], uniform %.4f, pointing "
                       "%.3f, uniform pointing %.4f, excess %.4f [%.4f, %.4f]\n",
                       where, scale, t->name, t->n, t->mass_inside, t->mass_ci.lo, t->mass_ci.hi, t->uniform_mass,
                       t->pointing, t->uniform_pointing, t->excess, t->excess_ci.lo, t->excess_ci.hi);
                CHECK(t->n == (k < 2 ? 4 : 8) && t->empty == 0 && t->patients == 3);
                CHECKF(fabs(t->uniform_mass - uni) < 1e-12 && fabs(t->uniform_pointing - uni) < 1e-12,
                       "uniform %.15g, expected %.15g", t->uniform_mass, uni);
                CHECK(t->mass_ci.lo <= t->mass_inside && t->mass_inside <= t->mass_ci.hi);
                CHECK(t->pointing_ci.lo <= t->pointing && t->pointing <= t->pointing_ci.hi);
                CHECK(fabs(t->excess - (t->mass_inside - t->uniform_mass)) < 1e-12);
                if (where == 0) {
                    CHECKF(t->mass_inside >= 0.9, "%s: mass inside %.4f", t->name, t->mass_inside);
                    CHECKF(t->pointing == 1.0, "%s: pointing %.3f", t->name, t->pointing);
                    CHECK(t->excess_ci.lo > 0);
                } else {
                    CHECKF(t->mass_inside <= 0.05, "%s: mass inside %.4f", t->name, t->mass_inside);
                    CHECKF(t->pointing == 0.0, "%s: pointing %.3f", t->name, t->pointing);
                    CHECK(t->excess_ci.hi < 0);
                }
            }
            /* rows without a map: negatives, and the row without boxes */
            for (size_t u = 0; u < r.rows_used; u++) {
                const char *id = rf_dataset_get(ds, r.row[u])->id;
                int want = 0;
                for (int i = 0; i < 4; i++)
                    want |= !strcmp(id, g_rows[mapped[i]].file);
                CHECKF(want == !isnan(s->uniform[u]), "%s: map made %d", id, !isnan(s->uniform[u]));
            }
            /* a row's figures come from the map rf_read_saliency gives its study */
            if (where == 0 && scale == 1) {
                rf_read_image im;
                float *px = NULL;
                snprintf(path, sizeof path, "%s/images/%s", data, g_rows[1].file);
                CHECK(rf_eval_image_load(path, &im, &err) == 0);
                CHECK(rf_read_preprocess(f, &im, 1, 1, &px, &err) == 0);
                const rf_fusion_info *info = rf_fusion_get_info(f);
                rf_fusion_study st = {.height = info->preprocess.height, .width = info->preprocess.width,
                                      .images = px, .nimages = 1};
                rf_saliency_result sr;
                CHECK(rf_read_saliency(f, RF_SALIENCY_GRADCAM, &st, &im, 1, &sr, &err) == 0);
                const rf_eval_boxes_image *bi = rf_eval_boxes_find(&boxes, g_rows[1].file);
                unsigned char *mask = malloc((size_t)im.rows * im.cols);
                rf_eval_boxes_mask(bi, im.rows, im.cols, mask);
                size_t u = 0;
                while (u < r.rows_used && strcmp(rf_dataset_get(ds, r.row[u])->id, g_rows[1].file))
                    u++;
                for (int j = 0; j < sr.nfindings && u < r.rows_used; j++) {
                    const rf_result_map *m = &sr.findings[j].maps[0];
                    int hit;
                    double mass = rf_eval_mass_inside(m->values, mask, im.rows, im.cols, m->peak_row, m->peak_col, &hit);
                    size_t at = u * (size_t)r.nlabels + (size_t)sr.findings[j].label;
                    CHECKF(mass == s->mass[at] && hit == s->hit[at], "label %d: %.17g vs %.17g", sr.findings[j].label,
                           mass, s->mass[at]);
                }
                rf_saliency_result_free(&sr);
                free(mask);
                free(px);
                free(im.pixels);
            }
            rf_eval_result_free(&r);
            rf_eval_boxes_free(&boxes);
        }
    rf_dataset_free(ds);
    rf_fusion_free(f);
}

/* ---- the command ---- */

static void check_cli(const char *model_dir, const char *data, const char *tmp)
{
    double frac[NROWS];
    char *text = boxes_json(0, 1, frac), boxes[4200], bad[4200];
    snprintf(boxes, sizeof boxes, "%s/cli-boxes.json", tmp);
    test_write_file(boxes, text, strlen(text));
    free(text);
    size_t cap = 1 << 20;
    char *out = malloc(cap), errb[4096];
    char *argv[] = {(char *)test_radfuse_bin(), "eval", (char *)data, "--model", (char *)model_dir, "--subset", "all",
                    "--device", "cpu", "--bootstrap", "100", "--saliency", "gradcam", "--boxes", boxes, "--json", NULL};
    int rc = test_run(argv, out, cap, errb, sizeof errb);
    CHECKF(rc == 0, "radfuse eval --saliency: exit %d: %s", rc, errb);
    cJSON *root = cJSON_Parse(out);
    CHECKF(root != NULL, "not JSON: %.200s", out);
    const cJSON *s = cJSON_GetObjectItem(root, "saliency");
    CHECK(cJSON_IsObject(s) && cJSON_IsObject(cJSON_GetObjectItem(root, "targets")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(s, "method")) &&
          !strcmp(cJSON_GetObjectItem(s, "method")->valuestring, "gradcam"));
    const cJSON *ts = cJSON_GetObjectItem(s, "targets");
    CHECK(cJSON_GetArraySize(ts) == 2 && cJSON_IsObject(cJSON_GetObjectItem(s, "overall")));
    const cJSON *t;
    cJSON_ArrayForEach(t, ts)
    {
        const char *keys[] = {"n", "mass_inside", "uniform_mass", "pointing_hit_rate", "uniform_pointing"};
        CHECK(cJSON_GetObjectItem(t, "n") && cJSON_GetObjectItem(t, "n")->valuedouble == 4);
        for (int k = 1; k < 5; k++) {
            const cJSON *v = cJSON_GetObjectItem(t, keys[k]);
            CHECKF(cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1, "%s.%s", t->string, keys[k]);
        }
        const cJSON *ci = cJSON_GetObjectItem(t, "mass_inside_ci");
        CHECK(cJSON_IsArray(ci) && cJSON_GetArraySize(ci) == 2 && cJSON_GetArrayItem(ci, 0)->valuedouble >= 0.9 - 0.1);
        CHECK(cJSON_GetObjectItem(t, "pointing_hit_rate")->valuedouble == 1);
        double uni = 0;
        for (int i = 0; i < 4; i++)
            uni += frac[mapped[i]] / 4;
        CHECK(fabs(cJSON_GetObjectItem(t, "uniform_mass")->valuedouble - uni) < 1e-12);
    }
    cJSON_Delete(root);
    /* the table */
    argv[15] = NULL;
    rc = test_run(argv, out, cap, errb, sizeof errb);
    CHECK(rc == 0 && strstr(out, "saliency (gradcam) against the lung boxes") && strstr(out, "overall"));
    /* a hostile box file: exit 2, one line naming it */
    snprintf(bad, sizeof bad, "%s/bad-boxes.json", tmp);
    test_write_file(bad, "{\"images\":[{\"id\":1}]", 20);
    argv[14] = bad;
    rc = test_run(argv, out, cap, errb, sizeof errb);
    CHECKF(rc == 2 && test_count_lines(errb) == 1 && strstr(errb, bad), "exit %d: %s", rc, errb);
    /* --saliency without --boxes, and a method that is not one: usage */
    argv[13] = NULL;
    rc = test_run(argv, out, cap, errb, sizeof errb);
    CHECKF(rc == 1 && strstr(errb, "--boxes"), "exit %d: %s", rc, errb);
    argv[12] = "heatmap";
    argv[13] = "--boxes";
    argv[14] = boxes;
    rc = test_run(argv, out, cap, errb, sizeof errb);
    CHECKF(rc == 1, "exit %d: %s", rc, errb);
    free(out);
}

int main(void)
{
    check_bootstrap();
    check_mask();
    check_parser();

    rf_backend *be;
    rf_err err;
    if (rf_backend_create(&be, "cpu", 2, &err)) {
        fprintf(stderr, "FATAL: %s\n", err.msg);
        return 1;
    }
    char tmp[256], model_dir[300], data[300];
    test_tmpdir(tmp, sizeof tmp);
    snprintf(model_dir, sizeof model_dir, "%s/model", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    test_make_quadrant_model(model_dir);
    if (mkdir(data, 0755)) {
        fprintf(stderr, "FATAL: cannot make %s\n", data);
        return 1;
    }
    make_dataset(data);
    check_runs(be, model_dir, data, tmp);
    check_cli(model_dir, data, tmp);
    rf_backend_destroy(be);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmp);
    return test_finish("test_eval_saliency");
}
