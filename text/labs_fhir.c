/*
 * Labs and documents from FHIR R4 JSON through cJSON: a Bundle (entry[].resource,
 * Bundles nested in Bundles too) or a single resource. Observation (and its
 * component[] and contained[] resources) become labs; DocumentReference and
 * DiagnosticReport with inline text/plain become notes; any other resource is
 * an issue naming where it was. Before cJSON sees the text, one pass checks
 * UTF-8, NUL, escaped NUL (\u0000, which cJSON would silently cut a string
 * at) and the nesting depth, so that hostile nesting is refused with a
 * message rather than by cJSON's recursion limit.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text/labs_internal.h"
#include "text/text_internal.h"

#define UCUM_SYSTEM "http://unitsofmeasure.org"
#define LOINC_SYSTEM "http://loinc.org"

typedef struct fctx {
    const char *name;
    rf_labs *L;
    const labs_base *base;
    rf_err *err;
} fctx;

static size_t line_of(const char *s, size_t at)
{
    size_t line = 1;
    for (size_t i = 0; i < at; i++)
        line += s[i] == '\n';
    return line;
}

/* UTF-8, NUL, \u0000 and nesting, with the byte and line of the first problem. */
static int prescan(const char *name, const char *s, size_t len, rf_err *err)
{
    const char *nul = memchr(s, 0, len);
    if (nul)
        return rf_err_set(err, RF_EFORMAT, "%s: NUL byte at offset %zu (line %zu)", name, (size_t)(nul - s),
                          line_of(s, (size_t)(nul - s)));
    size_t bad;
    if (!text_utf8_valid(s, len, &bad))
        return rf_err_set(err, RF_EFORMAT, "%s: invalid UTF-8 at byte %zu (line %zu)", name, bad, line_of(s, bad));
    int depth = 0;
    size_t values = 1; /* at most one more than the commas and openings */
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < len && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4))
                    return rf_err_set(err, RF_EFORMAT, "%s: line %zu: a string holds an escaped NUL (\\u0000)", name,
                                      line_of(s, i));
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == ',' && ++values > RF_LABS_JSON_VALUES) {
            return rf_err_set(err, RF_EFORMAT, "%s: line %zu: more than %d JSON values", name, line_of(s, i),
                              RF_LABS_JSON_VALUES);
        } else if (c == '{' || c == '[') {
            if (++values > RF_LABS_JSON_VALUES)
                return rf_err_set(err, RF_EFORMAT, "%s: line %zu: more than %d JSON values", name, line_of(s, i),
                                  RF_LABS_JSON_VALUES);
            if (++depth > RF_LABS_JSON_DEPTH)
                return rf_err_set(err, RF_EFORMAT, "%s: line %zu: JSON nested deeper than %d levels", name,
                                  line_of(s, i), RF_LABS_JSON_DEPTH);
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return RF_OK;
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int issue(fctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int issue(fctx *c, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *src = labs_printf("%s: %s", c->name, path);
    if (!src)
        return rf_err_set(c->err, RF_ENOMEM, "out of memory");
    int rc = labs_issue(c->L, c->base, c->err, src, "%s", msg);
    free(src);
    return rc;
}

/* A printable, bounded copy of schema text (resource types, content types) for messages. */
static void clip(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        dst[n++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    dst[n] = 0;
}

/* The display name of a CodeableConcept: text, else the first coding's display. */
static const char *concept_name(const cJSON *cc)
{
    const char *t = str(cc, "text");
    if (t)
        return t;
    const cJSON *coding;
    cJSON_ArrayForEach(coding, get(cc, "coding"))
    {
        if ((t = str(coding, "display")))
            return t;
    }
    return NULL;
}

static int set_time(rf_lab *r, const char *t, rf_err *err)
{
    if (!t)
        return RF_OK;
    int rc = labs_set_str(&r->time_raw, t, strlen(t), err);
    if (!rc && rf_time_parse_iso(t, strlen(t), &r->time))
        r->flags |= RF_LAB_BAD_TIME;
    return rc;
}

/* effective[x], else issued. */
static const char *effective_time(const cJSON *o)
{
    const char *t = str(o, "effectiveDateTime");
    if (!t)
        t = str(o, "effectiveInstant");
    if (!t)
        t = str(get(o, "effectivePeriod"), "start");
    if (!t)
        t = str(o, "issued");
    return t;
}

/* The unit of a Quantity: its UCUM code, else its human unit, else any code. */
static const char *quantity_unit(const cJSON *q)
{
    const char *sys = str(q, "system"), *code = str(q, "code"), *unit = str(q, "unit");
    if (code && sys && !strcmp(sys, UCUM_SYSTEM))
        return code;
    return unit ? unit : code;
}

static int set_number(rf_lab *r, double v, const char *cmp, rf_err *err)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s%.15g", cmp ? cmp : "", v);
    int rc = labs_set_value(r, buf, strlen(buf), err);
    if (!rc && r->has_value)
        r->value = v; /* exactly the JSON number, not its 15-digit rendering */
    return rc;
}

/* code, value[x], referenceRange and interpretation of an Observation or one of its components. */
static int observed(fctx *c, const cJSON *o, rf_lab *r, const char *path)
{
    rf_err *err = c->err;
    int rc;
    const cJSON *code = get(o, "code");
    if (code && !cJSON_IsObject(code) && (rc = issue(c, path, "code is not a CodeableConcept")))
        return rc;
    const cJSON *coding, *pick = NULL;
    cJSON_ArrayForEach(coding, get(code, "coding"))
    {
        const char *sys = str(coding, "system");
        if (sys && !strcmp(sys, LOINC_SYSTEM) && str(coding, "code")) {
            pick = coding;
            break;
        }
        if (!pick && str(coding, "code"))
            pick = coding;
    }
    if (pick) {
        const char *cd = str(pick, "code"), *sys = str(pick, "system");
        if ((rc = labs_set_str(&r->code, cd, strlen(cd), err)) ||
            (sys && (rc = labs_set_str(&r->system, sys, strlen(sys), err))))
            return rc;
    }
    const char *nm = str(code, "text");
    if (!nm && pick)
        nm = str(pick, "display");
    if (!nm)
        nm = concept_name(code);
    if (nm && (rc = labs_set_str(&r->name, nm, strlen(nm), err)))
        return rc;

    /* value[x] */
    const cJSON *q = get(o, "valueQuantity"), *v;
    if (q) {
        const cJSON *num = get(q, "value");
        const char *cmp = str(q, "comparator"), *u = quantity_unit(q);
        if (u && (rc = labs_set_str(&r->unit_raw, u, strlen(u), err)))
            return rc;
        if (cmp && strcmp(cmp, "<") && strcmp(cmp, "<=") && strcmp(cmp, ">") && strcmp(cmp, ">="))
            cmp = NULL; /* "ad" (sufficient to achieve) is no bound */
        if (cJSON_IsNumber(num) && isfinite(num->valuedouble)) {
            rc = set_number(r, num->valuedouble, cmp, err);
        } else if (cJSON_IsString(num)) {
            if ((rc = issue(c, path, "valueQuantity.value is a string, not a JSON number")))
                return rc;
            rc = labs_set_value(r, num->valuestring, strlen(num->valuestring), err);
        } else if (num) {
            if ((rc = issue(c, path, "valueQuantity.value is not a finite number; kept as text")))
                return rc;
            char *s = cJSON_PrintUnformatted(num);
            rc = s ? labs_set_value(r, s, strlen(s), err) : rf_err_set(err, RF_ENOMEM, "out of memory");
            r->flags |= RF_LAB_TEXT_VALUE;
            free(s);
        } else {
            r->flags |= RF_LAB_NO_VALUE;
        }
    } else if ((v = get(o, "valueString")) && cJSON_IsString(v)) {
        rc = labs_set_value(r, v->valuestring, strlen(v->valuestring), err);
    } else if ((v = get(o, "valueInteger")) && cJSON_IsNumber(v)) {
        rc = set_number(r, v->valuedouble, NULL, err);
    } else if ((v = get(o, "valueCodeableConcept"))) {
        const char *t = concept_name(v);
        if (!t)
            t = str(cJSON_GetArrayItem(get(v, "coding"), 0), "code");
        rc = labs_set_value(r, t ? t : "", t ? strlen(t) : 0, err);
        if (!rc && !r->has_value)
            r->flags = (r->flags & ~RF_LAB_NO_VALUE) | RF_LAB_TEXT_VALUE;
    } else if ((v = get(o, "valueBoolean")) && cJSON_IsBool(v)) {
        const char *t = cJSON_IsTrue(v) ? "true" : "false";
        rc = labs_set_value(r, t, strlen(t), err);
    } else {
        static const char *const other[] = {"valueRange", "valueRatio", "valueSampledData", "valueTime",
                                            "valueDateTime", "valuePeriod", "valueAttachment", "valueReference"};
        const char *kind = NULL;
        for (size_t i = 0; i < sizeof other / sizeof other[0] && !kind; i++)
            if (get(o, other[i]))
                kind = other[i];
        if (kind) {
            const cJSON *val = get(o, kind);
            char *s = cJSON_IsString(val) ? labs_strdup(val->valuestring) : cJSON_PrintUnformatted(val);
            rc = s ? labs_set_str(&r->value_raw, s, strlen(s), err) : rf_err_set(err, RF_ENOMEM, "out of memory");
            free(s);
            r->flags |= RF_LAB_TEXT_VALUE;
        } else {
            /* no value: dataAbsentReason says why, if anything does */
            const char *why = concept_name(get(o, "dataAbsentReason"));
            if (!why)
                why = str(cJSON_GetArrayItem(get(get(o, "dataAbsentReason"), "coding"), 0), "code");
            if (why) {
                char *s = labs_printf("dataAbsentReason: %s", why);
                rc = s ? labs_set_str(&r->value_raw, s, strlen(s), err) : rf_err_set(err, RF_ENOMEM, "out of memory");
                free(s);
            }
            r->flags |= RF_LAB_NO_VALUE;
        }
    }
    if (rc)
        return rc;

    /* the first reference range with bounds or text */
    const cJSON *rr;
    cJSON_ArrayForEach(rr, get(o, "referenceRange"))
    {
        const cJSON *lo = get(rr, "low"), *hi = get(rr, "high");
        const char *text = str(rr, "text");
        if (!lo && !hi && !text)
            continue;
        const char *ulo = lo ? quantity_unit(lo) : NULL, *uhi = hi ? quantity_unit(hi) : NULL;
        const cJSON *vlo = get(lo, "value"), *vhi = get(hi, "value");
        bool nlo = cJSON_IsNumber(vlo) && isfinite(vlo->valuedouble);
        bool nhi = cJSON_IsNumber(vhi) && isfinite(vhi->valuedouble);
        if ((lo && !nlo) || (hi && !nhi) || (ulo && uhi && strcmp(ulo, uhi))) {
            r->flags |= RF_LAB_RANGE_UNPARSED;
        } else {
            r->has_low = nlo, r->low = nlo ? vlo->valuedouble : 0;
            r->has_high = nhi, r->high = nhi ? vhi->valuedouble : 0;
            const char *ru = ulo ? ulo : uhi;
            if (ru && (!r->unit_raw || strcmp(ru, r->unit_raw)) && (rc = labs_set_str(&r->range_unit, ru, strlen(ru), err)))
                return rc;
        }
        if (text && (rc = labs_set_str(&r->range_raw, text, strlen(text), err)))
            return rc;
        break;
    }

    /* interpretation codes, as given, joined by '~' */
    const cJSON *interp;
    labs_buf flags = {0};
    cJSON_ArrayForEach(interp, get(o, "interpretation"))
    {
        cJSON_ArrayForEach(coding, get(interp, "coding"))
        {
            const char *cd = str(coding, "code");
            if (cd && labs_buf_add(&flags, "~", cd, strlen(cd))) {
                free(flags.s);
                return rf_err_set(err, RF_ENOMEM, "out of memory");
            }
        }
    }
    free(r->source_flags);
    r->source_flags = flags.s;
    return RF_OK;
}

static int new_lab(fctx *c, const char *path, rf_lab **r)
{
    int rc = labs_new_lab(c->L, c->base, r, c->err);
    if (!rc && !((*r)->source = labs_printf("%s: %s", c->name, path)))
        rc = rf_err_set(c->err, RF_ENOMEM, "out of memory");
    return rc;
}

static int observation(fctx *c, const cJSON *o, const char *path)
{
    int rc;
    const char *status = str(o, "status"), *when = effective_time(o);
    const cJSON *comps = get(o, "component");
    bool has_value = false;
    for (const cJSON *it = o ? o->child : NULL; it; it = it->next)
        has_value |= it->string && !strncmp(it->string, "value", 5);
    bool has_comps = cJSON_GetArraySize(comps) > 0;
    if (!has_value && !has_comps && get(o, "hasMember") && !get(o, "dataAbsentReason"))
        return issue(c, path, "a panel of references (hasMember); its members are read where they appear");
    if (has_value || !has_comps) {
        rf_lab *r;
        if ((rc = new_lab(c, path, &r)) || (rc = observed(c, o, r, path)) ||
            (status && (rc = labs_set_str(&r->status, status, strlen(status), c->err))) ||
            (rc = set_time(r, when, c->err)))
            return rc;
        if (labs_finish(r))
            return rf_err_set(c->err, RF_ENOMEM, "out of memory");
    }
    /* components (blood pressure's systolic and diastolic) are labs of their own */
    int i = 0;
    const cJSON *comp;
    cJSON_ArrayForEach(comp, comps)
    {
        char *cpath = labs_printf("%s.component[%d]", path, i++);
        if (!cpath)
            return rf_err_set(c->err, RF_ENOMEM, "out of memory");
        rf_lab *r;
        if (!cJSON_IsObject(comp)) {
            rc = issue(c, cpath, "not an object; skipped");
        } else if (!(rc = new_lab(c, cpath, &r)) && !(rc = observed(c, comp, r, cpath)) &&
                   !(status && (rc = labs_set_str(&r->status, status, strlen(status), c->err))) &&
                   !(rc = set_time(r, when, c->err))) {
            if (labs_finish(r))
                rc = rf_err_set(c->err, RF_ENOMEM, "out of memory");
        }
        free(cpath);
        if (rc)
            return rc;
    }
    return RF_OK;
}

/* One inline attachment as a note, or an issue saying why not. */
static int attachment(fctx *c, const cJSON *att, const char *path, const char *kind, const char *title,
                      const char *when)
{
    const char *data = str(att, "data"), *ct = str(att, "contentType"), *url = str(att, "url");
    char shown[80];
    if (!data)
        return issue(c, path, "%s", url ? "text by reference only (url), not fetched; skipped"
                                        : "attachment without inline data; skipped");
    if (!ct)
        return issue(c, path, "attachment without contentType; only text/plain is read");
    /* "text/plain" with an optional charset parameter of UTF-8 or its subset ASCII */
    size_t tlen = strcspn(ct, ";");
    while (tlen && ct[tlen - 1] == ' ')
        tlen--;
    clip(shown, sizeof shown, ct);
    if (tlen != 10 || strncasecmp(ct, "text/plain", 10))
        return issue(c, path, "contentType '%s' is not text/plain; skipped", shown);
    for (const char *p = strchr(ct, ';'); p; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (*q == ' ')
            q++;
        if (strncasecmp(q, "charset=", 8) == 0) {
            q += 8;
            size_t n = strcspn(q, "; ");
            if (*q == '"')
                q++, n = strcspn(q, "\"");
            if (!((n == 5 && !strncasecmp(q, "utf-8", 5)) || (n == 4 && !strncasecmp(q, "utf8", 4)) ||
                  (n == 8 && !strncasecmp(q, "us-ascii", 8))))
                return issue(c, path, "contentType '%s': only UTF-8 text is read; skipped", shown);
        }
    }
    char *text;
    size_t n;
    int b = labs_base64_decode(data, strlen(data), RF_NOTE_MAX, &text, &n);
    if (b == -2)
        return rf_err_set(c->err, RF_ENOMEM, "out of memory");
    if (b == -3)
        return issue(c, path, "text larger than the %zu bytes allowed for a note; skipped", RF_NOTE_MAX);
    if (b)
        return issue(c, path, "data is not valid base64; skipped");
    size_t bad;
    int rc = RF_OK;
    if (memchr(text, 0, n))
        rc = issue(c, path, "text holds a NUL byte; skipped");
    else if (!text_utf8_valid(text, n, &bad))
        rc = issue(c, path, "text is not valid UTF-8; skipped");
    else {
        rf_note *note;
        if (!(rc = labs_new_note(c->L, c->base, &note, c->err))) {
            note->text = text, note->len = n;
            text = NULL;
            note->source = labs_printf("%s: %s", c->name, path);
            note->kind = labs_strdup(kind);
            note->title = labs_strdup(title);
            note->time_raw = labs_strdup(when);
            if (!note->source || !note->kind || (title && !note->title) || (when && !note->time_raw))
                rc = rf_err_set(c->err, RF_ENOMEM, "out of memory");
            else if (when && rf_time_parse_iso(when, strlen(when), &note->time))
                note->flags |= RF_LAB_BAD_TIME;
        }
    }
    free(text);
    return rc;
}

static int text_note(fctx *c, const char *text, const char *path, const char *kind, const char *title,
                     const char *when)
{
    size_t n = strlen(text), bad;
    if (n > RF_NOTE_MAX)
        return issue(c, path, "text larger than the %zu bytes allowed for a note; skipped", RF_NOTE_MAX);
    if (!text_utf8_valid(text, n, &bad)) /* cJSON decodes \u escapes; the result is checked again */
        return issue(c, path, "text is not valid UTF-8; skipped");
    rf_note *note;
    int rc = labs_new_note(c->L, c->base, &note, c->err);
    if (rc)
        return rc;
    note->text = labs_strndup(text, n), note->len = n;
    note->source = labs_printf("%s: %s", c->name, path);
    note->kind = labs_strdup(kind);
    note->title = labs_strdup(title);
    note->time_raw = labs_strdup(when);
    if (!note->text || !note->source || !note->kind || (title && !note->title) || (when && !note->time_raw))
        return rf_err_set(c->err, RF_ENOMEM, "out of memory");
    if (when && rf_time_parse_iso(when, strlen(when), &note->time))
        note->flags |= RF_LAB_BAD_TIME;
    return RF_OK;
}

static int attachments(fctx *c, const cJSON *arr, const char *path, const char *field, bool wrapped,
                       const char *kind, const char *title, const char *when, int *count)
{
    int i = 0, rc = RF_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        char *p = labs_printf("%s.%s[%d]", path, field, i++);
        if (!p)
            return rf_err_set(c->err, RF_ENOMEM, "out of memory");
        const cJSON *att = wrapped ? get(it, "attachment") : it;
        rc = att ? attachment(c, att, p, kind, title, when) : issue(c, p, "no attachment; skipped");
        free(p);
        if (rc)
            return rc;
        (*count)++;
    }
    return rc;
}

static int resource(fctx *c, const cJSON *res, const char *path);

static int contained(fctx *c, const cJSON *res, const char *path)
{
    int i = 0, rc = RF_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, get(res, "contained"))
    {
        char *p = labs_printf("%s.contained[%d]", path, i++);
        if (!p)
            return rf_err_set(c->err, RF_ENOMEM, "out of memory");
        rc = resource(c, it, p);
        free(p);
        if (rc)
            return rc;
    }
    return rc;
}

static int resource(fctx *c, const cJSON *res, const char *path)
{
    char shown[80];
    if (!cJSON_IsObject(res))
        return issue(c, path, "not a JSON object; skipped");
    const char *type = str(res, "resourceType");
    if (!type)
        return issue(c, path, "no resourceType; skipped");
    int rc;
    if (!strcmp(type, "Bundle")) {
        const cJSON *entries = get(res, "entry");
        if (entries && !cJSON_IsArray(entries))
            return issue(c, path, "Bundle.entry is not an array; skipped");
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, entries)
        {
            char *p = labs_printf("%s.entry[%d]", path, i++);
            char *rp = p ? labs_printf("%s.resource", p) : NULL;
            if (!rp) {
                free(p);
                return rf_err_set(c->err, RF_ENOMEM, "out of memory");
            }
            const cJSON *r = get(e, "resource");
            rc = r ? resource(c, r, rp) : issue(c, p, "entry without a resource; skipped");
            free(p);
            free(rp);
            if (rc)
                return rc;
        }
        return RF_OK;
    }
    if (!strcmp(type, "Observation")) {
        if ((rc = observation(c, res, path)))
            return rc;
        return contained(c, res, path);
    }
    if (!strcmp(type, "DocumentReference")) {
        const char *title = concept_name(get(res, "type"));
        if (!title)
            title = str(res, "description");
        const char *when = str(res, "date");
        if (!when)
            when = str(get(get(res, "context"), "period"), "start");
        int n = 0;
        if ((rc = attachments(c, get(res, "content"), path, "content", true, "DocumentReference", title, when, &n)))
            return rc;
        if (!n && (rc = issue(c, path, "DocumentReference without content; skipped")))
            return rc;
        return contained(c, res, path);
    }
    if (!strcmp(type, "DiagnosticReport")) {
        const char *title = concept_name(get(res, "code")), *when = effective_time(res);
        const char *concl = str(res, "conclusion");
        int n = 0;
        if (concl) {
            char *p = labs_printf("%s.conclusion", path);
            rc = p ? text_note(c, concl, p, "DiagnosticReport", title, when) : rf_err_set(c->err, RF_ENOMEM, "out of memory");
            free(p);
            if (rc)
                return rc;
            n++;
        }
        if ((rc = attachments(c, get(res, "presentedForm"), path, "presentedForm", false, "DiagnosticReport", title,
                              when, &n)))
            return rc;
        if (!n && (rc = issue(c, path, "DiagnosticReport without conclusion or presentedForm")))
            return rc;
        return contained(c, res, path);
    }
    clip(shown, sizeof shown, type);
    return issue(c, path, "a %s resource is not a lab or a document; skipped", shown);
}

int labs_read_fhir(const char *name, const char *data, size_t len, rf_labs *L, const labs_base *base, rf_err *err)
{
    int rc = prescan(name, data, len, err);
    if (rc)
        return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!root) {
        size_t at = end && end >= data && end <= data + len ? (size_t)(end - data) : 0;
        return rf_err_set(err, RF_EFORMAT, "%s: line %zu: not valid JSON (at byte %zu)", name, line_of(data, at), at);
    }
    size_t at = (size_t)(end - data);
    while (at < len && strchr(" \t\r\n", data[at]))
        at++;
    if (at < len) {
        cJSON_Delete(root);
        return rf_err_set(err, RF_EFORMAT, "%s: line %zu: data after the JSON value", name, line_of(data, at));
    }
    if (!cJSON_IsObject(root) || !str(root, "resourceType")) {
        cJSON_Delete(root);
        return rf_err_set(err, RF_EFORMAT, "%s: not a FHIR resource (a JSON object with a resourceType)", name);
    }
    fctx c = {name, L, base, err};
    rc = resource(&c, root, str(root, "resourceType"));
    cJSON_Delete(root);
    if (rc && !strstr(err->msg, name)) {
        rf_err inner = *err;
        rc = rf_err_set(err, rc, "%s: %s", name, inner.msg);
    }
    return rc;
}

/* ---- base64 -------------------------------------------------------------------- */

static int b64(int ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

int labs_base64_decode(const char *s, size_t len, size_t max, char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    size_t sig = 0; /* significant characters (no whitespace) */
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", s[i]) || !s[i])
            sig++;
    if (sig % 4)
        return -1;
    if (sig / 4 * 3 > max + 2)
        return -3;
    char *buf = malloc(sig / 4 * 3 + 1);
    if (!buf)
        return -2;
    size_t n = 0, k = 0, pad = 0, j = 0; /* j: index among significant characters */
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch && strchr(" \t\r\n", ch))
            continue;
        int v = 0;
        if (ch == '=') {
            /* padding: only the last one or two places, after at least two symbols of the group */
            if (j + 2 < sig || k < 2) {
                free(buf);
                return -1;
            }
            pad++;
        } else if (pad || (v = b64((unsigned char)ch)) < 0) {
            free(buf);
            return -1;
        }
        j++;
        acc = acc << 6 | (uint32_t)v;
        if (++k == 4) {
            buf[n++] = (char)(acc >> 16);
            buf[n++] = (char)(acc >> 8);
            buf[n++] = (char)acc;
            acc = 0, k = 0;
        }
    }
    n -= pad;
    if (n > max) {
        free(buf);
        return -3;
    }
    buf[n] = 0;
    *out = buf;
    *outlen = n;
    return 0;
}
