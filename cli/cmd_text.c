/* radfuse text: tokenize (and, as the text module grows, extract, labs, eval). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "radfuse/text.h"

#define TEXT_STDIN_MAX ((size_t)256 << 20) /* a note larger than 256 MiB is not a note */

/* All of standard input, or an error past TEXT_STDIN_MAX. */
static char *read_stdin(size_t *n)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            if (cap >= TEXT_STDIN_MAX) {
                free(buf);
                cli_fail("text: standard input is larger than %zu bytes", TEXT_STDIN_MAX);
                return NULL;
            }
            char *b = realloc(buf, cap * 2);
            if (!b)
                break;
            buf = b;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) {
            if (ferror(stdin)) {
                free(buf);
                cli_fail("text: cannot read standard input");
                return NULL;
            }
            *n = len;
            return buf;
        }
    }
    free(buf);
    cli_fail("text: out of memory reading standard input");
    return NULL;
}

static int cmd_tokenize(int argc, char **argv)
{
    const char *vocab_path = NULL;
    long max_length = 512;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--vocab") == 0 && i + 1 < argc)
            vocab_path = argv[++i];
        else if (strcmp(argv[i], "--max-length") == 0) {
            if (cli_parse_int("--max-length", i + 1 < argc ? argv[i + 1] : NULL, 2, 1 << 24, &max_length))
                return CLI_EXIT_FAIL;
            i++;
        } else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            return cli_fail("text tokenize: unexpected argument '%s'", argv[i]);
    }
    if (!vocab_path)
        return cli_fail("text tokenize: --vocab FILE is required");
    rf_err err;
    rf_vocab *vocab;
    if (rf_vocab_load(vocab_path, &vocab, &err))
        return cli_fail("%s", err.msg);
    size_t n;
    char *text = read_stdin(&n);
    if (!text) {
        rf_vocab_free(vocab);
        return CLI_EXIT_FAIL;
    }
    rf_tokens tk;
    int rc = rf_wordpiece_encode(vocab, text, n, (int32_t)max_length, &tk, &err);
    free(text);
    if (rc) {
        rf_vocab_free(vocab);
        return cli_fail("standard input: %s", err.msg);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject(), *ids = cJSON_AddArrayToObject(o, "input_ids"),
              *toks = cJSON_AddArrayToObject(o, "tokens"), *offs = cJSON_AddArrayToObject(o, "offsets");
        for (int32_t i = 0; i < tk.n; i++) {
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(tk.ids[i]));
            cJSON_AddItemToArray(toks, cJSON_CreateString(rf_vocab_token(vocab, tk.ids[i])));
            cJSON *span = cJSON_CreateArray();
            cJSON_AddItemToArray(span, cJSON_CreateNumber(tk.start[i]));
            cJSON_AddItemToArray(span, cJSON_CreateNumber(tk.end[i]));
            cJSON_AddItemToArray(offs, span);
        }
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
        if (!s)
            rc = cli_fail("text tokenize: out of memory printing the tokens");
    } else {
        for (int32_t i = 0; i < tk.n; i++)
            printf("%d\t%s\t%d\t%d\n", tk.ids[i], rf_vocab_token(vocab, tk.ids[i]), tk.start[i], tk.end[i]);
    }
    rf_tokens_free(&tk);
    rf_vocab_free(vocab);
    return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cli_text(int argc, char **argv)
{
    if (argc < 1)
        return cli_fail("text: expected a subcommand (tokenize, extract, eval, labs)");
    if (strcmp(argv[0], "tokenize") == 0)
        return cmd_tokenize(argc - 1, argv + 1);
    if (strcmp(argv[0], "extract") == 0)
        return cli_text_extract(argc - 1, argv + 1);
    if (strcmp(argv[0], "eval") == 0)
        return cli_text_eval(argc - 1, argv + 1);
    if (strcmp(argv[0], "labs") == 0)
        return cli_text_labs(argc - 1, argv + 1);
    return cli_fail("text: unknown subcommand '%s'", argv[0]);
}
