/* Strict RFC 4180 CSV over a buffer in memory (csv.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/csv.h"
#include "text/text_internal.h"

void text_csv_init(text_csv *r, const char *name, const char *data, size_t len, const text_csv_opts *opts)
{
    memset(r, 0, sizeof *r);
    r->name = name ? name : "(csv)";
    r->data = data;
    r->len = len;
    r->next_line = 1;
    if (opts)
        r->opts = *opts;
    if (!r->opts.delim)
        r->opts.delim = ',';
    if (!r->opts.max_fields)
        r->opts.max_fields = 4096;
    if (!r->opts.max_record_size)
        r->opts.max_record_size = (size_t)1 << 20;
    /* Excel and others write a byte order mark; it is not part of the first field */
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
        r->pos = 3;
}

void text_csv_free(text_csv *r)
{
    free(r->buf);
    free(r->off);
    free(r->flen);
    r->buf = NULL;
    r->off = r->flen = NULL;
    r->buf_cap = r->fields_cap = 0;
}

const char *text_csv_field(const text_csv *r, size_t i, size_t *len)
{
    if (i >= r->nfields)
        return NULL;
    if (len)
        *len = r->flen[i];
    return r->buf + r->off[i];
}

static int fail(text_csv *r, int code, rf_err *err, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(text_csv *r, int code, rf_err *err, size_t line, const char *fmt, ...)
{
    r->pos = r->len; /* nothing sensible follows a syntax error */
    r->nfields = 0;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return rf_err_set(err, code, "%s: line %zu: %s", r->name, line, what);
}

/* The physical line of byte at, counting from start on line first. */
static size_t line_at(const char *d, size_t start, size_t at, size_t first)
{
    for (size_t i = start; i < at; i++)
        first += d[i] == '\n';
    return first;
}

static int buf_reserve(text_csv *r, size_t need)
{
    if (need <= r->buf_cap)
        return 0;
    size_t cap = r->buf_cap ? r->buf_cap : 256;
    while (cap < need)
        cap *= 2;
    char *b = realloc(r->buf, cap);
    if (!b)
        return -1;
    r->buf = b;
    r->buf_cap = cap;
    return 0;
}

static int push_field(text_csv *r, size_t off, size_t len)
{
    if (r->nfields == r->fields_cap) {
        size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
        size_t *o = realloc(r->off, cap * sizeof *o);
        if (!o)
            return -1;
        r->off = o;
        size_t *l = realloc(r->flen, cap * sizeof *l);
        if (!l)
            return -1;
        r->flen = l;
        r->fields_cap = cap;
    }
    r->off[r->nfields] = off;
    r->flen[r->nfields] = len;
    r->nfields++;
    return 0;
}

int text_csv_read(text_csv *r, bool *got, rf_err *err)
{
    *got = false;
    r->nfields = 0;
    const char *d = r->data;
    size_t n = r->len, pos = r->pos, line = r->next_line;
    const char delim = r->opts.delim;
    if (r->opts.skip_blank) {
        for (;;) {
            if (pos < n && d[pos] == '\n')
                pos++, line++;
            else if (pos + 1 < n && d[pos] == '\r' && d[pos + 1] == '\n')
                pos += 2, line++;
            else
                break;
        }
    }
    if (pos >= n) {
        r->pos = n;
        r->next_line = line;
        return RF_OK;
    }
    r->line = line;
    const size_t start = pos;
    size_t used = 0; /* bytes of r->buf in use */
    for (;;) {
        /* one field; its unescaped bytes are at most its stored bytes */
        size_t fstart_line = line, off = used;
        bool quoted = d[pos] == '"';
        if (quoted) {
            pos++;
            for (;;) {
                if (pos >= n)
                    return fail(r, RF_EFORMAT, err, fstart_line, "quoted field not closed before the end of the input");
                char c = d[pos];
                if (c == '"') {
                    if (pos + 1 < n && d[pos + 1] == '"') {
                        pos++;
                    } else {
                        pos++;
                        break;
                    }
                } else if (c == '\n') {
                    line++;
                }
                if (pos - start > r->opts.max_record_size)
                    return fail(r, RF_ENOMEM, err, r->line, "record longer than %zu bytes", r->opts.max_record_size);
                if (buf_reserve(r, used + 2))
                    return fail(r, RF_ENOMEM, err, r->line, "out of memory");
                r->buf[used++] = c;
                pos++;
            }
        } else {
            while (pos < n && d[pos] != delim && d[pos] != '\n' && d[pos] != '\r') {
                if (d[pos] == '"')
                    return fail(r, RF_EFORMAT, err, line, "quote inside an unquoted field (quote the whole field)");
                if (pos - start > r->opts.max_record_size)
                    return fail(r, RF_ENOMEM, err, r->line, "record longer than %zu bytes", r->opts.max_record_size);
                if (buf_reserve(r, used + 2))
                    return fail(r, RF_ENOMEM, err, r->line, "out of memory");
                r->buf[used++] = d[pos++];
            }
        }
        if (buf_reserve(r, used + 1))
            return fail(r, RF_ENOMEM, err, r->line, "out of memory");
        r->buf[used++] = 0;
        if (r->nfields >= r->opts.max_fields)
            return fail(r, RF_EFORMAT, err, r->line, "more than %zu fields", r->opts.max_fields);
        if (push_field(r, off, used - 1 - off))
            return fail(r, RF_ENOMEM, err, r->line, "out of memory");
        /* what ends the field */
        if (pos >= n)
            break;
        if (d[pos] == delim) {
            pos++;
            if (pos >= n) { /* "a,b," ends with an empty field */
                if (r->nfields >= r->opts.max_fields)
                    return fail(r, RF_EFORMAT, err, r->line, "more than %zu fields", r->opts.max_fields);
                if (buf_reserve(r, used + 1) || push_field(r, used, 0))
                    return fail(r, RF_ENOMEM, err, r->line, "out of memory");
                r->buf[used++] = 0;
                break;
            }
            continue;
        }
        if (d[pos] == '\n') {
            pos++, line++;
            break;
        }
        if (d[pos] == '\r') {
            if (pos + 1 < n && d[pos + 1] == '\n') {
                pos += 2, line++;
                break;
            }
            return fail(r, RF_EFORMAT, err, line, "carriage return not followed by a line feed");
        }
        return fail(r, RF_EFORMAT, err, line, "characters after a closing quote (a field is quoted from its start to its end)");
    }
    const char *nul = memchr(d + start, 0, pos - start);
    if (nul)
        return fail(r, RF_EFORMAT, err, line_at(d, start, (size_t)(nul - d), r->line), "NUL byte");
    size_t bad;
    if (!text_utf8_valid(d + start, pos - start, &bad))
        return fail(r, RF_EFORMAT, err, line_at(d, start, start + bad, r->line), "invalid UTF-8");
    r->pos = pos;
    r->next_line = line;
    *got = true;
    return RF_OK;
}
