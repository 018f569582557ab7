/*
 * Preprocessing (include/radfuse/preprocess.h) against an independent
 * reference: tests/data/preprocess_expected.{txt,bin}, made by
 * tests/data/make_preprocess_expected.py with Pillow's Image.resize on mode
 * 'F' images and numpy crop/pad/normalize written from transformers' and
 * timm's eval transforms, for the configs in tests/data/preprocess/.
 * Then hostile configs, geometry, channel mapping, threads and odd sizes.
 *
 * Tolerance: resampled values (inputs in [0, 1]) within RESAMPLE_TOL = 1e-5
 * of Pillow; normalized outputs within 1e-5 * input_scale / std (the
 * normalization multiplies the resampling error by that). Pillow keeps its
 * weights and sums in double and stores a float between the passes; we round
 * the weights to float and sum in float, vertical pass first. The
 * difference is rounding only: each output is two sums of at most
 * 2 * support * factor + 1 terms with partial sums below ~1.3, so a random-
 * signed rounding error of about sqrt(terms) * 2^-24 * 1.3 per pass, ~1e-6
 * for the 130x case (factor130). Measured: 1.8e-7 at most (resampling) and
 * 1.9e-7 per unit of input_scale / std (whole pipeline). A wrong weight, tap
 * or offset shows up as 1e-3 or more. RADFUSE_TEST_VERBOSE=1 prints each
 * case's error.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/preprocess.h"
#include "tests/testutil.h"

#define RESAMPLE_TOL 1e-5

/* The input generator of make_preprocess_expected.py, bit for bit. */
static float *make_input(int h, int w, int c, uint32_t seed)
{
    float *x = test_falloc((int64_t)h * w * c);
    for (int y = 0; y < h; y++)
        for (int xx = 0; xx < w; xx++)
            for (int ch = 0; ch < c; ch++) {
                uint32_t i = (uint32_t)(((uint64_t)y * (uint64_t)w + (uint64_t)xx) * (uint64_t)c + (uint64_t)ch);
                uint32_t v = i * 0x9E3779B1u + seed * 0x85EBCA77u;
                v ^= v >> 15;
                v *= 0x2C1B3C6Du;
                v ^= v >> 12;
                v *= 0x297A2D39u;
                v ^= v >> 15;
                uint32_t noise = v >> 10;
                uint32_t checker = (((uint32_t)(xx >> 3) + (uint32_t)(y >> 3)) & 1u) << 23;
                uint32_t ramp = (((uint32_t)xx + 2u * (uint32_t)y + (uint32_t)ch) * 4099u) & ((1u << 22) - 1);
                x[((size_t)y * w + xx) * c + ch] = (float)(noise + checker + ramp) / 16777216.0f;
            }
    return x;
}

static rf_preprocess_filter filter_by_name(const char *name)
{
    for (int f = 0; f < RF_PREPROCESS_FILTER_COUNT; f++)
        if (strcmp(rf_preprocess_filter_name((rf_preprocess_filter)f), name) == 0)
            return (rf_preprocess_filter)f;
    return RF_PREPROCESS_FILTER_COUNT;
}

static const char *source_dir(void)
{
    const char *src = getenv("RADFUSE_SOURCE");
    return src && *src ? src : ".";
}

/* ---- expected outputs from Pillow / numpy ---- */

static void test_expected(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/preprocess_expected.bin", source_dir());
    size_t nbin = 0;
    float *expect = (float *)test_read_file(path, &nbin);
    CHECKF(expect != NULL, "cannot read %s", path);
    snprintf(path, sizeof path, "%s/tests/data/preprocess_expected.txt", source_dir());
    size_t ntxt = 0;
    char *txt = test_read_file(path, &ntxt);
    CHECKF(txt != NULL, "cannot read %s", path);
    if (!expect || !txt) {
        free(expect);
        free(txt);
        return;
    }
    int cases = 0;
    double worst_resample = 0, worst_pipeline = 0;
    char *save = NULL;
    for (char *line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        char kind[16], name[128], fname[32];
        int ih, iw, c, seed, oc, oh, ow;
        long off, count;
        float *in = NULL, *out = NULL;
        double err = 0, tol = RESAMPLE_TOL;
        int rc = -1;
        rf_err e = {{0}};
        if (sscanf(line, "%15s", kind) != 1)
            continue;
        if (strcmp(kind, "resample") == 0) {
            int n = sscanf(line, "%*s %127s %d %d %d %d %d %d %31s %ld %ld", name, &ih, &iw, &c, &seed, &oh, &ow,
                           fname, &off, &count);
            CHECKF(n == 10, "bad manifest line: %s", line);
            if (n != 10)
                continue;
            rf_preprocess_filter f = filter_by_name(fname);
            CHECKF(f != RF_PREPROCESS_FILTER_COUNT, "%s: unknown filter %s", name, fname);
            oc = c;
            in = make_input(ih, iw, c, (uint32_t)seed);
            out = test_falloc((int64_t)c * oh * ow);
            rc = rf_preprocess_resample(in, ih, iw, c, out, oh, ow, f, &e);
        } else {
            int n = sscanf(line, "%*s %127s %d %d %d %d %d %d %d %ld %ld", name, &ih, &iw, &c, &seed, &oc, &oh, &ow,
                           &off, &count);
            CHECKF(n == 10, "bad manifest line: %s", line);
            if (n != 10)
                continue;
            snprintf(path, sizeof path, "%s/tests/data/preprocess/%s", source_dir(), name);
            rf_preprocess_config cfg;
            rc = rf_preprocess_config_load(path, &cfg, &e);
            CHECKF(rc == 0, "%s", e.msg);
            if (rc)
                continue;
            CHECKF(cfg.channels == oc && cfg.height == oh && cfg.width == ow, "%s: config gives %dx%dx%d, expected %dx%dx%d",
                   name, cfg.channels, cfg.height, cfg.width, oc, oh, ow);
            for (int ch = 0; ch < cfg.channels; ch++)
                tol = fmax(tol, RESAMPLE_TOL * cfg.input_scale / fabsf(cfg.std[ch]));
            in = make_input(ih, iw, c, (uint32_t)seed);
            out = test_falloc((int64_t)oc * oh * ow);
            rf_preprocessor *p = NULL;
            rc = rf_preprocess_create(&p, &cfg, 2, &e);
            if (!rc)
                rc = rf_preprocess_run(p, in, ih, iw, c, out, &e);
            rf_preprocess_destroy(p);
        }
        cases++;
        CHECKF(rc == 0, "%s: %s", name, e.msg);
        CHECKF((long)oc * oh * ow == count && (size_t)(off + count) * sizeof(float) <= nbin, "%s: bad extent", name);
        if (rc == 0 && (long)oc * oh * ow == count && (size_t)(off + count) * sizeof(float) <= nbin) {
            err = test_max_abs_diff(out, expect + off, count);
            CHECKF(err <= tol, "%s: max abs error %.3g > %.3g", name, err, tol);
            if (kind[0] == 'r')
                worst_resample = fmax(worst_resample, err);
            else
                worst_pipeline = fmax(worst_pipeline, err / (tol / RESAMPLE_TOL));
            if (test_verbose())
                printf("  %-9s %-24s max abs error %.3g (tolerance %.3g)\n", kind, name, err, tol);
        }
        free(in);
        free(out);
    }
    CHECKF(cases >= 30, "only %d cases in the manifest", cases);
    printf("expected outputs: %d cases; max abs error %.3g resampling, %.3g normalized (per unit of input_scale/std)\n",
           cases, worst_resample, worst_pipeline);
    free(expect);
    free(txt);
}

/* ---- configs from files: hostile and edge ones ---- */

static char tmpdir[4096];

/* Loads text as a config file; returns the code and leaves the message in e. */
static int load_text(const char *name, const char *text, rf_preprocess_config *cfg, rf_err *e)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    test_write_file(path, text, strlen(text));
    return rf_preprocess_config_load(path, cfg, e);
}

/* A config that must fail with a one-line message naming the file and needle. */
static void expect_bad(const char *name, const char *text, const char *needle)
{
    rf_preprocess_config cfg;
    memset(&cfg, 0x5a, sizeof cfg);
    rf_preprocess_config before = cfg;
    rf_err e = {{0}};
    int rc = load_text(name, text, &cfg, &e);
    CHECKF(rc != 0, "%s: accepted", name);
    CHECKF(strstr(e.msg, name) != NULL, "%s: message does not name the file: %s", name, e.msg);
    CHECKF(strstr(e.msg, needle) != NULL, "%s: message does not mention '%s': %s", name, needle, e.msg);
    CHECKF(strchr(e.msg, '\n') == NULL, "%s: message is not one line", name);
    CHECKF(memcmp(&cfg, &before, sizeof cfg) == 0, "%s: config changed on failure", name);
}

static void test_hostile_configs(void)
{
    test_tmpdir(tmpdir, sizeof tmpdir);
    rf_err e = {{0}};
    rf_preprocess_config cfg;
    CHECK(rf_preprocess_config_load("/nonexistent/preprocessor_config.json", &cfg, &e) == RF_EIO);
    CHECK(strstr(e.msg, "/nonexistent/preprocessor_config.json") != NULL);

    expect_bad("empty.json", "", "not a JSON object");
    expect_bad("array.json", "[1, 2]", "not a JSON object");
    expect_bad("truncated.json", "{\"size\": {\"height\": 22", "not a JSON object");
    expect_bad("unknown.json", "{\"foo\": 1}", "neither");
    /* Hugging Face */
    expect_bad("no_size.json", "{\"image_mean\": 0.5, \"image_std\": 0.5}", "'size'");
    expect_bad("no_mean.json", "{\"size\": {\"height\": 8, \"width\": 8}, \"image_std\": 0.5}", "'image_mean'");
    expect_bad("no_std.json", "{\"size\": {\"height\": 8, \"width\": 8}, \"image_mean\": 0.5}", "'image_std'");
    expect_bad("zero_std.json", "{\"size\": 8, \"image_mean\": 0.5, \"image_std\": [0.5, 0, 0.5]}", "'image_std'");
    expect_bad("neg_size.json", "{\"size\": {\"height\": -8, \"width\": 8}, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'size.height'");
    expect_bad("zero_size.json", "{\"size\": 0, \"image_mean\": 0.5, \"image_std\": 0.5}", "'size'");
    expect_bad("huge_size.json", "{\"size\": {\"height\": 100000000, \"width\": 8}, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'size.height'");
    expect_bad("huge_crop.json",
               "{\"size\": {\"shortest_edge\": 8}, \"crop_size\": {\"height\": 9000, \"width\": 9000}, "
               "\"image_mean\": 0.5, \"image_std\": 0.5}",
               "'crop_size.height'");
    expect_bad("frac_size.json", "{\"size\": 22.5, \"image_mean\": 0.5, \"image_std\": 0.5}", "'size'");
    expect_bad("str_size.json", "{\"size\": \"224\", \"image_mean\": 0.5, \"image_std\": 0.5}", "'size'");
    expect_bad("half_size.json", "{\"size\": {\"height\": 8}, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'size.width'");
    expect_bad("nan_mean.json", "{\"size\": 8, \"image_mean\": [0.5, \"x\", 0.5], \"image_std\": 0.5}", "'image_mean'");
    expect_bad("two_means.json", "{\"size\": 8, \"image_mean\": [0.5, 0.5], \"image_std\": 0.5}", "'image_mean'");
    expect_bad("big_mean.json", "{\"size\": 8, \"image_mean\": 1e300, \"image_std\": 0.5}", "'image_mean'");
    expect_bad("tiny_std.json", "{\"size\": 8, \"image_mean\": 0.5, \"image_std\": 1e-300}", "'image_std'");
    expect_bad("bad_bool.json", "{\"size\": 8, \"do_resize\": 1, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'do_resize'");
    expect_bad("bad_resample.json", "{\"size\": 8, \"resample\": 9, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'resample'");
    expect_bad("bad_factor.json", "{\"size\": 8, \"rescale_factor\": -1, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'rescale_factor'");
    expect_bad("crop_missing.json", "{\"size\": 8, \"do_center_crop\": true, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'crop_size'");
    expect_bad("shortest_nocrop.json", "{\"size\": {\"shortest_edge\": 8}, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "shortest_edge");
    expect_bad("longest_small.json",
               "{\"size\": {\"shortest_edge\": 8, \"longest_edge\": 8}, \"crop_size\": 8, \"image_mean\": 0.5, "
               "\"image_std\": 0.5}",
               "'size.longest_edge'");
    expect_bad("longest_only.json", "{\"size\": {\"longest_edge\": 8}, \"crop_size\": 8, \"image_mean\": 0.5, \"image_std\": 0.5}",
               "'size'");
    expect_bad("no_resize_no_crop.json", "{\"do_resize\": false, \"image_mean\": 0.5, \"image_std\": 0.5}", "do_resize");
    /* timm */
    expect_bad("timm_no_input.json", "{\"pretrained_cfg\": {\"mean\": [0.5]}}", "'pretrained_cfg.input_size'");
    expect_bad("timm_not_object.json", "{\"pretrained_cfg\": [1]}", "'pretrained_cfg'");
    expect_bad("timm_2d.json", "{\"input_size\": [224, 224]}", "'input_size'");
    expect_bad("timm_chans.json", "{\"input_size\": [4, 224, 224]}", "'input_size[0]'");
    expect_bad("timm_neg.json", "{\"input_size\": [3, -224, 224]}", "'input_size[1]'");
    expect_bad("timm_huge.json", "{\"input_size\": [3, 224, 1e12]}", "'input_size[2]'");
    expect_bad("timm_crop_pct.json", "{\"input_size\": [3, 224, 224], \"crop_pct\": 0}", "'crop_pct'");
    expect_bad("timm_crop_big.json", "{\"input_size\": [3, 8000, 224], \"crop_pct\": 0.5}", "'crop_pct'");
    expect_bad("timm_mode.json", "{\"input_size\": [3, 224, 224], \"crop_mode\": \"random\"}", "'crop_mode'");
    expect_bad("timm_interp.json", "{\"input_size\": [3, 224, 224], \"interpolation\": \"random\"}", "'interpolation'");
    expect_bad("timm_zero_std.json", "{\"input_size\": [3, 224, 224], \"std\": [0.2, 0.2, 0]}", "'std'");
    expect_bad("timm_gray_default.json", "{\"input_size\": [1, 224, 224]}", "'mean'");
    expect_bad("timm_gray_rgb_mean.json", "{\"input_size\": [1, 224, 224], \"mean\": [0.1, 0.2, 0.3], \"std\": [0.5]}",
               "'mean'");

    /* a file over the size cap is refused before parsing */
    size_t big = (1u << 20) + 16;
    char *text = test_xmalloc(big + 1);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    text[big] = 0;
    expect_bad("big.json", text, "larger than");
    free(text);

    /* defaults and conversions of accepted files */
    int rc = load_text("vit.json", "{\"size\": 224, \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": 0.5}", &cfg, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(cfg.height == 224 && cfg.width == 224 && cfg.aspect == RF_PREPROCESS_STRETCH);
    CHECK(cfg.filter == RF_PREPROCESS_BICUBIC && cfg.channels == 3 && cfg.center == RF_PREPROCESS_CENTER_FLOOR);
    CHECK(fabsf(cfg.input_scale - 1.0f) < 1e-6f && cfg.std[2] == 0.5f);
    rc = load_text("raw.json",
                   "{\"size\": 8, \"do_rescale\": false, \"do_normalize\": false, \"image_mean\": \"ignored\"}",
                   &cfg, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(cfg.input_scale == 255.0f && cfg.mean[0] == 0.0f && cfg.std[0] == 1.0f);
    rc = load_text("timm_default.json", "{\"input_size\": [3, 224, 224]}", &cfg, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(cfg.resize_height == 256 && cfg.resize_width == 256 && cfg.aspect == RF_PREPROCESS_CROP);
    CHECK(cfg.filter == RF_PREPROCESS_BICUBIC && cfg.center == RF_PREPROCESS_CENTER_ROUND);
    CHECK(cfg.mean[0] == 0.485f && cfg.std[2] == 0.225f && cfg.input_scale == 1.0f);
    rc = load_text("timm_gray_equal.json", "{\"input_size\": [1, 64, 64], \"mean\": [0.5, 0.5, 0.5], \"std\": 0.25}",
                   &cfg, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(cfg.channels == 1 && cfg.mean[0] == 0.5f && cfg.std[0] == 0.25f);
}

/* ---- configs as structs ---- */

static void expect_check_fails(const rf_preprocess_config *cfg, const char *needle)
{
    rf_err e = {{0}};
    int rc = rf_preprocess_config_check(cfg, &e);
    CHECKF(rc == RF_EINVAL, "accepted a config that should fail with '%s'", needle);
    CHECKF(strstr(e.msg, needle) != NULL, "message does not mention '%s': %s", needle, e.msg);
    /* and every entry point refuses it before allocating */
    rf_preprocessor *p = (rf_preprocessor *)&e;
    CHECK(rf_preprocess_create(&p, cfg, 1, &e) == RF_EINVAL && p == NULL);
    float in[4] = {0}, out[4];
    CHECK(rf_preprocess_image(cfg, in, 2, 2, 1, out, &e) == RF_EINVAL);
}

static void test_struct_checks(void)
{
    rf_preprocess_config cfg;
    rf_preprocess_config_init(&cfg, 224, 224, 3);
    rf_err e;
    CHECK(rf_preprocess_config_check(&cfg, &e) == 0);
    CHECK(rf_preprocess_config_check(NULL, &e) == RF_EINVAL);
    rf_preprocess_config b;
    b = cfg, b.height = -1, expect_check_fails(&b, "output size");
    b = cfg, b.width = 0, expect_check_fails(&b, "output size");
    b = cfg, b.height = 1 << 30, expect_check_fails(&b, "output size");
    b = cfg, b.channels = 2, expect_check_fails(&b, "channels");
    b = cfg, b.aspect = (rf_preprocess_aspect)7, expect_check_fails(&b, "aspect");
    b = cfg, b.filter = (rf_preprocess_filter)-1, expect_check_fails(&b, "filter");
    b = cfg, b.center = (rf_preprocess_center)3, expect_check_fails(&b, "centering");
    b = cfg, b.resize_height = -5, expect_check_fails(&b, "resize size");
    b = cfg, b.resize_width = 100000, expect_check_fails(&b, "resize size");
    b = cfg, b.resize_max = 100, expect_check_fails(&b, "resize_max");
    b = cfg, b.std[1] = 0.0f, expect_check_fails(&b, "std[1]");
    b = cfg, b.std[2] = NAN, expect_check_fails(&b, "std[2]");
    b = cfg, b.mean[0] = INFINITY, expect_check_fails(&b, "mean[0]");
    b = cfg, b.std[0] = 1e-39f, b.mean[0] = 1e30f, expect_check_fails(&b, "mean[0]");
    b = cfg, b.input_scale = 0.0f, expect_check_fails(&b, "input_scale");
    b = cfg, b.pad_value[2] = NAN, expect_check_fails(&b, "pad_value[2]");
    /* a 1-channel config ignores the unused channels' values */
    b = cfg, b.channels = 1, b.std[1] = 0.0f;
    CHECK(rf_preprocess_config_check(&b, &e) == 0);

    /* bad run arguments: one line, no allocation */
    rf_preprocessor *p;
    CHECK(rf_preprocess_create(&p, &cfg, 1, &e) == 0);
    float in[16] = {0};
    float *out = test_falloc(3 * 224 * 224);
    CHECK(rf_preprocess_run(p, in, 2, 2, 2, out, &e) == RF_EINVAL && strstr(e.msg, "channels"));
    CHECK(rf_preprocess_run(p, in, 0, 2, 1, out, &e) == RF_EINVAL && strstr(e.msg, "input size"));
    CHECK(rf_preprocess_run(p, in, 2, -3, 1, out, &e) == RF_EINVAL && strstr(e.msg, "input size"));
    CHECK(rf_preprocess_run(p, in, 70000, 2, 1, out, &e) == RF_EINVAL && strstr(e.msg, "input size"));
    /* 65535^2 is within the side limit but over the sample limit: refused
     * before anything reads the (small) buffer */
    CHECK(rf_preprocess_run(p, in, 65535, 65535, 1, out, &e) == RF_EINVAL && strstr(e.msg, "2^31"));
    CHECK(rf_preprocess_run(p, NULL, 2, 2, 1, out, &e) == RF_EINVAL);
    CHECK(rf_preprocess_run(p, in, 2, 2, 1, NULL, &e) == RF_EINVAL);
    rf_preprocess_destroy(p);
    CHECK(rf_preprocess_create(&p, &cfg, -1, &e) == RF_EINVAL);
    rf_preprocess_destroy(NULL);
    CHECK(rf_preprocess_resample(in, 4, 4, 2, out, 2, 2, RF_PREPROCESS_LANCZOS3, &e) == RF_EINVAL);
    CHECK(rf_preprocess_resample(in, 4, 4, 1, out, 0, 2, RF_PREPROCESS_LANCZOS3, &e) == RF_EINVAL);
    CHECK(strcmp(rf_preprocess_filter_name(RF_PREPROCESS_FILTER_COUNT), "?") == 0);
    free(out);
}

/* ---- geometry, worked by hand ---- */

static void geom_case(const rf_preprocess_config *cfg, int in_h, int in_w, int rh, int rw, int top, int left)
{
    rf_preprocess_geom g;
    rf_err e;
    int rc = rf_preprocess_geometry(cfg, in_h, in_w, &g, &e);
    CHECKF(rc == 0 && g.resized_h == rh && g.resized_w == rw && g.top == top && g.left == left,
           "aspect %d center %d, %dx%d -> resized %dx%d at (%d, %d), expected %dx%d at (%d, %d)", (int)cfg->aspect,
           (int)cfg->center, in_h, in_w, g.resized_h, g.resized_w, g.top, g.left, rh, rw, top, left);
}

static void test_geometry(void)
{
    rf_preprocess_config c;
    rf_preprocess_config_init(&c, 224, 224, 3);
    /* CROP: a 2500 x 3000 radiograph, shortest edge 224: width int(224 * 3000 / 2500) = 268, crop 22 each side */
    geom_case(&c, 2500, 3000, 224, 268, 0, -22);
    geom_case(&c, 3000, 2500, 268, 224, -22, 0);
    /* odd remainder: 225 -> 224 crops floor(1/2) = 0 (FLOOR), round(0.5) = 0 (ROUND, half to even) */
    geom_case(&c, 224, 225, 224, 225, 0, 0);
    c.resize_height = c.resize_width = 227; /* remainder 3: floor 1; round(1.5) = 2 */
    geom_case(&c, 500, 500, 227, 227, -1, -1);
    c.center = RF_PREPROCESS_CENTER_ROUND;
    geom_case(&c, 500, 500, 227, 227, -2, -2);
    c.resize_height = c.resize_width = 229; /* remainder 5: round(2.5) = 2 */
    geom_case(&c, 500, 500, 229, 229, -2, -2);
    /* PAD (letterbox): 2500 x 3000 into 224: width 224, height round(2500 / (3000/224)) = 187, 37 rows of padding */
    rf_preprocess_config_init(&c, 224, 224, 1);
    c.aspect = RF_PREPROCESS_PAD;
    geom_case(&c, 2500, 3000, 187, 224, 19, 0); /* FLOOR: offset -floor(-37/2) = 19 */
    c.center = RF_PREPROCESS_CENTER_ROUND;
    geom_case(&c, 2500, 3000, 187, 224, 18, 0); /* ROUND: (224 - 187) // 2 = 18 */
    geom_case(&c, 10, 10, 224, 224, 0, 0);      /* upsampled to fill */
    /* STRETCH and NONE */
    c.aspect = RF_PREPROCESS_STRETCH;
    geom_case(&c, 2500, 3000, 224, 224, 0, 0);
    c.aspect = RF_PREPROCESS_NONE;
    geom_case(&c, 100, 300, 100, 300, 62, -38);
    /* resize_max (transformers' longest_edge): 100 x 1000 with shortest 224 would be 2240 long; capped at 500,
     * short int(500 * 224 / 2240) = 50 */
    rf_preprocess_config_init(&c, 224, 224, 3);
    c.resize_max = 500;
    geom_case(&c, 100, 1000, 50, 500, 87, -138);
    /* non-square CROP (timm ResizeKeepRatio): 300 x 200 towards 26 x 22: ratio min(300/26, 200/22) = 9.09, so
     * 33 x 22 */
    rf_preprocess_config_init(&c, 24, 20, 1);
    c.resize_height = 26;
    c.resize_width = 22;
    c.center = RF_PREPROCESS_CENTER_ROUND;
    geom_case(&c, 300, 200, 33, 22, -4, -1); /* round(4.5) = 4, round(1.0) = 1 */
    /* a 1 x N line and a single pixel */
    rf_preprocess_config_init(&c, 224, 224, 3);
    geom_case(&c, 1, 5000, 224, 1120000, 0, -(1120000 - 224) / 2);
    geom_case(&c, 1, 1, 224, 224, 0, 0);
}

/* ---- behaviour ---- */

static void test_channels_and_pad(void)
{
    rf_err e;
    const int H = 37, W = 53;
    float *gray = make_input(H, W, 1, 77);
    float *rgb = test_falloc(H * W * 3);
    for (int i = 0; i < H * W; i++)
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = gray[i];

    /* gray replicated to RGB: each plane is the 1-channel result with that channel's mean and std */
    rf_preprocess_config c3, c1;
    rf_preprocess_config_init(&c3, 16, 24, 3);
    c3.aspect = RF_PREPROCESS_PAD;
    c3.pad_value[0] = 0.25f, c3.pad_value[1] = 0.5f, c3.pad_value[2] = 1.0f;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(c3.mean, mean, sizeof mean);
    memcpy(c3.std, std, sizeof std);
    float *o3 = test_falloc(3 * 16 * 24), *o3rgb = test_falloc(3 * 16 * 24), *o1 = test_falloc(16 * 24);
    CHECK(rf_preprocess_image(&c3, gray, H, W, 1, o3, &e) == 0);
    CHECK(rf_preprocess_image(&c3, rgb, H, W, 3, o3rgb, &e) == 0);
    /* not bit for bit: the RGB row puts pixels in other SIMD lanes or the
     * scalar remainder, where the compiler may fuse multiply-adds differently */
    double drgb = test_max_abs_diff(o3, o3rgb, 3 * 16 * 24);
    CHECKF(drgb <= 1e-6, "gray and equal-channel RGB differ by %.3g", drgb);
    rf_preprocess_geom g;
    CHECK(rf_preprocess_geometry(&c3, H, W, &g, &e) == 0);
    /* ratio max(37/16, 53/24) = 2.3125: 16 x round(22.92) = 23, one column of padding (FLOOR: on the left) */
    CHECK(g.resized_h == 16 && g.resized_w == 23 && g.top == 0 && g.left == 1);
    for (int ch = 0; ch < 3; ch++) {
        c1 = c3;
        c1.channels = 1;
        c1.mean[0] = mean[ch], c1.std[0] = std[ch], c1.pad_value[0] = c3.pad_value[ch];
        CHECK(rf_preprocess_image(&c1, gray, H, W, 1, o1, &e) == 0);
        CHECKF(test_max_abs_diff(o1, o3 + ch * 16 * 24, 16 * 24) == 0, "channel %d differs from the gray run", ch);
        /* pad rows hold exactly the normalized pad value */
        float padv = c3.pad_value[ch] * (1.0f / std[ch]) + -mean[ch] / std[ch];
        int ok = 1;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 24; x++)
                if (y < g.top || y >= g.top + g.resized_h || x < g.left || x >= g.left + g.resized_w)
                    ok &= o3[(ch * 16 + y) * 24 + x] == padv;
        CHECKF(ok, "channel %d: padding is not the normalized pad value", ch);
    }
    /* RGB to one channel: luma of three different planes */
    float *rgb2 = make_input(H, W, 3, 78), *lum = test_falloc(H * W);
    for (int i = 0; i < H * W; i++)
        lum[i] = (float)(0.299 * rgb2[3 * i] + 0.587 * rgb2[3 * i + 1] + 0.114 * rgb2[3 * i + 2]);
    rf_preprocess_config_init(&c1, 16, 24, 1);
    float *a = test_falloc(16 * 24), *b = test_falloc(16 * 24);
    CHECK(rf_preprocess_image(&c1, rgb2, H, W, 3, a, &e) == 0);
    CHECK(rf_preprocess_image(&c1, lum, H, W, 1, b, &e) == 0);
    double d = test_max_abs_diff(a, b, 16 * 24);
    CHECKF(d <= RESAMPLE_TOL, "RGB -> gray differs from luma then resample by %.3g", d);
    free(gray), free(rgb), free(o3), free(o3rgb), free(o1), free(rgb2), free(lum), free(a), free(b);
}

static void test_threads_and_reuse(void)
{
    rf_err e;
    rf_preprocess_config c;
    rf_preprocess_config_init(&c, 64, 48, 3);
    c.mean[0] = 0.5f, c.std[0] = 0.25f;
    float *big = make_input(301, 257, 1, 90), *small = make_input(40, 90, 3, 91);
    float *o1 = test_falloc(3 * 64 * 48), *o2 = test_falloc(3 * 64 * 48), *o3 = test_falloc(3 * 64 * 48);
    rf_preprocessor *p1, *p2;
    CHECK(rf_preprocess_create(&p1, &c, 1, &e) == 0);
    CHECK(rf_preprocess_create(&p2, &c, 3, &e) == 0);
    /* rows are independent, so threads change nothing, bit for bit */
    CHECK(rf_preprocess_run(p1, big, 301, 257, 1, o1, &e) == 0);
    CHECK(rf_preprocess_run(p2, big, 301, 257, 1, o2, &e) == 0);
    CHECK(test_max_abs_diff(o1, o2, 3 * 64 * 48) == 0);
    /* another size, then the first again: the cached weights must follow */
    CHECK(rf_preprocess_run(p2, small, 40, 90, 3, o3, &e) == 0);
    CHECK(rf_preprocess_run(p2, big, 301, 257, 1, o2, &e) == 0);
    CHECK(test_max_abs_diff(o1, o2, 3 * 64 * 48) == 0);
    CHECK(rf_preprocess_run(p1, small, 40, 90, 3, o1, &e) == 0);
    CHECK(test_max_abs_diff(o1, o3, 3 * 64 * 48) == 0);
    rf_preprocess_destroy(p1);
    rf_preprocess_destroy(p2);
    free(big), free(small), free(o1), free(o2), free(o3);
}

static void test_odd_sizes(void)
{
    rf_err e;
    /* a constant image stays constant through every filter, size and mode (weights sum to 1) */
    const int sizes[][2] = {{1, 1}, {1, 9}, {9, 1}, {3, 700}, {224, 224}, {500, 13}};
    for (int f = 0; f < RF_PREPROCESS_FILTER_COUNT; f++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int mode = 0; mode <= RF_PREPROCESS_NONE; mode++) {
                int h = sizes[s][0], w = sizes[s][1];
                float *in = test_falloc(h * w);
                test_fill_const(in, h * w, 0.625f);
                rf_preprocess_config c;
                rf_preprocess_config_init(&c, 31, 17, 1);
                c.filter = (rf_preprocess_filter)f;
                c.aspect = (rf_preprocess_aspect)mode;
                c.pad_value[0] = 0.625f;
                float *out = test_falloc(31 * 17);
                int rc = rf_preprocess_image(&c, in, h, w, 1, out, &e);
                CHECKF(rc == 0, "%s", e.msg);
                double worst = 0;
                for (int i = 0; i < 31 * 17; i++)
                    worst = fmax(worst, fabs(out[i] - 0.625));
                CHECKF(worst <= 1e-6, "filter %s, mode %d, %dx%d: constant image off by %.3g",
                       rf_preprocess_filter_name(c.filter), mode, h, w, worst);
                free(in);
                free(out);
            }
    /* identity: same size, every filter, copies exactly */
    float *in = make_input(19, 23, 3, 5), *out = test_falloc(3 * 19 * 23);
    for (int f = 0; f < RF_PREPROCESS_FILTER_COUNT; f++) {
        CHECK(rf_preprocess_resample(in, 19, 23, 3, out, 19, 23, (rf_preprocess_filter)f, &e) == 0);
        int same = 1;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < 19 * 23; i++)
                same &= out[ch * 19 * 23 + i] == in[3 * i + ch];
        CHECKF(same, "identity with %s is not a copy", rf_preprocess_filter_name((rf_preprocess_filter)f));
    }
    free(in), free(out);
    /* a config whose geometry puts the image entirely outside the output: all padding */
    rf_preprocess_config c;
    rf_preprocess_config_init(&c, 8, 8, 1);
    c.aspect = RF_PREPROCESS_NONE;
    c.pad_value[0] = 0.5f;
    float tiny[1] = {1.0f}, o[64];
    CHECK(rf_preprocess_image(&c, tiny, 1, 1, 1, o, &e) == 0);
    int pads = 0, ones = 0;
    for (int i = 0; i < 64; i++)
        pads += o[i] == 0.5f, ones += o[i] == 1.0f;
    CHECK(pads == 63 && ones == 1 && o[4 * 8 + 4] == 1.0f); /* FLOOR: -floor((1 - 8) / 2) = 4 */
    /* a 1 x 5000 line at shortest edge 224 is 1,120,000 wide before the crop: only the window is computed */
    float *line = make_input(1, 5000, 1, 6);
    float *o224 = test_falloc(224 * 224);
    rf_preprocess_config_init(&c, 224, 224, 1);
    CHECK(rf_preprocess_image(&c, line, 1, 5000, 1, o224, &e) == 0);
    free(line), free(o224);
}

int main(void)
{
    test_expected();
    test_hostile_configs();
    test_struct_checks();
    test_geometry();
    test_channels_and_pad();
    test_threads_and_reuse();
    test_odd_sizes();
    return test_finish("test_preprocess");
}
