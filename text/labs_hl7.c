/*
 * Labs from HL7 v2 ORU^R01 messages. Each message's delimiters are read from
 * its MSH (MSH-1 the field separator, MSH-2 the component, repetition, escape
 * and subcomponent characters, and v2.7's truncation character), never
 * assumed. Segments end with CR as the standard says, or LF or CRLF as files
 * often have them. OBX segments become labs (TX and FT values, and NTE
 * comments, become notes); OBR-7 dates the OBX segments that carry no OBX-14.
 * Escape sequences (\F\ \S\ \T\ \R\ \E\ \P\, \Xhh..\, \.br\ and the other
 * formatting commands) are decoded after the delimiters split the text.
 * Segments of other messages than ORU^R01 are skipped with an issue.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/labs_internal.h"
#include "text/text_internal.h"

#define HL7_SEGMENT_MAX ((size_t)8 << 20) /* a TX note of RF_NOTE_MAX with its escapes */

typedef struct delims {
    char field, comp, rep, esc, sub, trunc; /* trunc 0 when MSH-2 has 4 characters */
} delims;

typedef struct slice {
    const char *s;
    size_t n;
} slice;

typedef struct hctx {
    const char *name;
    rf_labs *L;
    const labs_base *base;
    rf_err *err;
    delims d;
    size_t seg;        /* 1-based number of the segment being read */
    char segid[4];
    char *obr_time;    /* OBR-7 of the current order, decoded */
    char *last_title;  /* OBX-3 text of the last OBX (titles its NTE comments) */
} hctx;

/* ---- splitting ---------------------------------------------------------------- */

/* Part i of s split at sep (0-based), or an empty slice past the end. */
static slice part(slice s, char sep, size_t i)
{
    const char *p = s.s, *end = s.s + s.n;
    for (; i > 0; i--) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        if (!q)
            return (slice){end, 0};
        p = q + 1;
    }
    const char *q = memchr(p, sep, (size_t)(end - p));
    return (slice){p, (size_t)((q ? q : end) - p)};
}

/* The parts of a slice split at a separator, in order, in one pass. */
typedef struct parts {
    const char *p, *end;
    bool done;
} parts;

static parts parts_of(slice s)
{
    return (parts){s.s, s.s + s.n, s.n == 0};
}

static bool parts_next(parts *it, char sep, slice *out)
{
    if (it->done)
        return false;
    const char *q = memchr(it->p, sep, (size_t)(it->end - it->p));
    *out = (slice){it->p, (size_t)((q ? q : it->end) - it->p)};
    if (q)
        it->p = q + 1;
    else
        it->done = true;
    return true;
}

static size_t count_parts(slice s, char sep)
{
    if (!s.n)
        return 0;
    size_t k = 1;
    for (size_t i = 0; i < s.n; i++)
        k += s.s[i] == sep;
    return k;
}

/* Field n of a segment (SEG-n; for MSH, MSH-n counting the separator as MSH-1). */
static slice field(const hctx *c, slice seg, size_t n)
{
    if (!memcmp(seg.s, "MSH", 3)) {
        if (n == 1)
            return (slice){seg.s + 3, 1};
        n--;
    }
    return part(seg, c->d.field, n);
}

/* ---- escapes -------------------------------------------------------------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (char)toupper((unsigned char)ch);
    return ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/*
 * s with escape sequences decoded into a malloc'd string. *bad is set when a
 * sequence is not understood or unterminated, or the result is not UTF-8 text
 * without NUL: then the result is s as written, for the caller to flag.
 */
static char *unescape(const delims *d, slice s, bool *bad)
{
    *bad = false;
    char *out = malloc(s.n + 1);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.s[i];
        if (!d->esc || ch != d->esc) {
            out[n++] = ch;
            continue;
        }
        const char *close = memchr(s.s + i + 1, d->esc, s.n - i - 1);
        if (!close) {
            *bad = true;
            break;
        }
        const char *q = s.s + i + 1;
        size_t k = (size_t)(close - q);
        if (k == 1 && *q == 'F')
            out[n++] = d->field;
        else if (k == 1 && *q == 'S')
            out[n++] = d->comp;
        else if (k == 1 && *q == 'T')
            out[n++] = d->sub;
        else if (k == 1 && *q == 'R')
            out[n++] = d->rep;
        else if (k == 1 && *q == 'E')
            out[n++] = d->esc;
        else if (k == 1 && *q == 'P' && d->trunc)
            out[n++] = d->trunc;
        else if (k == 1 && (*q == 'H' || *q == 'N'))
            ; /* highlighting on and off */
        else if (k >= 3 && *q == 'X' && (k - 1) % 2 == 0) {
            for (size_t j = 1; j < k; j += 2) {
                int hi = hexval(q[j]), lo = hexval(q[j + 1]);
                if (hi < 0 || lo < 0) {
                    *bad = true;
                    break;
                }
                out[n++] = (char)(hi << 4 | lo); /* \Xhh\ is at most as long as what it encodes */
            }
        } else if (k == 3 && (!memcmp(q, ".br", 3) || !memcmp(q, ".sp", 3)))
            out[n++] = '\n';
        else if (k >= 3 && q[0] == '.' &&
                 (!memcmp(q, ".sp", 3) || !memcmp(q, ".in", 3) || !memcmp(q, ".ti", 3) || !memcmp(q, ".sk", 3) ||
                  !memcmp(q, ".fi", 3) || !memcmp(q, ".nf", 3) || !memcmp(q, ".ce", 3)))
            ; /* formatting commands: the text stays, the layout goes */
        else
            *bad = true; /* \C..\ and \M..\ charset switches, \Z..\ local escapes, anything else */
        if (*bad)
            break;
        i = (size_t)(close - s.s);
    }
    size_t badpos;
    if (!*bad && (memchr(out, 0, n) || !text_utf8_valid(out, n, &badpos)))
        *bad = true;
    if (*bad) {
        memcpy(out, s.s, s.n);
        n = s.n;
    }
    out[n] = 0;
    return out;
}

static int oom(hctx *c)
{
    return rf_err_set(c->err, RF_ENOMEM, "%s: segment %zu (%s): out of memory", c->name, c->seg, c->segid);
}

static int issue(hctx *c, const char *what)
{
    char *src = labs_printf("%s: segment %zu (%s)", c->name, c->seg, c->segid);
    if (!src)
        return oom(c);
    int rc = labs_issue(c->L, c->base, c->err, src, "%s", what);
    free(src);
    return rc;
}

/* Decoded text of a slice into *dst (NULL for an empty slice); an issue names
 * the field when its escapes are not understood (the text is kept as written). */
static int decode(hctx *c, slice s, char **dst, const char *fieldname)
{
    free(*dst);
    *dst = NULL;
    if (!s.n)
        return RF_OK;
    bool bad;
    if (!(*dst = unescape(&c->d, s, &bad)))
        return oom(c);
    if (bad) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: escape sequence not understood or not UTF-8 text; kept as written", fieldname);
        return issue(c, msg);
    }
    return RF_OK;
}

/* ---- MSH ------------------------------------------------------------------------------ */

static bool delim_ok(char ch)
{
    return ch > 0x20 && ch < 0x7f && !isalnum((unsigned char)ch);
}

static int read_msh(hctx *c, slice seg)
{
    if (seg.n < 8)
        return rf_err_set(c->err, RF_EFORMAT, "%s: segment %zu (MSH): too short for MSH-1 and MSH-2", c->name, c->seg);
    delims d = {0};
    d.field = seg.s[3];
    if (!delim_ok(d.field))
        return rf_err_set(c->err, RF_EFORMAT,
                          "%s: segment %zu (MSH): MSH-1, the field separator, is not a punctuation character",
                          c->name, c->seg);
    const char *enc = seg.s + 4, *end = seg.s + seg.n;
    const char *stop = memchr(enc, d.field, (size_t)(end - enc));
    size_t k = (size_t)((stop ? stop : end) - enc);
    char shown[8] = {0};
    for (size_t i = 0; i < k && i < 5; i++)
        shown[i] = delim_ok(enc[i]) ? enc[i] : '?';
    bool ok = k == 4 || k == 5;
    for (size_t i = 0; ok && i < k; i++) {
        ok = delim_ok(enc[i]) && enc[i] != d.field;
        for (size_t j = 0; ok && j < i; j++)
            ok = enc[i] != enc[j];
    }
    if (!ok || !stop)
        return rf_err_set(c->err, RF_EFORMAT,
                          "%s: segment %zu (MSH): MSH-2 must be 4 or 5 distinct punctuation characters (component, "
                          "repetition, escape, subcomponent[, truncation]) ended by the field separator; got '%s'",
                          c->name, c->seg, shown);
    d.comp = enc[0], d.rep = enc[1], d.esc = enc[2], d.sub = enc[3], d.trunc = k == 5 ? enc[4] : 0;
    c->d = d;
    return RF_OK;
}

/* ---- OBX -------------------------------------------------------------------------------- */

static bool type_is(slice t, const char *name)
{
    return t.n == strlen(name) && !memcmp(t.s, name, t.n);
}

static int note(hctx *c, char *text, const char *kind, const char *title, const char *when)
{
    size_t n = strlen(text);
    if (n > RF_NOTE_MAX) {
        free(text);
        return issue(c, "text larger than the 4 MiB allowed for a note; skipped");
    }
    rf_note *nt;
    int rc = labs_new_note(c->L, c->base, &nt, c->err);
    if (rc) {
        free(text);
        return rc;
    }
    nt->text = text, nt->len = n;
    nt->source = labs_printf("%s: segment %zu (%s)", c->name, c->seg, c->segid);
    nt->kind = labs_strdup(kind);
    nt->title = labs_strdup(title);
    nt->time_raw = labs_strdup(when);
    if (!nt->source || !nt->kind || (title && !nt->title) || (when && !nt->time_raw))
        return oom(c);
    if (when && rf_time_parse_hl7(when, strlen(when), &nt->time))
        nt->flags |= RF_LAB_BAD_TIME;
    return RF_OK;
}

/* Repetitions of a field decoded and joined by '\n' (TX, FT, NTE-3). */
static int joined(hctx *c, slice f, char **out, const char *fieldname)
{
    *out = NULL;
    labs_buf acc = {0};
    parts it = parts_of(f);
    slice rep;
    bool first = true;
    if (labs_buf_add(&acc, NULL, "", 0))
        return oom(c);
    while (parts_next(&it, c->d.rep, &rep)) {
        char *t = NULL;
        int rc = decode(c, rep, &t, fieldname);
        if (!rc && labs_buf_add(&acc, first ? NULL : "\n", t ? t : "", t ? strlen(t) : 0))
            rc = oom(c);
        free(t);
        if (rc) {
            free(acc.s);
            return rc;
        }
        first = false;
    }
    *out = acc.s;
    return RF_OK;
}

static int obx(hctx *c, slice seg)
{
    int rc;
    slice type = field(c, seg, 2), id = field(c, seg, 3), value = field(c, seg, 5);
    slice id1 = part(id, c->d.rep, 0);
    char *code = NULL, *text = NULL, *sys = NULL, *acode = NULL, *atext = NULL, *asys = NULL, *when = NULL;
    if ((rc = decode(c, part(id1, c->d.comp, 0), &code, "OBX-3")) ||
        (rc = decode(c, part(id1, c->d.comp, 1), &text, "OBX-3")) ||
        (rc = decode(c, part(id1, c->d.comp, 2), &sys, "OBX-3")) ||
        (rc = decode(c, part(id1, c->d.comp, 3), &acode, "OBX-3")) ||
        (rc = decode(c, part(id1, c->d.comp, 4), &atext, "OBX-3")) ||
        (rc = decode(c, part(id1, c->d.comp, 5), &asys, "OBX-3")) ||
        (rc = decode(c, part(part(field(c, seg, 14), c->d.rep, 0), c->d.comp, 0), &when, "OBX-14")))
        goto done;
    if (!when && c->obr_time && !(when = labs_strdup(c->obr_time))) {
        rc = oom(c);
        goto done;
    }
    /* the LOINC coding of the two (identifier or alternate identifier) */
    if ((!sys || strcmp(sys, "LN")) && asys && !strcmp(asys, "LN") && acode) {
        char *t;
        t = code, code = acode, acode = t;
        t = sys, sys = asys, asys = t;
        if (atext)
            t = text, text = atext, atext = t;
    }
    free(c->last_title);
    c->last_title = labs_strdup(text ? text : code);

    if (type_is(type, "TX") || type_is(type, "FT")) {
        char *body;
        if ((rc = joined(c, value, &body, "OBX-5")))
            goto done;
        rc = note(c, body, "OBX", text ? text : code, when);
        goto done;
    }
    rf_lab *r;
    if ((rc = labs_new_lab(c->L, c->base, &r, c->err)))
        goto done;
    if (!(r->source = labs_printf("%s: segment %zu (OBX)", c->name, c->seg))) {
        rc = oom(c);
        goto done;
    }
    r->code = code, r->system = sys, r->name = text;
    code = sys = text = NULL;
    if (count_parts(value, c->d.rep) > 1)
        r->flags |= RF_LAB_REPEATED;
    slice v1 = part(value, c->d.rep, 0);
    char *raw = NULL;
    if (type_is(type, "SN")) {
        /* structured numeric: comparator ^ number ^ separator/suffix ^ number */
        char *cmp = NULL, *n1 = NULL, *sep = NULL, *n2 = NULL;
        if (!(rc = decode(c, part(v1, c->d.comp, 0), &cmp, "OBX-5")) &&
            !(rc = decode(c, part(v1, c->d.comp, 1), &n1, "OBX-5")) &&
            !(rc = decode(c, part(v1, c->d.comp, 2), &sep, "OBX-5")) &&
            !(rc = decode(c, part(v1, c->d.comp, 3), &n2, "OBX-5"))) {
            if (cmp && !strcmp(cmp, "="))
                cmp[0] = 0;
            raw = labs_printf("%s%s%s%s", cmp ? cmp : "", n1 ? n1 : "", sep ? sep : "", n2 ? n2 : "");
            if (!raw)
                rc = oom(c);
            else if (!(rc = labs_set_value(r, raw, strlen(raw), c->err)) && (sep || n2) && r->has_value)
                r->has_value = false, r->flags |= RF_LAB_TEXT_VALUE; /* a ratio or a range is not one number */
        }
        free(cmp), free(n1), free(sep), free(n2);
    } else if (type_is(type, "CE") || type_is(type, "CWE") || type_is(type, "CNE") || type_is(type, "CF")) {
        char *t = NULL;
        if (!(rc = decode(c, part(v1, c->d.comp, 1), &t, "OBX-5")) && !t)
            rc = decode(c, part(v1, c->d.comp, 0), &t, "OBX-5");
        if (!rc) {
            rc = labs_set_value(r, t, t ? strlen(t) : 0, c->err);
            if (r->has_value) /* a coded answer, even "1", is not a quantity */
                r->has_value = false, r->cmp = RF_CMP_NONE, r->flags = (r->flags & ~RF_LAB_CENSORED) | RF_LAB_TEXT_VALUE;
        }
        free(t);
    } else {
        bool numeric_type = type_is(type, "NM") || type_is(type, "ST") || type.n == 0;
        slice v = type_is(type, "NM") ? part(v1, c->d.comp, 0) : v1;
        if (!(rc = decode(c, v, &raw, "OBX-5"))) {
            rc = labs_set_value(r, raw, raw ? strlen(raw) : 0, c->err);
            if (!numeric_type && r->has_value) /* DT, TM, TS, ED...: not quantities */
                r->has_value = false, r->cmp = RF_CMP_NONE, r->flags = (r->flags & ~RF_LAB_CENSORED) | RF_LAB_TEXT_VALUE;
        }
    }
    free(raw);
    if (rc)
        goto done;
    slice units = part(field(c, seg, 6), c->d.rep, 0);
    if ((rc = decode(c, part(units, c->d.comp, 0), &r->unit_raw, "OBX-6")))
        goto done;
    if (!r->unit_raw && (rc = decode(c, part(units, c->d.comp, 1), &r->unit_raw, "OBX-6")))
        goto done;
    if ((rc = decode(c, part(field(c, seg, 7), c->d.rep, 0), &r->range_raw, "OBX-7")))
        goto done;
    parts it = parts_of(field(c, seg, 8));
    slice one;
    labs_buf flags = {0};
    while (parts_next(&it, c->d.rep, &one)) {
        char *f = NULL;
        if ((rc = decode(c, one, &f, "OBX-8")) || (f && labs_buf_add(&flags, "~", f, strlen(f)) && (rc = oom(c)))) {
            free(f);
            free(flags.s);
            goto done;
        }
        free(f);
    }
    r->source_flags = flags.s;
    if ((rc = decode(c, part(field(c, seg, 11), c->d.rep, 0), &r->status, "OBX-11")))
        goto done;
    if (when) {
        r->time_raw = when;
        when = NULL;
        if (rf_time_parse_hl7(r->time_raw, strlen(r->time_raw), &r->time))
            r->flags |= RF_LAB_BAD_TIME;
    }
    if (labs_finish(r))
        rc = oom(c);
done:
    free(code), free(text), free(sys), free(acode), free(atext), free(asys), free(when);
    return rc;
}

/* ---- segments ---------------------------------------------------------------------------- */

/* The segment number (CR, LF or CRLF ending each) of byte at. */
static size_t segment_of(const char *s, size_t at)
{
    size_t seg = 1;
    for (size_t i = 0; i < at; i++)
        if (s[i] == '\n' || (s[i] == '\r' && !(i + 1 < at && s[i + 1] == '\n')))
            seg++;
    return seg;
}

static int message_type(hctx *c, slice seg, bool *oru)
{
    slice t = field(c, seg, 9);
    slice code = part(t, c->d.comp, 0), trig = part(t, c->d.comp, 1);
    *oru = code.n == 3 && !memcmp(code.s, "ORU", 3) && trig.n == 3 && !memcmp(trig.s, "R01", 3);
    if (*oru)
        return RF_OK;
    char shown[40], msg[160];
    size_t n = 0;
    for (size_t i = 0; i < t.n && n + 1 < sizeof shown; i++)
        shown[n++] = delim_ok(t.s[i]) || isalnum((unsigned char)t.s[i]) ? t.s[i] : '?';
    shown[n] = 0;
    snprintf(msg, sizeof msg, "message type '%s' (MSH-9) is not ORU^R01; its segments are skipped", shown);
    return issue(c, msg);
}

int labs_read_hl7(const char *name, const char *data, size_t len, rf_labs *L, const labs_base *base, rf_err *err)
{
    const char *nul = memchr(data, 0, len);
    if (nul)
        return rf_err_set(err, RF_EFORMAT, "%s: segment %zu: NUL byte", name, segment_of(data, (size_t)(nul - data)));
    size_t bad;
    if (!text_utf8_valid(data, len, &bad))
        return rf_err_set(err, RF_EFORMAT, "%s: segment %zu: invalid UTF-8 (byte %zu)", name, segment_of(data, bad), bad);
    hctx c = {.name = name, .L = L, .base = base, .err = err};
    size_t pos = len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3) ? 3 : 0;
    bool in_msg = false, oru = false;
    int rc = RF_OK;
    while (!rc && pos < len) {
        size_t e = pos;
        while (e < len && data[e] != '\r' && data[e] != '\n')
            e++;
        slice seg = {data + pos, e - pos};
        size_t next = e < len && data[e] == '\r' && e + 1 < len && data[e + 1] == '\n' ? e + 2 : e + 1;
        pos = next;
        if (seg.n == 0)
            continue; /* blank lines between segments or messages */
        c.seg++;
        if (seg.n > HL7_SEGMENT_MAX) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: segment %zu: longer than %zu bytes", name, c.seg, HL7_SEGMENT_MAX);
            break;
        }
        for (int i = 0; i < 3; i++)
            c.segid[i] = i < (int)seg.n && isalnum((unsigned char)seg.s[i]) ? seg.s[i] : '?';
        if (seg.n >= 3 && !memcmp(seg.s, "MSH", 3)) {
            if ((rc = read_msh(&c, seg)))
                break;
            in_msg = true;
            free(c.obr_time), free(c.last_title);
            c.obr_time = c.last_title = NULL;
            rc = message_type(&c, seg, &oru);
            continue;
        }
        if (seg.n >= 3 && (!memcmp(seg.s, "FHS", 3) || !memcmp(seg.s, "BHS", 3) || !memcmp(seg.s, "FTS", 3) ||
                           !memcmp(seg.s, "BTS", 3)))
            continue; /* batch envelopes */
        if (!in_msg) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: segment %zu ('%s'): a message starts with MSH", name, c.seg, c.segid);
            break;
        }
        bool id_ok = seg.n >= 3 && (seg.n == 3 || seg.s[3] == c.d.field);
        for (int i = 0; id_ok && i < 3; i++)
            id_ok = isupper((unsigned char)seg.s[i]) || isdigit((unsigned char)seg.s[i]);
        if (!id_ok) {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: segment %zu: does not start with a segment ID and the field separator '%c' of its "
                            "MSH (broken delimiters or a line break inside a field?)",
                            name, c.seg, c.d.field);
            break;
        }
        if (!oru)
            continue;
        if (!memcmp(seg.s, "OBR", 3)) {
            free(c.obr_time);
            c.obr_time = NULL;
            rc = decode(&c, part(part(field(&c, seg, 7), c.d.rep, 0), c.d.comp, 0), &c.obr_time, "OBR-7");
        } else if (!memcmp(seg.s, "OBX", 3)) {
            rc = obx(&c, seg);
        } else if (!memcmp(seg.s, "NTE", 3)) {
            char *body;
            if (!(rc = joined(&c, field(&c, seg, 3), &body, "NTE-3")) && body) {
                if (*body)
                    rc = note(&c, body, "NTE", c.last_title, c.obr_time);
                else
                    free(body);
            }
        }
    }
    free(c.obr_time);
    free(c.last_title);
    if (!rc && !c.seg)
        rc = rf_err_set(err, RF_EFORMAT, "%s: no HL7 segments", name);
    return rc;
}
