/*
 * Extraction scored against coded reports in the Indiana University layout:
 * gold from the MeSH codes of each report (mesh_map.tsv) or from a label file
 * such as NegBio's expert labels (label_map.tsv). The split is by uid parity
 * (even: development, odd: held out), so that anyone can reproduce it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/clin_internal.h"
#include "text/csv.h"
#include "text/text_internal.h"

#define EVAL_RECORD_MAX ((size_t)16 << 20)

static bool ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

/* A non-negative decimal integer of at most 18 digits, else -1. */
static int64_t parse_uid(const char *s)
{
    int64_t v = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 18)
            return -1;
        v = v * 10 + (s[n] - '0');
    }
    return n ? v : -1;
}

/* MeSH entries ("Opacity/lung/base;Cardiomegaly/mild") into gold (one byte per
 * finding). Returns false when a rule says the report has no gold. */
static bool mesh_gold(const rf_clin_rules *r, const char *mesh, uint8_t *gold, char *scratch)
{
    memset(gold, 0, (size_t)r->nfindings);
    bool keep = true;
    const char *p = mesh;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        /* the entry, lowercase, spaces collapsed, split at '/' into NUL-separated parts */
        char *o = scratch;
        const char *parts[64];
        int nparts = 0;
        parts[nparts++] = o;
        for (size_t i = 0; i < n; i++) {
            char c = p[i];
            c = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
            if (c == '\t' || c == '\r' || c == '\n')
                c = ' ';
            if (c == '/') {
                while (o > parts[nparts - 1] && o[-1] == ' ')
                    o--;
                *o++ = 0;
                if (nparts == 64)
                    break;
                parts[nparts++] = o;
                continue;
            }
            if (c == ' ' && (o == parts[nparts - 1] || o[-1] == ' '))
                continue;
            *o++ = c;
        }
        while (o > parts[nparts - 1] && o[-1] == ' ')
            o--;
        *o = 0;
        for (int k = 0; k < r->nmesh; k++) {
            const clin_mesh_rule *m = &r->mesh[k];
            if (strcmp(m->term, parts[0]))
                continue;
            bool all = true;
            for (int q = 0; q < m->nquals && all; q++) {
                bool found = false;
                for (int j = 1; j < nparts && !found; j++)
                    found = strcmp(m->quals[q], parts[j]) == 0;
                all = found;
            }
            if (!all)
                continue;
            if (m->finding < 0)
                keep = false;
            else
                gold[m->finding] = 1;
        }
        p += n + (semi ? 1 : 0);
    }
    for (int f = r->nfindings - 1; f >= 0; f--)
        if (gold[f] && r->findings[f].parent >= 0)
            gold[r->findings[f].parent] = 1;
    return keep;
}

/* A label file: uid -> gold row, sorted by uid. */
typedef struct label_rows {
    int64_t *uid;
    uint8_t *gold; /* n * nfindings */
    int64_t n;
} label_rows;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int load_label_rows(const rf_clin_rules *r, const rf_clin_eval_opts *o, label_rows *lr, uint8_t *named,
                           rf_err *err)
{
    memset(lr, 0, sizeof *lr);
    const char *name = o->labels_name ? o->labels_name : "labels";
    text_csv c;
    text_csv_opts co = {.skip_blank = true};
    text_csv_init(&c, name, o->labels_csv, o->labels_len, &co);
    bool got;
    int rc = text_csv_read(&c, &got, err);
    if (!rc && !got)
        rc = rf_err_set(err, RF_EFORMAT, "%s: empty", name);
    size_t ncols = c.nfields, filename = (size_t)-1;
    int *colmap = NULL;
    if (!rc && !(colmap = malloc(ncols * sizeof *colmap)))
        rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
    for (size_t i = 0; !rc && i < ncols; i++) {
        const char *h = text_csv_field(&c, i, NULL);
        colmap[i] = -1;
        if (ieq(h, "filename"))
            filename = i;
        for (int k = 0; k < r->nlabels; k++)
            if (strcmp(r->labels[k].column, h) == 0)
                colmap[i] = r->labels[k].finding;
    }
    if (!rc && filename == (size_t)-1)
        rc = rf_err_set(err, RF_EFORMAT, "%s: no 'filename' column", name);
    int64_t cap = 0;
    int64_t *order = NULL;
    uint8_t *rows = NULL;
    int64_t *uids = NULL;
    while (!rc && !(rc = text_csv_read(&c, &got, err)) && got) {
        if (c.nfields != ncols) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: %zu fields, the header has %zu", name, c.line, c.nfields,
                            ncols);
            break;
        }
        const char *fn = text_csv_field(&c, filename, NULL);
        if (strncmp(fn, "CXR", 3) == 0)
            fn += 3;
        int64_t uid = parse_uid(fn);
        if (uid < 0) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: filename is not CXR<uid>", name, c.line);
            break;
        }
        if (lr->n == cap) {
            cap = cap ? cap * 2 : 1024;
            int64_t *u = realloc(uids, (size_t)cap * sizeof *u);
            if (u)
                uids = u;
            uint8_t *g = u ? realloc(rows, (size_t)cap * (size_t)r->nfindings) : NULL;
            if (!g) {
                rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
                break;
            }
            rows = g;
        }
        uint8_t *g = rows + lr->n * r->nfindings;
        memset(g, 0, (size_t)r->nfindings);
        for (size_t i = 0; i < ncols; i++) {
            if (colmap[i] < 0)
                continue;
            const char *v = text_csv_field(&c, i, NULL);
            if (strcmp(v, "0") && strcmp(v, "1")) {
                rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: label '%s' is not 0 or 1", name, c.line,
                                text_csv_field(&c, i, NULL));
                break;
            }
            named[colmap[i]] = 1;
            if (v[0] == '1')
                g[colmap[i]] = 1;
        }
        uids[lr->n++] = uid;
    }
    text_csv_free(&c);
    free(colmap);
    if (!rc && lr->n) {
        /* sort row indexes by uid; a uid listed twice is an error */
        order = malloc((size_t)lr->n * 2 * sizeof *order);
        uint8_t *sorted = malloc((size_t)lr->n * (size_t)r->nfindings);
        if (!order || !sorted) {
            free(sorted);
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
        } else {
            for (int64_t i = 0; i < lr->n; i++) {
                order[2 * i] = uids[i];
                order[2 * i + 1] = i;
            }
            qsort(order, (size_t)lr->n, 2 * sizeof *order, cmp_i64);
            for (int64_t i = 0; i < lr->n; i++) {
                memcpy(sorted + i * r->nfindings, rows + order[2 * i + 1] * r->nfindings, (size_t)r->nfindings);
                uids[i] = order[2 * i];
                if (i && uids[i] == uids[i - 1]) {
                    rc = rf_err_set(err, RF_EFORMAT, "%s: CXR%lld listed twice", name, (long long)uids[i]);
                    break;
                }
            }
            free(rows);
            rows = sorted;
        }
    }
    free(order);
    if (rc) {
        free(uids);
        free(rows);
        return rc;
    }
    lr->uid = uids;
    lr->gold = rows;
    return RF_OK;
}

static const uint8_t *label_row(const rf_clin_rules *r, const label_rows *lr, int64_t uid)
{
    int64_t lo = 0, hi = lr->n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (lr->uid[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < lr->n && lr->uid[lo] == uid ? lr->gold + lo * r->nfindings : NULL;
}

static int append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n + 1)
            c *= 2;
        char *b = realloc(*buf, c);
        if (!b)
            return -1;
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

void rf_clin_eval_free(rf_clin_eval *ev)
{
    if (!ev)
        return;
    free(ev->per);
    memset(ev, 0, sizeof *ev);
}

int rf_clin_eval_iu(const rf_clin_rules *r, const char *csv, size_t len, const char *name,
                    const rf_clin_eval_opts *opts, rf_clin_eval *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    rf_clin_eval_opts o = opts ? *opts : (rf_clin_eval_opts){0};
    if (!name)
        name = "reports";
    if (o.min_support <= 0)
        o.min_support = 50;
    int nf = r->nfindings, rc = RF_OK;
    out->n_findings = nf;
    out->per = calloc((size_t)nf, sizeof *out->per);
    uint8_t *named = calloc((size_t)nf, 1), *gold = malloc((size_t)nf), *pred = malloc((size_t)nf);
    char *scratch = malloc(EVAL_RECORD_MAX + 1), *note = NULL;
    size_t note_len = 0, note_cap = 0;
    label_rows lr = {0};
    text_csv c;
    text_csv_opts co = {.skip_blank = true, .max_record_size = EVAL_RECORD_MAX};
    text_csv_init(&c, name, csv, len, &co);
    if (!out->per || !named || !gold || !pred || !scratch) {
        rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    if (o.labels_csv) {
        if ((rc = load_label_rows(r, &o, &lr, named, err)))
            goto done;
    } else {
        for (int k = 0; k < r->nmesh; k++)
            for (int f = r->mesh[k].finding; f >= 0; f = r->findings[f].parent)
                named[f] = 1;
    }
    bool got;
    if ((rc = text_csv_read(&c, &got, err)))
        goto done;
    if (!got) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: empty", name);
        goto done;
    }
    size_t ncols = c.nfields, col[4] = {(size_t)-1, (size_t)-1, (size_t)-1, (size_t)-1};
    static const char *const want[4] = {"uid", "MeSH", "findings", "impression"};
    for (size_t i = 0; i < ncols; i++)
        for (int k = 0; k < 4; k++)
            if (ieq(text_csv_field(&c, i, NULL), want[k]))
                col[k] = i;
    for (int k = 0; k < 4; k++)
        if (col[k] == (size_t)-1 && !(k == 1 && o.labels_csv)) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: no '%s' column (the Indiana University layout: uid, MeSH, findings, impression)",
                            name, want[k]);
            goto done;
        }
    while (!(rc = text_csv_read(&c, &got, err)) && got) {
        if (c.nfields != ncols) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: %zu fields, the header has %zu", name, c.line, c.nfields,
                            ncols);
            goto done;
        }
        int64_t uid = parse_uid(text_csv_field(&c, col[0], NULL));
        if (uid < 0) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: uid is not a non-negative integer", name, c.line);
            goto done;
        }
        bool keep;
        if (o.labels_csv) {
            const uint8_t *row = label_row(r, &lr, uid);
            keep = row != NULL;
            if (keep)
                memcpy(gold, row, (size_t)nf);
        } else {
            keep = mesh_gold(r, text_csv_field(&c, col[1], NULL), gold, scratch);
        }
        bool in_split = o.split == RF_CLIN_SPLIT_ALL || (o.split == RF_CLIN_SPLIT_DEV) == (uid % 2 == 0);
        if (!keep) {
            out->n_skipped += in_split;
            continue;
        }
        for (int f = 0; f < nf; f++)
            out->per[f].support_all += gold[f];
        if (!in_split)
            continue;
        size_t flen, ilen;
        const char *fi = text_csv_field(&c, col[2], &flen), *im = text_csv_field(&c, col[3], &ilen);
        note_len = 0;
        if (append(&note, &note_len, &note_cap, "FINDINGS: ", 10) || append(&note, &note_len, &note_cap, fi, flen) ||
            append(&note, &note_len, &note_cap, "\nIMPRESSION: ", 13) ||
            append(&note, &note_len, &note_cap, im, ilen) || append(&note, &note_len, &note_cap, "\n", 1)) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
            goto done;
        }
        rf_clin_doc doc;
        if ((rc = rf_clin_extract(r, note, note_len, &doc, err))) {
            char msg[RF_ERR_MAX];
            snprintf(msg, sizeof msg, "%s", err->msg);
            rc = rf_err_set(err, rc, "%s: line %zu: %s", name, c.line, msg);
            goto done;
        }
        rf_clin_labels(r, &doc, pred);
        rf_clin_doc_free(&doc);
        out->n_reports++;
        for (int f = 0; f < nf; f++) {
            int p = pred[f] == RF_CLIN_LABEL_PRESENT || (pred[f] == RF_CLIN_LABEL_UNCERTAIN && o.uncertain_positive);
            rf_clin_score *s = &out->per[f];
            s->support += gold[f];
            if (p && gold[f])
                s->tp++;
            else if (p)
                s->fp++;
            else if (gold[f])
                s->fn++;
            else
                s->tn++;
        }
    }
    if (rc)
        goto done;
    double sum = 0;
    for (int f = 0; f < nf; f++) {
        rf_clin_score *s = &out->per[f];
        s->gold = named[f];
        s->precision = s->tp + s->fp ? (double)s->tp / (double)(s->tp + s->fp) : 0;
        s->recall = s->tp + s->fn ? (double)s->tp / (double)(s->tp + s->fn) : 0;
        s->f1 = s->precision + s->recall > 0 ? 2 * s->precision * s->recall / (s->precision + s->recall) : 0;
        s->in_macro = s->gold && s->support_all >= o.min_support;
        if (s->in_macro) {
            sum += s->f1;
            out->n_macro++;
        }
    }
    out->macro_f1 = out->n_macro ? sum / out->n_macro : 0;
done:
    text_csv_free(&c);
    free(lr.uid);
    free(lr.gold);
    free(named);
    free(gold);
    free(pred);
    free(scratch);
    free(note);
    if (rc)
        rf_clin_eval_free(out);
    return rc;
}
