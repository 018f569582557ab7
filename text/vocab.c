/* WordPiece vocabularies: vocab.txt into an open-addressing hash table. */
#include <stdlib.h>
#include <string.h>

#include "radfuse/text.h"
#include "text/text_internal.h"
#include "runtime/fileio.h"

#define VOCAB_MAX_LINES (1 << 22)
#define VOCAB_MAX_TOKEN 1024

struct rf_vocab {
    int32_t count;   /* ids 0..count-1 */
    char **tokens;   /* by id */
    size_t *lens;    /* by id */
    int32_t *slots;  /* hash table of ids, -1 empty */
    size_t nslots;   /* a power of two */
};

uint64_t text_hash(const char *prefix, size_t plen, const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < plen; i++)
        h = (h ^ (uint8_t)prefix[i]) * 1099511628211ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

int32_t text_vocab_find(const rf_vocab *v, const char *prefix, size_t plen, const char *s, size_t len)
{
    size_t mask = v->nslots - 1;
    for (size_t at = (size_t)text_hash(prefix, plen, s, len) & mask;; at = (at + 1) & mask) {
        int32_t id = v->slots[at];
        if (id < 0)
            return -1;
        const char *t = v->tokens[id];
        if (v->lens[id] == plen + len && memcmp(t, prefix, plen) == 0 && memcmp(t + plen, s, len) == 0)
            return id;
    }
}

int32_t rf_vocab_id(const rf_vocab *v, const char *token, size_t len)
{
    return text_vocab_find(v, "", 0, token, len);
}

const char *rf_vocab_token(const rf_vocab *v, int32_t id)
{
    return id >= 0 && id < v->count ? v->tokens[id] : NULL;
}

int32_t rf_vocab_size(const rf_vocab *v)
{
    return v->count;
}

void rf_vocab_free(rf_vocab *v)
{
    if (!v)
        return;
    for (int32_t i = 0; i < v->count; i++)
        free(v->tokens[i]);
    free(v->tokens);
    free(v->lens);
    free(v->slots);
    free(v);
}

/* Inserts id; a token seen before now maps to the later id (transformers' load_vocab). */
static void vocab_insert(rf_vocab *v, int32_t id)
{
    size_t mask = v->nslots - 1;
    const char *t = v->tokens[id];
    size_t len = v->lens[id];
    for (size_t at = (size_t)text_hash("", 0, t, len) & mask;; at = (at + 1) & mask) {
        int32_t old = v->slots[at];
        if (old < 0 || (v->lens[old] == len && memcmp(v->tokens[old], t, len) == 0)) {
            v->slots[at] = id;
            return;
        }
    }
}

int rf_vocab_load(const char *path, rf_vocab **out, rf_err *err)
{
    *out = NULL;
    size_t size;
    char *data;
    int rc = rf_read_file(path, (size_t)VOCAB_MAX_LINES * 64, &data, &size, err);
    if (rc)
        return rc;
    size_t bad;
    if (!text_utf8_valid(data, size, &bad)) {
        free(data);
        return rf_err_set(err, RF_EFORMAT, "%s: not valid UTF-8 at byte %zu", path, bad);
    }
    rf_vocab *v = calloc(1, sizeof *v);
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (size && data[size - 1] != '\n')
        lines++;
    if (!v || lines > VOCAB_MAX_LINES) {
        free(data);
        free(v);
        return v ? rf_err_set(err, RF_EFORMAT, "%s: more than %d lines", path, VOCAB_MAX_LINES)
                 : rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    v->tokens = calloc(lines ? lines : 1, sizeof *v->tokens);
    v->lens = calloc(lines ? lines : 1, sizeof *v->lens);
    v->nslots = 16;
    while (v->nslots < 2 * lines)
        v->nslots *= 2;
    v->slots = malloc(v->nslots * sizeof *v->slots);
    if (!v->tokens || !v->lens || !v->slots) {
        free(data);
        rf_vocab_free(v);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    memset(v->slots, 0xff, v->nslots * sizeof *v->slots);
    for (size_t i = 0, line = 0; i < size; line++) {
        size_t j = i;
        while (j < size && data[j] != '\n')
            j++;
        size_t len = j - i;
        if (len && data[i + len - 1] == '\r')
            len--;
        if (len > VOCAB_MAX_TOKEN) {
            free(data);
            rf_vocab_free(v);
            return rf_err_set(err, RF_EFORMAT, "%s:%zu: a token of more than %d bytes", path, line + 1,
                              VOCAB_MAX_TOKEN);
        }
        char *t = malloc(len + 1);
        if (!t) {
            free(data);
            rf_vocab_free(v);
            return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
        }
        memcpy(t, data + i, len);
        t[len] = 0;
        v->tokens[line] = t;
        v->lens[line] = len;
        v->count = (int32_t)line + 1;
        vocab_insert(v, (int32_t)line);
        i = j + 1;
    }
    free(data);
    static const char *const required[] = {"[UNK]", "[CLS]", "[SEP]"};
    for (int k = 0; k < 3; k++)
        if (rf_vocab_id(v, required[k], strlen(required[k])) < 0) {
            rf_vocab_free(v);
            return rf_err_set(err, RF_EFORMAT, "%s: no %s token", path, required[k]);
        }
    *out = v;
    return RF_OK;
}
