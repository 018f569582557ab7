/*
 * safetensors reader and writer: round trips through rf_safetensors_write,
 * hostile files crafted byte by byte (each must fail cleanly with the right
 * code and a one-line message naming the file and the problem), and the
 * reference BERT fixture.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/testutil.h"

/* A scratch directory under /tmp, removed (with its contents) at the end. */
typedef struct scratch {
    char dir[64];
} scratch;

static void join(char *buf, size_t cap, const scratch *s, const char *name)
{
    snprintf(buf, cap, "%s/%s", s->dir, name);
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECKF(f != NULL, "cannot create %s", path);
    if (!f)
        return;
    CHECK(n == 0 || fwrite(bytes, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* Writes a file whose header length field says hlen, followed by the header
 * text json (strlen bytes) and data_len bytes of data (0, 1, 2, ...). */
static void craft_len(const char *path, uint64_t hlen, const char *json, size_t data_len)
{
    size_t jlen = strlen(json);
    size_t n = 8 + jlen + data_len;
    uint8_t *buf = malloc(n);
    CHECK(buf != NULL);
    if (!buf)
        return;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(buf + 8, json, jlen);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + jlen + i] = (uint8_t)i;
    write_bytes(path, buf, n);
    free(buf);
}

/* A well-formed length field: exactly the header text. */
static void craft(const char *path, const char *json, size_t data_len)
{
    craft_len(path, strlen(json), json, data_len);
}

/* Checks that err is one line naming path and containing word. */
static void check_msg(const rf_err *err, const char *path, const char *word, const char *label)
{
    CHECKF(strchr(err->msg, '\n') == NULL, "%s: message has a newline: %s", label, err->msg);
    CHECKF(strstr(err->msg, path) != NULL, "%s: message lacks the path: %s", label, err->msg);
    CHECKF(strstr(err->msg, word) != NULL, "%s: message lacks '%s': %s", label, word, err->msg);
}

/* Opens path expecting failure with code and a message containing word. */
static void expect_fail(const char *path, int code, const char *word, const char *label)
{
    rf_safetensors *st = (rf_safetensors *)(uintptr_t)1; /* must be reset to NULL */
    rf_err err;
    memset(&err, 0, sizeof err);
    int rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == code, "%s: rc %d, want %d (%s)", label, rc, code, err.msg);
    CHECKF(st == NULL, "%s: *out not NULL on failure", label);
    if (rc == 0) {
        rf_safetensors_close(st);
        return;
    }
    check_msg(&err, path, word, label);
}

/* Crafts json (+ data_len data bytes) into a file and expects failure. */
static void hostile(const scratch *s, const char *json, size_t data_len, int code,
                    const char *word, const char *label)
{
    char path[256];
    join(path, sizeof path, s, "hostile.safetensors");
    craft(path, json, data_len);
    expect_fail(path, code, word, label);
}

/* ---- round trips ------------------------------------------------------- */

static void test_round_trip(const scratch *s)
{
    char path[256];
    join(path, sizeof path, s, "rt.safetensors");

    float f32[6] = {1, -2, 3.5f, 4, 5, -6.25f};
    uint16_t f16[1] = {0x3c00};
    uint16_t bf16[5] = {1, 2, 3, 4, 5};
    uint8_t boolv[7] = {1, 0, 1, 1, 0, 0, 1};
    double f64[2] = {3.141592653589793, -1e300};
    int8_t i8[3] = {-128, 0, 127};
    int64_t i64[2] = {INT64_MIN, INT64_MAX};
    int64_t sh_23[] = {2, 3}, sh_0[] = {0}, sh_302[] = {3, 0, 2}, sh_5[] = {5}, sh_7[] = {7},
            sh_r8[] = {1, 1, 1, 1, 1, 1, 1, 2}, sh_3[] = {3}, sh_2[] = {2};
    const rf_st_out out[] = {
        {"layer.0.weight", RF_ST_F32, 2, sh_23, f32},
        {"scalar", RF_ST_F16, 0, NULL, f16},
        {"empty", RF_ST_I64, 1, sh_0, NULL},
        {"empty3d", RF_ST_U8, 3, sh_302, NULL},
        {"bf", RF_ST_BF16, 1, sh_5, bf16},
        {"mask", RF_ST_BOOL, 1, sh_7, boolv},
        {"rank8", RF_ST_F64, 8, sh_r8, f64},
        {"weird \"name\"\n\xc3\xa9", RF_ST_I8, 1, sh_3, i8},
        {"i64", RF_ST_I64, 1, sh_2, i64},
    };
    size_t n = sizeof out / sizeof out[0];
    rf_err err = {{0}};
    int rc = rf_safetensors_write(path, out, n, &err);
    CHECKF(rc == 0, "write: %s", err.msg);

    /* The data section starts 8-byte aligned. */
    FILE *f = fopen(path, "rb");
    uint8_t len8[8] = {0};
    CHECK(f && fread(len8, 1, 8, f) == 8);
    if (f)
        fclose(f);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | len8[i];
    CHECKF(hlen % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hlen);

    rf_safetensors *st = NULL;
    rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "open: %s", err.msg);
    if (rc)
        return;
    CHECK(strcmp(rf_safetensors_path(st), path) == 0);
    CHECK(rf_safetensors_count(st) == n);
    CHECK(rf_safetensors_at(st, n) == NULL);
    const char *fmt = rf_safetensors_metadata(st, "format");
    CHECK(fmt && strcmp(fmt, "pt") == 0);
    CHECK(rf_safetensors_metadata(st, "nope") == NULL);
    for (size_t i = 0; i < n; i++) {
        const rf_st_tensor *t = rf_safetensors_at(st, i);
        CHECK(t != NULL);
        if (!t)
            continue;
        /* at() keeps header order, which is the order written. */
        CHECKF(strcmp(t->name, out[i].name) == 0, "at(%zu) is '%s'", i, t->name);
        CHECK(rf_safetensors_find(st, out[i].name) == t);
        CHECK(t->dtype == out[i].dtype);
        CHECK(t->ndim == out[i].ndim);
        int64_t numel = 1;
        for (int k = 0; k < t->ndim; k++) {
            CHECK(t->shape[k] == out[i].shape[k]);
            numel *= t->shape[k];
        }
        size_t nbytes = (size_t)numel * rf_st_dtype_size(t->dtype);
        CHECKF(t->nbytes == nbytes, "%s: nbytes %zu want %zu", t->name, t->nbytes, nbytes);
        if (nbytes)
            CHECKF(memcmp(t->data, out[i].data, nbytes) == 0, "%s: data differs", t->name);
    }
    CHECK(rf_safetensors_find(st, "missing") == NULL);
    CHECK(rf_safetensors_find(st, "") == NULL);
    const rf_st_tensor *sc = rf_safetensors_find(st, "scalar");
    CHECK(sc && sc->ndim == 0 && sc->nbytes == 2);
    rf_safetensors_close(st);

    /* Overwriting replaces the file whole. */
    const rf_st_out one[] = {{"only", RF_ST_F32, 1, sh_2, f32}};
    rc = rf_safetensors_write(path, one, 1, &err);
    CHECKF(rc == 0, "overwrite: %s", err.msg);
    rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "reopen: %s", err.msg);
    if (rc == 0) {
        CHECK(rf_safetensors_count(st) == 1);
        CHECK(rf_safetensors_find(st, "layer.0.weight") == NULL);
        const rf_st_tensor *t = rf_safetensors_find(st, "only");
        CHECK(t && t->nbytes == 8 && memcmp(t->data, f32, 8) == 0);
        rf_safetensors_close(st);
    }

    /* No tensors at all is a valid file. */
    rc = rf_safetensors_write(path, NULL, 0, &err);
    CHECKF(rc == 0, "empty write: %s", err.msg);
    rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "empty open: %s", err.msg);
    if (rc == 0) {
        CHECK(rf_safetensors_count(st) == 0);
        CHECK(rf_safetensors_at(st, 0) == NULL);
        CHECK(rf_safetensors_find(st, "x") == NULL);
        rf_safetensors_close(st);
    }
    unlink(path);
}

/* Many tensors: every one is found by name and at() keeps the order. */
static void test_many(const scratch *s)
{
    char path[256];
    join(path, sizeof path, s, "many.safetensors");
    enum { N = 1500 };
    rf_st_out *out = calloc(N, sizeof *out);
    char(*names)[32] = calloc(N, sizeof *names);
    int32_t *vals = calloc(N, sizeof *vals);
    static const int64_t one[] = {1};
    CHECK(out && names && vals);
    if (!out || !names || !vals)
        goto done;
    for (int i = 0; i < N; i++) {
        /* Not in sorted order, so find() must not depend on header order. */
        snprintf(names[i], sizeof names[i], "blk.%d.w", (i * 7919) % N);
        vals[i] = i;
        out[i] = (rf_st_out){names[i], RF_ST_I32, 1, one, &vals[i]};
    }
    rf_err err = {{0}};
    int rc = rf_safetensors_write(path, out, N, &err);
    CHECKF(rc == 0, "write: %s", err.msg);
    rf_safetensors *st = NULL;
    rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "open: %s", err.msg);
    if (rc == 0) {
        CHECK(rf_safetensors_count(st) == N);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            const rf_st_tensor *t = rf_safetensors_find(st, names[i]);
            int32_t v;
            if (!t || t != rf_safetensors_at(st, (size_t)i) || t->nbytes != 4)
                bad++;
            else if (memcpy(&v, t->data, 4), v != i) /* data may be unaligned */
                bad++;
        }
        CHECKF(bad == 0, "%d of %d tensors not found or wrong", bad, N);
        rf_safetensors_close(st);
    }
    unlink(path);
done:
    free(out);
    free(names);
    free(vals);
}

/* Metadata from a hand-written header, and lenient-but-valid layouts. */
static void test_metadata_and_layouts(const scratch *s)
{
    char path[256];
    join(path, sizeof path, s, "meta.safetensors");
    /* Metadata after a tensor, unknown keys, trailing padding, a gap between
     * tensors, zero-size tensors sitting inside another's range, and bytes
     * after the last tensor: all allowed. */
    craft(path,
          "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6],\"x\":1},"
          "\"__metadata__\":{\"format\":\"pt\",\"note\":\"h\\u00e9llo\\nworld\",\"empty\":\"\"},"
          "\"a\":{\"shape\":[2,2],\"data_offsets\":[0,4],\"dtype\":\"I8\"},"
          "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[5,5]},"
          "\"\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]}}   \n\t ",
          12);
    rf_safetensors *st = NULL;
    rf_err err = {{0}};
    int rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "open: %s", err.msg);
    if (rc)
        return;
    CHECK(rf_safetensors_count(st) == 4);
    const char *v = rf_safetensors_metadata(st, "note");
    CHECK(v && strcmp(v, "h\xc3\xa9llo\nworld") == 0);
    v = rf_safetensors_metadata(st, "empty");
    CHECK(v && strcmp(v, "") == 0);
    v = rf_safetensors_metadata(st, "format");
    CHECK(v && strcmp(v, "pt") == 0);
    const rf_st_tensor *a = rf_safetensors_find(st, "a"), *b = rf_safetensors_find(st, "b");
    CHECK(a && b && a->nbytes == 4 && b->nbytes == 2);
    if (a && b) {
        const uint8_t *pa = a->data, *pb = b->data;
        CHECK(pa[0] == 0 && pa[3] == 3 && pb[0] == 4 && pb[1] == 5);
        CHECK(a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 2 && a->dtype == RF_ST_I8);
    }
    CHECK(rf_safetensors_at(st, 0) == b && rf_safetensors_at(st, 1) == a);
    const rf_st_tensor *z = rf_safetensors_find(st, "z");
    CHECK(z && z->nbytes == 0 && z->ndim == 2 && z->shape[1] == 4);
    const rf_st_tensor *e = rf_safetensors_find(st, "");
    CHECK(e && e->nbytes == 0);
    rf_safetensors_close(st);

    /* A header with no tensors and no metadata. */
    craft(path, "{}", 0);
    rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "open {}: %s", err.msg);
    if (rc == 0) {
        CHECK(rf_safetensors_count(st) == 0);
        CHECK(rf_safetensors_metadata(st, "format") == NULL);
        rf_safetensors_close(st);
    }
    unlink(path);
}

/* ---- hostile files ----------------------------------------------------- */

static void test_truncated(const scratch *s)
{
    char path[256], cut[256];
    join(path, sizeof path, s, "whole.safetensors");
    join(cut, sizeof cut, s, "cut.safetensors");
    float x[4] = {1, 2, 3, 4};
    int64_t sh[] = {4};
    const rf_st_out out[] = {{"x", RF_ST_F32, 1, sh, x}};
    rf_err err = {{0}};
    CHECKF(rf_safetensors_write(path, out, 1, &err) == 0, "write: %s", err.msg);
    FILE *f = fopen(path, "rb");
    uint8_t buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 8 + 16);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | buf[i];
    CHECK(8 + hlen + 16 == n);

    struct {
        size_t at;
        const char *word;
    } cuts[] = {
        {0, "too short"},
        {1, "too short"},
        {7, "too short"},
        {8, "past the end of the file"},
        {8 + (size_t)hlen / 2, "past the end of the file"},
        {8 + (size_t)hlen - 1, "past the end of the file"},
        {8 + (size_t)hlen, "past the end of the data section"},
        {8 + (size_t)hlen + 3, "past the end of the data section"},
        {n - 1, "past the end of the data section"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char label[64];
        snprintf(label, sizeof label, "cut at %zu of %zu", cuts[i].at, n);
        write_bytes(cut, buf, cuts[i].at);
        expect_fail(cut, RF_EFORMAT, cuts[i].word, label);
    }
    unlink(path);
    unlink(cut);
}

static void test_header_length(const scratch *s)
{
    char path[256];
    join(path, sizeof path, s, "len.safetensors");
    const char *json = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    craft_len(path, 0, json, 1);
    expect_fail(path, RF_EFORMAT, "header length is 0", "header length 0");
    craft_len(path, strlen(json) + 2, json, 1);
    expect_fail(path, RF_EFORMAT, "past the end", "header length past end");
    craft_len(path, UINT64_MAX, json, 1);
    expect_fail(path, RF_EFORMAT, "past the end", "header length 2^64-1");
    craft_len(path, (uint64_t)1 << 63, json, 1);
    expect_fail(path, RF_EFORMAT, "past the end", "header length 2^63");
    /* Shorter than the JSON: the object is cut off. */
    craft_len(path, strlen(json) - 1, json, 1);
    expect_fail(path, RF_EFORMAT, "not valid JSON", "header length short of the JSON");

    /* A length inside a (sparse) file but over the 100 MiB limit. */
    uint64_t big = ((uint64_t)100 << 20) + 8;
    craft_len(path, big, "{", 0);
    CHECK(truncate(path, (off_t)(big + 64)) == 0);
    expect_fail(path, RF_ENOMEM, "limit", "header length over the limit");
    unlink(path);
}

static void test_hostile_headers(const scratch *s)
{
/* A well-formed entry to pad hostile headers with. */
#define OK_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
    hostile(s, "this is not json", 8, RF_EFORMAT, "not valid JSON", "non-JSON");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",", 8, RF_EFORMAT, "not valid JSON", "unterminated");
    hostile(s, "[1, 2, 3]", 8, RF_EFORMAT, "not an object", "array header");
    hostile(s, "\"str\"", 8, RF_EFORMAT, "not an object", "string header");
    hostile(s, "{" OK_A "} x", 8, RF_EFORMAT, "after the JSON", "trailing garbage");
    hostile(s, "{" OK_A "}{}", 8, RF_EFORMAT, "after the JSON", "two objects");
    hostile(s, " {" OK_A "}", 8, RF_EFORMAT, "start with", "leading space");
    hostile(s, "{\"a\xff\":{}}", 8, RF_EFORMAT, "UTF-8", "invalid UTF-8");
    hostile(s, "{\"a\xc0\xaf\":{}}", 8, RF_EFORMAT, "UTF-8", "overlong UTF-8");
    hostile(s, "{\"a\xed\xa0\x80\":{}}", 8, RF_EFORMAT, "UTF-8", "surrogate UTF-8");
    hostile(s, "{\"a\x01\":{}}", 8, RF_EFORMAT, "control byte", "control byte");
    hostile(s,
            "{\"a\\u0000x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"a\\u0000y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
            8, RF_EFORMAT, "NUL", "escaped NUL in a name");

    hostile(s, "{\"a\":[1,2]}", 8, RF_EFORMAT, "not a JSON object", "entry is an array");
    hostile(s, "{\"a\":\"F32\"}", 8, RF_EFORMAT, "not a JSON object", "entry is a string");
    hostile(s, "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RF_EFORMAT, "missing",
            "missing dtype");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, RF_EFORMAT, "missing",
            "missing shape");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, RF_EFORMAT, "missing",
            "missing data_offsets");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            8, RF_EFORMAT, "duplicate key", "duplicate field");
    hostile(s, "{\"a\":{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RF_EFORMAT,
            "dtype", "numeric dtype");
    hostile(s, "{\"a\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RF_EFORMAT,
            "unknown dtype 'F4'", "unknown dtype");
    hostile(s, "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, RF_EFORMAT,
            "unknown dtype", "lower-case dtype");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, RF_EFORMAT,
            "not an array", "shape not an array");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, RF_EFORMAT,
            "negative", "negative dim");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8,
            RF_EFORMAT, "not an integer", "fractional dim");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
            RF_EFORMAT, "not a number", "string dim");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8,
            RF_EFORMAT, "2^53", "huge dim");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1e999],\"data_offsets\":[0,8]}}", 8,
            RF_EFORMAT, "2^53", "infinite dim");
    hostile(s, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
            8, RF_EUNSUP, "rank 9", "rank 9");
    /* 2^60 elements: the byte count is far beyond the file. */
    hostile(s,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[1073741824,1073741824],"
            "\"data_offsets\":[0,8]}}",
            8, RF_EFORMAT, "too large", "2^60 elements");
    /* 2^106 elements: the product overflows 64 bits and must not wrap. */
    hostile(s,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,9007199254740992],"
            "\"data_offsets\":[0,8]}}",
            8, RF_EFORMAT, "too large", "overflowing shape");
    /* 2^64 exactly, which wraps to 0 under unchecked multiplication. */
    hostile(s,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
            "\"data_offsets\":[0,0]}}",
            8, RF_EFORMAT, "too large", "shape wrapping to 0");
    /* A zero-size tensor whose other dims overflow is refused too. */
    hostile(s,
            "{\"a\":{\"dtype\":\"U8\",\"shape\":[0,9007199254740992,9007199254740992],"
            "\"data_offsets\":[0,0]}}",
            8, RF_EFORMAT, "too large", "zero-size with overflowing dims");

    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, RF_EFORMAT,
            "two integers", "one offset");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8,
            RF_EFORMAT, "two integers", "three offsets");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", 8, RF_EFORMAT,
            "two integers", "offsets object");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8,
            RF_EFORMAT, "negative", "negative offset");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.5]}}", 8,
            RF_EFORMAT, "not an integer", "fractional offset");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, RF_EFORMAT,
            "begin after end", "begin > end");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8,
            RF_EFORMAT, "past the end of the data section", "offsets past end");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[9,9]}}", 8, RF_EFORMAT,
            "past the end of the data section", "empty range past end");
    hostile(s,
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
            "\"data_offsets\":[18446744073709551608,18446744073709551616]}}",
            8, RF_EFORMAT, "2^53", "offsets near 2^64");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 32,
            RF_EFORMAT, "size mismatch", "shape/size mismatch");
    hostile(s, "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, RF_EFORMAT,
            "size mismatch", "scalar with 8 bytes");
    hostile(s,
            "{" OK_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16,
            RF_EFORMAT, "overlap", "overlapping tensors");
    hostile(s,
            "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[3,5]},"
            "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}," OK_A "}",
            16, RF_EFORMAT, "overlap", "overlap listed out of order");
    hostile(s, "{\"u\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}," OK_A "}", 16,
            RF_EFORMAT, "overlap", "identical ranges");
    hostile(s, "{" OK_A "," OK_A "}", 16, RF_EFORMAT, "duplicate tensor name 'a'",
            "duplicate names");
    hostile(s,
            "{" OK_A ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16,
            RF_EFORMAT, "duplicate tensor name", "duplicate names, disjoint ranges");

    hostile(s, "{\"__metadata__\":\"pt\"," OK_A "}", 8, RF_EFORMAT, "__metadata__",
            "metadata a string");
    hostile(s, "{\"__metadata__\":[\"pt\"]," OK_A "}", 8, RF_EFORMAT, "__metadata__",
            "metadata an array");
    hostile(s, "{\"__metadata__\":{\"format\":1}," OK_A "}", 8, RF_EFORMAT, "not a string",
            "metadata value a number");
    hostile(s, "{\"__metadata__\":{\"k\":{\"x\":\"y\"}}," OK_A "}", 8, RF_EFORMAT, "not a string",
            "metadata value an object");
    hostile(s, "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}," OK_A "}", 8, RF_EFORMAT,
            "duplicate key 'k'", "metadata duplicate key");
    hostile(s, "{\"__metadata__\":{},\"__metadata__\":{}," OK_A "}", 8, RF_EFORMAT,
            "duplicate entry '__metadata__'", "metadata twice");

    /* A hostile name can neither break the message onto two lines nor flood it. */
    hostile(s, "{\"evil\\nname\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0,
            RF_EFORMAT, "evil\\x0aname", "newline in a name");
    {
        size_t len = 5000;
        char *json = malloc(len + 128);
        CHECK(json != NULL);
        if (json) {
            strcpy(json, "{\"");
            memset(json + 2, 'n', len);
            strcpy(json + 2 + len, "\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}");
            hostile(s, json, 4, RF_ENOMEM, "limit", "name over the length limit");
            free(json);
        }
    }
#undef OK_A
}

static void test_not_files(const scratch *s)
{
    char path[256];
    join(path, sizeof path, s, "does-not-exist.safetensors");
    expect_fail(path, RF_EIO, "cannot open", "missing file");
    expect_fail(s->dir, RF_EIO, "not a regular file", "directory");
    rf_err err;
    rf_safetensors *st = NULL;
    CHECK(rf_safetensors_open(&st, NULL, &err) == RF_EINVAL);
    CHECK(rf_safetensors_open(NULL, path, &err) == RF_EINVAL);
    rf_safetensors_close(NULL);
    CHECK(rf_safetensors_count(NULL) == 0);
    CHECK(rf_safetensors_find(NULL, "x") == NULL);
    CHECK(strcmp(rf_st_dtype_name(RF_ST_F8_E5M2), "F8_E5M2") == 0);
    CHECK(rf_st_dtype_size(RF_ST_BF16) == 2 && rf_st_dtype_size(RF_ST_U64) == 8);
    CHECK(rf_st_dtype_size(RF_ST_DTYPE_COUNT) == 0);
    CHECK(strcmp(rf_st_dtype_name(RF_ST_DTYPE_COUNT), "?") == 0);
}

/*
 * Random damage to a valid file: flipped bytes (mostly in the header, where
 * the parser lives), rewritten digits and cuts. Every open must either
 * succeed with consistent tensors or fail with a known code and a one-line
 * message; under the sanitizers this also shows nothing reads out of bounds.
 * ITERS is small so the suite stays fast; raise it locally to fuzz harder.
 */
#ifndef MUTATION_ITERS
#define MUTATION_ITERS 3000
#endif
static void test_mutations(const scratch *s)
{
    char path[256], mut[256];
    join(path, sizeof path, s, "seed.safetensors");
    join(mut, sizeof mut, s, "mutant.safetensors");
    float w[12];
    uint16_t h[3] = {1, 2, 3};
    int64_t sh_34[] = {3, 4}, sh_3[] = {3}, sh_0[] = {0, 5};
    test_fill_random(w, 12, 7, 1.0f);
    const rf_st_out out[] = {
        {"enc.w", RF_ST_F32, 2, sh_34, w},
        {"enc.b", RF_ST_BF16, 1, sh_3, h},
        {"nothing", RF_ST_I32, 2, sh_0, NULL},
        {"s", RF_ST_F16, 0, NULL, h},
    };
    rf_err err = {{0}};
    CHECKF(rf_safetensors_write(path, out, 4, &err) == 0, "write: %s", err.msg);
    FILE *f = fopen(path, "rb");
    uint8_t seed[1024], buf[1024];
    size_t n = f ? fread(seed, 1, sizeof seed, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 64 && n < sizeof seed);
    if (n <= 64 || n >= sizeof seed)
        return;
    size_t hdr_end = 8 + (size_t)seed[0] + ((size_t)seed[1] << 8);
    static const char tokens[] = "{}[]\",:0123456789-.e \\u";
    uint64_t r = 0x243F6A8885A308D3ull;
    int opened = 0, bad_code = 0, bad_msg = 0, bad_tensor = 0;
    for (int it = 0; it < MUTATION_ITERS; it++) {
        memcpy(buf, seed, n);
        size_t len = n;
        int edits = 1 + (int)(r % 3);
        for (int k = 0; k < edits; k++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            size_t span = (r & 1) && hdr_end < len ? hdr_end : len;
            if (span == 0)
                break;
            size_t at = (r >> 8) % span;
            switch ((r >> 40) % 4) {
            case 0: buf[at] = (uint8_t)(r >> 48); break;
            case 1: buf[at] = (uint8_t)tokens[(r >> 48) % (sizeof tokens - 1)]; break;
            case 2: buf[at] ^= (uint8_t)(1u << ((r >> 48) % 8)); break;
            default: len = at; break;
            }
        }
        write_bytes(mut, buf, len);
        rf_safetensors *st = NULL;
        int rc = rf_safetensors_open(&st, mut, &err);
        if (rc == 0) {
            opened++;
            for (size_t i = 0; i < rf_safetensors_count(st); i++) {
                const rf_st_tensor *t = rf_safetensors_at(st, i);
                uint64_t numel = 1;
                for (int d = 0; d < t->ndim; d++)
                    numel *= (uint64_t)t->shape[d];
                if (t->nbytes != numel * rf_st_dtype_size(t->dtype) || t->nbytes > len ||
                    rf_safetensors_find(st, t->name) != t)
                    bad_tensor++;
                /* Touch every byte, so ASan sees any range outside the map. */
                volatile uint8_t sink = 0;
                for (size_t b = 0; b < t->nbytes; b++)
                    sink ^= ((const uint8_t *)t->data)[b];
                (void)sink;
            }
            rf_safetensors_close(st);
        } else {
            if (rc != RF_EFORMAT && rc != RF_ENOMEM && rc != RF_EUNSUP)
                bad_code++;
            if (strchr(err.msg, '\n') || !strstr(err.msg, mut))
                bad_msg++;
        }
    }
    CHECKF(bad_code == 0, "%d mutants failed with an unexpected code", bad_code);
    CHECKF(bad_msg == 0, "%d mutants gave a bad message, last: %s", bad_msg, err.msg);
    CHECKF(bad_tensor == 0, "%d inconsistent tensors from mutants", bad_tensor);
    CHECKF(opened > 0 && opened < MUTATION_ITERS, "%d of %d mutants opened", opened,
           MUTATION_ITERS);
    unlink(mut);
    unlink(path);
}

/* ---- writer errors ----------------------------------------------------- */

/* Counts directory entries other than . and .., and those containing ".tmp.". */
static int count_entries(const char *dir, int *temps)
{
    int n = 0;
    *temps = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n++;
        if (strstr(e->d_name, ".tmp."))
            (*temps)++;
    }
    closedir(d);
    return n;
}

static void expect_write_fail(const char *path, const rf_st_out *t, size_t n, int code,
                              const char *word, const char *label)
{
    rf_err err;
    memset(&err, 0, sizeof err);
    int rc = rf_safetensors_write(path, t, n, &err);
    CHECKF(rc == code, "%s: rc %d, want %d (%s)", label, rc, code, err.msg);
    if (rc)
        check_msg(&err, path, word, label);
}

static void test_write_errors(const scratch *s)
{
    char path[256], nodir[256];
    join(path, sizeof path, s, "w.safetensors");
    join(nodir, sizeof nodir, s, "no/such/dir/w.safetensors");
    float x[2] = {1, 2};
    int64_t sh[] = {2}, neg[] = {-1}, huge[] = {INT64_C(1) << 40, INT64_C(1) << 40};
    int before_temps, before = count_entries(s->dir, &before_temps);

    rf_st_out dup[] = {{"w", RF_ST_F32, 1, sh, x}, {"v", RF_ST_F32, 1, sh, x},
                       {"w", RF_ST_F32, 1, sh, x}};
    expect_write_fail(path, dup, 3, RF_EINVAL, "duplicate tensor name 'w'", "write duplicates");
    rf_st_out empty[] = {{"", RF_ST_F32, 1, sh, x}};
    expect_write_fail(path, empty, 1, RF_EINVAL, "empty name", "write empty name");
    rf_st_out nul[] = {{NULL, RF_ST_F32, 1, sh, x}};
    expect_write_fail(path, nul, 1, RF_EINVAL, "empty name", "write NULL name");
    rf_st_out meta[] = {{"__metadata__", RF_ST_F32, 1, sh, x}};
    expect_write_fail(path, meta, 1, RF_EINVAL, "reserved", "write __metadata__");
    rf_st_out bad_dt[] = {{"w", RF_ST_DTYPE_COUNT, 1, sh, x}};
    expect_write_fail(path, bad_dt, 1, RF_EINVAL, "unknown dtype", "write bad dtype");
    rf_st_out bad_dt2[] = {{"w", (rf_st_dtype)-1, 1, sh, x}};
    expect_write_fail(path, bad_dt2, 1, RF_EINVAL, "unknown dtype", "write negative dtype");
    rf_st_out bad_rank[] = {{"w", RF_ST_F32, 9, huge, x}};
    expect_write_fail(path, bad_rank, 1, RF_EINVAL, "rank", "write rank 9");
    rf_st_out bad_dim[] = {{"w", RF_ST_F32, 1, neg, x}};
    expect_write_fail(path, bad_dim, 1, RF_EINVAL, "out of range", "write negative dim");
    rf_st_out too_big[] = {{"w", RF_ST_F64, 2, huge, x}};
    expect_write_fail(path, too_big, 1, RF_EINVAL, "too large", "write 2^80 elements");
    rf_st_out no_data[] = {{"w", RF_ST_F32, 1, sh, NULL}};
    expect_write_fail(path, no_data, 1, RF_EINVAL, "no data", "write NULL data");
    rf_st_out bad_utf8[] = {{"w\xff", RF_ST_F32, 1, sh, x}};
    expect_write_fail(path, bad_utf8, 1, RF_EINVAL, "UTF-8", "write non-UTF-8 name");
    expect_write_fail(path, bad_utf8, 1, RF_EINVAL, "'w\\xff'", "non-UTF-8 byte escaped");
    rf_st_out ok[] = {{"w", RF_ST_F32, 1, sh, x}};
    expect_write_fail(nodir, ok, 1, RF_EIO, "temporary", "write into a missing directory");
    rf_err err;
    CHECK(rf_safetensors_write(NULL, ok, 1, &err) == RF_EINVAL);
    CHECK(rf_safetensors_write(path, NULL, 1, &err) == RF_EINVAL);

    /* Nothing was created by the failures, and a success leaves no temp. */
    int temps, after = count_entries(s->dir, &temps);
    CHECKF(after == before && temps == 0, "entries %d -> %d, %d temps", before, after, temps);
    CHECK(rf_safetensors_write(path, ok, 1, &err) == 0);
    after = count_entries(s->dir, &temps);
    CHECKF(after == before + 1 && temps == 0, "entries %d -> %d, %d temps", before, after, temps);

    /* A failed rename (path is a non-empty directory) removes the temp file. */
    char sub[256], subfile[300];
    join(sub, sizeof sub, s, "sub.safetensors");
    CHECK(mkdir(sub, 0755) == 0);
    snprintf(subfile, sizeof subfile, "%s/keep", sub);
    write_bytes(subfile, "k", 1);
    expect_write_fail(sub, ok, 1, RF_EIO, "rename", "rename over a directory");
    after = count_entries(s->dir, &temps);
    CHECKF(temps == 0, "%d temps left after a failed rename", temps);
    unlink(subfile);
    rmdir(sub);
    unlink(path);
}

/* ---- the reference fixture --------------------------------------------- */

static void test_fixture(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fixtures/reference/bert/model.safetensors",
             test_shared_dir());
    rf_safetensors *st = NULL;
    rf_err err = {{0}};
    int rc = rf_safetensors_open(&st, path, &err);
    CHECKF(rc == 0, "open fixture: %s", err.msg);
    if (rc)
        return;
    const rf_st_tensor *t = rf_safetensors_find(st, "embeddings.word_embeddings.weight");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->dtype == RF_ST_F32);
        CHECK(t->ndim == 2 && t->shape[0] == 500 && t->shape[1] == 64);
        CHECK(t->nbytes == (size_t)500 * 64 * 4);
    }
    CHECK(rf_safetensors_count(st) > 10);
    const char *fmt = rf_safetensors_metadata(st, "format");
    CHECK(fmt && strcmp(fmt, "pt") == 0);
    /* Every tensor is reachable by name. */
    size_t bad = 0;
    for (size_t i = 0; i < rf_safetensors_count(st); i++) {
        const rf_st_tensor *u = rf_safetensors_at(st, i);
        if (!u || rf_safetensors_find(st, u->name) != u)
            bad++;
    }
    CHECK(bad == 0);
    rf_safetensors_close(st);
}

/* Removes every plain file in the scratch directory, then the directory. */
static void scratch_remove(const scratch *s)
{
    DIR *d = opendir(s->dir);
    if (d) {
        struct dirent *e;
        char path[512];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    CHECKF(rmdir(s->dir) == 0, "cannot remove %s: %s", s->dir, strerror(errno));
}

int main(void)
{
    scratch s;
    snprintf(s.dir, sizeof s.dir, "/tmp/radfuse-st-XXXXXX");
    if (!mkdtemp(s.dir)) {
        fprintf(stderr, "FATAL: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_round_trip(&s);
    test_many(&s);
    test_metadata_and_layouts(&s);
    test_truncated(&s);
    test_header_length(&s);
    test_hostile_headers(&s);
    test_not_files(&s);
    test_mutations(&s);
    test_write_errors(&s);
    test_fixture();
    scratch_remove(&s);
    return test_finish("test_safetensors");
}
