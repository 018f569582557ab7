/*
 * WordPiece parity with transformers' BertTokenizer: every case of
 * shared/fixtures/tokenizer/cases_pub.jsonl (input_ids made by transformers,
 * truncated at 128) must come out identical with that vocab.txt. Spans are
 * checked by invariants (inside the text, in order, and for ASCII text the
 * span lowercased is the token). Hostile input: invalid UTF-8, NUL bytes,
 * a long note, bad vocabularies.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "radfuse/text.h"
#include "tests/testutil.h"

static rf_vocab *load_vocab(void)
{
    char path[4096];
    rf_err err;
    rf_vocab *v = NULL;
    snprintf(path, sizeof path, "%s/fixtures/tokenizer/vocab.txt", test_shared_dir());
    CHECKF(rf_vocab_load(path, &v, &err) == 0, "%s", err.msg);
    if (!v)
        exit(1);
    return v;
}

static int is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

static void check_spans(const rf_vocab *v, const char *text, const rf_tokens *tk)
{
    size_t len = strlen(text);
    int32_t prev = 0;
    for (int32_t i = 1; i + 1 < tk->n; i++) {
        CHECKF(tk->byte_start[i] >= prev && tk->byte_start[i] < tk->byte_end[i] && (size_t)tk->byte_end[i] <= len,
               "token %d span %d..%d", i, tk->byte_start[i], tk->byte_end[i]);
        prev = tk->byte_start[i];
        const char *tok = rf_vocab_token(v, tk->ids[i]);
        if (!is_ascii(text) || strcmp(tok, "[UNK]") == 0 || tok[0] == '[')
            continue;
        if (strncmp(tok, "##", 2) == 0)
            tok += 2;
        size_t n = (size_t)(tk->byte_end[i] - tk->byte_start[i]);
        int same = strlen(tok) == n;
        for (size_t k = 0; same && k < n; k++)
            same = tolower((unsigned char)text[tk->byte_start[i] + (int32_t)k]) == tok[k];
        CHECKF(same, "'%s': token '%s' spans '%.*s'", text, tok, (int)n, text + tk->byte_start[i]);
        /* ASCII: code point and byte spans are the same */
        CHECK(tk->start[i] == tk->byte_start[i] && tk->end[i] == tk->byte_end[i]);
    }
}

static void test_cases(const rf_vocab *v)
{
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/fixtures/tokenizer/cases_pub.jsonl", test_shared_dir());
    char *data = test_read_file(path, &n);
    CHECKF(data != NULL, "cannot read %s", path);
    if (!data)
        return;
    int cases = 0, exact = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "input_ids");
        CHECK(cJSON_IsString(text) && cJSON_IsArray(ids));
        if (!cJSON_IsString(text) || !cJSON_IsArray(ids)) {
            cJSON_Delete(o);
            continue;
        }
        cases++;
        rf_tokens tk;
        rf_err err;
        const char *s = text->valuestring;
        CHECKF(rf_wordpiece_encode(v, s, strlen(s), 128, &tk, &err) == 0, "%s", err.msg);
        int same = tk.n == cJSON_GetArraySize(ids);
        for (int32_t i = 0; same && i < tk.n; i++)
            same = tk.ids[i] == cJSON_GetArrayItem(ids, i)->valueint;
        exact += same;
        CHECKF(same, "case %d differs: '%.80s'", cases, s);
        if (!same && test_verbose())
            for (int32_t i = 0; i < tk.n; i++)
                fprintf(stderr, "  %d %s\n", tk.ids[i], rf_vocab_token(v, tk.ids[i]));
        check_spans(v, s, &tk);
        rf_tokens_free(&tk);
        cJSON_Delete(o);
    }
    free(data);
    CHECKF(cases >= 311, "%d cases", cases);
    printf("tokenizer parity: %d of %d cases exact\n", exact, cases);
}

static void test_hostile(const rf_vocab *v)
{
    rf_tokens tk;
    rf_err err;
    /* invalid UTF-8: overlong, surrogate, truncated, stray continuation */
    const char *bad[] = {"ok \xc0\xaf", "x\xed\xa0\x80", "abc\xe2\x82", "\x80", "\xf5\x80\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(rf_wordpiece_encode(v, bad[i], strlen(bad[i]), 128, &tk, &err) == RF_EINVAL, "case %zu", i);
        CHECK(strstr(err.msg, "UTF-8") != NULL);
    }
    /* NUL bytes are dropped as BERT drops control characters */
    const char nul[] = "no\0 effusion";
    CHECK(rf_wordpiece_encode(v, nul, sizeof nul - 1, 128, &tk, &err) == 0);
    rf_tokens ref;
    CHECK(rf_wordpiece_encode(v, "no effusion", 11, 128, &ref, &err) == 0);
    CHECK(tk.n == ref.n && memcmp(tk.ids, ref.ids, (size_t)tk.n * sizeof *tk.ids) == 0);
    rf_tokens_free(&tk);
    rf_tokens_free(&ref);
    /* max length: [CLS] and [SEP] always there */
    CHECK(rf_wordpiece_encode(v, "no pleural effusion", 19, 2, &tk, &err) == 0 && tk.n == 2);
    rf_tokens_free(&tk);
    CHECK(rf_wordpiece_encode(v, "no pleural effusion", 19, 3, &tk, &err) == 0 && tk.n == 3);
    CHECK(tk.ids[2] == rf_vocab_id(v, "[SEP]", 5));
    rf_tokens_free(&tk);
    CHECK(rf_wordpiece_encode(v, "x", 1, 1, &tk, &err) == RF_EINVAL);
    /* a 32 MiB note truncated at 512 tokens, and one word of 32 MiB */
    size_t big = (size_t)32 << 20;
    char *note = test_xmalloc(big);
    for (size_t i = 0; i < big; i++)
        note[i] = "no acute cardiopulmonary process. "[i % 34];
    CHECK(rf_wordpiece_encode(v, note, big, 512, &tk, &err) == 0 && tk.n == 512);
    rf_tokens_free(&tk);
    memset(note, 'a', big);
    CHECK(rf_wordpiece_encode(v, note, big, 512, &tk, &err) == 0 && tk.n == 3 &&
          tk.ids[1] == rf_vocab_id(v, "[UNK]", 5) && tk.byte_end[1] == (int32_t)big);
    rf_tokens_free(&tk);
    free(note);
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_bad_vocab(void)
{
    char path[] = "/tmp/radfuse-vocab-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    rf_vocab *v;
    rf_err err;
    write_file(path, "[PAD]\n[CLS]\n[SEP]\n", 18);
    CHECK(rf_vocab_load(path, &v, &err) == RF_EFORMAT && strstr(err.msg, "[UNK]"));
    write_file(path, "[UNK]\n[CLS]\n[SEP]\n\xff\n", 20);
    CHECK(rf_vocab_load(path, &v, &err) == RF_EFORMAT && strstr(err.msg, "UTF-8"));
    /* duplicates: the last line wins; CRLF endings */
    write_file(path, "[UNK]\r\n[CLS]\r\n[SEP]\r\nlung\r\nlung\r\n", 33);
    CHECKF(rf_vocab_load(path, &v, &err) == 0, "%s", err.msg);
    if (v) {
        CHECK(rf_vocab_id(v, "lung", 4) == 4 && rf_vocab_size(v) == 5 && rf_vocab_id(v, "lung\r", 5) < 0);
        rf_vocab_free(v);
    }
    unlink(path);
    CHECK(rf_vocab_load("/nonexistent/vocab.txt", &v, &err) == RF_EIO && strstr(err.msg, "/nonexistent/vocab.txt"));
}

int main(void)
{
    rf_vocab *v = load_vocab();
    test_cases(v);
    test_hostile(v);
    test_bad_vocab();
    rf_vocab_free(v);
    return test_finish("test_tokenizer");
}
