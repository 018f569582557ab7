/*
 * BERT's WordPiece tokenizer (transformers' BertTokenizer, uncased), with the
 * input span of every token. One pass over the code points of the input does
 * BasicTokenizer's work (clean, whitespace, CJK, lowercase, NFD and accent
 * stripping, punctuation) while remembering which input code point every
 * normalized character came from; each word then goes through greedy
 * longest-match-first word pieces. Unicode data (categories, lowercase, NFD)
 * comes from utf8proc.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/text_internal.h"

#define WORD_MAX_CHARS 100 /* BertTokenizer's max_input_chars_per_word: longer words are [UNK] */

typedef struct growable {
    int32_t n, cap;
    int32_t *ids, *start, *end;
} growable;

typedef struct tokenizer {
    const rf_vocab *vocab;
    int32_t unk;
    int32_t limit;   /* tokens wanted between [CLS] and [SEP] */
    growable out;
    /* the current word: normalized code points and the input bytes each came from */
    int32_t *word, *origin, *origin_end;
    int32_t wn, wcap;
    char *wbytes;     /* the word in UTF-8 */
    int32_t *wbyteat; /* byte offset of each character in wbytes, and of the end */
    int oom;
} tokenizer;

static int grow(tokenizer *t, int32_t id, int32_t start, int32_t end)
{
    growable *g = &t->out;
    if (g->n >= t->limit)
        return 0;
    if (g->n == g->cap) {
        int32_t cap = g->cap ? 2 * g->cap : 64;
        int32_t *a = realloc(g->ids, (size_t)cap * sizeof *a), *b = a ? realloc(g->start, (size_t)cap * sizeof *b) : NULL;
        if (a)
            g->ids = a;
        if (b)
            g->start = b;
        int32_t *c = b ? realloc(g->end, (size_t)cap * sizeof *c) : NULL;
        if (!c)
            return t->oom = 1, -1;
        g->end = c;
        g->cap = cap;
    }
    g->ids[g->n] = id;
    g->start[g->n] = start;
    g->end[g->n] = end;
    g->n++;
    return 0;
}

static void word_add(tokenizer *t, int32_t cp, int32_t origin, int32_t origin_end)
{
    if (t->wn > WORD_MAX_CHARS) { /* already [UNK]: only its span grows */
        t->origin_end[t->wn - 1] = origin_end;
        return;
    }
    if (t->wn == t->wcap) {
        int32_t cap = t->wcap ? 2 * t->wcap : 64;
        int32_t *w = realloc(t->word, (size_t)cap * sizeof *w);
        if (w)
            t->word = w;
        int32_t *o = w ? realloc(t->origin, (size_t)cap * sizeof *o) : NULL;
        if (o)
            t->origin = o;
        int32_t *e = o ? realloc(t->origin_end, (size_t)cap * sizeof *e) : NULL;
        if (!e) {
            t->oom = 1;
            return;
        }
        t->origin_end = e;
        t->wcap = cap;
    }
    t->word[t->wn] = cp;
    t->origin[t->wn] = origin;
    t->origin_end[t->wn] = origin_end;
    t->wn++;
}

/* The current word into word pieces (or one [UNK]), then an empty word. */
static void word_end(tokenizer *t)
{
    int32_t n = t->wn;
    if (n == 0 || t->oom)
        return;
    t->wn = 0;
    int32_t span_start = t->origin[0], span_end = t->origin_end[n - 1];
    if (n > WORD_MAX_CHARS) {
        grow(t, t->unk, span_start, span_end);
        return;
    }
    free(t->wbytes);
    free(t->wbyteat);
    t->wbytes = malloc((size_t)n * 4 + 1);
    t->wbyteat = malloc(((size_t)n + 1) * sizeof *t->wbyteat);
    if (!t->wbytes || !t->wbyteat) {
        t->oom = 1;
        return;
    }
    int32_t at = 0;
    for (int32_t i = 0; i < n; i++) {
        t->wbyteat[i] = at;
        at += (int32_t)utf8proc_encode_char(t->word[i], (utf8proc_uint8_t *)t->wbytes + at);
    }
    t->wbyteat[n] = at;
    /* the pieces go to out only when the whole word splits: else one [UNK] */
    int32_t first = t->out.n;
    for (int32_t start = 0; start < n;) {
        int32_t id = -1, end = n;
        for (; end > start; end--) {
            id = text_vocab_find(t->vocab, "##", start > 0 ? 2 : 0, t->wbytes + t->wbyteat[start],
                                 (size_t)(t->wbyteat[end] - t->wbyteat[start]));
            if (id >= 0)
                break;
        }
        if (id < 0) {
            t->out.n = first;
            grow(t, t->unk, span_start, span_end);
            return;
        }
        /* pieces past the length limit are dropped by grow; the word still counts as split */
        if (grow(t, id, t->origin[start], t->origin_end[end - 1]) < 0)
            return;
        start = end;
    }
}

static bool is_whitespace(int32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS;
}

/* BERT's _is_control: every "C*" category (unassigned code points too) but \t \n \r. */
static bool is_control(int32_t cp)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return false;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN: return true;
    default: return false;
    }
}

/* BERT's _is_punctuation: all non-alphanumeric ASCII, and every "P*" category. */
static bool is_punctuation(int32_t cp)
{
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return true;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO: return true;
    default: return false;
    }
}

/* BERT's _is_chinese_char: the CJK Unified Ideographs blocks (not Hangul, kana). */
static bool is_cjk(int32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static bool is_cased(int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static bool is_case_ignorable(int32_t cp)
{
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

/* The code point at byte i of valid UTF-8, and its length in *k. */
static int32_t cp_at(const char *text, size_t len, size_t i, size_t *k)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &cp);
    *k = n > 0 ? (size_t)n : 1;
    return n > 0 ? cp : 0xFFFD;
}

/* The start of the code point before byte i (i > 0) of valid UTF-8. */
static size_t cp_before(const char *text, size_t i)
{
    do
        i--;
    while (i > 0 && ((uint8_t)text[i] & 0xc0) == 0x80);
    return i;
}

/*
 * Python's str.lower() on the capital sigma at byte i of text[from, to):
 * final sigma at the end of a word (Unicode's Final_Sigma condition), else
 * small sigma. The scans stop at the first character that is not
 * case-ignorable, whitespace included, so they stay short.
 */
static int32_t lower_sigma(const char *text, size_t from, size_t to, size_t i, size_t k)
{
    bool before = false, after = false;
    size_t kk;
    for (size_t j = i; j > from;) {
        j = cp_before(text, j);
        int32_t c = cp_at(text, to, j, &kk);
        if (!is_case_ignorable(c)) {
            before = is_cased(c);
            break;
        }
    }
    for (size_t j = i + k; j < to; j += kk) {
        int32_t c = cp_at(text, to, j, &kk);
        if (!is_case_ignorable(c)) {
            after = is_cased(c);
            break;
        }
    }
    return before && !after ? 0x3C2 : 0x3C3;
}

/* BasicTokenizer on the bytes [from, to) of the input (no special tokens inside). */
static void basic_tokens(tokenizer *t, const char *text, size_t from, size_t to)
{
    size_t k;
    /* once the length limit is reached nothing more is kept: stop early */
    for (size_t i = from; i < to && !t->oom && t->out.n < t->limit; i += k) {
        int32_t cp = cp_at(text, to, i, &k);
        int32_t b0 = (int32_t)i, b1 = (int32_t)(i + k);
        if (cp == 0 || cp == 0xFFFD || is_control(cp))
            continue;
        if (is_whitespace(cp)) {
            word_end(t);
            continue;
        }
        if (is_cjk(cp)) {
            word_end(t);
            word_add(t, cp, b0, b1);
            word_end(t);
            continue;
        }
        int32_t lower = cp == 0x3A3 ? lower_sigma(text, from, to, i, k) : utf8proc_tolower(cp);
        utf8proc_int32_t nfd[8];
        int last_boundclass = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(lower, nfd, 8, UTF8PROC_DECOMPOSE, &last_boundclass);
        for (utf8proc_ssize_t m = 0; m < nd && m < 8; m++) {
            if (utf8proc_category(nfd[m]) == UTF8PROC_CATEGORY_MN)
                continue; /* accents stripped */
            if (is_punctuation(nfd[m])) {
                word_end(t);
                word_add(t, nfd[m], b0, b1);
                word_end(t);
            } else {
                word_add(t, nfd[m], b0, b1);
            }
        }
    }
    word_end(t);
}

/* Code points before byte pos, counted on from a cursor (positions mostly increase). */
static int32_t cp_index(const char *text, size_t pos, size_t *cur_byte, int32_t *cur_cp)
{
    if (pos < *cur_byte)
        *cur_byte = 0, *cur_cp = 0;
    for (; *cur_byte < pos; (*cur_byte)++)
        *cur_cp += ((uint8_t)text[*cur_byte] & 0xc0) != 0x80;
    return *cur_cp;
}

void rf_tokens_free(rf_tokens *tk)
{
    if (!tk)
        return;
    free(tk->ids);
    free(tk->start);
    free(tk->end);
    free(tk->byte_start);
    free(tk->byte_end);
    memset(tk, 0, sizeof *tk);
}

int rf_wordpiece_encode(const rf_vocab *vocab, const char *text, size_t len, int32_t max_length, rf_tokens *out,
                        rf_err *err)
{
    memset(out, 0, sizeof *out);
    size_t bad;
    if (!text && len)
        return rf_err_set(err, RF_EINVAL, "tokenize: no text");
    if (len && !text_utf8_valid(text, len, &bad))
        return rf_err_set(err, RF_EINVAL, "tokenize: not valid UTF-8 at byte %zu", bad);
    if (len > INT32_MAX / 2)
        return rf_err_set(err, RF_EINVAL, "tokenize: %zu bytes is more than a text may have", len);
    if (max_length < 2)
        return rf_err_set(err, RF_EINVAL, "tokenize: max length %d leaves no room for [CLS] and [SEP]", max_length);

    tokenizer t = {.vocab = vocab, .unk = rf_vocab_id(vocab, "[UNK]", 5), .limit = max_length - 1};
    int32_t cls = rf_vocab_id(vocab, "[CLS]", 5), sep = rf_vocab_id(vocab, "[SEP]", 5);
    grow(&t, cls, 0, 0);
    /* special tokens written in the text are matched on the raw text first */
    static const char *const specials[] = {"[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"};
    size_t from = 0;
    for (size_t i = 0; i < len && !t.oom && t.out.n < t.limit; i++) {
        if (text[i] != '[')
            continue;
        for (int s = 0; s < 5; s++) {
            size_t sl = strlen(specials[s]);
            int32_t id = rf_vocab_id(vocab, specials[s], sl);
            if (id < 0 || i + sl > len || memcmp(text + i, specials[s], sl) != 0)
                continue;
            basic_tokens(&t, text, from, i);
            grow(&t, id, (int32_t)i, (int32_t)(i + sl));
            from = i + sl;
            i = from - 1;
            break;
        }
    }
    basic_tokens(&t, text, from, len);
    t.limit++; /* room for [SEP] */
    grow(&t, sep, 0, 0);
    free(t.word);
    free(t.origin);
    free(t.origin_end);
    free(t.wbytes);
    free(t.wbyteat);
    if (t.oom) {
        free(t.out.ids);
        free(t.out.start);
        free(t.out.end);
        return rf_err_set(err, RF_ENOMEM, "tokenize: out of memory");
    }
    /* the spans so far are in bytes: code point spans from them */
    out->n = t.out.n;
    out->ids = t.out.ids;
    out->byte_start = t.out.start;
    out->byte_end = t.out.end;
    out->start = malloc((size_t)out->n * sizeof *out->start);
    out->end = malloc((size_t)out->n * sizeof *out->end);
    if (!out->start || !out->end) {
        rf_tokens_free(out);
        return rf_err_set(err, RF_ENOMEM, "tokenize: out of memory");
    }
    size_t cur_byte = 0;
    int32_t cur_cp = 0;
    for (int32_t i = 0; i < out->n; i++) {
        out->start[i] = cp_index(text, (size_t)out->byte_start[i], &cur_byte, &cur_cp);
        out->end[i] = cp_index(text, (size_t)out->byte_end[i], &cur_byte, &cur_cp);
    }
    return RF_OK;
}
