/*
 * rf_preprocess_config from a Hugging Face preprocessor_config.json or a timm
 * pretrained_cfg. The defaults for absent keys are the libraries' own
 * (transformers' BaseImageProcessor subclasses, timm's resolve_data_config
 * and transforms_imagenet_eval); docs/preprocess.md lists them. Every value
 * is range-checked before use, and the file is read with a size cap, so a
 * hostile file costs at most that buffer and gets one line naming the key.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imaging/preprocess_internal.h"
#include "runtime/fileio.h"

#define CONFIG_MAX_BYTES (1 << 20)

typedef struct ld {
    const char *path;
    const char *prefix; /* "" or "pretrained_cfg." for key names in errors */
    rf_err *err;
} ld;

static int bad(const ld *l, const char *key, const char *what)
{
    return rf_err_set(l->err, RF_EFORMAT, "%s: key '%s%s' %s", l->path, l->prefix, key, what);
}

static const cJSON *get(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static int get_bool(const ld *l, const cJSON *o, const char *key, int def, int *out)
{
    const cJSON *v = get(o, key);
    if (!v) {
        *out = def;
        return RF_OK;
    }
    if (!cJSON_IsBool(v))
        return bad(l, key, "must be true or false");
    *out = cJSON_IsTrue(v);
    return RF_OK;
}

/* An integer in [lo, hi] from a JSON number (name is the key path shown). */
static int as_int(const ld *l, const cJSON *v, const char *name, int lo, int hi, int *out)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || d != floor(d)) {
        char what[96];
        snprintf(what, sizeof what, "must be an integer in [%d, %d]", lo, hi);
        return bad(l, name, what);
    }
    *out = (int)d;
    return RF_OK;
}

static int as_number(const ld *l, const cJSON *v, const char *name, double lo, double hi, double *out)
{
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi)) {
        char what[96];
        snprintf(what, sizeof what, "must be a number in [%g, %g]", lo, hi);
        return bad(l, name, what);
    }
    *out = d;
    return RF_OK;
}

/*
 * A per-channel vector: one number, or an array of 1 or `channels` numbers
 * (one value applies to every channel). With 1 channel, 3 equal values are
 * accepted (configs often repeat a gray mean); unequal ones are ambiguous.
 */
static int get_vec(const ld *l, const cJSON *o, const char *key, int channels, int nonzero, float out[3])
{
    const cJSON *v = get(o, key);
    double vals[3] = {0, 0, 0};
    int n = 0;
    if (cJSON_IsNumber(v)) {
        vals[n++] = v->valuedouble;
    } else if (cJSON_IsArray(v)) {
        int size = cJSON_GetArraySize(v);
        if (size != 1 && size != 3)
            return bad(l, key, "must hold 1 or 3 numbers");
        const cJSON *e;
        cJSON_ArrayForEach(e, v)
        {
            if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || fabs(e->valuedouble) > 1e6)
                return bad(l, key, "must hold finite numbers of magnitude <= 1e6");
            vals[n++] = e->valuedouble;
        }
    } else {
        return bad(l, key, "must be a number or an array of numbers");
    }
    if (!isfinite(vals[0]) || fabs(vals[0]) > 1e6)
        return bad(l, key, "must hold finite numbers of magnitude <= 1e6");
    if (n == 3 && channels == 1 && !(vals[0] == vals[1] && vals[1] == vals[2]))
        return bad(l, key, "has 3 different values for a 1-channel input");
    for (int c = 0; c < 3; c++) {
        double d = n == 1 ? vals[0] : vals[c];
        if (nonzero && !(fabs(d) >= 1e-6))
            return bad(l, key, "must not hold zero (or below 1e-6 in magnitude)");
        out[c] = (float)d;
    }
    return RF_OK;
}

/* A size given as one integer or as {height, width}. */
static int get_hw(const ld *l, const cJSON *v, const char *key, int *h, int *w)
{
    char name[64];
    if (cJSON_IsNumber(v)) {
        int rc = as_int(l, v, key, 1, RF_PREPROCESS_MAX_SIDE, h);
        *w = *h;
        return rc;
    }
    if (!cJSON_IsObject(v))
        return bad(l, key, "must be an integer or an object with height and width");
    const cJSON *hv = get(v, "height"), *wv = get(v, "width");
    if (!hv || !wv) {
        snprintf(name, sizeof name, "%s.%s", key, hv ? "width" : "height");
        return bad(l, name, "is missing");
    }
    snprintf(name, sizeof name, "%s.height", key);
    int rc = as_int(l, hv, name, 1, RF_PREPROCESS_MAX_SIDE, h);
    if (!rc) {
        snprintf(name, sizeof name, "%s.width", key);
        rc = as_int(l, wv, name, 1, RF_PREPROCESS_MAX_SIDE, w);
    }
    return rc;
}

static int load_hf(const ld *l, const cJSON *o, rf_preprocess_config *cfg)
{
    int do_resize = 1, do_crop = 0, do_rescale = 1, do_normalize = 1, rc;
    const cJSON *size = get(o, "size"), *crop = get(o, "crop_size");
    if ((rc = get_bool(l, o, "do_resize", 1, &do_resize)) || (rc = get_bool(l, o, "do_center_crop", crop != NULL, &do_crop)) ||
        (rc = get_bool(l, o, "do_rescale", 1, &do_rescale)) ||
        (rc = get_bool(l, o, "do_normalize", 1, &do_normalize)))
        return rc;
    rf_preprocess_config_init(cfg, 1, 1, 3);
    cfg->center = RF_PREPROCESS_CENTER_FLOOR; /* transformers' center_crop; pads with 0 */

    /* PIL's numbering, which transformers stores; most processors default to
     * bicubic (ViT's writes its bilinear explicitly) */
    static const rf_preprocess_filter pil[] = {RF_PREPROCESS_NEAREST, RF_PREPROCESS_LANCZOS3,
                                               RF_PREPROCESS_BILINEAR, RF_PREPROCESS_BICUBIC,
                                               RF_PREPROCESS_BOX, RF_PREPROCESS_HAMMING};
    const cJSON *rs = get(o, "resample");
    int r = 3;
    if (rs && (rc = as_int(l, rs, "resample", 0, 5, &r)))
        return rc;
    cfg->filter = pil[r];

    if (do_crop) {
        if (!crop)
            return bad(l, "crop_size", "is missing (do_center_crop is true)");
        if ((rc = get_hw(l, crop, "crop_size", &cfg->height, &cfg->width)))
            return rc;
    }
    if (!do_resize) {
        cfg->aspect = RF_PREPROCESS_NONE;
        if (!do_crop)
            return rf_err_set(l->err, RF_EUNSUP,
                              "%s: do_resize and do_center_crop are both false: the output size would be "
                              "the image's, not the model's",
                              l->path);
    } else {
        if (!size)
            return bad(l, "size", "is missing (do_resize is true)");
        const cJSON *se = cJSON_IsObject(size) ? get(size, "shortest_edge") : NULL;
        if (cJSON_IsObject(size) && !se && (get(size, "height") || get(size, "width"))) {
            cfg->aspect = RF_PREPROCESS_STRETCH;
            if ((rc = get_hw(l, size, "size", &cfg->resize_height, &cfg->resize_width)))
                return rc;
        } else if (se || (cJSON_IsNumber(size) && do_crop)) {
            /* an integer size with a crop is the shortest edge (CLIP, BiT,
             * ConvNeXt); without one it is a square (ViT): transformers'
             * get_size_dict(default_to_square) per processor */
            int s = 0;
            if ((rc = as_int(l, se ? se : size, se ? "size.shortest_edge" : "size", 1, RF_PREPROCESS_MAX_SIDE, &s)))
                return rc;
            cfg->aspect = RF_PREPROCESS_CROP;
            cfg->resize_height = cfg->resize_width = s;
            const cJSON *le = se ? get(size, "longest_edge") : NULL;
            if (le) {
                if ((rc = as_int(l, le, "size.longest_edge", s + 1 <= RF_PREPROCESS_MAX_SIDE ? s + 1 : RF_PREPROCESS_MAX_SIDE,
                                 RF_PREPROCESS_MAX_SIDE, &cfg->resize_max)))
                    return rc;
                if (cfg->resize_max <= s)
                    return bad(l, "size.longest_edge", "must be larger than size.shortest_edge");
            }
            if (!do_crop)
                return rf_err_set(l->err, RF_EUNSUP,
                                  "%s: key 'size.shortest_edge' without a center crop: the output size would "
                                  "depend on the image",
                                  l->path);
        } else if (cJSON_IsNumber(size)) {
            cfg->aspect = RF_PREPROCESS_STRETCH;
            if ((rc = as_int(l, size, "size", 1, RF_PREPROCESS_MAX_SIDE, &cfg->resize_height)))
                return rc;
            cfg->resize_width = cfg->resize_height;
        } else if (cJSON_IsObject(size)) {
            return rf_err_set(l->err, RF_EUNSUP,
                              "%s: key 'size' needs height and width or shortest_edge (longest_edge or "
                              "max_height/max_width alone are not supported)",
                              l->path);
        } else {
            return bad(l, "size", "must be an integer or an object");
        }
        if (!do_crop) {
            cfg->height = cfg->resize_height;
            cfg->width = cfg->resize_width;
        }
    }

    /* the processors take 8-bit images: rescale_factor (1/255) brings them to
     * [0, 1]; our input is already there, so the factor becomes 255 * it */
    double factor = 1.0 / 255.0;
    const cJSON *rf = get(o, "rescale_factor");
    if (do_rescale && rf && (rc = as_number(l, rf, "rescale_factor", 1e-12, 1e6, &factor)))
        return rc;
    cfg->input_scale = (float)(do_rescale ? 255.0 * factor : 255.0);
    if (do_normalize) {
        if (!get(o, "image_mean"))
            return bad(l, "image_mean", "is missing (do_normalize is true)");
        if (!get(o, "image_std"))
            return bad(l, "image_std", "is missing (do_normalize is true)");
        if ((rc = get_vec(l, o, "image_mean", 3, 0, cfg->mean)) || (rc = get_vec(l, o, "image_std", 3, 1, cfg->std)))
            return rc;
    }
    return RF_OK;
}

static int load_timm(const ld *l, const cJSON *o, rf_preprocess_config *cfg)
{
    int rc;
    const cJSON *is = get(o, "input_size");
    if (!is)
        return bad(l, "input_size", "is missing");
    if (!cJSON_IsArray(is) || cJSON_GetArraySize(is) != 3)
        return bad(l, "input_size", "must be [channels, height, width]");
    int chw[3];
    static const char *const names[] = {"input_size[0]", "input_size[1]", "input_size[2]"};
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(is, i);
        if ((rc = as_int(l, e, names[i], i == 0 ? 1 : 1, i == 0 ? 3 : RF_PREPROCESS_MAX_SIDE, &chw[i])))
            return rc;
    }
    if (chw[0] == 2)
        return bad(l, "input_size[0]", "must be 1 or 3 channels");
    rf_preprocess_config_init(cfg, chw[1], chw[2], chw[0]);
    cfg->center = RF_PREPROCESS_CENTER_ROUND; /* torchvision CenterCrop, timm CenterCropOrPad */

    double crop_pct = 0.875; /* timm's DEFAULT_CROP_PCT */
    const cJSON *cp = get(o, "crop_pct");
    if (cp && (rc = as_number(l, cp, "crop_pct", 0.01, 10.0, &crop_pct)))
        return rc;
    /* math.floor(size / crop_pct), as transforms_imagenet_eval */
    double sh = floor(chw[1] / crop_pct), sw = floor(chw[2] / crop_pct);
    if (!(sh >= 1 && sh <= RF_PREPROCESS_MAX_SIDE && sw >= 1 && sw <= RF_PREPROCESS_MAX_SIDE))
        return bad(l, "crop_pct", "gives a resize size outside 1..8192");
    cfg->resize_height = (int)sh;
    cfg->resize_width = (int)sw;

    const char *mode = "center";
    const cJSON *cm = get(o, "crop_mode");
    if (cm) {
        if (!cJSON_IsString(cm))
            return bad(l, "crop_mode", "must be a string");
        mode = cm->valuestring;
    }
    if (strcmp(mode, "center") == 0)
        cfg->aspect = RF_PREPROCESS_CROP;
    else if (strcmp(mode, "squash") == 0)
        cfg->aspect = RF_PREPROCESS_STRETCH;
    else if (strcmp(mode, "border") == 0)
        cfg->aspect = RF_PREPROCESS_PAD;
    else
        return bad(l, "crop_mode", "must be \"center\", \"squash\" or \"border\"");

    const cJSON *ip = get(o, "interpolation");
    cfg->filter = RF_PREPROCESS_BICUBIC; /* timm's default */
    if (ip) {
        static const struct {
            const char *name;
            rf_preprocess_filter f;
        } interp[] = {{"bicubic", RF_PREPROCESS_BICUBIC}, {"bilinear", RF_PREPROCESS_BILINEAR},
                      {"lanczos", RF_PREPROCESS_LANCZOS3}, {"nearest", RF_PREPROCESS_NEAREST},
                      {"box", RF_PREPROCESS_BOX},          {"hamming", RF_PREPROCESS_HAMMING}};
        size_t i = 0, n = sizeof interp / sizeof interp[0];
        while (i < n && !(cJSON_IsString(ip) && strcmp(ip->valuestring, interp[i].name) == 0))
            i++;
        if (i == n)
            return bad(l, "interpolation", "must be bicubic, bilinear, lanczos, nearest, box or hamming");
        cfg->filter = interp[i].f;
    }

    /* timm's defaults: ImageNet's mean and std, which have 3 values and so
     * cannot serve a 1-channel model */
    static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(cfg->mean, imagenet_mean, sizeof cfg->mean);
    memcpy(cfg->std, imagenet_std, sizeof cfg->std);
    if (chw[0] == 1 && (!get(o, "mean") || !get(o, "std")))
        return bad(l, get(o, "mean") ? "std" : "mean", "is missing (a 1-channel model has no default)");
    if (get(o, "mean") && (rc = get_vec(l, o, "mean", chw[0], 0, cfg->mean)))
        return rc;
    if (get(o, "std") && (rc = get_vec(l, o, "std", chw[0], 1, cfg->std)))
        return rc;
    if (cfg->aspect == RF_PREPROCESS_PAD)
        for (int c = 0; c < 3; c++) /* timm's fill: [round(255 * v) for v in mean], in 8-bit units */
            cfg->pad_value[c] = (float)(nearbyint(255.0 * cfg->mean[c]) / 255.0);
    return RF_OK;
}

int rf_preprocess_config_load(const char *path, rf_preprocess_config *cfg, rf_err *err)
{
    cJSON *root;
    int rc = rf_json_read_object(path, CONFIG_MAX_BYTES, &root, err);
    if (rc)
        return rc;
    ld l = {.path = path, .prefix = "", .err = err};
    rf_preprocess_config tmp;
    const cJSON *pc = get(root, "pretrained_cfg");
    if (pc) {
        l.prefix = "pretrained_cfg.";
        rc = cJSON_IsObject(pc) ? load_timm(&l, pc, &tmp)
                                : rf_err_set(err, RF_EFORMAT, "%s: key 'pretrained_cfg' must be an object", path);
    } else if (get(root, "input_size")) {
        rc = load_timm(&l, root, &tmp);
    } else if (get(root, "image_processor_type") || get(root, "size") || get(root, "crop_size") ||
               get(root, "image_mean") || get(root, "do_resize")) {
        rc = load_hf(&l, root, &tmp);
    } else {
        rc = rf_err_set(err, RF_EFORMAT,
                        "%s: neither a Hugging Face preprocessor config (size, crop_size, image_mean) nor a "
                        "timm pretrained_cfg (input_size)",
                        path);
    }
    cJSON_Delete(root);
    /* the loader checks keys; this catches what only the combination breaks */
    if (!rc) {
        rf_err why;
        rc = rf_preprocess_config_check(&tmp, &why);
        if (rc)
            rc = rf_err_set(err, RF_EFORMAT, "%s: %s", path, why.msg);
    }
    if (!rc)
        *cfg = tmp;
    return rc;
}
