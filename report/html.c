/*
 * report.html (rf_result_write_html): one self-contained page, nothing
 * fetched from anywhere (images inlined as data: URIs, style and script
 * inline, no URL at all): the study summary, the findings table, each used
 * image with the selected finding's saliency map on top (RGBA, viridis,
 * transparent below the floor) behind an opacity slider and a finding
 * selector, the notes with that finding's evidence spans marked, labs,
 * warnings and timings. Every string from the result is HTML-escaped, and
 * the script holds no data: it reads the page's own elements.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"
#include "runtime/fileio.h"

/* Images in the page are at most this many pixels on a side (box-averaged
 * down by an integer factor): the page stays a few MB for full-size
 * radiographs, and the overlay PNGs keep full resolution. */
#define HTML_MAX_SIDE 1024
/* Map values below this are transparent, as in the overlay PNGs' default. */
#define HTML_FLOOR 0.2f

static void esc(rf_buf *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        case '\0': rep = "\xEF\xBF\xBD"; break; /* U+FFFD: a NUL is not allowed in HTML text */
        default: break;
        }
        if (rep) {
            rf_buf_put(b, s + run, i - run);
            rf_buf_puts(b, rep);
            run = i + 1;
        }
    }
    rf_buf_put(b, s + run, n - run);
}

static void escs(rf_buf *b, const char *s)
{
    if (s)
        esc(b, s, strlen(s));
}

static void kv_row(rf_buf *b, const char *key, const char *value)
{
    if (!value || !*value)
        return;
    rf_buf_printf(b, "<tr><th>%s</th><td>", key);
    escs(b, value);
    rf_buf_puts(b, "</td></tr>\n");
}

/* ---- images ---- */

typedef struct small_image {
    int w, h, f; /* size in the page, downscale factor */
} small_image;

static small_image page_size(const rf_result_image *im)
{
    int side = im->rows > im->cols ? im->rows : im->cols;
    int f = (side + HTML_MAX_SIDE - 1) / HTML_MAX_SIDE;
    f = f < 1 ? 1 : f;
    small_image s = {(im->cols + f - 1) / f, (im->rows + f - 1) / f, f};
    return s;
}

/* The box average of the f x f block at (y, x) of a rows x cols plane, over
 * the pixels inside it. */
#define BOX_AVG(T, plane, rows, cols, f, y, x, out)                               \
    do {                                                                          \
        double sum_ = 0;                                                          \
        int n_ = 0;                                                               \
        for (int yy_ = (y) * (f); yy_ < (y) * (f) + (f) && yy_ < (rows); yy_++)   \
            for (int xx_ = (x) * (f); xx_ < (x) * (f) + (f) && xx_ < (cols); xx_++) { \
                sum_ += (double)(plane)[(size_t)yy_ * (size_t)(cols) + (size_t)xx_]; \
                n_++;                                                             \
            }                                                                     \
        (out) = (T)(sum_ / n_);                                                   \
    } while (0)

static int put_png_uri(rf_buf *b, const uint8_t *px, int w, int h, int ch, rf_err *err)
{
    rf_buf png = {0};
    int rc = rf_png_encode(px, w, h, ch, 8, &png, err);
    if (!rc) {
        rf_buf_puts(b, "data:image/png;base64,");
        rf_buf_base64(b, png.p, png.n);
    }
    rf_buf_free(&png);
    return rc;
}

static int put_display(rf_buf *b, const rf_result_image *im, rf_err *err)
{
    small_image s = page_size(im);
    if (s.f == 1)
        return put_png_uri(b, im->display, s.w, s.h, 1, err);
    uint8_t *px = malloc((size_t)s.w * (size_t)s.h);
    if (!px)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    for (int y = 0; y < s.h; y++)
        for (int x = 0; x < s.w; x++) {
            double v;
            BOX_AVG(double, im->display, im->rows, im->cols, s.f, y, x, v);
            px[(size_t)y * (size_t)s.w + (size_t)x] = (uint8_t)lrint(v);
        }
    int rc = put_png_uri(b, px, s.w, s.h, 1, err);
    free(px);
    return rc;
}

/* The map as RGBA: the colormap's color, opacity ramping from 0 at the
 * floor to 1 at value 1 (the page's slider scales it). */
static int put_map(rf_buf *b, const rf_result_image *im, const rf_result_map *map, const rf_colormap *cm,
                   rf_err *err)
{
    small_image s = page_size(im);
    uint8_t *px = malloc((size_t)s.w * (size_t)s.h * 4);
    if (!px)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    for (int y = 0; y < s.h; y++)
        for (int x = 0; x < s.w; x++) {
            float v;
            BOX_AVG(float, map->values, im->rows, im->cols, s.f, y, x, v);
            uint8_t *o = px + ((size_t)y * (size_t)s.w + (size_t)x) * 4;
            memcpy(o, rf_colormap_at(cm, v), 3);
            float a = v >= HTML_FLOOR ? (v - HTML_FLOOR) / (1 - HTML_FLOOR) : 0;
            o[3] = (uint8_t)lrintf(255 * (a > 1 ? 1 : a));
        }
    int rc = put_png_uri(b, px, s.w, s.h, 4, err);
    free(px);
    return rc;
}

/* ---- notes ---- */

/* The note's text with finding f's spans on it marked: each byte under the
 * span of largest |weight| covering it (spans may overlap), one <mark> per
 * run of bytes under the same span, its opacity |weight|. */
static void put_marked_note(rf_buf *b, const rf_result_note *n, size_t ni, const rf_result_finding *f, size_t *cuts)
{
    size_t nc = 0;
    cuts[nc++] = 0;
    cuts[nc++] = n->len;
    for (size_t s = 0; f && s < f->nspans; s++)
        if (f->spans[s].note == ni) {
            cuts[nc++] = f->spans[s].begin;
            cuts[nc++] = f->spans[s].end;
        }
    /* insertion sort: spans of one finding in one note are few */
    for (size_t i = 1; i < nc; i++) {
        size_t v = cuts[i], j = i;
        while (j > 0 && cuts[j - 1] > v) {
            cuts[j] = cuts[j - 1];
            j--;
        }
        cuts[j] = v;
    }
    long open = -1;
    for (size_t i = 0; i + 1 < nc; i++) {
        size_t a = cuts[i], z = cuts[i + 1];
        if (a == z)
            continue;
        long best = -1;
        for (size_t s = 0; f && s < f->nspans; s++) {
            const rf_result_span *sp = &f->spans[s];
            if (sp->note == ni && sp->begin <= a && sp->end >= z &&
                (best < 0 || fabsf(sp->weight) > fabsf(f->spans[best].weight)))
                best = (long)s;
        }
        if (best != open) {
            if (open >= 0)
                rf_buf_puts(b, "</mark>");
            if (best >= 0) {
                float w = f->spans[best].weight;
                float op = fabsf(w) < 0.08f ? 0.08f : fabsf(w);
                rf_buf_printf(b, "<mark class=\"%s\" data-weight=\"%.4f\" title=\"weight %.3f\" "
                                 "style=\"background-color: rgba(%s, %.3f)\">",
                              w >= 0 ? "up" : "down", w, w, w >= 0 ? "255, 152, 0" : "33, 150, 243", op);
            }
            open = best;
        }
        esc(b, n->text + a, z - a);
    }
    if (open >= 0)
        rf_buf_puts(b, "</mark>");
}

/* ---- the page ---- */

static const char page_style[] =
    "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222;padding:0 1em}\n"
    "h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}\n"
    ".disclaimer{background:#fff3cd;border:1px solid #e0c36c;padding:.4em .8em;font-weight:600}\n"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}\n"
    "table.kv th{background:#f4f4f4;font-weight:600}\n"
    "#findings tr.positive td:first-child{font-weight:700}#findings td.num{text-align:right}\n"
    "#findings tr.selected{background:#eef5ff}\n"
    ".pos{color:#a40000;font-weight:700}.neg{color:#555}\n"
    ".controls{display:flex;gap:2em;align-items:center;flex-wrap:wrap;margin:.6em 0}\n"
    ".legend{display:flex;align-items:center;gap:.4em}.legend .bar{display:inline-block;width:180px;height:12px}\n"
    ".study-image{display:inline-block;margin:0 1em 1em 0;vertical-align:top}\n"
    ".stack{position:relative;display:inline-block;background:#000;line-height:0}\n"
    ".stack img{display:block}.stack img.base{width:480px;max-width:100%;height:auto}\n"
    ".stack img.overlay{position:absolute;left:0;top:0;width:100%;height:100%}\n"
    "figcaption{font-size:.85em;color:#555;margin-top:.3em;max-width:520px}\n"
    "pre.note-text{white-space:pre-wrap;background:#fafafa;border:1px solid #ddd;padding:.6em;font-size:.9em}\n"
    "mark{color:inherit;border-radius:2px}\n"
    ".muted{color:#777}[hidden]{display:none!important}\n";

/* Reads nothing but the page: the selector shows the chosen finding's
 * overlays and marked notes, the slider sets the overlays' opacity, and
 * after load each image's decoded size goes into data-natural-width/-height,
 * the count of decoded images into the body's data-images-decoded and each
 * image stack's place on the page into data-rect (x,y,w,h), for checks of
 * the rendered page. */
static const char page_script[] =
    "(function(){\n"
    "var sel=document.getElementById('finding-select');\n"
    "var op=document.getElementById('opacity');\n"
    "function show(){\n"
    "  var k=sel?sel.value:'';\n"
    "  document.querySelectorAll('[data-finding]').forEach(function(e){\n"
    "    if(e.tagName==='TR'){e.classList.toggle('selected',e.dataset.finding===k);return;}\n"
    "    if(e.tagName==='OPTION')return;\n"
    "    e.hidden=e.dataset.finding!==k;});\n"
    "  var lab=document.getElementById('legend-label');\n"
    "  if(lab&&sel&&sel.selectedIndex>=0)lab.textContent=sel.options[sel.selectedIndex].textContent;\n"
    "}\n"
    "function opacity(){\n"
    "  var v=op?op.value/100:0.5;\n"
    "  document.querySelectorAll('img.overlay').forEach(function(e){e.style.opacity=v;});\n"
    "  var o=document.getElementById('opacity-value');if(o)o.textContent=Math.round(v*100)+'%';\n"
    "}\n"
    "if(sel)sel.addEventListener('change',show);\n"
    "if(op)op.addEventListener('input',opacity);\n"
    "show();opacity();\n"
    "window.addEventListener('load',function(){\n"
    "  var imgs=document.querySelectorAll('img'),n=0;\n"
    "  imgs.forEach(function(i){i.dataset.naturalWidth=i.naturalWidth;i.dataset.naturalHeight=i.naturalHeight;"
    "if(i.complete&&i.naturalWidth>0)n++;});\n"
    "  document.body.dataset.imagesDecoded=n;document.body.dataset.imagesTotal=imgs.length;\n"    "  document.querySelectorAll('.stack').forEach(function(s){var r=s.getBoundingClientRect();"
    "s.dataset.rect=[r.left+window.scrollX,r.top+window.scrollY,r.width,r.height].map(Math.round).join(',');});\n"
    "});\n"
    "})();\n";

static void put_summary(rf_buf *b, const rf_read_result *r)
{
    rf_buf_puts(b, "<section id=\"study\"><h2>Study</h2>\n<table class=\"kv\">\n");
    kv_row(b, "Study Instance UID", r->study.study_instance_uid);
    kv_row(b, "Study date", r->study.study_date);
    kv_row(b, "Study time", r->study.study_time);
    kv_row(b, "Description", r->study.study_description);
    kv_row(b, "Modalities", r->study.modalities);
    kv_row(b, "Prior study", r->study.prior_study_instance_uid);
    kv_row(b, "Prior study date", r->study.prior_study_date);
    if (r->include_phi) {
        kv_row(b, "Patient name", r->study.patient_name);
        kv_row(b, "Patient ID", r->study.patient_id);
        kv_row(b, "Birth date", r->study.patient_birth_date);
        kv_row(b, "Sex", r->study.patient_sex);
        kv_row(b, "Accession number", r->study.accession_number);
    }
    rf_buf_puts(b, "<tr><th>Inputs used</th><td>");
    int any = 0;
    for (int k = 0; k < RF_MODALITY_COUNT; k++)
        if (r->inputs_used[k]) {
            rf_buf_printf(b, "%s%s", any ? ", " : "", rf_modality_name((rf_modality)k));
            any = 1;
        }
    rf_buf_printf(b, "%s</td></tr>\n", any ? "" : "none");
    kv_row(b, "Model", r->model.name);
    kv_row(b, "Model version", r->model.version);
    kv_row(b, "Model SHA-256", r->model.sha256);
    kv_row(b, "Backend", r->model.backend);
    kv_row(b, "Precision", r->model.precision);
    kv_row(b, "Saliency", r->saliency);
    kv_row(b, "radfuse", r->tool_version ? r->tool_version : RADFUSE_VERSION);
    kv_row(b, "Created", r->created);
    rf_buf_puts(b, "</table></section>\n");
}

static void put_findings(rf_buf *b, const rf_read_result *r, const size_t *order)
{
    rf_buf_puts(b, "<section id=\"findings-section\"><h2>Findings</h2>\n<table id=\"findings\">\n<thead><tr>"
                   "<th>Finding</th><th>Probability</th><th>Threshold</th><th>Result</th>"
                   "<th>Image weight</th><th>Text weight</th><th>Labs weight</th><th>Prior weight</th>"
                   "</tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < r->nfindings; i++) {
        const rf_result_finding *f = &r->findings[order[i]];
        rf_buf_puts(b, "<tr class=\"finding");
        rf_buf_puts(b, f->positive ? " positive" : "");
        rf_buf_puts(b, "\" data-finding=\"");
        escs(b, f->code);
        rf_buf_printf(b, "\" data-probability=\"%.6f\"><td>", f->probability);
        escs(b, f->display ? f->display : f->code);
        rf_buf_printf(b, "</td><td class=\"num\">%.3f</td><td class=\"num\">%.3f</td><td class=\"%s\">%s</td>",
                      f->probability, f->threshold, f->positive ? "pos" : "neg",
                      f->positive ? "positive" : "negative");
        for (int k = 0; k < RF_MODALITY_COUNT; k++)
            rf_buf_printf(b, "<td class=\"num\">%.2f</td>", f->input_weight[k]);
        rf_buf_puts(b, "</tr>\n");
    }
    rf_buf_puts(b, "</tbody></table></section>\n");
}

static int put_images(rf_buf *b, const rf_read_result *r, const size_t *order, const rf_colormap *cm, rf_err *err)
{
    rf_buf_puts(b, "<section id=\"images-section\"><h2>Images</h2>\n<div class=\"controls\">\n"
                   "<label>Finding <select id=\"finding-select\">\n");
    for (size_t i = 0; i < r->nfindings; i++) {
        const rf_result_finding *f = &r->findings[order[i]];
        rf_buf_puts(b, "<option value=\"");
        escs(b, f->code);
        rf_buf_printf(b, "\" data-finding=\"");
        escs(b, f->code);
        rf_buf_printf(b, "\"%s>", i == 0 ? " selected" : "");
        escs(b, f->display ? f->display : f->code);
        rf_buf_printf(b, " (%.3f)</option>\n", f->probability);
    }
    rf_buf_puts(b, "</select></label>\n<label>Overlay opacity <input type=\"range\" id=\"opacity\" min=\"0\" "
                   "max=\"100\" value=\"50\"> <span id=\"opacity-value\">50%</span></label>\n"
                   "<div class=\"legend\">0 <span class=\"bar\" style=\"background:linear-gradient(to right");
    for (int i = 0; i <= 16; i++) {
        const uint8_t *c = rf_colormap_at(cm, (float)i / 16);
        rf_buf_printf(b, ", rgb(%d, %d, %d) %d%%", c[0], c[1], c[2], i * 100 / 16);
    }
    rf_buf_printf(b, ")\"></span> 1 <span class=\"muted\">(%s; values below %.1f transparent)</span></div>\n"
                     "<div id=\"legend-label\" class=\"muted\"></div>\n</div>\n",
                  cm->name, (double)HTML_FLOOR);
    int rc = RF_OK;
    for (size_t i = 0; i < r->nimages && !rc; i++) {
        const rf_result_image *im = &r->images[i];
        if (!im->used || !im->display)
            continue;
        rf_buf_printf(b, "<figure class=\"study-image\" data-image=\"%zu\"><div class=\"stack\">"
                         "<img class=\"base\" alt=\"image %zu\" src=\"",
                      i, i);
        rc = put_display(b, im, err);
        rf_buf_puts(b, "\">");
        for (size_t k = 0; k < r->nfindings && !rc; k++) {
            const rf_result_finding *f = &r->findings[order[k]];
            for (size_t m = 0; m < f->nmaps && !rc; m++) {
                if (f->maps[m].image != i)
                    continue;
                rf_buf_puts(b, "<img class=\"overlay\" data-finding=\"");
                escs(b, f->code);
                rf_buf_printf(b, "\" data-peak-row=\"%d\" data-peak-col=\"%d\" alt=\"saliency of ",
                              f->maps[m].peak_row, f->maps[m].peak_col);
                escs(b, f->display ? f->display : f->code);
                rf_buf_puts(b, "\" src=\"");
                rc = put_map(b, im, &f->maps[m], cm, err);
                rf_buf_puts(b, "\">");
            }
        }
        rf_buf_puts(b, "</div><figcaption>");
        escs(b, rf_result_shown_path(r, im->path));
        rf_buf_printf(b, " &middot; frame %d", im->frame);
        if (im->modality) {
            rf_buf_puts(b, " &middot; ");
            escs(b, im->modality);
        }
        if (im->view) {
            rf_buf_puts(b, " ");
            escs(b, im->view);
        }
        rf_buf_printf(b, " &middot; %d &times; %d", im->cols, im->rows);
        if (im->reason) {
            rf_buf_puts(b, " &middot; ");
            escs(b, im->reason);
        }
        rf_buf_puts(b, "</figcaption></figure>\n");
    }
    int skipped = 0;
    for (size_t i = 0; i < r->nimages; i++) {
        const rf_result_image *im = &r->images[i];
        if (im->used)
            continue;
        if (!skipped++)
            rf_buf_puts(b, "<h3>Skipped images</h3>\n<ul id=\"skipped\">\n");
        rf_buf_printf(b, "<li data-image=\"%zu\">", i);
        escs(b, rf_result_shown_path(r, im->path));
        rf_buf_puts(b, ": ");
        escs(b, im->reason);
        rf_buf_puts(b, "</li>\n");
    }
    if (skipped)
        rf_buf_puts(b, "</ul>\n");
    rf_buf_puts(b, "</section>\n");
    return rc;
}

static int put_notes(rf_buf *b, const rf_read_result *r, const size_t *order, rf_err *err)
{
    if (!r->nnotes)
        return RF_OK;
    size_t maxspans = 0;
    for (size_t i = 0; i < r->nfindings; i++)
        maxspans = r->findings[i].nspans > maxspans ? r->findings[i].nspans : maxspans;
    size_t *cuts = malloc((2 * maxspans + 2) * sizeof *cuts);
    if (!cuts)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    rf_buf_puts(b, "<section id=\"notes-section\"><h2>Notes</h2>\n<p class=\"muted\">Evidence for the selected "
                   "finding: orange raised its probability, blue lowered it; opacity by weight.</p>\n");
    for (size_t ni = 0; ni < r->nnotes; ni++) {
        const rf_result_note *n = &r->notes[ni];
        rf_buf_printf(b, "<article class=\"note\" data-note=\"%zu\"><h3>", ni);
        escs(b, n->path ? rf_result_shown_path(r, n->path) : "note");
        if (n->kind) {
            rf_buf_puts(b, " <span class=\"muted\">(");
            escs(b, n->kind);
            rf_buf_puts(b, n->used ? ")</span>" : ", not used)</span>");
        }
        rf_buf_puts(b, "</h3>\n");
        if (!r->nfindings) {
            rf_buf_puts(b, "<pre class=\"note-text\">");
            if (n->text)
                put_marked_note(b, n, ni, NULL, cuts);
            rf_buf_puts(b, "</pre>\n");
        }
        for (size_t k = 0; k < r->nfindings; k++) {
            const rf_result_finding *f = &r->findings[order[k]];
            rf_buf_puts(b, "<pre class=\"note-text\" data-finding=\"");
            escs(b, f->code);
            rf_buf_puts(b, "\">");
            if (n->text)
                put_marked_note(b, n, ni, f, cuts);
            rf_buf_puts(b, "</pre>\n");
        }
        rf_buf_puts(b, "</article>\n");
    }
    rf_buf_puts(b, "</section>\n");
    free(cuts);
    return RF_OK;
}

static void put_tables(rf_buf *b, const rf_read_result *r)
{
    if (r->nlabs) {
        rf_buf_puts(b, "<section id=\"labs-section\"><h2>Labs</h2>\n<table id=\"labs\"><thead><tr><th>Lab</th>"
                       "<th>LOINC</th><th>Value</th><th>Unit</th><th>Flag</th><th>Weight</th></tr></thead><tbody>\n");
        for (size_t i = 0; i < r->nlabs; i++) {
            const rf_result_lab *l = &r->labs[i];
            rf_buf_puts(b, "<tr><td>");
            escs(b, l->name);
            rf_buf_puts(b, "</td><td>");
            escs(b, l->loinc);
            rf_buf_printf(b, "</td><td class=\"num\">%.6g</td><td>", l->value);
            escs(b, l->unit);
            rf_buf_puts(b, "</td><td>");
            escs(b, l->flag);
            rf_buf_printf(b, "</td><td class=\"num\">%.2f</td></tr>\n", l->weight);
        }
        rf_buf_puts(b, "</tbody></table></section>\n");
    }
    rf_buf_puts(b, "<section id=\"warnings-section\"><h2>Warnings</h2>\n");
    if (!r->nwarnings)
        rf_buf_puts(b, "<p class=\"muted\">None.</p>\n");
    else
        rf_buf_puts(b, "<ul id=\"warnings\">\n");
    for (size_t i = 0; i < r->nwarnings; i++) {
        rf_buf_puts(b, "<li>");
        escs(b, r->warnings[i]);
        rf_buf_puts(b, "</li>\n");
    }
    if (r->nwarnings)
        rf_buf_puts(b, "</ul>\n");
    rf_buf_puts(b, "</section>\n<section id=\"timings-section\"><h2>Timings</h2>\n<table id=\"timings\">"
                   "<thead><tr><th>Stage</th><th>ms</th></tr></thead><tbody>\n");
    double total = 0;
    for (size_t i = 0; i < r->ntimings; i++) {
        rf_buf_puts(b, "<tr><td>");
        escs(b, r->timings[i].stage);
        rf_buf_printf(b, "</td><td class=\"num\">%.1f</td></tr>\n", r->timings[i].ms);
        total += r->timings[i].ms;
    }
    rf_buf_printf(b, "<tr><th>total</th><td class=\"num\">%.1f</td></tr>\n</tbody></table></section>\n", total);
}

int rf_result_write_html(const rf_read_result *r, const char *outdir, rf_err *err)
{
    size_t plen = strlen(outdir) + 16;
    char *path = malloc(plen);
    if (!path)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", outdir);
    snprintf(path, plen, "%s/report.html", outdir);
    int rc = rf_result_check(r, path, err);
    rf_colormap cm;
    size_t *order = NULL;
    if (!rc)
        rc = rf_colormap_get(NULL, &cm, err);
    if (!rc && !(order = rf_result_order(r)))
        rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    rf_buf b = {0};
    rf_err e;
    if (!rc) {
        rf_buf_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                        "<title>radfuse read</title>\n<style>\n");
        rf_buf_puts(&b, page_style);
        rf_buf_puts(&b, "</style>\n</head>\n<body>\n<header><h1>radfuse read</h1>\n"
                        "<p class=\"disclaimer\" id=\"disclaimer\">Research use only, not a medical device. "
                        "These probabilities are not a diagnosis; a radiologist reads the study.</p>\n</header>\n");
        put_summary(&b, r);
        put_findings(&b, r, order);
        rc = put_images(&b, r, order, &cm, &e);
        if (!rc)
            rc = put_notes(&b, r, order, &e);
        if (rc)
            rc = rf_err_set(err, rc, "%s: %s", path, e.msg);
    }
    if (!rc) {
        put_tables(&b, r);
        rf_buf_puts(&b, "<footer><p class=\"muted\">radfuse ");
        escs(&b, r->tool_version ? r->tool_version : RADFUSE_VERSION);
        rf_buf_puts(&b, " &middot; research use only, not a medical device.</p></footer>\n<script>\n");
        rf_buf_puts(&b, page_script);
        rf_buf_puts(&b, "</script>\n</body>\n</html>\n");
        if (b.oom)
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    if (!rc)
        rc = rf_write_file_atomic(path, b.p, b.n, err);
    rf_buf_free(&b);
    free(order);
    free(path);
    return rc;
}
