/*
 * Lab records and notes: the containers, value and range parsing, and what is
 * derived from a record once a reader has stored what its source said
 * (identification, normalization, flags, z-like value). The readers are
 * labs_csv.c, labs_fhir.c and labs_hl7.c.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text/labs_internal.h"
#include "text/text_internal.h"
#include "runtime/fileio.h"

/* ---- strings --------------------------------------------------------------- */

char *labs_strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

char *labs_strdup(const char *s)
{
    return s ? labs_strndup(s, strlen(s)) : NULL;
}

char *labs_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

int labs_buf_add(labs_buf *b, const char *sep, const char *s, size_t n)
{
    size_t sl = b->len && sep ? strlen(sep) : 0;
    if (b->len + sl + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + sl + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            return -1;
        b->s = p;
        b->cap = cap;
    }
    if (sl)
        memcpy(b->s + b->len, sep, sl);
    memcpy(b->s + b->len + sl, s, n);
    b->len += sl + n;
    b->s[b->len] = 0;
    return 0;
}

int labs_set_str(char **dst, const char *s, size_t n, rf_err *err)
{
    free(*dst);
    *dst = NULL;
    if (!s)
        return RF_OK;
    *dst = labs_strndup(s, n);
    return *dst ? RF_OK : rf_err_set(err, RF_ENOMEM, "out of memory");
}

/* ---- containers ------------------------------------------------------------ */

static void lab_clear(rf_lab *r)
{
    free(r->source);
    free(r->code);
    free(r->system);
    free(r->loinc);
    free(r->name);
    free(r->value_raw);
    free(r->unit_raw);
    free(r->range_raw);
    free(r->source_flags);
    free(r->status);
    free(r->time_raw);
    free(r->range_unit);
}

static void note_clear(rf_note *n)
{
    free(n->source);
    free(n->kind);
    free(n->title);
    free(n->time_raw);
    free(n->text);
}

/* Drops everything past the counts in base (a failed file leaves no trace). */
static void labs_truncate(rf_labs *L, const labs_base *base)
{
    for (size_t i = base->nlabs; i < L->nlabs; i++)
        lab_clear(&L->labs[i]);
    for (size_t i = base->nnotes; i < L->nnotes; i++)
        note_clear(&L->notes[i]);
    for (size_t i = base->nissues; i < L->nissues; i++) {
        free(L->issues[i].source);
        free(L->issues[i].message);
    }
    L->nlabs = base->nlabs;
    L->nnotes = base->nnotes;
    L->nissues = base->nissues;
}

void rf_labs_free(rf_labs *L)
{
    if (!L)
        return;
    labs_truncate(L, &(labs_base){0, 0, 0});
    free(L->labs);
    free(L->notes);
    free(L->issues);
    memset(L, 0, sizeof *L);
}

static int over_cap(const rf_labs *L, const labs_base *base, rf_err *err)
{
    size_t n = (L->nlabs - base->nlabs) + (L->nnotes - base->nnotes) + (L->nissues - base->nissues);
    if (n >= RF_LABS_RECORDS_MAX)
        return rf_err_set(err, RF_ENOMEM, "more than %d records", RF_LABS_RECORDS_MAX);
    return RF_OK;
}

int labs_new_lab(rf_labs *L, const labs_base *base, rf_lab **out, rf_err *err)
{
    int rc = over_cap(L, base, err);
    if (rc)
        return rc;
    if (rf_array_grow((void **)&L->labs, &L->cap_labs, L->nlabs + 1, sizeof *L->labs))
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    rf_lab *r = &L->labs[L->nlabs++];
    memset(r, 0, sizeof *r);
    r->lab = -1;
    *out = r;
    return RF_OK;
}

int labs_new_note(rf_labs *L, const labs_base *base, rf_note **out, rf_err *err)
{
    int rc = over_cap(L, base, err);
    if (rc)
        return rc;
    if (rf_array_grow((void **)&L->notes, &L->cap_notes, L->nnotes + 1, sizeof *L->notes))
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    rf_note *n = &L->notes[L->nnotes++];
    memset(n, 0, sizeof *n);
    *out = n;
    return RF_OK;
}

int labs_issue(rf_labs *L, const labs_base *base, rf_err *err, const char *source, const char *fmt, ...)
{
    int rc = over_cap(L, base, err);
    if (rc)
        return rc;
    if (rf_array_grow((void **)&L->issues, &L->cap_issues, L->nissues + 1, sizeof *L->issues))
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    char *src = labs_strdup(source);
    if (!msg || !src) {
        free(msg);
        free(src);
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    L->issues[L->nissues].source = src;
    L->issues[L->nissues].message = msg;
    L->nissues++;
    return RF_OK;
}

/* ---- values ---------------------------------------------------------------- */

static const char *skip_space(const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    return s;
}

/* A decimal number at s (sign allowed), returning its end, or NULL. */
static const char *scan_number(const char *s, const char *end)
{
    const char *p = s;
    if (p < end && (*p == '+' || *p == '-'))
        p++;
    const char *digits = p;
    while (p < end && isdigit((unsigned char)*p))
        p++;
    size_t nd = (size_t)(p - digits);
    if (p < end && *p == '.') {
        p++;
        const char *frac = p;
        while (p < end && isdigit((unsigned char)*p))
            p++;
        nd += (size_t)(p - frac);
    }
    if (nd == 0)
        return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        const char *q = p + 1;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        const char *exp = q;
        while (q < end && isdigit((unsigned char)*q))
            q++;
        if (q > exp)
            p = q;
    }
    return p;
}

static bool to_double(const char *s, const char *e, double *out)
{
    char buf[80];
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool labs_parse_number(const char *s, size_t len, double *out)
{
    const char *end = s + len;
    s = skip_space(s, end);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    const char *p = scan_number(s, end);
    return p && p == end && to_double(s, p, out);
}

/* A comparator at *s ("<", "<=", ">", ">=", and the signs U+2264, U+2265), advancing past it. */
static rf_lab_cmp scan_cmp(const char **s, const char *end)
{
    const char *p = *s;
    rf_lab_cmp c = RF_CMP_NONE;
    if (p + 1 < end && p[0] == '<' && p[1] == '=')
        c = RF_CMP_LE, p += 2;
    else if (p + 1 < end && p[0] == '>' && p[1] == '=')
        c = RF_CMP_GE, p += 2;
    else if (p < end && *p == '<')
        c = RF_CMP_LT, p++;
    else if (p < end && *p == '>')
        c = RF_CMP_GT, p++;
    else if (end - p >= 3 && memcmp(p, "\xe2\x89\xa4", 3) == 0)
        c = RF_CMP_LE, p += 3;
    else if (end - p >= 3 && memcmp(p, "\xe2\x89\xa5", 3) == 0)
        c = RF_CMP_GE, p += 3;
    *s = p;
    return c;
}

int labs_set_value(rf_lab *r, const char *raw, size_t len, rf_err *err)
{
    int rc = labs_set_str(&r->value_raw, raw, len, err);
    if (rc)
        return rc;
    r->has_value = false;
    r->cmp = RF_CMP_NONE;
    const char *s = raw ? raw : "", *end = s + (raw ? len : 0);
    s = skip_space(s, end);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (s == end) {
        r->flags |= RF_LAB_NO_VALUE;
        return RF_OK;
    }
    const char *p = s;
    rf_lab_cmp c = scan_cmp(&p, end);
    p = skip_space(p, end);
    double v;
    if (labs_parse_number(p, (size_t)(end - p), &v) && (c == RF_CMP_NONE || p > s)) {
        r->has_value = true;
        r->value = v;
        r->cmp = c;
        if (c != RF_CMP_NONE)
            r->flags |= RF_LAB_CENSORED;
    } else {
        r->flags |= RF_LAB_TEXT_VALUE;
    }
    return RF_OK;
}

void labs_parse_range(rf_lab *r)
{
    if (!r->range_raw || r->has_low || r->has_high) /* numeric bounds win over the text */
        return;
    const char *s = r->range_raw, *end = s + strlen(s);
    s = skip_space(s, end);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (s == end)
        return;
    const char *p = s;
    rf_lab_cmp c = scan_cmp(&p, end);
    double a, b;
    if (c != RF_CMP_NONE) {
        /* "<5": an upper limit; ">10": a lower one */
        if (labs_parse_number(p, (size_t)(end - p), &a)) {
            if (c == RF_CMP_LT || c == RF_CMP_LE)
                r->has_high = true, r->high = a;
            else
                r->has_low = true, r->low = a;
            return;
        }
    } else {
        const char *q = scan_number(p, end);
        if (q && to_double(p, q, &a)) {
            q = skip_space(q, end);
            const char *sep = q;
            if (q < end && *q == '-')
                q++;
            else if (end - q >= 3 && memcmp(q, "\xe2\x80\x93", 3) == 0) /* en dash */
                q += 3;
            else if (end - q >= 2 && strncasecmp(q, "to", 2) == 0)
                q += 2;
            if (q > sep && labs_parse_number(q, (size_t)(end - q), &b)) {
                r->has_low = r->has_high = true;
                r->low = a, r->high = b;
                return;
            }
        }
    }
    r->flags |= RF_LAB_RANGE_UNPARSED;
}

bool labs_loinc_shape(const char *code)
{
    if (!code)
        return false;
    size_t n = strlen(code), d = 0;
    while (d < n && isdigit((unsigned char)code[d]))
        d++;
    return d >= 1 && d <= 7 && d + 2 == n && code[d] == '-' && isdigit((unsigned char)code[d + 1]);
}

bool labs_loinc_check(const char *code)
{
    if (!labs_loinc_shape(code))
        return false;
    /* LOINC's mod 10 (Luhn): from the right, every other digit doubled, digits summed */
    size_t d = strlen(code) - 2;
    int sum = 0;
    for (size_t i = 0; i < d; i++) {
        int v = code[d - 1 - i] - '0';
        if (i % 2 == 0) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return (10 - sum % 10) % 10 == code[d + 1] - '0';
}

/* ---- what radfuse derives from a record ------------------------------------------ */

/* Source flags as HL7 table 0078 / FHIR v3 ObservationInterpretation spell them. */
typedef struct src_flags {
    bool low, high, normal, abnormal, critical;
} src_flags;

static src_flags read_source_flags(const char *s)
{
    src_flags f = {0};
    while (s && *s) {
        size_t n = strcspn(s, "~, ^|");
        if (n) {
            char t[8] = {0};
            if (n < sizeof t) {
                for (size_t i = 0; i < n; i++)
                    t[i] = (char)toupper((unsigned char)s[i]);
                if (!strcmp(t, "L") || !strcmp(t, "LU") || !strcmp(t, "<"))
                    f.low = true;
                else if (!strcmp(t, "LL"))
                    f.low = f.critical = true;
                else if (!strcmp(t, "H") || !strcmp(t, "HU") || !strcmp(t, ">"))
                    f.high = true;
                else if (!strcmp(t, "HH"))
                    f.high = f.critical = true;
                else if (!strcmp(t, "A"))
                    f.abnormal = true;
                else if (!strcmp(t, "AA"))
                    f.abnormal = f.critical = true;
                else if (!strcmp(t, "N"))
                    f.normal = true;
            }
        }
        s += n;
        if (*s)
            s++;
    }
    return f;
}

/* Where value v (with comparator c) lies against the bounds: -1 surely below,
 * +1 surely above, 0 within or not decidable. */
static int direction(double v, rf_lab_cmp c, bool has_lo, double lo, bool has_hi, double hi)
{
    switch (c) {
    case RF_CMP_NONE:
        if (has_lo && v < lo)
            return -1;
        if (has_hi && v > hi)
            return 1;
        return 0;
    case RF_CMP_LT: /* the true value is below v */
        return has_lo && v <= lo ? -1 : 0;
    case RF_CMP_LE:
        return has_lo && v < lo ? -1 : 0;
    case RF_CMP_GT:
        return has_hi && v >= hi ? 1 : 0;
    case RF_CMP_GE:
        return has_hi && v > hi ? 1 : 0;
    }
    return 0;
}

static bool same_unit(const char *a, const char *b)
{
    return (!a || !*a) ? (!b || !*b) : (b && strcmp(a, b) == 0);
}

int labs_finish(rf_lab *r)
{
    /* LOINC: a LOINC-shaped code in the LOINC system (or in none) */
    bool sys_loinc = r->system && (!strcmp(r->system, "http://loinc.org") || !strcmp(r->system, "LN") ||
                                   !strcasecmp(r->system, "loinc"));
    bool sys_other = r->system && *r->system && !sys_loinc;
    bool loinc_shaped = r->code && !sys_other && labs_loinc_shape(r->code);
    if (loinc_shaped && labs_loinc_check(r->code)) {
        if (!(r->loinc = labs_strdup(r->code)))
            return RF_ENOMEM;
    } else if (loinc_shaped || (r->code && *r->code && sys_loinc)) {
        r->flags |= RF_LAB_BAD_CODE;
    }

    /* the lab: by LOINC; by name only when there is no LOINC-like code at all */
    double mm = 0;
    if (r->loinc) {
        r->lab = labs_lab_by_loinc(r->loinc, &mm);
    } else if (!(r->flags & RF_LAB_BAD_CODE)) {
        r->lab = labs_lab_by_name(r->name, r->unit_raw, &mm);
        if (r->lab >= 0)
            r->flags |= RF_LAB_BY_NAME;
    }
    if (r->lab < 0)
        r->flags |= RF_LAB_UNKNOWN_LAB;

    /* the value in the lab's unit */
    bool has_unit = r->unit_raw && r->unit_raw[strspn(r->unit_raw, " \t")];
    if (r->lab >= 0) {
        double f, off, used;
        labs_conv c = labs_unit_conversion(r->lab, r->unit_raw, mm, &f, &off, &used);
        if (c == LABS_CONV_OK) {
            r->unit = rf_lab_def_get(r->lab)->unit;
            r->factor = f, r->offset = off, r->molar_mass = used;
            if (r->has_value) {
                r->has_norm = true;
                r->value_norm = r->value * f + off;
            }
        } else if (c == LABS_CONV_UNKNOWN_UNIT) {
            r->flags |= RF_LAB_UNKNOWN_UNIT;
        } else if (c == LABS_CONV_MISSING_UNIT) {
            if (r->has_value)
                r->flags |= RF_LAB_MISSING_UNIT;
        } else {
            r->flags |= RF_LAB_UNIT_UNCONVERTIBLE;
        }
    } else if (has_unit && !labs_unit_known(r->unit_raw)) {
        r->flags |= RF_LAB_UNKNOWN_UNIT;
    }

    /* the reference range: the record's own, then in the lab's unit */
    labs_parse_range(r);
    bool given = r->has_low || r->has_high || (r->range_raw && r->range_raw[strspn(r->range_raw, " \t")]);
    if (!given)
        r->flags |= RF_LAB_MISSING_RANGE;
    bool rlo = r->has_low, rhi = r->has_high;
    if (rlo && rhi && r->low > r->high) { /* "5-3" is no range */
        r->flags |= RF_LAB_RANGE_UNPARSED;
        rlo = rhi = false;
    }
    if (r->unit && (rlo || rhi)) {
        const char *ru = r->range_unit ? r->range_unit : r->unit_raw;
        double f, off, used;
        if (labs_unit_conversion(r->lab, ru, mm, &f, &off, &used) == LABS_CONV_OK) {
            if (rlo)
                r->has_norm_low = true, r->low_norm = r->low * f + off;
            if (rhi)
                r->has_norm_high = true, r->high_norm = r->high * f + off;
        } else {
            r->flags |= RF_LAB_RANGE_UNPARSED;
        }
    }

    /* which range judges the value: the record's (normalized, or as written in
     * the value's own unit), else the table's typical interval */
    bool use = false, lo_ok = false, hi_ok = false;
    double v = 0, lo = 0, hi = 0;
    if (r->has_norm && (r->has_norm_low || r->has_norm_high)) {
        use = true, v = r->value_norm;
        lo_ok = r->has_norm_low, lo = r->low_norm;
        hi_ok = r->has_norm_high, hi = r->high_norm;
    } else if (r->has_value && !r->has_norm && (rlo || rhi) && (!r->range_unit || same_unit(r->range_unit, r->unit_raw))) {
        use = true, v = r->value;
        lo_ok = rlo, lo = r->low;
        hi_ok = rhi, hi = r->high;
    }
    src_flags sf = read_source_flags(r->source_flags);
    bool src_dir = sf.low || sf.high || sf.normal;
    int dir = 0;
    if (use) {
        dir = direction(v, r->cmp, lo_ok, lo, hi_ok, hi);
        if (src_dir) {
            /* an exact value's place is known; a bound's only when it is outside */
            int said = sf.low ? -1 : sf.high ? 1 : 0;
            if (r->cmp == RF_CMP_NONE ? said != dir : (dir != 0 && said != dir))
                r->flags |= RF_LAB_FLAG_CONFLICT;
        }
        /* an upper limit alone ("<5") starts at 0 for quantities that cannot be negative */
        if (hi_ok && !lo_ok && labs_lab_nonneg(r->lab) && hi > 0)
            lo_ok = true, lo = 0;
        if (lo_ok && hi_ok && hi > lo) {
            r->z_source = RF_Z_RECORD;
            r->z = (v - (lo + hi) / 2) / ((hi - lo) / 2);
        }
    }
    const rf_lab_def *def = rf_lab_def_get(r->lab);
    if (r->z_source == RF_Z_NONE && r->has_norm && def && def->pop_high > def->pop_low) {
        r->z_source = RF_Z_POPULATION;
        r->z = (r->value_norm - (def->pop_low + def->pop_high) / 2) / ((def->pop_high - def->pop_low) / 2);
        if (!use && !src_dir)
            dir = direction(r->value_norm, r->cmp, true, def->pop_low, true, def->pop_high);
    }
    if (!use && src_dir) /* the source knew a range it did not send */
        dir = sf.low ? -1 : sf.high ? 1 : 0;
    if (dir < 0)
        r->flags |= RF_LAB_LOW;
    if (dir > 0)
        r->flags |= RF_LAB_HIGH;
    if (sf.critical)
        r->flags |= RF_LAB_CRITICAL;
    if (dir || sf.abnormal || sf.low || sf.high || sf.critical)
        r->flags |= RF_LAB_ABNORMAL;
    return RF_OK;
}

/* ---- files -------------------------------------------------------------------- */

rf_labs_format rf_labs_detect(const char *data, size_t len)
{
    size_t i = 0;
    if (len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0)
        i = 3;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    if (i < len && (data[i] == '{' || data[i] == '['))
        return RF_LABS_FHIR;
    if (len - i >= 3 && (!memcmp(data + i, "MSH", 3) || !memcmp(data + i, "FHS", 3) || !memcmp(data + i, "BHS", 3)))
        return RF_LABS_HL7;
    return RF_LABS_CSV;
}

const char *rf_labs_format_name(rf_labs_format fmt)
{
    switch (fmt) {
    case RF_LABS_AUTO:
        return "auto";
    case RF_LABS_CSV:
        return "csv";
    case RF_LABS_FHIR:
        return "fhir";
    case RF_LABS_HL7:
        return "hl7";
    }
    return "?";
}

int rf_labs_parse(const char *name, const char *data, size_t len, rf_labs_format fmt, rf_labs *out, rf_err *err)
{
    if (!name)
        name = "(labs)";
    if (len > RF_LABS_FILE_MAX)
        return rf_err_set(err, RF_EFORMAT, "%s: %zu bytes, more than the %zu allowed for a lab file", name, len,
                          RF_LABS_FILE_MAX);
    if (fmt == RF_LABS_AUTO)
        fmt = rf_labs_detect(data, len);
    labs_base base = {out->nlabs, out->nnotes, out->nissues};
    int rc;
    switch (fmt) {
    case RF_LABS_CSV:
        rc = labs_read_csv(name, data, len, out, &base, err);
        break;
    case RF_LABS_FHIR:
        rc = labs_read_fhir(name, data, len, out, &base, err);
        break;
    case RF_LABS_HL7:
        rc = labs_read_hl7(name, data, len, out, &base, err);
        break;
    default:
        rc = rf_err_set(err, RF_EINVAL, "%s: unknown lab format %d", name, (int)fmt);
    }
    if (rc)
        labs_truncate(out, &base);
    return rc;
}

int rf_labs_read_file(const char *path, rf_labs_format fmt, rf_labs *out, rf_err *err)
{
    char *data;
    size_t n;
    int rc = rf_read_file(path, RF_LABS_FILE_MAX, &data, &n, err);
    if (rc)
        return rc;
    rc = rf_labs_parse(path, data, n, fmt, out, err);
    free(data);
    return rc;
}

/* ---- notes ---------------------------------------------------------------------- */

/* The 1-based line of byte at in s. */
static size_t line_of(const char *s, size_t at)
{
    size_t line = 1;
    for (size_t i = 0; i < at; i++)
        line += s[i] == '\n';
    return line;
}

int rf_note_parse(const char *name, const char *data, size_t len, const char *kind, rf_labs *out, rf_err *err)
{
    if (!name)
        name = "(note)";
    if (len > RF_NOTE_MAX)
        return rf_err_set(err, RF_EFORMAT, "%s: %zu bytes, more than the %zu allowed for a note", name, len,
                          RF_NOTE_MAX);
    const char *nul = memchr(data, 0, len);
    if (nul)
        return rf_err_set(err, RF_EFORMAT, "%s: NUL byte at offset %zu (line %zu)", name, (size_t)(nul - data),
                          line_of(data, (size_t)(nul - data)));
    size_t bad;
    if (!text_utf8_valid(data, len, &bad))
        return rf_err_set(err, RF_EFORMAT, "%s: invalid UTF-8 at byte %zu (line %zu)", name, bad, line_of(data, bad));
    size_t start = len >= 3 && memcmp(data, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    labs_base base = {out->nlabs, out->nnotes, out->nissues};
    rf_note *n;
    int rc = labs_new_note(out, &base, &n, err);
    if (rc)
        return rc;
    const char *text = data + start;
    size_t tlen = len - start;
    /* "Date: <ISO 8601>" on the first line dates the note and is not part of it */
    if (tlen >= 5 && strncasecmp(text, "date:", 5) == 0) {
        const char *eol = memchr(text, '\n', tlen);
        size_t line_len = eol ? (size_t)(eol - text) : tlen;
        const char *v = text + 5, *ve = text + line_len;
        if (ve > v && ve[-1] == '\r')
            ve--;
        v = skip_space(v, ve);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        n->time_raw = labs_strndup(v, (size_t)(ve - v));
        if (!n->time_raw)
            rc = RF_ENOMEM;
        else if (rf_time_parse_iso(v, (size_t)(ve - v), &n->time) == 0) {
            text += eol ? line_len + 1 : line_len;
            tlen -= eol ? line_len + 1 : line_len;
        } else {
            n->flags |= RF_LAB_BAD_TIME;
        }
    }
    if (!rc) {
        n->source = labs_strdup(name);
        n->kind = labs_strdup(kind ? kind : "note");
        n->text = labs_strndup(text, tlen);
        n->len = tlen;
        if (!n->source || !n->kind || !n->text)
            rc = RF_ENOMEM;
    }
    if (rc) {
        labs_truncate(out, &base);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", name);
    }
    return RF_OK;
}

int rf_note_read_file(const char *path, const char *kind, rf_labs *out, rf_err *err)
{
    char *data;
    size_t n;
    int rc = rf_read_file(path, RF_NOTE_MAX, &data, &n, err);
    if (rc)
        return rc;
    rc = rf_note_parse(path, data, n, kind, out, err);
    free(data);
    return rc;
}
