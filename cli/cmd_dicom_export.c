/*
 * radfuse dicom export: every frame of DICOM instances as PNG (libpng, through
 * report/util.c's encoder) or JPEG
 * (libjpeg-turbo), rendered by imaging/render.c (Modality LUT, VOI, MONOCHROME1,
 * padding, palettes, RGB). Files are named by SOPInstanceUID only (no PHI),
 * encoded in memory and written atomically (runtime/fileio.h).
 *
 * Exit status: 0 when every input was exported, 2 when any failed (each
 * failure is one line on stderr naming the input; the others are still
 * written), 1 for usage errors.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h> /* after stdio.h: it uses FILE and size_t without including them */

#include "cli/cli.h"
#include "radfuse/imaging.h"
#include "radfuse/dicom_input.h"
#include "radfuse/render.h"
#include "report/report.h"
#include "runtime/fileio.h"

typedef struct export_opts {
    const char *out_dir;
    int jpeg;    /* else PNG */
    int bits;    /* 8 or 16 (PNG only) */
    int quality; /* JPEG, 1..100 */
    int verbose; /* progress on stderr */
    rf_render_opts render;
} export_opts;


static const cli_cmd export_cmd = {"dicom export",
                                   "usage: radfuse dicom export PATH... --out DIR [--png|--jpeg] [--16bit]"
                                   " [--window auto|file|C,W] [--quality N] [-v]\n"};

/* ---- PNG ---- */

/* ---- JPEG ---- */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    unsigned char *mem; /* jpeg_mem_dest's buffer */
    unsigned long size;
} jpeg_ctx;

static void jpeg_error_exit_cb(j_common_ptr ci)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    (*ci->err->format_message)(ci, c->msg);
    longjmp(c->jb, 1);
}

static void jpeg_output_cb(j_common_ptr ci)
{
    (void)ci; /* no messages on stderr */
}

/* Everything setjmp guards lives in *c or *ci, outside this frame's locals. */
static int encode_jpeg_inner(jpeg_ctx *c, struct jpeg_compress_struct *ci, unsigned char **rows, int w, int h,
                             int ch, int quality)
{
    if (setjmp(c->jb))
        return -1;
    jpeg_create_compress(ci);
    jpeg_mem_dest(ci, &c->mem, &c->size);
    ci->image_width = (JDIMENSION)w;
    ci->image_height = (JDIMENSION)h;
    ci->input_components = ch;
    ci->in_color_space = ch == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(ci);
    jpeg_set_quality(ci, quality, TRUE);
    jpeg_start_compress(ci, TRUE);
    while (ci->next_scanline < ci->image_height)
        jpeg_write_scanlines(ci, &rows[ci->next_scanline], 1);
    jpeg_finish_compress(ci);
    return 0;
}

static int encode_jpeg(unsigned char **rows, int w, int h, int ch, int quality, rf_buf *out, rf_err *err)
{
    jpeg_ctx c;
    struct jpeg_compress_struct ci;
    memset(&c, 0, sizeof c);
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&c.pub);
    c.pub.error_exit = jpeg_error_exit_cb;
    c.pub.output_message = jpeg_output_cb;
    int rc = encode_jpeg_inner(&c, &ci, rows, w, h, ch, quality);
    jpeg_destroy_compress(&ci);
    if (rc) {
        free(c.mem);
        return rf_err_set(err, RF_EIO, "JPEG encoding failed: %s", c.msg);
    }
    out->p = (char *)c.mem;
    out->n = out->cap = c.size;
    return RF_OK;
}

/* ---- one instance ---- */

/* The output name's stem: SOPInstanceUID kept to [0-9.] (no PHI, no path
 * separators); "instance-N" (N: the input's position) when nothing is left. */
static void output_stem(const rf_dicom_image *img, size_t index, char *stem, size_t n)
{
    size_t k = 0;
    int digit = 0;
    for (const char *s = img->sop_uid; *s && k + 1 < n; s++)
        if ((*s >= '0' && *s <= '9') || *s == '.') {
            digit |= *s != '.';
            stem[k++] = *s;
        }
    stem[k] = 0;
    if (!digit)
        snprintf(stem, n, "instance-%zu", index + 1);
}

/*
 * Renders and writes every frame of img: DIR/STEM.EXT, or DIR/STEM_NNN.EXT
 * (frame number from 1, zero-padded to the digits of the frame count) for
 * multi-frame instances. Written paths go to stdout, one a line.
 */
static int export_image(const export_opts *o, const rf_dicom_image *img, const char *name, size_t index,
                        rf_err *err)
{
    int ch = rf_render_channels(img);
    int w = img->columns, h = img->rows;
    size_t row_bytes = (size_t)w * (size_t)ch * (size_t)(o->bits / 8);
    unsigned char *px = malloc(row_bytes * (size_t)h);
    unsigned char **rows = malloc((size_t)h * sizeof *rows);
    if (!px || !rows) {
        free(px);
        free(rows);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory for a %d x %d frame", name, w, h);
    }
    for (int y = 0; y < h; y++)
        rows[y] = px + (size_t)y * row_bytes;
    char stem[RF_DICOM_STR + 32];
    output_stem(img, index, stem, sizeof stem);
    int digits = snprintf(NULL, 0, "%d", img->frames);
    int rc = RF_OK;
    for (int f = 0; f < img->frames && !rc; f++) {
        rf_err e;
        rf_render_info info;
        rc = rf_render_display_int(img, f, &o->render, o->bits, px, &info, &e);
        if (rc) {
            rc = rf_err_set(err, rc, "%s: frame %d: %s", name, f + 1, e.msg);
            break;
        }
        if (o->bits == 16) { /* PNG wants big-endian samples */
            size_t n = row_bytes * (size_t)h / 2;
            for (size_t i = 0; i < n; i++) {
                uint16_t v;
                memcpy(&v, px + 2 * i, 2);
                px[2 * i] = (unsigned char)(v >> 8);
                px[2 * i + 1] = (unsigned char)v;
            }
        }
        rf_buf out = {0};
        rc = o->jpeg ? encode_jpeg(rows, w, h, ch, o->quality, &out, &e)
                     : rf_png_encode(px, w, h, ch, o->bits, &out, &e);
        char path[4096];
        if (!rc) {
            int len = img->frames > 1 ? snprintf(path, sizeof path, "%s/%s_%0*d.%s", o->out_dir, stem, digits, f + 1,
                                                 o->jpeg ? "jpg" : "png")
                                      : snprintf(path, sizeof path, "%s/%s.%s", o->out_dir, stem,
                                                 o->jpeg ? "jpg" : "png");
            if (len < 0 || (size_t)len >= sizeof path)
                rc = rf_err_set(&e, RF_EINVAL, "output path too long");
        }
        if (!rc)
            rc = rf_write_file_atomic(path, out.p, out.n, &e);
        rf_buf_free(&out);
        if (rc) {
            rc = rf_err_set(err, rc, "%s: frame %d: %s", name, f + 1, e.msg);
            break;
        }
        printf("%s\n", path);
        if (o->verbose) {
            const char *voi = info.voi == RF_VOI_APPLIED_WINDOW ? "window"
                              : info.voi == RF_VOI_APPLIED_LUT  ? "VOI LUT"
                              : info.voi == RF_VOI_APPLIED_AUTO ? "auto window"
                                                                : "color";
            fprintf(stderr, "radfuse: dicom export:   frame %d/%d: %s", f + 1, img->frames, voi);
            if (info.voi == RF_VOI_APPLIED_WINDOW || info.voi == RF_VOI_APPLIED_AUTO)
                fprintf(stderr, " C %g W %g", info.center, info.width);
            fprintf(stderr, "%s -> %s\n", info.inverted ? ", inverted" : "", path);
        }
    }
    fflush(stdout);
    free(px);
    free(rows);
    return rc;
}

/*
 * The inputs, listed as dicom ls lists them (files, trees, DICOMDIR, zip
 * entries: rf_inputs_collect), each read and exported. One failure is one
 * line on stderr naming the input; the loop goes on. Returns the number of
 * inputs that failed, or -1 when nothing could be listed.
 */
static long export_inputs(const export_opts *o, const char *const *paths, int npaths, size_t *ninputs)
{
    rf_inputs *in;
    rf_err err;
    if (rf_inputs_collect(paths, npaths, NULL, &in, &err)) {
        fprintf(stderr, "radfuse: dicom export: %s\n", err.msg);
        return -1;
    }
    size_t n = rf_inputs_count(in), done = 0;
    long failed = 0;
    for (size_t i = 0; i < n; i++) {
        const rf_input *item = rf_inputs_at(in, i);
        if (item->kind == RF_INPUT_DICOMDIR)
            continue; /* an index, not an image: its files are items of their own */
        done++;
        rf_dicom_image img;
        if (o->verbose)
            fprintf(stderr, "radfuse: dicom export: [%zu/%zu] %s\n", i + 1, n, item->name);
        int rc = rf_inputs_read(in, i, RF_DICOM_PIXELS, &img, &err);
        if (!rc)
            rc = export_image(o, &img, item->name, done - 1, &err);
        rf_dicom_image_free(&img);
        if (rc) {
            failed++;
            fprintf(stderr, "radfuse: dicom export: %s\n", err.msg);
        }
    }
    rf_inputs_free(in);
    *ninputs = done;
    return failed;
}

static int parse_window(const char *v, rf_render_opts *r)
{
    if (!v)
        return -1;
    if (strcmp(v, "auto") == 0) {
        r->voi = RF_VOI_AUTO;
        return 0;
    }
    if (strcmp(v, "file") == 0) {
        r->voi = RF_VOI_DEFAULT;
        return 0;
    }
    char *end;
    double c = strtod(v, &end);
    if (end == v || *end != ',')
        return -1;
    const char *ws = end + 1;
    double w = strtod(ws, &end);
    if (end == ws || *end || !isfinite(c) || !isfinite(w) || !(w > 0))
        return -1;
    r->voi = RF_VOI_EXPLICIT;
    r->center = c;
    r->width = w;
    return 0;
}

int cli_dicom_export(int argc, char **argv)
{
    export_opts o = {NULL, 0, 8, 90, isatty(2), {RF_VOI_DEFAULT, 0, 0, 0, RF_VOI_FN_FILE}};
    int png = 0, quality_given = 0, npaths = 0;
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    if (!paths)
        return cli_fail("out of memory");
    int rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--out") == 0) {
            if (i + 1 >= argc || !*argv[i + 1])
                rc = cli_usage(&export_cmd, "%s needs a directory", a);
            else
                o.out_dir = argv[++i];
        } else if (strcmp(a, "--png") == 0) {
            png = 1;
        } else if (strcmp(a, "--jpeg") == 0) {
            o.jpeg = 1;
        } else if (strcmp(a, "--16bit") == 0) {
            o.bits = 16;
        } else if (strcmp(a, "--window") == 0) {
            if (parse_window(i + 1 < argc ? argv[i + 1] : NULL, &o.render))
                rc = cli_usage(&export_cmd, "--window must be auto, file or CENTER,WIDTH with WIDTH > 0, got '%s'",
                               i + 1 < argc ? argv[i + 1] : "");
            i++;
        } else if (strcmp(a, "--quality") == 0) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            char *end;
            long q = strtol(v, &end, 10);
            if (!*v || *end || q < 1 || q > 100)
                rc = cli_usage(&export_cmd, "--quality must be an integer in [1, 100], got '%s'", v);
            o.quality = (int)q;
            quality_given = 1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o.verbose = 1;
        } else if (strcmp(a, "--") == 0) {
            while (++i < argc)
                paths[npaths++] = argv[i];
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage(&export_cmd, "unknown option '%s'", a);
        } else {
            paths[npaths++] = a;
        }
    }
    if (!rc && png && o.jpeg)
        rc = cli_usage(&export_cmd, "%s", "--png and --jpeg are exclusive");
    else if (!rc && o.jpeg && o.bits == 16)
        rc = cli_usage(&export_cmd, "%s", "--16bit is for PNG only (JPEG here is 8-bit)");
    else if (!rc && quality_given && !o.jpeg)
        rc = cli_usage(&export_cmd, "%s", "--quality is for --jpeg only");
    else if (!rc && !o.out_dir)
        rc = cli_usage(&export_cmd, "%s", "--out DIR is required");
    else if (!rc && !npaths)
        rc = cli_usage(&export_cmd, "%s", "no input PATH");
    if (rc) {
        free(paths);
        return rc;
    }
    struct stat st;
    if (mkdir(o.out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "radfuse: dicom export: %s: cannot create the output directory: %s\n", o.out_dir,
                strerror(errno));
        free(paths);
        return CLI_EXIT_FAIL;
    }
    if (stat(o.out_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "radfuse: dicom export: %s: not a directory\n", o.out_dir);
        free(paths);
        return CLI_EXIT_FAIL;
    }
    size_t n = 0;
    long failed = export_inputs(&o, paths, npaths, &n);
    free(paths);
    if (failed < 0)
        return CLI_EXIT_FAIL;
    if (n == 0) {
        fprintf(stderr, "radfuse: dicom export: no files found\n");
        return CLI_EXIT_FAIL;
    }
    if (failed) {
        fprintf(stderr, "radfuse: dicom export: %ld of %zu inputs failed\n", failed, n);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
