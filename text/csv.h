/*
 * A small strict CSV reader (RFC 4180) over a buffer in memory.
 *
 * Records end with CRLF or LF (RFC 4180 says CRLF; files written on Unix use
 * LF); a bare CR outside quotes is an error. A field is either plain (no '"'
 * at all) or quoted from its first to its last byte, with '""' for a quote;
 * quoted fields may hold delimiters, CR and LF. A UTF-8 byte order mark at the
 * start is skipped. Every record is checked as it is read: valid UTF-8, no
 * NUL byte, within the caps below. Errors name the input and the line (of the
 * physical file, 1-based) where the offending record or field starts.
 *
 * The reader does not own the input; fields are copied, unescaped and
 * NUL-terminated, into the reader's own buffer and stay valid until the next
 * text_csv_read or text_csv_free. Nothing here keeps global state.
 */
#ifndef RADFUSE_TEXT_CSV_H
#define RADFUSE_TEXT_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "radfuse/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct text_csv_opts {
    char delim;             /* field delimiter; 0 means ',' */
    bool skip_blank;        /* skip empty lines instead of returning a record with one empty field */
    size_t max_fields;      /* per record; 0 means 4096 */
    size_t max_record_size; /* bytes per record as stored in the input; 0 means 1 MiB */
} text_csv_opts;

typedef struct text_csv {
    /* read-only for callers */
    size_t line;    /* first physical line of the record last read (1-based) */
    size_t nfields; /* fields of the record last read */
    /* private */
    const char *name, *data;
    size_t len, pos, next_line;
    text_csv_opts opts;
    char *buf;
    size_t buf_cap;
    size_t *off, *flen;
    size_t fields_cap;
} text_csv;

/*
 * Starts reading len bytes of data; name is used in error messages (e.g. the
 * file name) and must outlive the reader. opts may be NULL for the defaults.
 * Cannot fail; allocation happens in text_csv_read.
 */
void text_csv_init(text_csv *r, const char *name, const char *data, size_t len, const text_csv_opts *opts);

/*
 * Reads the next record. Returns 0 with *got = true and the record's fields in
 * text_csv_field, 0 with *got = false at the end of the input, or an RF_E*
 * code with one line in err (unterminated quote, stray quote, bare CR,
 * invalid UTF-8, NUL, too many fields, record too long, out of memory). After
 * an error the reader stays at the end: further reads return *got = false.
 */
int text_csv_read(text_csv *r, bool *got, rf_err *err);

/* Field i (< nfields) of the record last read, NUL-terminated; *len (if not
 * NULL) gets its length in bytes. NULL when i is out of range. */
const char *text_csv_field(const text_csv *r, size_t i, size_t *len);

/* Frees the reader's buffers (the input is the caller's). */
void text_csv_free(text_csv *r);

#ifdef __cplusplus
}
#endif
#endif
