/* radfuse text extract / text eval: sections, finding mentions and their evaluation on coded reports. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "radfuse/clinical.h"

#define NOTE_MAX ((size_t)256 << 20)    /* a note larger than 256 MiB is not a note */
#define REPORTS_MAX ((size_t)1 << 30)   /* a report table larger than 1 GiB is refused before reading */

/* A whole file, or standard input for "-", of at most max bytes. */
static char *read_input(const char *path, size_t max, size_t *n)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    const char *name = f == stdin ? "standard input" : path;
    if (!f) {
        cli_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (f != stdin && (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))) {
        fclose(f);
        cli_fail("%s: not a regular file", path);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (len == cap) {
            if (cap >= max) {
                free(buf);
                if (f != stdin)
                    fclose(f);
                cli_fail("%s: larger than %zu bytes", name, max);
                return NULL;
            }
            size_t next = cap * 2 > max ? max : cap * 2;
            char *b = realloc(buf, next + 1);
            if (!b)
                break;
            buf = b;
            cap = next;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            int bad = ferror(f);
            if (f != stdin)
                fclose(f);
            if (bad) {
                free(buf);
                cli_fail("%s: read error", name);
                return NULL;
            }
            buf[len] = 0;
            *n = len;
            return buf;
        }
    }
    free(buf);
    if (f != stdin)
        fclose(f);
    cli_fail("%s: out of memory reading it", name);
    return NULL;
}

static cJSON *span_json(const rf_clin_span *s, int bytes)
{
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateNumber((double)(bytes ? s->byte_start : s->start)));
    cJSON_AddItemToArray(a, cJSON_CreateNumber((double)(bytes ? s->byte_end : s->end)));
    return a;
}

/* text[span] as a string (the note is valid UTF-8, so every span is too). */
static cJSON *span_text(const char *text, const rf_clin_span *s)
{
    size_t n = (size_t)(s->byte_end - s->byte_start);
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    memcpy(c, text + s->byte_start, n);
    c[n] = 0;
    cJSON *j = cJSON_CreateString(c);
    free(c);
    return j;
}

static int print_json(const rf_clin_rules *rules, const char *path, const char *text, const rf_clin_doc *d)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "note", path);
    cJSON *secs = cJSON_AddArrayToObject(o, "sections");
    for (int32_t i = 0; i < d->n_sections; i++) {
        const rf_clin_section *s = &d->sections[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", s->name);
        cJSON_AddBoolToObject(j, "observation", s->observation);
        cJSON_AddItemToObject(j, "header", span_json(&s->header, 0));
        cJSON_AddItemToObject(j, "body", span_json(&s->body, 0));
        cJSON_AddItemToArray(secs, j);
    }
    cJSON *sents = cJSON_AddArrayToObject(o, "sentences");
    for (int64_t i = 0; i < d->n_sentences; i++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "section", d->sentences[i].section);
        cJSON_AddItemToObject(j, "span", span_json(&d->sentences[i].span, 0));
        cJSON_AddItemToArray(sents, j);
    }
    cJSON *ms = cJSON_AddArrayToObject(o, "mentions");
    for (int64_t i = 0; i < d->n_mentions; i++) {
        const rf_clin_mention *m = &d->mentions[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "finding", rf_clin_finding_name(rules, m->finding));
        cJSON_AddStringToObject(j, "status", rf_clin_status_name(m->status));
        cJSON_AddStringToObject(j, "section", d->sections[m->section].name);
        cJSON_AddNumberToObject(j, "sentence", m->sentence);
        cJSON_AddItemToObject(j, "span", span_json(&m->span, 0));
        cJSON_AddItemToObject(j, "bytes", span_json(&m->span, 1));
        cJSON_AddItemToObject(j, "text", span_text(text, &m->span));
        if (m->trigger.byte_end > m->trigger.byte_start) {
            cJSON_AddItemToObject(j, "trigger", span_text(text, &m->trigger));
            cJSON_AddItemToObject(j, "trigger_span", span_json(&m->trigger, 0));
        }
        cJSON_AddItemToArray(ms, j);
    }
    int nf = rf_clin_finding_count(rules);
    uint8_t *labels = malloc((size_t)nf);
    if (labels) {
        rf_clin_labels(rules, d, labels);
        cJSON *l = cJSON_AddObjectToObject(o, "labels");
        static const char *const names[] = {NULL, "absent", "uncertain", "present"};
        for (int f = 0; f < nf; f++)
            if (labels[f])
                cJSON_AddStringToObject(l, rf_clin_finding_name(rules, f), names[labels[f]]);
        free(labels);
    }
    cJSON_AddNumberToObject(o, "control_chars", (double)d->control_chars);
    cJSON_AddNumberToObject(o, "forced_breaks", (double)d->forced_breaks);
    char *s = labels ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return cli_fail("%s: out of memory printing the mentions", path);
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return CLI_EXIT_OK;
}

static void print_text(const rf_clin_rules *rules, const char *path, const char *text, const rf_clin_doc *d)
{
    printf("note\t%s\n", path);
    for (int32_t i = 0; i < d->n_sections; i++)
        printf("section\t%s\t%lld\t%lld\n", d->sections[i].name, (long long)d->sections[i].body.start,
               (long long)d->sections[i].body.end);
    for (int64_t i = 0; i < d->n_mentions; i++) {
        const rf_clin_mention *m = &d->mentions[i];
        printf("mention\t%s\t%s\t%s\t%lld\t%lld\t%.*s", rf_clin_finding_name(rules, m->finding),
               rf_clin_status_name(m->status), d->sections[m->section].name, (long long)m->span.start,
               (long long)m->span.end, (int)(m->span.byte_end - m->span.byte_start), text + m->span.byte_start);
        if (m->trigger.byte_end > m->trigger.byte_start)
            printf("\t%.*s", (int)(m->trigger.byte_end - m->trigger.byte_start), text + m->trigger.byte_start);
        putchar('\n');
    }
}

int cli_text_extract(int argc, char **argv)
{
    const char *rules_dir = NULL;
    int json = 0, nnotes = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc)
            rules_dir = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_fail("text extract: unexpected option '%s'", argv[i]);
        else
            nnotes++;
    }
    if (!nnotes)
        return cli_fail("text extract: expected NOTE... (a file, or - for standard input)");
    rf_err err;
    rf_clin_rules *rules;
    if (rf_clin_rules_load(rules_dir, &rules, &err))
        return cli_fail("%s", err.msg);
    int status = CLI_EXIT_OK;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            continue;
        if (strcmp(argv[i], "--rules") == 0) {
            i++;
            continue;
        }
        const char *path = argv[i];
        size_t n;
        char *text = read_input(path, NOTE_MAX, &n);
        if (!text) {
            status = CLI_EXIT_FAIL;
            continue;
        }
        rf_clin_doc doc;
        if (rf_clin_extract(rules, text, n, &doc, &err)) {
            cli_fail("%s: %s", strcmp(path, "-") ? path : "standard input", err.msg);
            free(text);
            status = CLI_EXIT_FAIL;
            continue;
        }
        if (doc.control_chars)
            fprintf(stderr, "radfuse: warning: %s: %lld NUL or other control characters kept as sentence breaks\n",
                    strcmp(path, "-") ? path : "standard input", (long long)doc.control_chars);
        if (json) {
            if (print_json(rules, path, text, &doc))
                status = CLI_EXIT_FAIL;
        } else {
            print_text(rules, path, text, &doc);
        }
        rf_clin_doc_free(&doc);
        free(text);
    }
    rf_clin_rules_free(rules);
    if (fflush(stdout) != 0)
        return cli_fail("text extract: cannot write standard output");
    return status;
}

int cli_text_eval(int argc, char **argv)
{
    const char *rules_dir = NULL, *reports = NULL, *labels = NULL;
    int json = 0;
    rf_clin_eval_opts o = {0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--rules") == 0 && v) {
            rules_dir = v, i++;
        } else if (strcmp(a, "--labels") == 0 && v) {
            labels = v, i++;
        } else if (strcmp(a, "--split") == 0 && v) {
            i++;
            if (strcmp(v, "all") == 0)
                o.split = RF_CLIN_SPLIT_ALL;
            else if (strcmp(v, "dev") == 0)
                o.split = RF_CLIN_SPLIT_DEV;
            else if (strcmp(v, "heldout") == 0)
                o.split = RF_CLIN_SPLIT_HELDOUT;
            else
                return cli_fail("text eval: --split is all, dev or heldout");
        } else if (strcmp(a, "--uncertain") == 0 && v) {
            i++;
            if (strcmp(v, "positive") && strcmp(v, "negative"))
                return cli_fail("text eval: --uncertain is positive or negative");
            o.uncertain_positive = strcmp(v, "positive") == 0;
        } else if (strcmp(a, "--min-support") == 0) {
            long n;
            if (cli_parse_int("--min-support", v, 1, 1 << 30, &n))
                return CLI_EXIT_FAIL;
            o.min_support = (int)n;
            i++;
        } else if (a[0] == '-' || reports) {
            return cli_fail("text eval: unexpected argument '%s'", a);
        } else {
            reports = a;
        }
    }
    if (!reports)
        return cli_fail("text eval: expected REPORTS.csv (uid, MeSH, findings, impression columns)");
    rf_err err;
    rf_clin_rules *rules;
    if (rf_clin_rules_load(rules_dir, &rules, &err))
        return cli_fail("%s", err.msg);
    size_t n, ln = 0;
    char *csv = read_input(reports, REPORTS_MAX, &n), *lab = NULL;
    if (csv && labels && !(lab = read_input(labels, REPORTS_MAX, &ln))) {
        free(csv);
        csv = NULL;
    }
    if (!csv) {
        rf_clin_rules_free(rules);
        return CLI_EXIT_FAIL;
    }
    o.labels_csv = lab;
    o.labels_len = ln;
    o.labels_name = labels;
    rf_clin_eval ev;
    int rc = rf_clin_eval_iu(rules, csv, n, reports, &o, &ev, &err);
    free(csv);
    free(lab);
    if (rc) {
        rf_clin_rules_free(rules);
        return cli_fail("%s", err.msg);
    }
    static const char *const split_names[] = {"all", "dev", "heldout"};
    if (json) {
        cJSON *root = cJSON_CreateObject(), *per = cJSON_AddObjectToObject(root, "per_finding");
        cJSON *macro_over = cJSON_CreateArray();
        for (int f = 0; f < ev.n_findings; f++) {
            const rf_clin_score *s = &ev.per[f];
            if (!s->gold)
                continue;
            cJSON *j = cJSON_AddObjectToObject(per, rf_clin_finding_name(rules, f));
            cJSON_AddNumberToObject(j, "precision", s->precision);
            cJSON_AddNumberToObject(j, "recall", s->recall);
            cJSON_AddNumberToObject(j, "f1", s->f1);
            cJSON_AddNumberToObject(j, "support", (double)s->support);
            if (s->in_macro)
                cJSON_AddItemToArray(macro_over, cJSON_CreateString(rf_clin_finding_name(rules, f)));
        }
        cJSON_AddNumberToObject(root, "macro_f1", ev.macro_f1);
        cJSON_AddItemToObject(root, "macro_over", macro_over);
        cJSON_AddStringToObject(root, "split", split_names[o.split]);
        cJSON_AddStringToObject(root, "gold", labels ? "labels" : "mesh");
        cJSON_AddNumberToObject(root, "reports", (double)ev.n_reports);
        cJSON_AddNumberToObject(root, "skipped", (double)ev.n_skipped);
        char *s = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!s) {
            rf_clin_eval_free(&ev);
            rf_clin_rules_free(rules);
            return cli_fail("text eval: out of memory printing the scores");
        }
        printf("%s\n", s);
        free(s);
    } else {
        printf("%-28s %9s %9s %9s %8s %8s\n", "finding", "precision", "recall", "f1", "support", "in_macro");
        for (int f = 0; f < ev.n_findings; f++) {
            const rf_clin_score *s = &ev.per[f];
            if (!s->gold)
                continue;
            printf("%-28s %9.3f %9.3f %9.3f %8lld %8s\n", rf_clin_finding_name(rules, f), s->precision, s->recall,
                   s->f1, (long long)s->support, s->in_macro ? "yes" : "");
        }
        printf("macro-F1 %.4f over %d findings with >= %d positive reports in the file; split %s, %lld reports, "
               "%lld without gold left out\n",
               ev.macro_f1, ev.n_macro, o.min_support ? o.min_support : 50, split_names[o.split],
               (long long)ev.n_reports, (long long)ev.n_skipped);
    }
    rf_clin_eval_free(&ev);
    rf_clin_rules_free(rules);
    if (fflush(stdout) != 0)
        return cli_fail("text eval: cannot write standard output");
    return CLI_EXIT_OK;
}
