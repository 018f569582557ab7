/*
 * The clinical rule tables: parsed from the built-in copies of data/text/ tables
 * or from a directory of replacements, into interned words and phrase
 * dictionaries indexed by first word. Every table is a text file of
 * tab-separated rows; '#' starts a comment line. Errors name the table and line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text/clin_internal.h"
#include "text/text_internal.h"
#include "runtime/fileio.h"

#define TABLE_MAX_BYTES ((size_t)16 << 20)
#define TABLE_MAX_FIELDS 6
#define WINDOW_MAX 50

/* ---- tokens ------------------------------------------------------------------ */

static bool is_punct_token(unsigned char c)
{
    return c == ',' || c == ';' || c == ':' || c == '?' || c == '!' || c == '(' || c == ')' || c == '/' || c == '[' ||
           c == ']';
}

/* The code point at s[i] (valid UTF-8 assumed, as checked on input) and its length. */
static uint32_t decode(const unsigned char *s, size_t len, size_t i, size_t *k)
{
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (i + n > len)
        n = len - i; /* a cut code point: its bytes stay one separator run */
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (size_t j = 1; j < n; j++)
        cp = cp << 6 | (s[i + j] & 0x3f);
    *k = n;
    return cp;
}

/* Non-ASCII code points that separate words: no-break and other spaces,
 * general punctuation (dashes, curly quotes, bullets), BOM. */
static bool cp_separates(uint32_t cp)
{
    return cp == 0xa0 || cp == 0xad || (cp >= 0x2000 && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff ||
           cp == 0xb7 || cp == 0xd7;
}

bool clin_next_token(const char *text, size_t len, size_t *pos, clin_tok *t)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = *pos;
    for (;;) {
        if (i >= len) {
            *pos = i;
            return false;
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
                break;
            if (is_punct_token(c)) {
                t->start = (int64_t)i;
                t->end = (int64_t)i + 1;
                t->word = false;
                t->id = 0;
                *pos = i + 1;
                return true;
            }
            i++;
            continue;
        }
        size_t k;
        uint32_t cp = decode(s, len, i, &k);
        if (!cp_separates(cp) && k > 1)
            break;
        i += k;
    }
    size_t start = i;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
                i++;
                continue;
            }
            break;
        }
        size_t k;
        uint32_t cp = decode(s, len, i, &k);
        if (cp_separates(cp) || k == 1)
            break;
        i += k;
    }
    t->start = (int64_t)start;
    t->end = (int64_t)i;
    t->word = true;
    t->id = 0;
    *pos = i;
    return true;
}

/* ---- interned words ------------------------------------------------------------ */

static uint64_t hash_lower(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h = (h ^ c) * 1099511628211ull;
    }
    return h;
}

static bool eq_lower(const char *lower, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        if ((unsigned char)lower[i] != c)
            return false;
    }
    return true;
}

int32_t clin_word_find(const rf_clin_rules *r, const char *s, size_t len)
{
    if (!r->nslots)
        return 0;
    size_t mask = r->nslots - 1;
    for (size_t at = (size_t)hash_lower(s, len) & mask;; at = (at + 1) & mask) {
        int32_t id = r->word_slots[at];
        if (id < 0)
            return 0;
        if (r->word_lens[id] == len && eq_lower(r->words[id], s, len))
            return id;
    }
}

static int word_intern(rf_clin_rules *r, const char *s, size_t len, int32_t *id)
{
    int32_t found = clin_word_find(r, s, len);
    if (found) {
        *id = found;
        return 0;
    }
    if ((size_t)(r->nwords + 2) * 2 > r->nslots) { /* keep the table at most half full */
        size_t nslots = r->nslots ? r->nslots * 2 : 1024;
        int32_t *slots = malloc(nslots * sizeof *slots);
        if (!slots)
            return -1;
        for (size_t i = 0; i < nslots; i++)
            slots[i] = -1;
        for (int32_t w = 1; w <= r->nwords; w++)
            for (size_t at = (size_t)hash_lower(r->words[w], r->word_lens[w]) & (nslots - 1);;
                 at = (at + 1) & (nslots - 1))
                if (slots[at] < 0) {
                    slots[at] = w;
                    break;
                }
        free(r->word_slots);
        r->word_slots = slots;
        r->nslots = nslots;
    }
    if (r->nwords + 1 >= r->words_cap) {
        int32_t cap = r->words_cap ? r->words_cap * 2 : 256;
        char **w = realloc(r->words, (size_t)cap * sizeof *w);
        if (!w)
            return -1;
        r->words = w;
        size_t *l = realloc(r->word_lens, (size_t)cap * sizeof *l);
        if (!l)
            return -1;
        r->word_lens = l;
        r->words_cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    for (size_t i = 0; i < len; i++)
        copy[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    copy[len] = 0;
    int32_t w = ++r->nwords;
    r->words[w] = copy;
    r->word_lens[w] = len;
    size_t mask = r->nslots - 1;
    for (size_t at = (size_t)hash_lower(copy, len) & mask;; at = (at + 1) & mask)
        if (r->word_slots[at] < 0) {
            r->word_slots[at] = w;
            break;
        }
    *id = w;
    return 0;
}

/* ---- table reading ---------------------------------------------------------------- */

typedef struct table_reader {
    bool from_dir; /* read from a rules directory rather than built in */
    const char *name, *data;
    size_t len, pos;
    int line;
    char *fields[TABLE_MAX_FIELDS];
    int nfields;
    char *buf;
    size_t cap;
} table_reader;

static int table_fail(table_reader *t, rf_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int table_fail(table_reader *t, rf_err *err, int code, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return rf_err_set(err, code, "%s: line %d: %s", t->name, t->line, what);
}

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = 0;
    return s;
}

/* The next row with fields, or *got false at the end. */
static int table_next(table_reader *t, bool *got, rf_err *err)
{
    *got = false;
    while (t->pos < t->len) {
        const char *line = t->data + t->pos;
        const char *nl = memchr(line, '\n', t->len - t->pos);
        size_t n = nl ? (size_t)(nl - line) : t->len - t->pos;
        t->pos += n + (nl ? 1 : 0);
        t->line++;
        if (n && line[n - 1] == '\r')
            n--;
        if (memchr(line, 0, n))
            return table_fail(t, err, RF_EFORMAT, "NUL byte");
        if (n + 1 > t->cap) {
            char *b = realloc(t->buf, n + 1);
            if (!b)
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            t->buf = b;
            t->cap = n + 1;
        }
        memcpy(t->buf, line, n);
        t->buf[n] = 0;
        char *s = t->buf;
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s || *s == '#')
            continue;
        t->nfields = 0;
        for (char *f = t->buf;;) {
            char *tab = strchr(f, '\t');
            if (tab)
                *tab = 0;
            if (t->nfields == TABLE_MAX_FIELDS)
                return table_fail(t, err, RF_EFORMAT, "more than %d fields", TABLE_MAX_FIELDS);
            t->fields[t->nfields++] = trim(f);
            if (!tab)
                break;
            f = tab + 1;
        }
        /* a trailing empty field (a stray tab) says nothing */
        while (t->nfields > 1 && !*t->fields[t->nfields - 1])
            t->nfields--;
        *got = true;
        return RF_OK;
    }
    return RF_OK;
}

static int parse_window(table_reader *t, const char *s, int *out, rf_err *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v > WINDOW_MAX)
        return table_fail(t, err, RF_EFORMAT, "window '%s' is not a number of words in 0..%d", s, WINDOW_MAX);
    *out = (int)v;
    return RF_OK;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

/* Grows *arr (of elem-size items, *cap of them) to hold n + 1. */
static int grow(void **arr, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return 0;
    int c = *cap ? *cap * 2 : 16;
    void *a = realloc(*arr, (size_t)c * elem);
    if (!a)
        return -1;
    memset((char *)a + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *arr = a;
    *cap = c;
    return 0;
}

/* ---- phrases ------------------------------------------------------------------------- */

/* Words of a phrase's text into p (interning them); "*" alone is a gap. */
static int phrase_parse(rf_clin_rules *r, table_reader *t, const char *text, clin_phrase *p, rf_err *err)
{
    p->n = 0;
    size_t len = strlen(text), pos = 0;
    while (pos < len) {
        while (pos < len && text[pos] == ' ')
            pos++;
        size_t end = pos;
        while (end < len && text[end] != ' ')
            end++;
        if (end == pos)
            break;
        if (end - pos == 1 && text[pos] == '*') {
            if (p->n == 0 || p->tok[p->n - 1] == CLIN_GAP)
                return table_fail(t, err, RF_EFORMAT, "'*' must stand between two words");
            if (p->n == CLIN_PHRASE_MAX)
                return table_fail(t, err, RF_EFORMAT, "more than %d words", CLIN_PHRASE_MAX);
            p->tok[p->n++] = CLIN_GAP;
        } else {
            size_t at = pos;
            clin_tok tk;
            while (clin_next_token(text, end, &at, &tk)) {
                if (p->n == CLIN_PHRASE_MAX)
                    return table_fail(t, err, RF_EFORMAT, "more than %d words", CLIN_PHRASE_MAX);
                int32_t id;
                if (word_intern(r, text + tk.start, (size_t)(tk.end - tk.start), &id))
                    return table_fail(t, err, RF_ENOMEM, "out of memory");
                p->tok[p->n++] = id;
            }
        }
        pos = end;
    }
    if (p->n == 0)
        return table_fail(t, err, RF_EFORMAT, "empty phrase '%s'", text);
    if (p->tok[p->n - 1] == CLIN_GAP)
        return table_fail(t, err, RF_EFORMAT, "'*' must stand between two words");
    return RF_OK;
}

static bool phrase_same(const clin_phrase *a, const clin_phrase *b)
{
    return a->n == b->n && memcmp(a->tok, b->tok, (size_t)a->n * sizeof a->tok[0]) == 0;
}

static int dict_add(clin_dict *d, const clin_phrase *p)
{
    if (grow((void **)&d->phrases, &d->cap, d->n, sizeof *d->phrases))
        return -1;
    d->phrases[d->n++] = *p;
    return 0;
}

static int dict_index(clin_dict *d, int32_t nwords)
{
    d->first = calloc((size_t)nwords + 2, sizeof *d->first);
    d->order = malloc(((size_t)d->n + 1) * sizeof *d->order);
    if (!d->first || !d->order)
        return -1;
    for (int32_t i = 0; i < d->n; i++)
        d->first[d->phrases[i].tok[0] + 1]++;
    for (int32_t w = 0; w <= nwords; w++)
        d->first[w + 1] += d->first[w];
    int32_t *fill = malloc(((size_t)nwords + 1) * sizeof *fill);
    if (!fill)
        return -1;
    memcpy(fill, d->first, ((size_t)nwords + 1) * sizeof *fill);
    for (int32_t i = 0; i < d->n; i++)
        d->order[fill[d->phrases[i].tok[0]]++] = i;
    free(fill);
    return 0;
}

static int32_t phrase_match(const clin_phrase *p, int k, const clin_tok *t, int32_t n, int32_t j)
{
    for (; k < p->n; k++) {
        if (p->tok[k] == CLIN_GAP) {
            /* the shortest gap after which the rest matches */
            for (int g = 0; g <= CLIN_GAP_MAX; g++) {
                if (g > 0 && (j + g - 1 >= n || !t[j + g - 1].word))
                    break;
                int32_t e = phrase_match(p, k + 1, t, n, j + g);
                if (e >= 0)
                    return e;
            }
            return -1;
        }
        if (j >= n || t[j].id != p->tok[k])
            return -1;
        j++;
    }
    return j;
}

int32_t clin_dict_match(const clin_dict *d, const clin_tok *toks, int32_t n, int32_t i, int32_t *end)
{
    int32_t w = toks[i].id, best = -1, best_end = -1;
    if (w <= 0 || !d->first)
        return -1;
    for (int32_t k = d->first[w]; k < d->first[w + 1]; k++) {
        int32_t pi = d->order[k];
        int32_t e = phrase_match(&d->phrases[pi], 0, toks, n, i);
        if (e > best_end || (e == best_end && e >= 0 && pi < best)) {
            best_end = e;
            best = pi;
        }
    }
    if (best >= 0)
        *end = best_end;
    return best;
}

/* ---- the tables ------------------------------------------------------------------------ */

static int find_section(const rf_clin_rules *r, const char *name)
{
    for (int i = 0; i < r->nsections; i++)
        if (strcmp(r->sections[i].name, name) == 0)
            return i;
    return -1;
}

int rf_clin_finding_id(const rf_clin_rules *r, const char *name)
{
    for (int i = 0; i < r->nfindings; i++)
        if (strcmp(r->findings[i].name, name) == 0)
            return i;
    return -1;
}

static void lower_words(char *s)
{
    /* lowercase, runs of spaces to one */
    char *o = s;
    for (char *p = s; *p; p++) {
        char c = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
        if (c == '\t')
            c = ' ';
        if (c == ' ' && (o == s || o[-1] == ' '))
            continue;
        *o++ = c;
    }
    while (o > s && o[-1] == ' ')
        o--;
    *o = 0;
}

static int load_sections(rf_clin_rules *r, table_reader *t, rf_err *err)
{
    int cap_s = 0, cap_h = 0, cap_a = 0, rc;
    bool got;
    r->free_section = -1;
    while (!(rc = table_next(t, &got, err)) && got) {
        const char *type = t->fields[0];
        if (strcmp(type, "section") == 0) {
            if (t->nfields != 3 || (strcmp(t->fields[2], "observation") && strcmp(t->fields[2], "context")))
                return table_fail(t, err, RF_EFORMAT, "expected: section NAME observation|context");
            if (find_section(r, t->fields[1]) >= 0)
                return table_fail(t, err, RF_EFORMAT, "section '%s' declared twice", t->fields[1]);
            if (grow((void **)&r->sections, &cap_s, r->nsections, sizeof *r->sections))
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            clin_section_name *s = &r->sections[r->nsections];
            if (!(s->name = xstrdup(t->fields[1])))
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            r->nsections++;
            s->observation = strcmp(t->fields[2], "observation") == 0;
        } else if (strcmp(type, "header") == 0) {
            if (t->nfields != 3)
                return table_fail(t, err, RF_EFORMAT, "expected: header TEXT SECTION");
            int sec = find_section(r, t->fields[2]);
            if (sec < 0)
                return table_fail(t, err, RF_EFORMAT, "section '%s' not declared above", t->fields[2]);
            char *text = xstrdup(t->fields[1]);
            if (!text || grow((void **)&r->headers, &cap_h, r->nheaders, sizeof *r->headers)) {
                free(text);
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            }
            lower_words(text);
            if (!*text || strchr(text, ':')) {
                free(text);
                return table_fail(t, err, RF_EFORMAT, "a header is words without its colon");
            }
            r->headers[r->nheaders].text = text;
            r->headers[r->nheaders].section = sec;
            r->nheaders++;
        } else if (strcmp(type, "free") == 0) {
            if (t->nfields != 2 || (r->free_section = find_section(r, t->fields[1])) < 0)
                return table_fail(t, err, RF_EFORMAT, "expected: free SECTION (declared above)");
        } else if (strcmp(type, "abbrev") == 0) {
            if (t->nfields != 2 || !*t->fields[1] || strchr(t->fields[1], ' '))
                return table_fail(t, err, RF_EFORMAT, "expected: abbrev WORD (without its final '.')");
            char *a = xstrdup(t->fields[1]);
            if (!a || grow((void **)&r->abbrevs, &cap_a, r->nabbrevs, sizeof *r->abbrevs)) {
                free(a);
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            }
            lower_words(a);
            r->abbrevs[r->nabbrevs++] = a;
        } else {
            return table_fail(t, err, RF_EFORMAT, "unknown row type '%s' (section, header, free, abbrev)", type);
        }
    }
    if (rc)
        return rc;
    if (r->free_section < 0)
        return rf_err_set(err, RF_EFORMAT, "%s: no 'free' row naming the section of text before any header", t->name);
    return RF_OK;
}

static int load_findings(rf_clin_rules *r, table_reader *t, rf_err *err)
{
    int cap = 0, rc, normal = -1;
    bool got;
    while (!(rc = table_next(t, &got, err)) && got) {
        const char *type = t->fields[0];
        if (strcmp(type, "finding") == 0) {
            if (t->nfields != 4)
                return table_fail(t, err, RF_EFORMAT, "expected: finding NAME PARENT|- FLAGS|-");
            if (rf_clin_finding_id(r, t->fields[1]) >= 0 || !*t->fields[1] || !strcmp(t->fields[1], "-"))
                return table_fail(t, err, RF_EFORMAT, "finding '%s' declared twice or badly named", t->fields[1]);
            int parent = -1;
            if (strcmp(t->fields[2], "-") && (parent = rf_clin_finding_id(r, t->fields[2])) < 0)
                return table_fail(t, err, RF_EFORMAT, "parent '%s' not declared above", t->fields[2]);
            bool abnormal = false, is_normal = false;
            if (strcmp(t->fields[3], "-")) {
                for (char *f = t->fields[3]; *f;) {
                    char *comma = strchr(f, ',');
                    size_t n = comma ? (size_t)(comma - f) : strlen(f);
                    if (n == 8 && !memcmp(f, "abnormal", 8))
                        abnormal = true;
                    else if (n == 6 && !memcmp(f, "normal", 6))
                        is_normal = true;
                    else
                        return table_fail(t, err, RF_EFORMAT, "flags are abnormal, normal or -");
                    f += n + (comma ? 1 : 0);
                }
            }
            if (is_normal && (normal >= 0 || abnormal || parent >= 0))
                return table_fail(t, err, RF_EFORMAT, "one finding at most is 'normal', and it has no parent");
            if (grow((void **)&r->findings, &cap, r->nfindings, sizeof *r->findings))
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            clin_finding *f = &r->findings[r->nfindings];
            if (!(f->name = xstrdup(t->fields[1])))
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            f->parent = parent;
            f->abnormal = abnormal;
            f->normal = is_normal;
            if (is_normal)
                normal = r->nfindings;
            r->nfindings++;
        } else if (strcmp(type, "phrase") == 0) {
            if (t->nfields != 3)
                return table_fail(t, err, RF_EFORMAT, "expected: phrase FINDING|- TEXT");
            int target = -1;
            if (strcmp(t->fields[1], "-") && (target = rf_clin_finding_id(r, t->fields[1])) < 0)
                return table_fail(t, err, RF_EFORMAT, "finding '%s' not declared above", t->fields[1]);
            if (target >= 0 && r->findings[target].normal)
                return table_fail(t, err, RF_EFORMAT, "the 'normal' finding is derived and has no phrases");
            clin_phrase p;
            if ((rc = phrase_parse(r, t, t->fields[2], &p, err)))
                return rc;
            p.target = target;
            for (int32_t i = 0; i < r->finding_dict.n; i++)
                if (phrase_same(&r->finding_dict.phrases[i], &p))
                    return table_fail(t, err, RF_EFORMAT, "phrase '%s' listed twice", t->fields[2]);
            if (dict_add(&r->finding_dict, &p))
                return table_fail(t, err, RF_ENOMEM, "out of memory");
        } else {
            return table_fail(t, err, RF_EFORMAT, "unknown row type '%s' (finding, phrase)", type);
        }
    }
    if (rc)
        return rc;
    if (!r->nfindings)
        return rf_err_set(err, RF_EFORMAT, "%s: no findings", t->name);
    return RF_OK;
}

static const struct {
    const char *name;
    int role;
} trigger_types[] = {
    {"pre-neg", CLIN_PRE_NEG}, {"post-neg", CLIN_POST_NEG}, {"pre-unc", CLIN_PRE_UNC},
    {"post-unc", CLIN_POST_UNC}, {"pseudo", CLIN_PSEUDO},   {"term", CLIN_TERM}, {"post-term", CLIN_POST_TERM}, {"pre-prob", CLIN_PRE_PROB}, {"post-prob", CLIN_POST_PROB},
};

static int load_triggers(rf_clin_rules *r, table_reader *t, rf_err *err)
{
    int cap = 0, rc;
    bool got;
    while (!(rc = table_next(t, &got, err)) && got) {
        int role = 0;
        for (size_t i = 0; i < sizeof trigger_types / sizeof trigger_types[0]; i++)
            if (strcmp(t->fields[0], trigger_types[i].name) == 0)
                role = trigger_types[i].role;
        if (!role)
            return table_fail(t, err, RF_EFORMAT,
                              "unknown trigger type '%s' (pre-neg, post-neg, pre-unc, post-unc, pre-prob, post-prob, pseudo, term, post-term)",
                              t->fields[0]);
        bool directional = role & (CLIN_PRE_NEG | CLIN_POST_NEG | CLIN_PRE_UNC | CLIN_POST_UNC | CLIN_PRE_PROB | CLIN_POST_PROB);
        if (t->nfields != (directional ? 3 : 2))
            return table_fail(t, err, RF_EFORMAT, directional ? "expected: %s PHRASE WINDOW" : "expected: %s PHRASE",
                              t->fields[0]);
        int window = 0;
        if (directional && (rc = parse_window(t, t->fields[2], &window, err)))
            return rc;
        clin_phrase p;
        if ((rc = phrase_parse(r, t, t->fields[1], &p, err)))
            return rc;
        int idx = -1;
        for (int32_t i = 0; i < r->trigger_dict.n; i++)
            if (phrase_same(&r->trigger_dict.phrases[i], &p))
                idx = r->trigger_dict.phrases[i].target;
        if (idx < 0) {
            if (grow((void **)&r->triggers, &cap, r->ntriggers, sizeof *r->triggers))
                return table_fail(t, err, RF_ENOMEM, "out of memory");
            idx = r->ntriggers++;
            p.target = idx;
            if (dict_add(&r->trigger_dict, &p))
                return table_fail(t, err, RF_ENOMEM, "out of memory");
        }
        clin_trigger *tr = &r->triggers[idx];
        if (tr->roles & role)
            return table_fail(t, err, RF_EFORMAT, "'%s' listed twice as %s", t->fields[1], t->fields[0]);
        tr->roles |= role;
        const int pre = CLIN_PRE_NEG | CLIN_PRE_UNC | CLIN_PRE_PROB, post = CLIN_POST_NEG | CLIN_POST_UNC | CLIN_POST_PROB;
        if ((role & pre) && (tr->roles & pre & ~role))
            return table_fail(t, err, RF_EFORMAT, "'%s' has two pre- roles", t->fields[1]);
        if ((role & post) && (tr->roles & post & ~role))
            return table_fail(t, err, RF_EFORMAT, "'%s' has two post- roles", t->fields[1]);
        if (role & pre) {
            tr->pre_window = window;
            if (window > r->max_pre_window)
                r->max_pre_window = window;
        }
        if (role & post) {
            tr->post_window = window;
            if (window > r->max_post_window)
                r->max_post_window = window;
        }
        const int plain = CLIN_PSEUDO | CLIN_TERM | CLIN_POST_TERM;
        if ((tr->roles & plain) && (tr->roles & ~plain))
            return table_fail(t, err, RF_EFORMAT, "'%s': a pseudo-trigger or terminator has no other role",
                              t->fields[1]);
    }
    return rc;
}

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = 0;
}

static int parse_mesh(table_reader *t, const char *pattern, clin_mesh_rule *m, rf_err *err)
{
    char *copy = xstrdup(pattern);
    if (!copy)
        return table_fail(t, err, RF_ENOMEM, "out of memory");
    m->buf = copy;
    lower_words(copy);
    int n = 0;
    for (char *p = copy; *p; p++)
        n += *p == '/';
    if (!(m->quals = calloc((size_t)n + 1, sizeof *m->quals)))
        return table_fail(t, err, RF_ENOMEM, "out of memory");
    for (char *p = copy, *slash;; p = slash + 1) {
        if ((slash = strchr(p, '/')))
            *slash = 0;
        while (*p == ' ')
            p++;
        rtrim(p);
        if (!*p)
            return table_fail(t, err, RF_EFORMAT, "empty MeSH term or qualifier in '%s'", pattern);
        if (!m->term)
            m->term = p;
        else
            m->quals[m->nquals++] = p;
        if (!slash)
            break;
    }
    return RF_OK;
}

static int load_mesh(rf_clin_rules *r, table_reader *t, rf_err *err)
{
    int cap = 0, rc;
    bool got;
    while (!(rc = table_next(t, &got, err)) && got) {
        if (t->nfields != 2)
            return table_fail(t, err, RF_EFORMAT, "expected: MESH-TERM[/QUALIFIER...] FINDING|@skip");
        int f = -1;
        if (strcmp(t->fields[1], "@skip") && (f = rf_clin_finding_id(r, t->fields[1])) < 0) {
            /* the built-in map names the built-in vocabulary: a replaced vocabulary drops its rows */
            if (!t->from_dir)
                continue;
            return table_fail(t, err, RF_EFORMAT, "finding '%s' is not in findings.tsv", t->fields[1]);
        }
        if (grow((void **)&r->mesh, &cap, r->nmesh, sizeof *r->mesh))
            return table_fail(t, err, RF_ENOMEM, "out of memory");
        clin_mesh_rule *m = &r->mesh[r->nmesh++];
        m->finding = f;
        if ((rc = parse_mesh(t, t->fields[0], m, err)))
            return rc;
    }
    return rc;
}

static int load_labels(rf_clin_rules *r, table_reader *t, rf_err *err)
{
    int cap = 0, rc;
    bool got;
    while (!(rc = table_next(t, &got, err)) && got) {
        if (t->nfields != 2)
            return table_fail(t, err, RF_EFORMAT, "expected: LABEL-COLUMN FINDING");
        int f = rf_clin_finding_id(r, t->fields[1]);
        if (f < 0 && !t->from_dir)
            continue; /* as in load_mesh */
        if (f < 0)
            return table_fail(t, err, RF_EFORMAT, "finding '%s' is not in findings.tsv", t->fields[1]);
        if (grow((void **)&r->labels, &cap, r->nlabels, sizeof *r->labels))
            return table_fail(t, err, RF_ENOMEM, "out of memory");
        clin_label_rule *l = &r->labels[r->nlabels];
        if (!(l->column = xstrdup(t->fields[0])))
            return table_fail(t, err, RF_ENOMEM, "out of memory");
        l->finding = f;
        r->nlabels++;
    }
    return rc;
}

/* The table named name: dir/name when dir holds it, else the built-in copy. */
static int table_open(const char *dir, const char *name, table_reader *t, char **owned, char *path, size_t pathcap,
                      rf_err *err)
{
    memset(t, 0, sizeof *t);
    *owned = NULL;
    if (dir) {
        snprintf(path, pathcap, "%s/%s", dir, name);
        struct stat st;
        if (stat(path, &st) == 0) {
            size_t n;
            int rc = rf_read_file(path, TABLE_MAX_BYTES, owned, &n, err);
            if (rc)
                return rc;
            size_t bad;
            if (!text_utf8_valid(*owned, n, &bad)) {
                free(*owned);
                *owned = NULL;
                return rf_err_set(err, RF_EFORMAT, "%s: invalid UTF-8 at byte %zu", path, bad);
            }
            t->from_dir = true;
            t->name = path;
            t->data = *owned;
            t->len = n;
            return RF_OK;
        }
        if (errno != ENOENT)
            return rf_err_set(err, RF_EIO, "%s: %s", path, strerror(errno));
    }
    for (int i = 0; i < clin_builtin_table_count; i++)
        if (strcmp(clin_builtin_tables[i].name, name) == 0) {
            t->name = name;
            t->data = clin_builtin_tables[i].data;
            t->len = clin_builtin_tables[i].len;
            return RF_OK;
        }
    return rf_err_set(err, RF_EFORMAT, "%s: no such built-in table (the build did not embed data/text/%s)", name, name);
}

typedef int table_loader(rf_clin_rules *r, table_reader *t, rf_err *err);

int rf_clin_rules_load(const char *dir, rf_clin_rules **out, rf_err *err)
{
    *out = NULL;
    if (dir) {
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return rf_err_set(err, RF_EIO, "%s: not a directory of rule tables", dir);
    }
    rf_clin_rules *r = calloc(1, sizeof *r);
    if (!r)
        return rf_err_set(err, RF_ENOMEM, "out of memory loading the clinical rules");
    static const struct {
        const char *name;
        table_loader *load;
    } order[] = {
        {"sections.tsv", load_sections}, {"findings.tsv", load_findings}, {"triggers.tsv", load_triggers},
        {"mesh_map.tsv", load_mesh},     {"label_map.tsv", load_labels},
    };
    int rc = RF_OK;
    for (size_t i = 0; i < sizeof order / sizeof order[0] && !rc; i++) {
        table_reader t;
        char *owned, path[4096];
        rc = table_open(dir, order[i].name, &t, &owned, path, sizeof path, err);
        if (!rc)
            rc = order[i].load(r, &t, err);
        free(owned);
        free(t.buf);
    }
    if (!rc && (dict_index(&r->finding_dict, r->nwords) || dict_index(&r->trigger_dict, r->nwords)))
        rc = rf_err_set(err, RF_ENOMEM, "out of memory indexing the clinical rules");
    if (rc) {
        rf_clin_rules_free(r);
        return rc;
    }
    *out = r;
    return RF_OK;
}

static void dict_free(clin_dict *d)
{
    free(d->phrases);
    free(d->first);
    free(d->order);
}

void rf_clin_rules_free(rf_clin_rules *r)
{
    if (!r)
        return;
    for (int32_t w = 1; w <= r->nwords; w++)
        free(r->words[w]);
    free(r->words);
    free(r->word_lens);
    free(r->word_slots);
    for (int i = 0; i < r->nsections; i++)
        free(r->sections[i].name);
    free(r->sections);
    for (int i = 0; i < r->nheaders; i++)
        free(r->headers[i].text);
    free(r->headers);
    for (int i = 0; i < r->nabbrevs; i++)
        free(r->abbrevs[i]);
    free(r->abbrevs);
    for (int i = 0; i < r->nfindings; i++)
        free(r->findings[i].name);
    free(r->findings);
    dict_free(&r->finding_dict);
    free(r->triggers);
    dict_free(&r->trigger_dict);
    for (int i = 0; i < r->nmesh; i++) {
        free(r->mesh[i].buf);
        free(r->mesh[i].quals);
    }
    free(r->mesh);
    for (int i = 0; i < r->nlabels; i++)
        free(r->labels[i].column);
    free(r->labels);
    free(r);
}

int rf_clin_finding_count(const rf_clin_rules *r)
{
    return r->nfindings;
}

const char *rf_clin_finding_name(const rf_clin_rules *r, int id)
{
    return id >= 0 && id < r->nfindings ? r->findings[id].name : NULL;
}

int rf_clin_finding_parent(const rf_clin_rules *r, int id)
{
    return id >= 0 && id < r->nfindings ? r->findings[id].parent : -1;
}

const char *rf_clin_status_name(rf_clin_status s)
{
    return s == RF_CLIN_PRESENT ? "present" : s == RF_CLIN_ABSENT ? "absent" : "uncertain";
}
