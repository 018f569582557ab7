/*
 * Sections and sentences of a note, in one pass over its bytes.
 *
 * A section header (sections.tsv) is recognized where a line or a sentence
 * starts: its words in any case, spaces or tabs between them, then a colon
 * (or, written in capitals, alone on its line). Text before the first header
 * is the free-note section. Sentences end at '.', '!' or '?' followed by
 * whitespace (not after an abbreviation from sections.tsv, nor after a list
 * number such as "1."), at a blank line, before a line that starts a list
 * item, at a header, and at NUL or another control character (counted, not
 * dropped: the spans still index the input as given). A sentence that runs
 * past RF_CLIN_SENTENCE_MAX bytes is cut, so no later step sees an unbounded
 * sentence. Each sentence then goes to the mention pass (mentions.c).
 */
#include <stdlib.h>
#include <string.h>

#include "text/clin_internal.h"
#include "text/text_internal.h"

#define FORCE_SLACK 256 /* bytes past the limit a forced cut waits for whitespace */
#define CP_BLOCK 64     /* code point checkpoints every this many bytes */

typedef struct splitter {
    const rf_clin_rules *r;
    const char *s;
    size_t len;
    rf_clin_doc *doc;
    int64_t sections_cap, sentences_cap;
    int32_t section;         /* current section, -1 before any text or header */
    int64_t sent_start;      /* -1: no sentence open */
    int64_t sent_last;       /* end of the last non-space byte of the open sentence */
    clin_scratch sc;
    rf_err *err;
} splitter;

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_control(unsigned char c)
{
    return (c < 0x20 && !is_space(c)) || c == 0x7f;
}

static bool is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int section_open(splitter *sp, int name, int64_t hstart, int64_t hend)
{
    rf_clin_doc *d = sp->doc;
    if (d->n_sections == sp->sections_cap) {
        int64_t cap = sp->sections_cap ? sp->sections_cap * 2 : 8;
        if (cap > INT32_MAX)
            return rf_err_set(sp->err, RF_ENOMEM, "more than %d sections", INT32_MAX);
        rf_clin_section *s = realloc(d->sections, (size_t)cap * sizeof *s);
        if (!s)
            return rf_err_set(sp->err, RF_ENOMEM, "out of memory splitting sections");
        d->sections = s;
        sp->sections_cap = cap;
    }
    rf_clin_section *s = &d->sections[d->n_sections];
    memset(s, 0, sizeof *s);
    s->name = sp->r->sections[name].name;
    s->observation = sp->r->sections[name].observation;
    s->header.byte_start = hstart;
    s->header.byte_end = hend;
    s->body.byte_start = s->body.byte_end = hend;
    sp->section = d->n_sections++;
    return RF_OK;
}

/* Ends the current section's body at end, trimmed of whitespace. */
static void section_close(splitter *sp, int64_t end)
{
    if (sp->section < 0)
        return;
    rf_clin_span *b = &sp->doc->sections[sp->section].body;
    int64_t a = b->byte_start;
    while (a < end && is_space((unsigned char)sp->s[a]))
        a++;
    while (end > a && is_space((unsigned char)sp->s[end - 1]))
        end--;
    b->byte_start = a;
    b->byte_end = end;
}

static int sentence_close(splitter *sp)
{
    if (sp->sent_start < 0)
        return RF_OK;
    rf_clin_doc *d = sp->doc;
    int64_t start = sp->sent_start, end = sp->sent_last;
    sp->sent_start = -1;
    if (d->n_sentences == sp->sentences_cap) {
        int64_t cap = sp->sentences_cap ? sp->sentences_cap * 2 : 32;
        rf_clin_sentence *s = realloc(d->sentences, (size_t)cap * sizeof *s);
        if (!s)
            return rf_err_set(sp->err, RF_ENOMEM, "out of memory splitting sentences");
        d->sentences = s;
        sp->sentences_cap = cap;
    }
    rf_clin_sentence *s = &d->sentences[d->n_sentences];
    memset(s, 0, sizeof *s);
    s->section = sp->section;
    s->span.byte_start = start;
    s->span.byte_end = end;
    int64_t idx = d->n_sentences++;
    return clin_mentions_sentence(sp->r, sp->s, start, end, sp->section, idx, &sp->sc, d, sp->err);
}

/* A header starting at i: the longest match, its section and the end of the header (past the colon). */
static bool header_at(const splitter *sp, size_t i, int *section, size_t *hend)
{
    const char *s = sp->s;
    size_t len = sp->len, best = 0;
    for (int h = 0; h < sp->r->nheaders; h++) {
        const char *t = sp->r->headers[h].text;
        size_t j = i;
        bool lower = false;
        for (; *t; t++) {
            if (*t == ' ') {
                if (j >= len || (s[j] != ' ' && s[j] != '\t'))
                    break;
                while (j < len && (s[j] == ' ' || s[j] == '\t'))
                    j++;
                continue;
            }
            if (j >= len)
                break;
            unsigned char c = (unsigned char)s[j];
            lower |= c >= 'a' && c <= 'z';
            if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)*t)
                break;
            j++;
        }
        if (*t || (j < len && is_alnum((unsigned char)s[j])))
            continue;
        size_t k = j;
        while (k < len && (s[k] == ' ' || s[k] == '\t'))
            k++;
        size_t end;
        if (k < len && s[k] == ':')
            end = k + 1;
        else if (!lower && (k >= len || s[k] == '\n' || s[k] == '\r'))
            end = k;
        else
            continue;
        if (end > best) {
            best = end;
            *section = sp->r->headers[h].section;
        }
    }
    if (!best)
        return false;
    *hend = best;
    return true;
}

/* A list item starts at i: "1." / "12)" or "-" / "*" / a bullet, then a space. */
static bool list_marker_at(const char *s, size_t len, size_t i)
{
    size_t j = i;
    while (j < len && j - i < 3 && s[j] >= '0' && s[j] <= '9')
        j++;
    if (j > i && j < len && (s[j] == '.' || s[j] == ')'))
        return j + 1 < len && (s[j + 1] == ' ' || s[j + 1] == '\t');
    if (j == i && i < len && (s[i] == '-' || s[i] == '*'))
        return i + 1 < len && s[i + 1] == ' ';
    if (j == i && i + 3 < len && memcmp(s + i, "\xe2\x80\xa2", 3) == 0) /* U+2022 */
        return true;
    return false;
}

/* Whether the '.' at i ends an abbreviation or a leading list number. */
static bool period_continues(const splitter *sp, size_t i)
{
    const char *s = sp->s;
    size_t w = i;
    while (w > (size_t)sp->sent_start && !is_space((unsigned char)s[w - 1]) && s[w - 1] != '(')
        w--;
    size_t n = i - w;
    if (n == 0)
        return false;
    bool digits = true;
    for (size_t k = w; k < i; k++)
        digits &= s[k] >= '0' && s[k] <= '9';
    if (digits && n <= 3 && w == (size_t)sp->sent_start)
        return true;
    for (int a = 0; a < sp->r->nabbrevs; a++) {
        const char *ab = sp->r->abbrevs[a];
        if (strlen(ab) != n)
            continue;
        size_t k = 0;
        for (; k < n; k++) {
            unsigned char c = (unsigned char)s[w + k];
            if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != (unsigned char)ab[k])
                break;
        }
        if (k == n)
            return true;
    }
    return false;
}

static int split(splitter *sp)
{
    const char *s = sp->s;
    size_t len = sp->len;
    bool candidate = true; /* a header may start at the next non-space byte */
    int rc;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (is_space(c)) {
            if (sp->sent_start >= 0 && (int64_t)i - sp->sent_start >= RF_CLIN_SENTENCE_MAX) {
                sp->doc->forced_breaks++;
                if ((rc = sentence_close(sp)))
                    return rc;
            }
            if (c == '\n') {
                candidate = true;
                size_t j = i + 1;
                while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r'))
                    j++;
                if (j >= len || s[j] == '\n' || list_marker_at(s, len, j))
                    if ((rc = sentence_close(sp)))
                        return rc;
            }
            i++;
            continue;
        }
        if (is_control(c)) {
            sp->doc->control_chars++;
            if ((rc = sentence_close(sp)))
                return rc;
            candidate = true;
            i++;
            continue;
        }
        if (candidate) {
            int sec;
            size_t hend;
            candidate = false;
            if (header_at(sp, i, &sec, &hend)) {
                if ((rc = sentence_close(sp)))
                    return rc;
                section_close(sp, (int64_t)i);
                if ((rc = section_open(sp, sec, (int64_t)i, (int64_t)hend)))
                    return rc;
                i = hend;
                candidate = true;
                continue;
            }
        }
        if (sp->sent_start >= 0 && (int64_t)i - sp->sent_start >= RF_CLIN_SENTENCE_MAX + FORCE_SLACK &&
            (c & 0xc0) != 0x80) {
            sp->doc->forced_breaks++;
            if ((rc = sentence_close(sp)))
                return rc;
        }
        if (sp->sent_start < 0) {
            if (sp->section < 0 && (rc = section_open(sp, sp->r->free_section, 0, 0)))
                return rc;
            sp->sent_start = (int64_t)i;
        }
        sp->sent_last = (int64_t)i + 1;
        if ((c == '.' || c == '!' || c == '?') && (i + 1 >= len || is_space((unsigned char)s[i + 1]) ||
                                                   is_control((unsigned char)s[i + 1]))) {
            if (c != '.' || !period_continues(sp, i)) {
                if ((rc = sentence_close(sp)))
                    return rc;
                candidate = true;
            }
        }
        i++;
    }
    if ((rc = sentence_close(sp)))
        return rc;
    section_close(sp, (int64_t)len);
    return RF_OK;
}

/* Code point offsets for every byte offset in the document. */
static int fill_code_points(const char *s, size_t len, rf_clin_doc *d, rf_err *err)
{
    size_t nblocks = len / CP_BLOCK + 1;
    int64_t *at = malloc(nblocks * sizeof *at);
    if (!at)
        return rf_err_set(err, RF_ENOMEM, "out of memory indexing code points");
    int64_t count = 0;
    for (size_t b = 0; b < nblocks; b++) {
        at[b] = count;
        size_t end = (b + 1) * CP_BLOCK < len ? (b + 1) * CP_BLOCK : len;
        for (size_t i = b * CP_BLOCK; i < end; i++)
            count += ((unsigned char)s[i] & 0xc0) != 0x80;
    }
    for (int pass = 0; pass < 4; pass++) {
        int64_t n = pass == 0 ? d->n_sections * 2 : pass == 1 ? d->n_sentences : d->n_mentions;
        for (int64_t k = 0; k < n; k++) {
            rf_clin_span *sp = pass == 0   ? (k & 1 ? &d->sections[k / 2].body : &d->sections[k / 2].header)
                               : pass == 1 ? &d->sentences[k].span
                               : pass == 2 ? &d->mentions[k].span
                                           : &d->mentions[k].trigger;
            int64_t *bytes[2] = {&sp->byte_start, &sp->byte_end}, *cps[2] = {&sp->start, &sp->end};
            for (int e = 0; e < 2; e++) {
                size_t byte = (size_t)*bytes[e], blk = byte / CP_BLOCK;
                int64_t c = at[blk];
                for (size_t i = blk * CP_BLOCK; i < byte; i++)
                    c += ((unsigned char)s[i] & 0xc0) != 0x80;
                *cps[e] = c;
            }
        }
    }
    free(at);
    return RF_OK;
}

void rf_clin_doc_free(rf_clin_doc *d)
{
    if (!d)
        return;
    free(d->sections);
    free(d->sentences);
    free(d->mentions);
    memset(d, 0, sizeof *d);
}

int rf_clin_extract(const rf_clin_rules *rules, const char *text, size_t len, rf_clin_doc *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > (size_t)INT64_MAX / 2)
        return rf_err_set(err, RF_ENOMEM, "note of %zu bytes is too large", len);
    size_t bad;
    if (!text_utf8_valid(text, len, &bad))
        return rf_err_set(err, RF_EFORMAT, "invalid UTF-8 at byte %zu", bad);
    splitter sp = {.r = rules, .s = text, .len = len, .doc = out, .section = -1, .sent_start = -1, .err = err};
    int rc = split(&sp);
    clin_scratch_free(&sp.sc);
    if (!rc)
        rc = fill_code_points(text, len, out, err);
    if (rc)
        rf_clin_doc_free(out);
    return rc;
}
