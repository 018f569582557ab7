/* Labs as CSV: a header naming code,name,value,unit,low,high,time, one lab per row. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text/csv.h"
#include "text/labs_internal.h"

enum { C_CODE, C_NAME, C_VALUE, C_UNIT, C_LOW, C_HIGH, C_TIME, C_COUNT };
static const char *const columns[C_COUNT] = {"code", "name", "value", "unit", "low", "high", "time"};

/* s[0..n) without spaces around. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t'))
        s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
        (*n)--;
    return s;
}

static int row(text_csv *csv, const char *name, const size_t *col, rf_labs *L, const labs_base *base, rf_err *err)
{
    rf_lab *r;
    int rc = labs_new_lab(L, base, &r, err);
    if (rc)
        return rc;
    const char *f[C_COUNT];
    size_t n[C_COUNT];
    for (int c = 0; c < C_COUNT; c++) {
        f[c] = text_csv_field(csv, col[c], &n[c]);
        f[c] = trim(f[c], &n[c]);
    }
    if (!(r->source = labs_printf("%s:%zu", name, csv->line)))
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    if ((n[C_CODE] && (rc = labs_set_str(&r->code, f[C_CODE], n[C_CODE], err))) ||
        (n[C_NAME] && (rc = labs_set_str(&r->name, f[C_NAME], n[C_NAME], err))) ||
        (n[C_UNIT] && (rc = labs_set_str(&r->unit_raw, f[C_UNIT], n[C_UNIT], err))) ||
        (rc = labs_set_value(r, f[C_VALUE], n[C_VALUE], err)))
        return rc;
    bool lo = n[C_LOW] && labs_parse_number(f[C_LOW], n[C_LOW], &r->low);
    bool hi = n[C_HIGH] && labs_parse_number(f[C_HIGH], n[C_HIGH], &r->high);
    if ((n[C_LOW] && !lo) || (n[C_HIGH] && !hi)) {
        /* kept as text for the reader of the record; not a range radfuse can use */
        if (!(r->range_raw = labs_printf("low: %.*s, high: %.*s", (int)n[C_LOW], f[C_LOW], (int)n[C_HIGH], f[C_HIGH])))
            return rf_err_set(err, RF_ENOMEM, "out of memory");
    } else {
        r->has_low = lo;
        r->has_high = hi;
    }
    if (n[C_TIME]) {
        if ((rc = labs_set_str(&r->time_raw, f[C_TIME], n[C_TIME], err)))
            return rc;
        if (rf_time_parse_iso(f[C_TIME], n[C_TIME], &r->time))
            r->flags |= RF_LAB_BAD_TIME;
    }
    if (labs_finish(r))
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    return RF_OK;
}

int labs_read_csv(const char *name, const char *data, size_t len, rf_labs *L, const labs_base *base, rf_err *err)
{
    text_csv csv;
    text_csv_opts opts = {.skip_blank = true, .max_fields = 256};
    text_csv_init(&csv, name, data, len, &opts);
    bool got;
    int rc = text_csv_read(&csv, &got, err);
    if (!rc && !got)
        rc = rf_err_set(err, RF_EFORMAT, "%s: empty; a lab CSV starts with the header code,name,value,unit,low,high,time",
                        name);
    size_t col[C_COUNT];
    size_t ncols = csv.nfields;
    for (int c = 0; !rc && c < C_COUNT; c++) {
        col[c] = (size_t)-1;
        for (size_t i = 0; i < ncols; i++) {
            size_t n;
            const char *h = trim(text_csv_field(&csv, i, &n), &n);
            if (n == strlen(columns[c]) && strncasecmp(h, columns[c], n) == 0) {
                if (col[c] != (size_t)-1) {
                    rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: column '%s' appears twice in the header", name,
                                    csv.line, columns[c]);
                    break;
                }
                col[c] = i;
            }
        }
        if (!rc && col[c] == (size_t)-1)
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: line %zu: the header has no column '%s' (a lab CSV needs code,name,value,unit,low,"
                            "high,time)",
                            name, csv.line, columns[c]);
    }
    for (size_t i = 0; !rc && i < ncols; i++) {
        bool known = false;
        for (int c = 0; c < C_COUNT; c++)
            known |= col[c] == i;
        if (!known) {
            size_t n;
            const char *h = trim(text_csv_field(&csv, i, &n), &n);
            char *src = labs_printf("%s:%zu", name, csv.line);
            rc = src ? labs_issue(L, base, err, src, "column %zu ('%.*s') is not a lab column; ignored", i + 1,
                                  (int)(n > 64 ? 64 : n), h)
                     : rf_err_set(err, RF_ENOMEM, "out of memory");
            free(src);
        }
    }
    while (!rc) {
        rc = text_csv_read(&csv, &got, err);
        if (rc || !got)
            break;
        if (csv.nfields != ncols) {
            char *src = labs_printf("%s:%zu", name, csv.line);
            rc = src ? labs_issue(L, base, err, src, "%zu fields where the header has %zu; row skipped", csv.nfields,
                                  ncols)
                     : rf_err_set(err, RF_ENOMEM, "out of memory");
            free(src);
            continue;
        }
        rc = row(&csv, name, col, L, base, err);
        if (rc) { /* a cap or an allocation: name the row */
            rf_err inner = *err;
            rc = rf_err_set(err, rc, "%s:%zu: %s", name, csv.line, inner.msg);
        }
    }
    text_csv_free(&csv);
    return rc;
}
