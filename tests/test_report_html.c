/*
 * report.html (report/html.c) in headless Chromium (Debian's chromium,
 * scripts/install-deps.sh): the page of a read with hostile strings (a note
 * with <script>, quotes and ampersands, a finding name with markup, a
 * warning with an <img onerror>), checked three ways:
 * - the file: no URL of any kind, one <script> (the page's own), every
 *   hostile string escaped, no patient identifier, the research-use line;
 * - the DOM after load (--dump-dom): one table row per finding in order of
 *   probability, every image decoded (the page's script writes
 *   naturalWidth/Height into data attributes), only the selected finding's
 *   overlay shown, the evidence spans marked with the span's text, no
 *   element made from the hostile strings;
 * - a screenshot (--screenshot): not blank; at the selected finding's peak
 *   the overlay's yellow is on the image, where its map is 0 the image is
 *   gray, and at a hidden finding's peak there is no color.
 */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/result.h"
#include "tests/report_fixture.h"
#include "tests/testutil.h"

#define CHROMIUM "/usr/bin/chromium"
#define WIN_W 1200
#define WIN_H 2400

static const char hostile_note[] = "Pt states: <script>alert('x')</script> & \"quotes\" \xE2\x80\x94 caf\xC3\xA9.\n"
                                   "Follow-up <b>bold</b> if worse.\n";
#define HOSTILE_SPAN "<script>alert('x')</script>"
#define HOSTILE_NAME "<b>Effusion</b> \"quoted\" & 'single'"
#define HOSTILE_CODE "effusion\"><i>x</i>"
#define HOSTILE_WARNING "<img src=x onerror=alert(1)>"

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + k, needle))
        n++;
    return n;
}

/* The fixture with hostile strings added: a second note (with a span of
 * COVID-19 over its <script>), a finding name and code, a warning. */
static void build(rf_read_result *r)
{
    fixture_build(r, 0, 96, 80);
    rf_result_note *notes = realloc(r->notes, 2 * sizeof *notes);
    if (!notes)
        exit(1);
    r->notes = notes;
    r->nnotes = 2;
    notes[1].path = fix_strdup("/data/notes/" FIX_PATIENT_ID "/phone call.txt");
    notes[1].kind = fix_strdup("note");
    notes[1].text = fix_strdup(hostile_note);
    notes[1].len = strlen(hostile_note);
    notes[1].used = 1;
    rf_result_finding *f = &r->findings[0];
    rf_result_span *s = &f->spans[f->nspans++];
    s->note = 1;
    s->begin = (size_t)(strstr(hostile_note, HOSTILE_SPAN) - hostile_note);
    s->end = s->begin + strlen(HOSTILE_SPAN);
    s->weight = 0.5f;
    /* overlapping spans of pneumonia: a weaker one inside a stronger one
     * (hidden by it) and one reaching into it from the left (kept outside it) */
    rf_result_finding *pn = &r->findings[1];
    const char *note = r->notes[0].text;
    rf_result_span *o = &pn->spans[pn->nspans++];
    o->note = 0;
    o->begin = (size_t)(strstr(note, "ground-glass") - note);
    o->end = o->begin + strlen("ground-glass");
    o->weight = 0.3f;
    o = &pn->spans[pn->nspans++];
    o->note = 0;
    o->begin = (size_t)(strstr(note, "Bilateral patchy") - note);
    o->end = o->begin + strlen("Bilateral patchy");
    o->weight = -0.6f;
    free(r->findings[2].display);
    r->findings[2].display = fix_strdup(HOSTILE_NAME);
    free(r->findings[2].code);
    r->findings[2].code = fix_strdup(HOSTILE_CODE);
    if (rf_result_warn(r, "%s", HOSTILE_WARNING))
        exit(1);
}

static void check_file(const char *html)
{
    CHECKF(strstr(html, "://") == NULL, "a URL in the page: %.60s", strstr(html, "://"));
    CHECK(strstr(html, "url(") == NULL && strstr(html, "@import") == NULL && strstr(html, "<link") == NULL &&
          strstr(html, "<iframe") == NULL);
    CHECKF(count(html, "<script") == 1, "%zu <script in the page", count(html, "<script"));
    CHECK(strstr(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;") != NULL);
    CHECK(strstr(html, "&lt;b&gt;Effusion&lt;/b&gt; &quot;quoted&quot; &amp; &#39;single&#39;") != NULL);
    CHECK(strstr(html, "&lt;img src=x onerror=alert(1)&gt;") != NULL);
    CHECK(strstr(html, "effusion&quot;&gt;&lt;i&gt;x&lt;/i&gt;") != NULL);
    CHECK(strstr(html, "<b>") == NULL && strstr(html, "<img src=x") == NULL && strstr(html, "<i>") == NULL);
    CHECK(strstr(html, "Research use only, not a medical device") != NULL);
    CHECK(strstr(html, FIX_PATIENT_ID) == NULL && strstr(html, FIX_PATIENT_NAME) == NULL &&
          strstr(html, FIX_ACCESSION) == NULL);
    CHECK(strstr(html, "\xE2\x80\x94 caf\xC3\xA9") != NULL); /* UTF-8 passes through */
    CHECK(count(html, "src=\"data:image/png;base64,") == 4);
}

/* The text of every <mark> inside the element that starts at from (up to
 * its closing </pre>), joined by '|'. */
static void marks_in(const char *from, char *out, size_t cap)
{
    const char *end = strstr(from, "</pre>");
    size_t n = 0;
    out[0] = 0;
    for (const char *p = strstr(from, "<mark"); p && p < end; p = strstr(p + 1, "<mark")) {
        const char *t = strchr(p, '>') + 1, *z = strstr(t, "</mark>");
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%.*s|", (int)(z - t), t);
    }
}

typedef struct rect {
    int x, y, w, h;
} rect;

static rect check_dom(const char *dom, const rf_read_result *r)
{
    rect rc = {0, 0, 0, 0};
    /* the findings table */
    const char *tbody = strstr(dom, "<tbody>");
    CHECK(tbody && strstr(dom, "id=\"findings\""));
    CHECKF(count(dom, "<tr class=\"finding") == 3, "%zu finding rows", count(dom, "<tr class=\"finding"));
    double prev = 2;
    for (const char *p = strstr(dom, "data-probability=\""); p; p = strstr(p + 1, "data-probability=\"")) {
        double v = strtod(p + 18, NULL);
        CHECK(v <= prev);
        prev = v;
    }
    CHECK(strstr(dom, "<tr class=\"finding positive selected\" data-finding=\"covid19\"") != NULL);
    /* images decoded */
    CHECKF(strstr(dom, "data-images-decoded=\"4\"") && strstr(dom, "data-images-total=\"4\""),
           "the page's load handler did not see 4 decoded images");
    CHECK(count(dom, "data-natural-width=\"80\"") == 4 && count(dom, "data-natural-height=\"96\"") == 4);
    CHECK(count(dom, "data-natural-width=\"0\"") == 0);
    /* only the selected finding's overlay is shown */
    size_t shown = 0, hidden = 0;
    for (const char *p = strstr(dom, "<img class=\"overlay\""); p; p = strstr(p + 1, "<img class=\"overlay\"")) {
        const char *gt = strchr(p, '>');
        const char *q = strstr(p, " hidden");
        int h = q && q < gt;
        hidden += h;
        if (!h) {
            shown++;
            CHECK(strncmp(p, "<img class=\"overlay\" data-finding=\"covid19\"", 43) == 0);
        }
    }
    CHECKF(shown == 1 && hidden == 2, "%zu overlays shown, %zu hidden", shown, hidden);
    /* no element from the hostile strings */
    CHECKF(count(dom, "<script") == 1, "%zu scripts in the DOM", count(dom, "<script"));
    CHECK(strstr(dom, "<b>") == NULL && strstr(dom, "<i>") == NULL && strstr(dom, "onerror=alert(1)>") == NULL);
    CHECK(strstr(dom, "&lt;img src=x onerror=alert(1)&gt;") != NULL);
    /* the evidence: note 0 and note 1 under COVID-19 (shown), note 0 under pneumonia (hidden) */
    char marks[4096];
    const char *covid0 = strstr(dom, "<pre class=\"note-text\" data-finding=\"covid19\">");
    CHECK(covid0 != NULL);
    if (covid0) {
        marks_in(covid0, marks, sizeof marks);
        CHECKF(strcmp(marks, "(38.9 \xC2\xB0" "C)|ground-glass opacities|RT-PCR positive for SARS-CoV-2|") == 0,
               "covid19 marks in note 0: %s", marks);
        const char *covid1 = strstr(covid0 + 1, "<pre class=\"note-text\" data-finding=\"covid19\">");
        CHECK(covid1 != NULL);
        if (covid1) {
            marks_in(covid1, marks, sizeof marks);
            CHECKF(strcmp(marks, "&lt;script&gt;alert('x')&lt;/script&gt;|") == 0, "covid19 marks in note 1: %s",
                   marks);
        }
    }
    const char *pn = strstr(dom, "<pre class=\"note-text\" data-finding=\"pneumonia\" hidden");
    CHECK(pn != NULL);
    if (pn) {
        marks_in(pn, marks, sizeof marks);
        CHECKF(strcmp(marks, "fever|Bilateral |patchy ground-glass opacities|") == 0, "pneumonia marks: %s", marks);
        const char *down = strstr(pn, "<mark class=\"down\" data-weight=\"-0.6000\"");
        CHECK(down && down < strstr(pn, "Bilateral"));
    }
    /* where the image is on the page */
    const char *rs = strstr(dom, "data-rect=\"");
    CHECK(rs != NULL);
    if (rs)
        CHECK(sscanf(rs + 11, "%d,%d,%d,%d", &rc.x, &rc.y, &rc.w, &rc.h) == 4);
    CHECKF(rc.w == 480 && rc.h == 576, "image shown at %d x %d", rc.w, rc.h);
    (void)r;
    return rc;
}

static uint8_t *read_screenshot(const char *path, int *w, int *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path))
        return NULL;
    im.format = PNG_FORMAT_RGB;
    uint8_t *buf = test_xmalloc(PNG_IMAGE_SIZE(im));
    if (!png_image_finish_read(&im, NULL, buf, 0, NULL)) {
        free(buf);
        return NULL;
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return buf;
}

/* The screenshot pixel at the center of image pixel (row, col). */
static const uint8_t *at(const uint8_t *shot, int sw, rect rc, int rows, int cols, int row, int col)
{
    int x = rc.x + (int)((col + 0.5) * rc.w / cols), y = rc.y + (int)((row + 0.5) * rc.h / rows);
    return shot + ((size_t)y * (size_t)sw + (size_t)x) * 3;
}

static int spread(const uint8_t *p)
{
    int lo = p[0], hi = p[0];
    for (int k = 1; k < 3; k++) {
        lo = p[k] < lo ? p[k] : lo;
        hi = p[k] > hi ? p[k] : hi;
    }
    return hi - lo;
}

static void check_screenshot(const char *path, rect rc, const rf_read_result *r)
{
    int w = 0, h = 0;
    uint8_t *shot = read_screenshot(path, &w, &h);
    CHECKF(shot != NULL, "%s: not a PNG", path);
    if (!shot)
        return;
    CHECKF(w == WIN_W && h == WIN_H, "screenshot %d x %d", w, h);
    long nonwhite = 0;
    for (long i = 0; i < (long)w * h; i++)
        nonwhite += shot[3 * i] < 240 || shot[3 * i + 1] < 240 || shot[3 * i + 2] < 240;
    CHECKF(nonwhite > (long)w * h / 50, "blank screenshot: %ld non-white pixels", nonwhite);
    if (rc.w <= 0 || rc.y + rc.h > h || rc.x + rc.w > w) {
        CHECKF(0, "image rect %d,%d %dx%d outside the screenshot", rc.x, rc.y, rc.w, rc.h);
        free(shot);
        return;
    }
    int rows = r->images[0].rows, cols = r->images[0].cols;
    const rf_result_map *covid = &r->findings[0].maps[0], *pneu = &r->findings[1].maps[0];
    const uint8_t *p = at(shot, w, rc, rows, cols, covid->peak_row, covid->peak_col);
    /* viridis' top (253, 231, 37) at opacity 0.5 over gray: red and green well above blue */
    CHECKF(p[0] > p[2] + 60 && p[1] > p[2] + 60, "at the COVID-19 peak: %d,%d,%d", p[0], p[1], p[2]);
    p = at(shot, w, rc, rows, cols, pneu->peak_row, pneu->peak_col);
    CHECKF(spread(p) <= 3, "at the (hidden) pneumonia peak: %d,%d,%d", p[0], p[1], p[2]);
    p = at(shot, w, rc, rows, cols, rows - 3, 3);
    CHECK(covid->values[(size_t)(rows - 3) * (size_t)cols + 3] == 0);
    CHECKF(spread(p) <= 3 && p[0] > 10, "where the map is 0: %d,%d,%d", p[0], p[1], p[2]);
    free(shot);
}

static char *run_chromium(const char *profile, const char *mode, const char *url, int *status)
{
    char budget[] = "--virtual-time-budget=10000", size[64], prof[600];
    snprintf(size, sizeof size, "--window-size=%d,%d", WIN_W, WIN_H);
    snprintf(prof, sizeof prof, "--user-data-dir=%s", profile);
    /* --disable-dev-shm-usage: containers often give /dev/shm a few MB */
    char *argv[] = {"/usr/bin/timeout", "120", CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run",
                    "--disable-dev-shm-usage", prof, budget, size, (char *)mode, (char *)url, NULL};
    size_t cap = 16u << 20;
    char *out = test_xmalloc(cap);
    static char errb[65536];
    *status = test_run(argv, out, cap, errb, sizeof errb);
    if (*status != 0)
        fprintf(stderr, "chromium %s exited %d (is Debian's chromium installed? scripts/install-deps.sh):\n%s\n", mode,
                *status, errb);
    return out;
}

int main(void)
{
    char dir[256];
    test_tmpdir(dir, sizeof dir);
    rf_read_result r;
    build(&r);
    rf_err e;
    int rc = rf_result_write_html(&r, dir, &e);
    CHECKF(rc == 0, "write_html: %s", e.msg);
    char path[512], url[600], profile[600], shotpath[600], shotarg[700];
    snprintf(path, sizeof path, "%s/report.html", dir);
    snprintf(url, sizeof url, "file://%s", path);
    snprintf(profile, sizeof profile, "%s/chromium-profile", dir);
    size_t n;
    char *html = test_read_file(path, &n);
    CHECK(html != NULL);
    if (html)
        check_file(html);

    int st;
    char *dom = run_chromium(profile, "--dump-dom", url, &st);
    CHECKF(st == 0, "chromium --dump-dom failed");
    rect where = {0, 0, 0, 0};
    if (st == 0)
        where = check_dom(dom, &r);
    snprintf(shotpath, sizeof shotpath, "%s/screenshot.png", dir);
    snprintf(shotarg, sizeof shotarg, "--screenshot=%s", shotpath);
    char *out = run_chromium(profile, shotarg, url, &st);
    CHECKF(st == 0, "chromium --screenshot failed");
    if (st == 0)
        check_screenshot(shotpath, where, &r);
    free(out);
    free(dom);
    free(html);

    /* a read with nothing: no findings, images, notes; the page still stands */
    rf_read_result empty;
    memset(&empty, 0, sizeof empty);
    char dir2[256];
    test_tmpdir(dir2, sizeof dir2);
    CHECKF(rf_result_write_html(&empty, dir2, &e) == 0, "%s", e.msg);
    snprintf(path, sizeof path, "%s/report.html", dir2);
    html = test_read_file(path, &n);
    CHECK(html && strstr(html, "</html>") && count(html, "<tr class=\"finding") == 0);
    free(html);
    rf_result_free(&r);
    return test_finish("test_report_html");
}
