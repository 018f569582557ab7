/*
 * The strict CSV reader (text/csv.h): RFC 4180's examples (quoted fields
 * with delimiters, doubled quotes and line breaks; CRLF and LF), options, and
 * every error it promises, with the line it names.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/testutil.h"
#include "text/csv.h"

/* Reads all of s; returns the records as "f1|f2|...\n" lines (fields shown
 * raw, line breaks inside fields as \n) into out, and the reader's rc. */
static int read_all(const char *s, size_t len, const text_csv_opts *opts, char *out, size_t cap, rf_err *err,
                    size_t *lines)
{
    text_csv r;
    text_csv_init(&r, "t.csv", s, len, opts);
    size_t used = 0, nrec = 0;
    out[0] = 0;
    int rc;
    for (;;) {
        bool got;
        rc = text_csv_read(&r, &got, err);
        if (rc || !got)
            break;
        if (lines)
            lines[nrec] = r.line;
        nrec++;
        for (size_t i = 0; i < r.nfields; i++) {
            size_t fl;
            const char *f = text_csv_field(&r, i, &fl);
            CHECK(f != NULL && strlen(f) == fl);
            used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? "|" : "", f);
        }
        used += (size_t)snprintf(out + used, cap - used, "\n");
    }
    CHECK(text_csv_field(&r, r.nfields, NULL) == NULL);
    text_csv_free(&r);
    return rc;
}

static void expect(const char *in, const char *want)
{
    char out[4096];
    rf_err err;
    int rc = read_all(in, strlen(in), NULL, out, sizeof out, &err, NULL);
    CHECKF(rc == 0, "'%s': %s", in, err.msg);
    CHECKF(strcmp(out, want) == 0, "'%s' gave '%s', want '%s'", in, out, want);
}

static void expect_error(const char *in, size_t len, const text_csv_opts *opts, const char *msg_part)
{
    char out[4096];
    rf_err err = {{0}};
    int rc = read_all(in, len, opts, out, sizeof out, &err, NULL);
    CHECKF(rc != 0, "'%s' should fail (%s)", in, msg_part);
    CHECKF(strstr(err.msg, msg_part) != NULL, "error '%s' lacks '%s'", err.msg, msg_part);
    CHECKF(strncmp(err.msg, "t.csv: line ", 12) == 0, "error '%s' names no line", err.msg);
}

int main(void)
{
    /* RFC 4180 section 2's examples */
    expect("aaa,bbb,ccc\r\nzzz,yyy,xxx\r\n", "aaa|bbb|ccc\nzzz|yyy|xxx\n");
    expect("aaa,bbb,ccc\r\nzzz,yyy,xxx", "aaa|bbb|ccc\nzzz|yyy|xxx\n");
    expect("\"aaa\",\"bbb\",\"ccc\"\r\nzzz,yyy,xxx\r\n", "aaa|bbb|ccc\nzzz|yyy|xxx\n");
    expect("\"aaa\",\"b\r\nbb\",\"ccc\"\r\nzzz,yyy,xxx\r\n", "aaa|b\r\nbb|ccc\nzzz|yyy|xxx\n");
    expect("\"aaa\",\"b\"\"bb\",\"ccc\"\n", "aaa|b\"bb|ccc\n");
    /* LF line ends, empty fields, a trailing delimiter, a BOM, UTF-8 */
    expect("a,,c\n,\n", "a||c\n|\n");
    expect("a,b,", "a|b|\n");
    expect("\xef\xbb\xbfname,unit\nNa,mmol/L\n", "name|unit\nNa|mmol/L\n");
    expect("\"\",x\n", "|x\n");
    expect("Temp,\xc2\xb0" "C\n", "Temp|\xc2\xb0" "C\n");
    expect("", "");
    /* a blank line is a record with one empty field, unless skipped */
    expect("a\n\nb\n", "a\n\nb\n");
    {
        char out[256];
        rf_err err;
        text_csv_opts o = {.skip_blank = true};
        size_t lines[8];
        const char *in = "a\n\r\n\n\"x\ny\",z\nb\n";
        CHECK(read_all(in, strlen(in), &o, out, sizeof out, &err, lines) == 0);
        CHECKF(strcmp(out, "a\nx\ny|z\nb\n") == 0, "%s", out);
        /* the line of each record is where it starts in the file */
        CHECK(lines[0] == 1 && lines[1] == 4 && lines[2] == 6);
        text_csv_opts semi = {.delim = ';'};
        CHECK(read_all("a;\"b;c\";d,e\n", 12, &semi, out, sizeof out, &err, NULL) == 0);
        CHECKF(strcmp(out, "a|b;c|d,e\n") == 0, "%s", out);
    }

    /* errors name the line where the problem is */
    expect_error("a,b\nc,\"d\ne\n", 11, NULL, "line 2: quoted field not closed");
    expect_error("a,b\nc,d\"e\n", 10, NULL, "line 2: quote inside an unquoted field");
    expect_error("a\n\"x\"y,z\n", 9, NULL, "line 2: characters after a closing quote");
    expect_error("a\rb\n", 4, NULL, "line 1: carriage return");
    expect_error("a,b\nc,d\xff\n", 9, NULL, "line 2: invalid UTF-8");
    expect_error("a,b\n\"c\nd\xc0\x80\"\n", 12, NULL, "line 3: invalid UTF-8"); /* overlong, inside quotes */
    expect_error("a,b\nc,d\0e\n", 10, NULL, "line 2: NUL byte");
    {
        text_csv_opts o = {.max_fields = 3};
        expect_error("a,b,c\nd,e,f,g\n", 14, &o, "line 2: more than 3 fields");
        expect_error("a,b,c,\n", 7, &o, "line 1: more than 3 fields");
        text_csv_opts small = {.max_record_size = 8};
        expect_error("a,b\n\"0123456789\"\n", 17, &small, "line 2: record longer than 8 bytes");
        expect_error("0123456789abc\n", 14, &small, "line 1: record longer than 8 bytes");
    }
    /* after an error the reader stays at the end */
    {
        text_csv r;
        rf_err err;
        bool got = true;
        text_csv_init(&r, "t.csv", "\"open\nx\ny\n", 10, NULL);
        CHECK(text_csv_read(&r, &got, &err) == RF_EFORMAT && !got);
        CHECK(text_csv_read(&r, &got, &err) == 0 && !got);
        text_csv_free(&r);
    }
    return test_finish("test_csv");
}
