/*
 * safetensors files: a strict, mmap-based reader and an atomic writer.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON (an
 * object mapping tensor names to {"dtype", "shape", "data_offsets"}, plus an
 * optional "__metadata__" object of strings, padded with trailing whitespace),
 * then the data section. data_offsets are [begin, end) relative to the start
 * of the data section.
 *
 * The reader treats the file as hostile. Every number in the header is checked
 * against the file size before it is used for anything, so memory use is
 * bounded by the size of the header (which is bounded by the file size and a
 * fixed limit), never by a count or size the header merely claims. Tensor data
 * is not copied: rf_st_tensor.data points into a read-only private mapping
 * that lives until rf_safetensors_close.
 *
 * Deliberately lenient where the format allows: unknown keys inside a tensor
 * entry are ignored (forward compatibility), gaps between tensors and bytes
 * after the last tensor are allowed, and empty tensor names are accepted on
 * read (the writer refuses them). Integers are read through cJSON as doubles,
 * so an integral value written as "16.0" is accepted as 16; anything above
 * 2^53, where doubles stop being exact, is rejected.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "radfuse/runtime.h"
#include "runtime/fileio.h"

/* Limits on what a header may ask of us (see rf_safetensors_open). */
#define ST_MAX_HEADER ((uint64_t)100 << 20) /* bytes of header JSON */
#define ST_MAX_TENSORS 1000000
#define ST_MAX_NAME 1024 /* bytes in a tensor name */
#define ST_MAX_RANK 8    /* = the length of rf_st_tensor.shape */
#define ST_MAX_EXACT ((uint64_t)1 << 53) /* largest integer a double holds exactly */

/* How many characters of a name / path appear in an error message; the rest
 * is elided so a hostile header cannot crowd the actual problem out of the
 * fixed-size rf_err. */
#define SHOW_NAME 80
#define SHOW_PATH 160

static const struct {
    const char *name;
    size_t size;
} st_dtypes[RF_ST_DTYPE_COUNT] = {
    [RF_ST_BOOL] = {"BOOL", 1},       [RF_ST_U8] = {"U8", 1},     [RF_ST_I8] = {"I8", 1},
    [RF_ST_I16] = {"I16", 2},         [RF_ST_U16] = {"U16", 2},   [RF_ST_F16] = {"F16", 2},
    [RF_ST_BF16] = {"BF16", 2},       [RF_ST_I32] = {"I32", 4},   [RF_ST_U32] = {"U32", 4},
    [RF_ST_F32] = {"F32", 4},         [RF_ST_I64] = {"I64", 8},   [RF_ST_U64] = {"U64", 8},
    [RF_ST_F64] = {"F64", 8},         [RF_ST_F8_E4M3] = {"F8_E4M3", 1},
    [RF_ST_F8_E5M2] = {"F8_E5M2", 1},
};

/* The format's name for t ("F32", ...), or "?" when t is out of range. */
const char *rf_st_dtype_name(rf_st_dtype t)
{
    return (unsigned)t < RF_ST_DTYPE_COUNT ? st_dtypes[t].name : "?";
}

/* Bytes per element of t, or 0 when t is out of range. */
size_t rf_st_dtype_size(rf_st_dtype t)
{
    return (unsigned)t < RF_ST_DTYPE_COUNT ? st_dtypes[t].size : 0;
}

/* The dtype called name, or -1 when it is not one the format defines. */
static int st_dtype_lookup(const char *name)
{
    for (int i = 0; i < RF_ST_DTYPE_COUNT; i++)
        if (strcmp(name, st_dtypes[i].name) == 0)
            return i;
    return -1;
}

/* ---- one-line error messages ------------------------------------------- */

/*
 * The length of the valid UTF-8 sequence (RFC 3629: no overlong forms,
 * surrogates or code points past U+10FFFF) that starts a non-ASCII byte at s,
 * given len >= 1 readable bytes, or 0 when there is none.
 */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return n;
}

/*
 * Writes s into buf (which must hold 4 * max + 8 bytes) as text that is safe
 * to embed in a one-line message: control bytes and bytes that are not part
 * of valid UTF-8 become \xNN, and a string
 * longer than max bytes is cut at a UTF-8 character boundary and marked with
 * "...", keeping the head (names) or the tail (paths, whose end says most).
 * Returns buf.
 */
static const char *printable(char *buf, const char *s, size_t max, int keep_tail)
{
    size_t len = strlen(s), o = 0;
    const char *p = s, *end = s + len;
    int cut = len > max;
    if (cut && keep_tail) {
        p = end - max;
        while (p < end && ((unsigned char)*p & 0xC0) == 0x80)
            p++;
        memcpy(buf, "...", 3);
        o = 3;
    } else if (cut) {
        end = s + max;
        while (end > s && ((unsigned char)*end & 0xC0) == 0x80)
            end--;
    }
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        size_t n = c >= 0x80 ? utf8_seq((const unsigned char *)p, (size_t)(end - p)) : 1;
        if (n > 1) {
            memcpy(buf + o, p, n);
            o += n;
            p += n - 1;
        } else if (c < 0x20 || c == 0x7f || n == 0) {
            static const char hex[] = "0123456789abcdef";
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    if (cut && !keep_tail) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* A tensor or key name ready for a message. */
typedef struct shown_name {
    char s[4 * SHOW_NAME + 8];
} shown_name;

static const char *show(shown_name *b, const char *name)
{
    return printable(b->s, name, SHOW_NAME, 0);
}

/* Where messages go: the file's path as shown, and the caller's rf_err. */
typedef struct st_ctx {
    char path[4 * SHOW_PATH + 8];
    rf_err *err;
} st_ctx;

static void ctx_init(st_ctx *c, const char *path, rf_err *err)
{
    printable(c->path, path, SHOW_PATH, 1);
    c->err = err;
}

/* Sets "PATH: message" in the context's rf_err and returns code. */
static int st_fail(const st_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int st_fail(const st_ctx *c, int code, const char *fmt, ...)
{
    char msg[RF_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rf_err_set(c->err, code, "%s: %s", c->path, msg);
}

/* Formats dims as "[2, 3]" into buf (room for ST_MAX_RANK 20-digit numbers). */
typedef struct shown_shape {
    char s[ST_MAX_RANK * 22 + 4];
} shown_shape;

static const char *show_shape(shown_shape *b, int ndim, const uint64_t *dims)
{
    size_t o = 0;
    b->s[o++] = '[';
    for (int i = 0; i < ndim; i++)
        o += (size_t)snprintf(b->s + o, sizeof b->s - o, "%s%llu", i ? ", " : "",
                              (unsigned long long)dims[i]);
    snprintf(b->s + o, sizeof b->s - o, "]");
    return b->s;
}

/* ---- sizes ------------------------------------------------------------- */

/* Why a shape has no byte size. */
enum { SHAPE_OK, SHAPE_OVERFLOW };

/*
 * Computes the byte size of a tensor of element size elsize and the given
 * dims (each <= 2^53) into *bytes. Fails with SHAPE_OVERFLOW when the product
 * of the nonzero dims times elsize does not fit in int64: a zero-size tensor
 * whose other dims multiply past that is rejected too, so that code doing
 * arithmetic on partial shapes later can never overflow.
 */
static int shape_bytes(size_t elsize, int ndim, const uint64_t *dims, uint64_t *bytes)
{
    uint64_t prod = elsize;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] == 0) {
            zero = 1;
            continue;
        }
        if (__builtin_mul_overflow(prod, dims[i], &prod) || prod > (uint64_t)INT64_MAX)
            return SHAPE_OVERFLOW;
    }
    *bytes = zero ? 0 : prod;
    return SHAPE_OK;
}

/* ---- header bytes ------------------------------------------------------ */

/*
 * Checks the raw header before cJSON sees it: it must be valid UTF-8, contain
 * no control bytes other than tab, LF and CR (JSON allows none elsewhere, and
 * a raw NUL would silently truncate a cJSON string), and contain no \u0000
 * escape (cJSON would decode it into a NUL that truncates a name, so two
 * distinct names could collapse into one). Returns 0, or fills *at with the
 * offending offset and returns a short description.
 */
static const char *header_bytes_problem(const unsigned char *s, size_t len, size_t *at)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        *at = i;
        if (c < 0x80) {
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                return "a control byte";
            if (c == '\\' && i + 1 < len) {
                /* Step over the whole escape pair, so "\\u0000" (an escaped
                 * backslash followed by text) is not mistaken for "\u0000". */
                if (s[i + 1] == 'u' && i + 6 <= len && memcmp(s + i + 2, "0000", 4) == 0)
                    return "an escaped NUL character (\\u0000)";
                i += s[i + 1] < 0x80 ? 2 : 1;
                continue;
            }
            i++;
            continue;
        }
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0)
            return "invalid UTF-8";
        i += n;
    }
    return NULL;
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ---- the reader -------------------------------------------------------- */

typedef struct st_meta {
    const char *key;
    const char *value;
} st_meta;

struct rf_safetensors {
    char *path;
    void *map; /* the whole file, PROT_READ, MAP_PRIVATE */
    size_t map_size;
    rf_st_tensor *tensors; /* header order */
    size_t count;
    const rf_st_tensor **by_name; /* sorted by strcmp, for bsearch */
    st_meta *meta;                /* sorted by key */
    size_t nmeta;
    char *pool; /* every name, key and value, NUL-terminated */
    size_t pool_used;
};

/* Copies s into the string pool, which was sized for everything up front. */
static char *pool_add(rf_safetensors *st, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = st->pool + st->pool_used;
    memcpy(p, s, n);
    st->pool_used += n;
    return p;
}

/* Why a JSON value is not a usable unsigned integer. */
static const char *json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return "is not a number";
    double d = item->valuedouble;
    if (d != d)
        return "is not a number";
    if (d < 0)
        return "is negative";
    if (d > (double)ST_MAX_EXACT)
        return "is larger than 2^53";
    uint64_t u = (uint64_t)d;
    if ((double)u != d)
        return "is not an integer";
    *out = u;
    return NULL;
}

/* " (value)" for a numeric item, so messages show what was found; "" else. */
typedef struct shown_num {
    char s[40];
} shown_num;

static const char *show_num(shown_num *b, const cJSON *item)
{
    b->s[0] = '\0';
    if (cJSON_IsNumber(item))
        snprintf(b->s, sizeof b->s, " (%.17g)", item->valuedouble);
    return b->s;
}

static int cmp_by_name(const void *a, const void *b)
{
    const rf_st_tensor *x = *(const rf_st_tensor *const *)a;
    const rf_st_tensor *y = *(const rf_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(((const st_meta *)a)->key, ((const st_meta *)b)->key);
}

/* A tensor's byte range, for the overlap check. */
typedef struct st_range {
    uint64_t begin, end;
    size_t index;
} st_range;

static int cmp_range(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Validates "__metadata__" (an object whose values are all strings) and
 * appends its pairs to st->meta. Duplicate keys are caught after sorting.
 */
static int parse_metadata(const st_ctx *c, rf_safetensors *st, const cJSON *obj)
{
    if (!cJSON_IsObject(obj))
        return st_fail(c, RF_EFORMAT, "__metadata__ is not a JSON object");
    const cJSON *kv;
    cJSON_ArrayForEach(kv, obj)
    {
        shown_name kn;
        if (!cJSON_IsString(kv) || !kv->valuestring)
            return st_fail(c, RF_EFORMAT, "__metadata__ value for key '%s' is not a string",
                           show(&kn, kv->string ? kv->string : ""));
        st_meta *m = &st->meta[st->nmeta++];
        m->key = pool_add(st, kv->string ? kv->string : "");
        m->value = pool_add(st, kv->valuestring);
    }
    return 0;
}

/*
 * Validates one tensor entry and fills t (name already set). data_size is
 * the size of the data section and data its first byte. The begin/end
 * offsets are returned for the overlap check.
 */
static int parse_tensor(const st_ctx *c, rf_st_tensor *t, const cJSON *entry,
                        const uint8_t *data, uint64_t data_size, st_range *range)
{
    shown_name tn;
    shown_shape ss;
    const char *name = show(&tn, t->name);
    if (!cJSON_IsObject(entry))
        return st_fail(c, RF_EFORMAT, "tensor '%s' is not a JSON object", name);

    /* Look the fields up by hand: cJSON keeps duplicate keys, and an entry
     * with two "dtype"s is ambiguous, so it is refused, not first-wins. */
    const cJSON *fdtype = NULL, *fshape = NULL, *foffs = NULL, *f;
    cJSON_ArrayForEach(f, entry)
    {
        const cJSON **slot = NULL;
        if (!f->string)
            continue;
        if (strcmp(f->string, "dtype") == 0)
            slot = &fdtype;
        else if (strcmp(f->string, "shape") == 0)
            slot = &fshape;
        else if (strcmp(f->string, "data_offsets") == 0)
            slot = &foffs;
        if (!slot)
            continue; /* unknown keys are ignored, as the reference reader does */
        if (*slot)
            return st_fail(c, RF_EFORMAT, "tensor '%s' has duplicate key \"%s\"", name,
                           f->string);
        *slot = f;
    }
    if (!fdtype)
        return st_fail(c, RF_EFORMAT, "tensor '%s' is missing \"dtype\"", name);
    if (!fshape)
        return st_fail(c, RF_EFORMAT, "tensor '%s' is missing \"shape\"", name);
    if (!foffs)
        return st_fail(c, RF_EFORMAT, "tensor '%s' is missing \"data_offsets\"", name);

    if (!cJSON_IsString(fdtype) || !fdtype->valuestring)
        return st_fail(c, RF_EFORMAT, "tensor '%s' dtype is not a string", name);
    int dt = st_dtype_lookup(fdtype->valuestring);
    if (dt < 0) {
        shown_name dn;
        return st_fail(c, RF_EFORMAT, "tensor '%s' has unknown dtype '%s'", name,
                       show(&dn, fdtype->valuestring));
    }
    t->dtype = (rf_st_dtype)dt;

    if (!cJSON_IsArray(fshape))
        return st_fail(c, RF_EFORMAT, "tensor '%s' shape is not an array", name);
    uint64_t dims[ST_MAX_RANK];
    int ndim = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, fshape)
    {
        if (ndim == ST_MAX_RANK) {
            int rank = ndim;
            for (; d; d = d->next)
                rank++;
            return st_fail(c, RF_EUNSUP, "tensor '%s' has rank %d, more than the supported %d",
                           name, rank, ST_MAX_RANK);
        }
        const char *why = json_uint(d, &dims[ndim]);
        if (why) {
            shown_num v;
            return st_fail(c, RF_EFORMAT, "tensor '%s' shape dimension %d %s%s", name, ndim, why,
                           show_num(&v, d));
        }
        ndim++;
    }
    uint64_t nbytes;
    if (shape_bytes(st_dtypes[dt].size, ndim, dims, &nbytes) != SHAPE_OK)
        return st_fail(c, RF_EFORMAT,
                       "tensor '%s' shape %s of %s is too large: its byte size overflows", name,
                       show_shape(&ss, ndim, dims), st_dtypes[dt].name);

    uint64_t off[2];
    if (!cJSON_IsArray(foffs) || cJSON_GetArraySize(foffs) != 2)
        return st_fail(c, RF_EFORMAT, "tensor '%s' data_offsets is not an array of two integers",
                       name);
    for (int i = 0; i < 2; i++) {
        const cJSON *o = cJSON_GetArrayItem(foffs, i);
        const char *why = json_uint(o, &off[i]);
        if (why) {
            shown_num v;
            return st_fail(c, RF_EFORMAT, "tensor '%s' data_offsets[%d] %s%s", name, i, why,
                           show_num(&v, o));
        }
    }
    if (off[0] > off[1])
        return st_fail(c, RF_EFORMAT, "tensor '%s' data offsets [%llu, %llu) have begin after end",
                       name, (unsigned long long)off[0], (unsigned long long)off[1]);
    if (off[1] > data_size)
        return st_fail(c, RF_EFORMAT,
                       "tensor '%s' data offsets [%llu, %llu) extend past the end of the data "
                       "section (%llu bytes)",
                       name, (unsigned long long)off[0], (unsigned long long)off[1],
                       (unsigned long long)data_size);
    /* A shape bigger than the whole data section cannot match any valid
     * offsets; saying so beats reporting a mismatch against 2^62 bytes. */
    if (off[1] - off[0] != nbytes && nbytes > data_size)
        return st_fail(c, RF_EFORMAT,
                       "tensor '%s' shape %s of %s is too large: it needs %llu bytes but the "
                       "whole data section holds %llu",
                       name, show_shape(&ss, ndim, dims), st_dtypes[dt].name,
                       (unsigned long long)nbytes, (unsigned long long)data_size);
    if (off[1] - off[0] != nbytes)
        return st_fail(c, RF_EFORMAT,
                       "tensor '%s' size mismatch: data offsets [%llu, %llu) hold %llu bytes but "
                       "shape %s of %s needs %llu",
                       name, (unsigned long long)off[0], (unsigned long long)off[1],
                       (unsigned long long)(off[1] - off[0]), show_shape(&ss, ndim, dims),
                       st_dtypes[dt].name, (unsigned long long)nbytes);

    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = (int64_t)dims[i];
    t->nbytes = (size_t)nbytes;
    t->data = data + off[0];
    range->begin = off[0];
    range->end = off[1];
    return 0;
}

/*
 * Parses and validates the header JSON (hdr, hlen bytes, NUL-terminated by
 * the caller) into st. data/data_size describe the data section.
 */
static int parse_header(const st_ctx *c, rf_safetensors *st, const char *hdr, size_t hlen,
                        const uint8_t *data, uint64_t data_size)
{
    size_t at = 0;
    const char *bad = header_bytes_problem((const unsigned char *)hdr, hlen, &at);
    if (bad)
        return st_fail(c, RF_EFORMAT, "header contains %s at byte %zu", bad, at);

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t pos = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        return st_fail(c, RF_EFORMAT, "header is not valid JSON (syntax error near byte %zu)",
                       pos);
    }
    int rc = 0;
    st_range *ranges = NULL;
    /* The header may be padded, but only with whitespace. */
    for (const char *p = end; p && p < hdr + hlen; p++)
        if (!is_json_space(*p)) {
            rc = st_fail(c, RF_EFORMAT, "header has data after the JSON object at byte %zu",
                         (size_t)(p - hdr));
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        rc = st_fail(c, RF_EFORMAT, "header is a JSON %s, not an object",
                     cJSON_IsArray(root)    ? "array"
                     : cJSON_IsString(root) ? "string"
                     : cJSON_IsNumber(root) ? "number"
                                            : "scalar");
        goto out;
    }
    if (hdr[0] != '{') {
        rc = st_fail(c, RF_EFORMAT, "header does not start with '{'");
        goto out;
    }

    /* Pass 1: count entries and string bytes, so that every allocation below
     * is sized by what the header actually contains (hence bounded by hlen). */
    size_t ntensors = 0, nmeta = 0, pool = 0;
    int seen_meta = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        const char *key = e->string ? e->string : "";
        if (strcmp(key, "__metadata__") == 0) {
            if (seen_meta++) {
                rc = st_fail(c, RF_EFORMAT, "duplicate entry '__metadata__'");
                goto out;
            }
            const cJSON *kv;
            cJSON_ArrayForEach(kv, e)
            {
                nmeta++;
                pool += strlen(kv->string ? kv->string : "") + 1;
                pool += kv->valuestring ? strlen(kv->valuestring) + 1 : 0;
            }
            continue;
        }
        size_t len = strlen(key);
        if (len > ST_MAX_NAME) {
            shown_name kn;
            rc = st_fail(c, RF_ENOMEM, "tensor name '%s' is %zu bytes, over the %d-byte limit",
                         show(&kn, key), len, ST_MAX_NAME);
            goto out;
        }
        if (++ntensors > ST_MAX_TENSORS) {
            rc = st_fail(c, RF_ENOMEM, "header lists more than %d tensors", ST_MAX_TENSORS);
            goto out;
        }
        pool += len + 1;
    }

    /* +1s: malloc(0) may return NULL, which would read as failure. */
    st->tensors = calloc(ntensors + 1, sizeof *st->tensors);
    st->by_name = calloc(ntensors + 1, sizeof *st->by_name);
    st->meta = calloc(nmeta + 1, sizeof *st->meta);
    st->pool = malloc(pool + 1);
    ranges = calloc(ntensors + 1, sizeof *ranges);
    if (!st->tensors || !st->by_name || !st->meta || !st->pool || !ranges) {
        rc = st_fail(c, RF_ENOMEM, "out of memory reading the header (%zu tensors)", ntensors);
        goto out;
    }

    /* Pass 2: validate and fill, in header order. */
    cJSON_ArrayForEach(e, root)
    {
        const char *key = e->string ? e->string : "";
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = parse_metadata(c, st, e)) != 0)
                goto out;
            continue;
        }
        rf_st_tensor *t = &st->tensors[st->count];
        t->name = pool_add(st, key);
        ranges[st->count].index = st->count;
        if ((rc = parse_tensor(c, t, e, data, data_size, &ranges[st->count])) != 0)
            goto out;
        st->by_name[st->count] = t;
        st->count++;
    }

    if (st->count > 1)
        qsort(st->by_name, st->count, sizeof *st->by_name, cmp_by_name);
    for (size_t i = 1; i < st->count; i++)
        if (strcmp(st->by_name[i - 1]->name, st->by_name[i]->name) == 0) {
            shown_name n;
            rc = st_fail(c, RF_EFORMAT, "duplicate tensor name '%s'",
                         show(&n, st->by_name[i]->name));
            goto out;
        }
    if (st->nmeta > 1)
        qsort(st->meta, st->nmeta, sizeof *st->meta, cmp_meta);
    for (size_t i = 1; i < st->nmeta; i++)
        if (strcmp(st->meta[i - 1].key, st->meta[i].key) == 0) {
            shown_name n;
            rc = st_fail(c, RF_EFORMAT, "__metadata__ has duplicate key '%s'",
                         show(&n, st->meta[i].key));
            goto out;
        }

    /* Overlaps: sorted by begin, each nonempty range must start at or after
     * the end of the previous nonempty one. Empty ranges share no bytes with
     * anything, wherever they sit. */
    if (st->count > 1)
        qsort(ranges, st->count, sizeof *ranges, cmp_range);
    const st_range *prev = NULL;
    for (size_t i = 0; i < st->count; i++) {
        const st_range *r = &ranges[i];
        if (r->begin == r->end)
            continue;
        if (prev && r->begin < prev->end) {
            shown_name a, b;
            rc = st_fail(c, RF_EFORMAT, "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                         show(&a, st->tensors[prev->index].name), (unsigned long long)prev->begin,
                         (unsigned long long)prev->end, show(&b, st->tensors[r->index].name),
                         (unsigned long long)r->begin, (unsigned long long)r->end);
            goto out;
        }
        prev = r;
    }
out:
    free(ranges);
    cJSON_Delete(root);
    return rc;
}

/*
 * Opens path, maps it read-only and validates everything the header says
 * against the file (see the file comment and runtime.h). On success *out owns
 * the mapping; rf_st_tensor.data stays valid until rf_safetensors_close.
 * rf_safetensors_at keeps header order; rf_safetensors_find is a binary
 * search. Errors: RF_EIO (cannot open, stat or map), RF_EFORMAT (malformed),
 * RF_ENOMEM (out of memory, or the header exceeds a limit: 100 MiB of JSON,
 * 1,000,000 tensors, 1024-byte names), RF_EUNSUP (rank above 8), RF_EINVAL
 * (NULL arguments). If the file is truncated by someone else while mapped,
 * touching its data raises SIGBUS; no reader of a mapping can prevent that.
 */
int rf_safetensors_open(rf_safetensors **out, const char *path, rf_err *err)
{
    if (!out || !path)
        return rf_err_set(err, RF_EINVAL, "rf_safetensors_open: NULL argument");
    *out = NULL;
    st_ctx c;
    ctx_init(&c, path, err);

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return st_fail(&c, RF_EIO, "cannot open: %s", strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return st_fail(&c, RF_EIO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return st_fail(&c, RF_EIO, "not a regular file");
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < 8) {
        close(fd);
        return st_fail(&c, RF_EFORMAT,
                       "file is too short (%llu bytes) to hold the 8-byte header length",
                       (unsigned long long)fsize);
    }
    if (fsize > SIZE_MAX) {
        close(fd);
        return st_fail(&c, RF_ENOMEM, "file is too large to map");
    }

    rf_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        close(fd);
        return st_fail(&c, RF_ENOMEM, "out of memory");
    }
    st->map = mmap(NULL, (size_t)fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file alive */
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        rf_safetensors_close(st);
        return st_fail(&c, RF_EIO, "cannot map: %s", strerror(map_errno));
    }
    st->map_size = (size_t)fsize;

    const uint8_t *base = st->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | base[i];
    int rc = 0;
    if (hlen == 0)
        rc = st_fail(&c, RF_EFORMAT, "header length is 0");
    else if (hlen > fsize - 8)
        rc = st_fail(&c, RF_EFORMAT,
                     "header length %llu extends past the end of the file (%llu bytes)",
                     (unsigned long long)hlen, (unsigned long long)fsize);
    else if (hlen > ST_MAX_HEADER)
        rc = st_fail(&c, RF_ENOMEM, "header length %llu exceeds the %llu MiB limit",
                     (unsigned long long)hlen, (unsigned long long)(ST_MAX_HEADER >> 20));
    if (rc) {
        rf_safetensors_close(st);
        return rc;
    }

    /* cJSON gets a private NUL-terminated copy: the mapped header is neither
     * terminated nor followed by readable memory in general, and a copy caps
     * what a parser bug could over-read. hlen is checked against the file
     * size and the limit above, so this allocation is bounded. */
    char *hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        rf_safetensors_close(st);
        return st_fail(&c, RF_ENOMEM, "out of memory for a %llu-byte header",
                       (unsigned long long)hlen);
    }
    memcpy(hdr, base + 8, (size_t)hlen);
    hdr[hlen] = '\0';
    rc = parse_header(&c, st, hdr, (size_t)hlen, base + 8 + hlen, fsize - 8 - hlen);
    free(hdr);
    if (rc) {
        rf_safetensors_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

/* Unmaps the file and frees st (NULL is a no-op); its tensors die with it. */
void rf_safetensors_close(rf_safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->map_size);
    free(st->tensors);
    free(st->by_name);
    free(st->meta);
    free(st->pool);
    free(st->path);
    free(st);
}

/* Number of tensors (not counting "__metadata__"). */
size_t rf_safetensors_count(const rf_safetensors *st)
{
    return st ? st->count : 0;
}

/* The i-th tensor in header order, or NULL when i is out of range. */
const rf_st_tensor *rf_safetensors_at(const rf_safetensors *st, size_t i)
{
    return st && i < st->count ? &st->tensors[i] : NULL;
}

static int cmp_find(const void *key, const void *elem)
{
    return strcmp(key, (*(const rf_st_tensor *const *)elem)->name);
}

/* The tensor called name, or NULL. O(log n). */
const rf_st_tensor *rf_safetensors_find(const rf_safetensors *st, const char *name)
{
    if (!st || !name || st->count == 0)
        return NULL;
    const rf_st_tensor *const *hit =
        bsearch(name, st->by_name, st->count, sizeof *st->by_name, cmp_find);
    return hit ? *hit : NULL;
}

/* The path st was opened with. */
const char *rf_safetensors_path(const rf_safetensors *st)
{
    return st ? st->path : NULL;
}

static int cmp_find_meta(const void *key, const void *elem)
{
    return strcmp(key, ((const st_meta *)elem)->key);
}

/* The "__metadata__" value for key, or NULL when absent. */
const char *rf_safetensors_metadata(const rf_safetensors *st, const char *key)
{
    if (!st || !key || st->nmeta == 0)
        return NULL;
    const st_meta *hit = bsearch(key, st->meta, st->nmeta, sizeof *st->meta, cmp_find_meta);
    return hit ? hit->value : NULL;
}

/* ---- the writer -------------------------------------------------------- */

/* Appends v to the JSON array arr as a raw decimal integer. cJSON prints
 * numbers with %g, which turns integers of 16+ digits into exponent form that
 * strict readers refuse; raw text avoids that. Returns 1 on success. */
static int add_uint(cJSON *arr, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    cJSON *it = cJSON_CreateRaw(num);
    if (!it)
        return 0;
    if (!cJSON_AddItemToArray(arr, it)) {
        cJSON_Delete(it);
        return 0;
    }
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Checks the tensors to write and computes their byte sizes into sizes[].
 * Everything the reader would refuse is refused here, so a file this writes
 * always opens.
 */
static int check_outputs(const st_ctx *c, const rf_st_out *tensors, size_t n, uint64_t *sizes)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const rf_st_out *t = &tensors[i];
        shown_name tn;
        if (!t->name || !t->name[0])
            return st_fail(c, RF_EINVAL, "tensor %zu has an empty name", i);
        const char *name = show(&tn, t->name);
        size_t len = strlen(t->name), at;
        if (len > ST_MAX_NAME)
            return st_fail(c, RF_EINVAL, "tensor name '%s' is %zu bytes, over the %d-byte limit",
                           name, len, ST_MAX_NAME);
        if (strcmp(t->name, "__metadata__") == 0)
            return st_fail(c, RF_EINVAL, "tensor name '__metadata__' is reserved");
        if (header_bytes_problem((const unsigned char *)t->name, len, &at))
            return st_fail(c, RF_EINVAL, "tensor name '%s' is not valid UTF-8 text", name);
        if ((unsigned)t->dtype >= RF_ST_DTYPE_COUNT)
            return st_fail(c, RF_EINVAL, "tensor '%s' has unknown dtype %d", name, (int)t->dtype);
        if (t->ndim < 0 || t->ndim > ST_MAX_RANK || (t->ndim > 0 && !t->shape))
            return st_fail(c, RF_EINVAL, "tensor '%s' has invalid rank %d (0 to %d)", name,
                           t->ndim, ST_MAX_RANK);
        uint64_t dims[ST_MAX_RANK];
        for (int k = 0; k < t->ndim; k++) {
            if (t->shape[k] < 0 || (uint64_t)t->shape[k] > ST_MAX_EXACT)
                return st_fail(c, RF_EINVAL, "tensor '%s' dimension %d is out of range (%lld)",
                               name, k, (long long)t->shape[k]);
            dims[k] = (uint64_t)t->shape[k];
        }
        if (shape_bytes(st_dtypes[t->dtype].size, t->ndim, dims, &sizes[i]) != SHAPE_OK ||
            __builtin_add_overflow(total, sizes[i], &total) || total > (uint64_t)INT64_MAX ||
            total > SIZE_MAX) {
            shown_shape ss;
            return st_fail(c, RF_EINVAL, "tensor '%s' shape %s is too large", name,
                           show_shape(&ss, t->ndim, dims));
        }
        if (sizes[i] > 0 && !t->data)
            return st_fail(c, RF_EINVAL, "tensor '%s' has no data", name);
    }
    /* Duplicates: sort a copy of the names. */
    if (n > 1) {
        const char **names = malloc(n * sizeof *names);
        if (!names)
            return st_fail(c, RF_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++)
            names[i] = tensors[i].name;
        qsort(names, n, sizeof *names, cmp_str_ptr);
        for (size_t i = 1; i < n; i++)
            if (strcmp(names[i - 1], names[i]) == 0) {
                shown_name dn;
                int rc = st_fail(c, RF_EINVAL, "duplicate tensor name '%s'", show(&dn, names[i]));
                free(names);
                return rc;
            }
        free(names);
    }
    return 0;
}

/*
 * Builds the file's first bytes: the 8-byte length, the header JSON and
 * space padding so the data section starts 8-byte aligned. The header lists
 * the tensors in the given order with contiguous data_offsets, plus
 * "__metadata__": {"format": "pt"}, which transformers checks for when it
 * loads a safetensors checkpoint. Returns malloc'd bytes and their count in
 * *len, or NULL (out of memory).
 */
static uint8_t *build_header(const rf_st_out *tensors, size_t n, const uint64_t *sizes,
                             size_t *len)
{
    uint8_t *buf = NULL;
    char *json = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
    if (!meta || !cJSON_AddStringToObject(meta, "format", "pt"))
        goto out;
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const rf_st_out *t = &tensors[i];
        cJSON *e = cJSON_CreateObject();
        if (!e)
            goto out;
        if (!cJSON_AddItemToObject(root, t->name, e)) {
            cJSON_Delete(e);
            goto out;
        }
        cJSON *shape, *offs;
        if (!cJSON_AddStringToObject(e, "dtype", st_dtypes[t->dtype].name) ||
            !(shape = cJSON_AddArrayToObject(e, "shape")))
            goto out;
        for (int k = 0; k < t->ndim; k++)
            if (!add_uint(shape, (uint64_t)t->shape[k]))
                goto out;
        if (!(offs = cJSON_AddArrayToObject(e, "data_offsets")) || !add_uint(offs, off) ||
            !add_uint(offs, off + sizes[i]))
            goto out;
        off += sizes[i];
    }
    json = cJSON_PrintUnformatted(root);
    if (!json)
        goto out;
    size_t jlen = strlen(json);
    size_t padded = (jlen + 7) & ~(size_t)7;
    buf = malloc(8 + padded);
    if (!buf)
        goto out;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, json, jlen);
    memset(buf + 8 + jlen, ' ', padded - jlen);
    *len = 8 + padded;
out:
    cJSON_free(json);
    cJSON_Delete(root);
    return buf;
}

/*
 * Writes n tensors to path as a safetensors file, atomically: the bytes go to
 * "<path>.tmp.<pid>" in the same directory, which is fsynced, renamed over
 * path, and then the directory is fsynced. On failure before the rename the
 * temporary file is removed and path is untouched. Errors: RF_EINVAL (bad
 * tensors: empty, reserved, duplicate or non-UTF-8 names, unknown dtype, bad
 * shape, NULL data), RF_ENOMEM, RF_EIO. The temporary is created with O_EXCL,
 * so two writers of one path in one process fail rather than interleave.
 */
int rf_safetensors_write(const char *path, const rf_st_out *tensors, size_t n, rf_err *err)
{
    if (!path || !*path || (n > 0 && !tensors))
        return rf_err_set(err, RF_EINVAL, "rf_safetensors_write: NULL or empty argument");
    st_ctx c;
    ctx_init(&c, path, err);
    if (n > ST_MAX_TENSORS)
        return st_fail(&c, RF_EINVAL, "%zu tensors exceed the limit of %d", n, ST_MAX_TENSORS);

    uint64_t *sizes = calloc(n + 1, sizeof *sizes);
    if (!sizes)
        return st_fail(&c, RF_ENOMEM, "out of memory");
    int rc = check_outputs(&c, tensors, n, sizes);
    if (rc) {
        free(sizes);
        return rc;
    }
    size_t hlen = 0;
    uint8_t *hdr = build_header(tensors, n, sizes, &hlen);
    if (!hdr) {
        free(sizes);
        return st_fail(&c, RF_ENOMEM, "out of memory building the header");
    }
    if (hlen - 8 > ST_MAX_HEADER) {
        free(hdr);
        free(sizes);
        return st_fail(&c, RF_ENOMEM, "header of %zu bytes exceeds the %llu MiB limit", hlen - 8,
                       (unsigned long long)(ST_MAX_HEADER >> 20));
    }

    rf_atomic_file af;
    rc = rf_atomic_open(&af, path, err);
    if (!rc)
        rc = rf_atomic_write(&af, hdr, hlen, err);
    for (size_t i = 0; !rc && i < n; i++)
        if (sizes[i])
            rc = rf_atomic_write(&af, tensors[i].data, (size_t)sizes[i], err);
    if (!rc)
        rc = rf_atomic_commit(&af, err);
    free(hdr);
    free(sizes);
    return rc;
}
