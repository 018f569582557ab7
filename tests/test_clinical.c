/*
 * Clinical language: sections and sentences (hand-made notes and every
 * report of the shared Indiana University set), mention status on
 * hand-written sentences including the classic traps, spans that point at
 * the mention, hostile input (invalid UTF-8, NUL, 50 MB notes in linear time),
 * rule tables replaced from a directory and malformed ones, the CLI, and the
 * evaluation against MeSH codes and NegBio labels held to the figures in
 * docs/text.md.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "radfuse/clinical.h"
#include "tests/testutil.h"
#include "text/csv.h"

/* The held-out macro-F1 against MeSH codes (docs/text.md) less a small
 * margin: a rule change that loses more than that fails here. */
#define HELDOUT_MACRO_F1_MIN 0.929
#define DEV_MACRO_F1_MIN 0.943
#define NEGBIO_HELDOUT_MACRO_F1_MIN 0.880

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int finding(const rf_clin_rules *r, const char *name)
{
    int id = rf_clin_finding_id(r, name);
    CHECKF(id >= 0, "no finding '%s'", name);
    return id;
}

static int extract(const rf_clin_rules *r, const char *text, rf_clin_doc *d)
{
    rf_err err;
    int rc = rf_clin_extract(r, text, strlen(text), d, &err);
    CHECKF(rc == 0, "'%s': %s", text, err.msg);
    return rc;
}

/* Every mention's span is inside the text, in order, and starts and ends on a word boundary. */
static void check_spans(const char *text, size_t len, const rf_clin_doc *d)
{
    int64_t prev = 0;
    for (int64_t i = 0; i < d->n_mentions; i++) {
        const rf_clin_span *s = &d->mentions[i].span;
        CHECKF(s->byte_start >= 0 && s->byte_start < s->byte_end && (size_t)s->byte_end <= len,
               "mention %lld span %lld..%lld", (long long)i, (long long)s->byte_start, (long long)s->byte_end);
        if (!(s->byte_start >= 0 && s->byte_start < s->byte_end && (size_t)s->byte_end <= len))
            return;
        CHECK(s->byte_start >= prev);
        prev = s->byte_start;
        CHECK(isalnum((unsigned char)text[s->byte_start]));
        CHECK(isalnum((unsigned char)text[s->byte_end - 1]));
        CHECK(s->byte_start == 0 || !isalnum((unsigned char)text[s->byte_start - 1]));
        CHECK((size_t)s->byte_end == len || !isalnum((unsigned char)text[s->byte_end]));
        CHECK(s->start <= s->byte_start && s->end - s->start <= s->byte_end - s->byte_start);
    }
}

typedef struct status_case {
    const char *text, *finding, *mention; /* mention: the span's text (NULL: no mention of the finding at all) */
    rf_clin_status status;
    const char *trigger; /* the trigger's text, or NULL for none */
} status_case;

static const status_case status_cases[] = {
    {"No evidence of pneumothorax or effusion.", "Pneumothorax", "pneumothorax", RF_CLIN_ABSENT, "No evidence of"},
    {"No evidence of pneumothorax or effusion.", "Pleural Effusion", "effusion", RF_CLIN_ABSENT, "No evidence of"},
    {"Cannot exclude pneumonia.", "Pneumonia", "pneumonia", RF_CLIN_UNCERTAIN, "Cannot exclude"},
    {"Pneumonia is not excluded.", "Pneumonia", "Pneumonia", RF_CLIN_UNCERTAIN, "not excluded"},
    {"Pneumonia cannot be excluded.", "Pneumonia", "Pneumonia", RF_CLIN_UNCERTAIN, "cannot be excluded"},
    {"Resolved effusion.", "Pleural Effusion", "effusion", RF_CLIN_ABSENT, "Resolved"},
    {"The left pleural effusion has resolved.", "Pleural Effusion", "pleural effusion", RF_CLIN_ABSENT, "has resolved"},
    {"No change in cardiomegaly.", "Cardiomegaly", "cardiomegaly", RF_CLIN_PRESENT, NULL},
    {"Stable cardiomegaly.", "Cardiomegaly", "cardiomegaly", RF_CLIN_PRESENT, NULL},
    {"Cardiomegaly without pulmonary edema.", "Cardiomegaly", "Cardiomegaly", RF_CLIN_PRESENT, NULL},
    {"Cardiomegaly without pulmonary edema.", "Edema", "pulmonary edema", RF_CLIN_ABSENT, "without"},
    {"Lungs are clear without focal consolidation.", "Consolidation", "consolidation", RF_CLIN_ABSENT, "without"},
    {"The heart is not enlarged.", "Cardiomegaly", "heart is not enlarged", RF_CLIN_ABSENT, "not"},
    {"The heart is mildly enlarged.", "Cardiomegaly", "heart is mildly enlarged", RF_CLIN_PRESENT, NULL},
    {"Possible right lower lobe pneumonia.", "Pneumonia", "pneumonia", RF_CLIN_UNCERTAIN, "Possible"},
    {"Probable right lower lobe pneumonia.", "Pneumonia", "pneumonia", RF_CLIN_PRESENT, "Probable"},
    {"No pneumothorax, but there is a small left pleural effusion.", "Pneumothorax", "pneumothorax",
     RF_CLIN_ABSENT, "No"},
    {"No pneumothorax, but there is a small left pleural effusion.", "Pleural Effusion", "pleural effusion",
     RF_CLIN_PRESENT, NULL},
    {"Heart size is enlarged, pulmonary vascularity within normal limits.", "Cardiomegaly", "Heart size is enlarged",
     RF_CLIN_PRESENT, NULL},
    {"There is no focal consolidation to suggest pneumonia.", "Pneumonia", "pneumonia", RF_CLIN_ABSENT, "no"},
    {"No focal consolidation, suspicious pulmonary opacity, large pleural effusion, or pneumothorax is identified.",
     "Pneumothorax", "pneumothorax", RF_CLIN_ABSENT, "No"},
    {"Atelectasis versus scarring in the left base.", "Atelectasis", "Atelectasis", RF_CLIN_UNCERTAIN, "versus"},
    {"Atelectasis versus scarring in the left base.", "Scarring", "scarring", RF_CLIN_UNCERTAIN, "versus"},
    {"Small pericardial effusion.", "Pleural Effusion", NULL, RF_CLIN_PRESENT, NULL},
    {"COVID-19 pneumonia, bilateral.", "COVID-19", "COVID-19 pneumonia", RF_CLIN_PRESENT, NULL},
    {"Evaluate for pneumonia.", "Pneumonia", "pneumonia", RF_CLIN_UNCERTAIN, "Evaluate for"},
    {"pneumonia?", "Pneumonia", "pneumonia", RF_CLIN_UNCERTAIN, "?"},
    {"Negative for pneumothorax.", "Pneumothorax", "pneumothorax", RF_CLIN_ABSENT, "Negative for"},
    {"The pneumothorax is not seen.", "Pneumothorax", "pneumothorax", RF_CLIN_ABSENT, "not"},
    {"Nodule that is not calcified in the left lower lobe.", "Nodule", "Nodule", RF_CLIN_PRESENT, NULL},
    {"Right chest port with tip in the SVC.", "Support Devices", "port", RF_CLIN_PRESENT, NULL},
    {"Central line has been removed.", "Support Devices", "Central line", RF_CLIN_ABSENT, "has been removed"},
    {"Aspiration pneumonia in the right lower lobe.", "Aspiration Pneumonia", "Aspiration pneumonia",
     RF_CLIN_PRESENT, NULL},
    {"Age-indeterminate rib fractures.", "Fracture", "fractures", RF_CLIN_PRESENT, NULL},
    {"No pneumothorax; possible small effusion.", "Pleural Effusion", "effusion", RF_CLIN_UNCERTAIN, "possible"},
    {"NO PNEUMOTHORAX.", "Pneumothorax", "PNEUMOTHORAX", RF_CLIN_ABSENT, "NO"},
};

static bool span_is(const char *text, const rf_clin_span *s, const char *want)
{
    size_t n = strlen(want);
    return (size_t)(s->byte_end - s->byte_start) == n && memcmp(text + s->byte_start, want, n) == 0;
}

static void test_status(const rf_clin_rules *r)
{
    for (size_t k = 0; k < sizeof status_cases / sizeof status_cases[0]; k++) {
        const status_case *c = &status_cases[k];
        rf_clin_doc d;
        if (extract(r, c->text, &d))
            continue;
        check_spans(c->text, strlen(c->text), &d);
        int f = finding(r, c->finding);
        const rf_clin_mention *m = NULL;
        for (int64_t i = 0; i < d.n_mentions && !m; i++)
            if (d.mentions[i].finding == f)
                m = &d.mentions[i];
        if (!c->mention) {
            CHECKF(!m, "'%s': unexpected mention of %s", c->text, c->finding);
        } else {
            CHECKF(m != NULL, "'%s': no mention of %s", c->text, c->finding);
            if (m) {
                CHECKF(span_is(c->text, &m->span, c->mention), "'%s': %s spans '%.*s', want '%s'", c->text,
                       c->finding, (int)(m->span.byte_end - m->span.byte_start), c->text + m->span.byte_start,
                       c->mention);
                CHECKF(m->status == c->status, "'%s': %s is %s, want %s", c->text, c->finding,
                       rf_clin_status_name(m->status), rf_clin_status_name(c->status));
                if (c->trigger)
                    CHECKF(span_is(c->text, &m->trigger, c->trigger), "'%s': trigger '%.*s', want '%s'", c->text,
                           (int)(m->trigger.byte_end - m->trigger.byte_start), c->text + m->trigger.byte_start,
                           c->trigger);
                else
                    CHECKF(m->trigger.byte_end == m->trigger.byte_start, "'%s': unexpected trigger", c->text);
            }
        }
        rf_clin_doc_free(&d);
    }
}

static const rf_clin_section *section_named(const rf_clin_doc *d, const char *name)
{
    for (int32_t i = 0; i < d->n_sections; i++)
        if (strcmp(d->sections[i].name, name) == 0)
            return &d->sections[i];
    return NULL;
}

static void test_sections(const rf_clin_rules *r)
{
    const char *note = "Portable chest.\n"
                       "INDICATION: cough, evaluate for pneumonia\n"
                       "Comparison: None.\n"
                       "FINDINGS\n"
                       "The lungs are clear. Dr. Smith measured a 2.5 cm nodule. Heart: normal size.\n"
                       "\n"
                       "clinical history: smoker. impression: 1. No acute disease. 2. Stable nodule.\n";
    rf_clin_doc d;
    if (extract(r, note, &d))
        return;
    static const char *const names[] = {"NOTE", "INDICATION", "COMPARISON", "FINDINGS", "HISTORY", "IMPRESSION"};
    CHECKF(d.n_sections == 6, "%d sections", d.n_sections);
    for (int i = 0; i < d.n_sections && i < 6; i++)
        CHECKF(strcmp(d.sections[i].name, names[i]) == 0, "section %d is %s, want %s", i, d.sections[i].name,
               names[i]);
    const rf_clin_section *s = section_named(&d, "INDICATION");
    CHECK(s && !s->observation && span_is(note, &s->body, "cough, evaluate for pneumonia"));
    CHECK(s && span_is(note, &s->header, "INDICATION:"));
    s = section_named(&d, "FINDINGS");
    CHECK(s && s->observation && span_is(note, &s->header, "FINDINGS"));
    s = section_named(&d, "IMPRESSION");
    CHECK(s && span_is(note, &s->body, "1. No acute disease. 2. Stable nodule."));
    s = section_named(&d, "NOTE");
    CHECK(s && s->observation && span_is(note, &s->body, "Portable chest."));
    /* sentences: the abbreviation, the decimal, the inner colon and the list numbers do not split */
    static const char *const sentences[] = {"Portable chest.", "cough, evaluate for pneumonia", "None.",
                                            "The lungs are clear.", "Dr. Smith measured a 2.5 cm nodule.",
                                            "Heart: normal size.", "smoker.", "1. No acute disease.",
                                            "2. Stable nodule."};
    CHECKF(d.n_sentences == 9, "%lld sentences", (long long)d.n_sentences);
    for (int64_t i = 0; i < d.n_sentences && i < 9; i++)
        CHECKF(span_is(note, &d.sentences[i].span, sentences[i]), "sentence %lld is '%.*s'", (long long)i,
               (int)(d.sentences[i].span.byte_end - d.sentences[i].span.byte_start),
               note + d.sentences[i].span.byte_start);
    /* pneumonia in the indication is listed but counts for nothing; the nodule counts */
    int pneu = finding(r, "Pneumonia"), nod = finding(r, "Nodule"), nf = finding(r, "No Finding");
    bool listed = false;
    for (int64_t i = 0; i < d.n_mentions; i++)
        listed |= d.mentions[i].finding == pneu && d.mentions[i].status == RF_CLIN_UNCERTAIN;
    CHECK(listed);
    uint8_t *labels = test_xmalloc((size_t)rf_clin_finding_count(r));
    rf_clin_labels(r, &d, labels);
    CHECK(labels[pneu] == RF_CLIN_LABEL_NONE);
    CHECK(labels[nod] == RF_CLIN_LABEL_PRESENT);
    CHECK(labels[finding(r, "Lung Lesion")] == RF_CLIN_LABEL_PRESENT); /* up the hierarchy */
    CHECK(labels[finding(r, "Lung Opacity")] == RF_CLIN_LABEL_PRESENT);
    CHECK(labels[nf] == RF_CLIN_LABEL_ABSENT);
    rf_clin_doc_free(&d);
    if (!extract(r, "FINDINGS: Clear lungs. No effusion. IMPRESSION: Normal chest.", &d)) {
        rf_clin_labels(r, &d, labels);
        CHECK(labels[nf] == RF_CLIN_LABEL_PRESENT);
        CHECK(labels[finding(r, "Pleural Effusion")] == RF_CLIN_LABEL_ABSENT);
        rf_clin_doc_free(&d);
    }
    free(labels);
}

/* Every report of the shared set, written with its four headers: the sections
 * come back with exactly the columns' text as their bodies. */
static void test_real_sections(const rf_clin_rules *r, const char *csv, size_t len)
{
    text_csv c;
    text_csv_init(&c, "indiana_reports.csv", csv, len, NULL);
    bool got;
    rf_err err;
    int rc = text_csv_read(&c, &got, &err);
    CHECKF(rc == 0 && got && c.nfields == 8, "header: %s", rc ? err.msg : "");
    static const char *const heads[] = {"INDICATION", "COMPARISON", "FINDINGS", "IMPRESSION"};
    static const size_t cols[] = {4, 5, 6, 7};
    int reports = 0, exact = 0;
    char *note = test_xmalloc(1 << 20);
    while (!(rc = text_csv_read(&c, &got, &err)) && got) {
        size_t n = 0;
        const char *body[4];
        size_t blen[4];
        for (int k = 0; k < 4; k++) {
            body[k] = text_csv_field(&c, cols[k], &blen[k]);
            n += (size_t)snprintf(note + n, (1 << 20) - n, "%s: %s\n", heads[k], body[k]);
        }
        rf_clin_doc d;
        if (rf_clin_extract(r, note, n, &d, &err)) {
            CHECKF(0, "uid %s: %s", text_csv_field(&c, 0, NULL), err.msg);
            continue;
        }
        reports++;
        check_spans(note, n, &d);
        int ok = d.n_sections == 4;
        for (int k = 0; k < 4 && ok; k++) {
            const rf_clin_section *s = &d.sections[k];
            /* the column's text, trimmed as section bodies are */
            const char *b = body[k];
            size_t bl = blen[k];
            while (bl && isspace((unsigned char)*b))
                b++, bl--;
            while (bl && isspace((unsigned char)b[bl - 1]))
                bl--;
            ok = strcmp(s->name, heads[k]) == 0 && (size_t)(s->body.byte_end - s->body.byte_start) == bl &&
                 memcmp(note + s->body.byte_start, b, bl) == 0;
        }
        for (int64_t i = 0; ok && i < d.n_sentences; i++)
            ok = d.sentences[i].span.byte_end > d.sentences[i].span.byte_start;
        /* a column that itself holds a header ("INDICATION: ...", "History: ...") opens one more section */
        bool colon = false;
        for (int k = 0; k < 4; k++)
            colon |= memchr(body[k], ':', blen[k]) != NULL;
        if (ok)
            exact++;
        else
            CHECKF(colon && d.n_sections > 4, "uid %s: %d sections", text_csv_field(&c, 0, NULL), d.n_sections);
        rf_clin_doc_free(&d);
    }
    CHECKF(rc == 0, "%s", err.msg);
    CHECKF(reports == 3049, "%d reports", reports);
    CHECKF(exact >= reports - 10, "%d of %d reports split into their four sections exactly", exact, reports);
    free(note);
    text_csv_free(&c);
}

static void test_code_points(const rf_clin_rules *r)
{
    /* "é" (2 bytes) and "—" (3 bytes): code point spans trail byte spans by 1, then by 3 */
    const char *text = "Réport — no pneumothorax.";
    rf_clin_doc d;
    if (extract(r, text, &d))
        return;
    CHECK(d.n_mentions == 1);
    if (d.n_mentions == 1) {
        const rf_clin_mention *m = &d.mentions[0];
        CHECK(span_is(text, &m->span, "pneumothorax"));
        CHECK(m->span.start == m->span.byte_start - 3 && m->span.end == m->span.byte_end - 3);
        CHECK(m->status == RF_CLIN_ABSENT && m->trigger.start == m->trigger.byte_start - 3);
    }
    rf_clin_doc_free(&d);
}

static void test_hostile(const rf_clin_rules *r)
{
    rf_err err;
    rf_clin_doc d;
    const char bad[] = "No pneumothorax. \xff effusion";
    CHECK(rf_clin_extract(r, bad, sizeof bad - 1, &d, &err) == RF_EFORMAT);
    CHECKF(strstr(err.msg, "invalid UTF-8 at byte 17") != NULL, "%s", err.msg);
    CHECK(d.mentions == NULL && d.sections == NULL);
    const char overlong[] = "effusion \xc0\xaf";
    CHECK(rf_clin_extract(r, overlong, sizeof overlong - 1, &d, &err) == RF_EFORMAT);
    const char cut[] = "effusion \xe2\x80";
    CHECK(rf_clin_extract(r, cut, sizeof cut - 1, &d, &err) == RF_EFORMAT);
    /* NUL: kept, counted, a sentence break; the negation does not leak across it */
    const char nul[] = "No pneumothorax\0pleural effusion.";
    CHECK(rf_clin_extract(r, nul, sizeof nul - 1, &d, &err) == 0);
    CHECK(d.control_chars == 1 && d.n_sentences == 2 && d.n_mentions == 2);
    if (d.n_mentions == 2) {
        CHECK(d.mentions[0].status == RF_CLIN_ABSENT);
        CHECK(d.mentions[1].status == RF_CLIN_PRESENT && d.mentions[1].span.byte_start == 16);
    }
    rf_clin_doc_free(&d);
    /* empty and whitespace-only notes */
    CHECK(rf_clin_extract(r, "", 0, &d, &err) == 0 && d.n_sections == 0 && d.n_mentions == 0);
    rf_clin_doc_free(&d);
    CHECK(rf_clin_extract(r, " \n\t\n", 4, &d, &err) == 0 && d.n_sentences == 0);
    rf_clin_doc_free(&d);
}

/* 50 MB notes: realistic reports repeated, one sentence with no break at all,
 * and trigger-dense text. Each must finish in time linear in its size. */
static void test_large(const rf_clin_rules *r)
{
    const size_t size = (size_t)50 << 20;
    char *big = test_xmalloc(size + 1);
    rf_err err;
    rf_clin_doc d;
    static const char report[] =
        "FINDINGS: The heart is not enlarged. No pleural effusion or pneumothorax. Left basilar atelectasis. "
        "Possible right lower lobe pneumonia. Degenerative changes of the thoracic spine.\n"
        "IMPRESSION: 1. Left basilar atelectasis. 2. Cannot exclude pneumonia.\n";
    const size_t rl = sizeof report - 1, copies = size / rl;
    for (size_t i = 0; i < copies; i++)
        memcpy(big + i * rl, report, rl);
    size_t n = copies * rl;
    double t = now();
    int rc = rf_clin_extract(r, big, n, &d, &err);
    double dt = now() - t;
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECKF(d.n_mentions == (int64_t)copies * 8, "%lld mentions for %zu reports", (long long)d.n_mentions,
               copies);
        CHECK(d.n_sections == (int32_t)copies * 2 && d.forced_breaks == 0);
        const rf_clin_mention *last = &d.mentions[d.n_mentions - 1];
        CHECK(last->status == RF_CLIN_UNCERTAIN && span_is(big, &last->span, "pneumonia"));
        CHECK(last->span.start == last->span.byte_start); /* ASCII */
        rf_clin_doc_free(&d);
    }
    printf("50 MB of reports: %.2f s\n", dt);
    CHECKF(dt < 60, "%.1f s for 50 MB of reports", dt);

    /* one sentence: words and commas, a mention every 64 KiB, never a period */
    for (size_t i = 0; i < size; i++)
        big[i] = "no effusion , "[i % 14];
    for (size_t at = 1 << 16; at + 9 < size; at += 1 << 16)
        memcpy(big + at, " edema  ", 8);
    t = now();
    rc = rf_clin_extract(r, big, size, &d, &err);
    dt = now() - t;
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(d.forced_breaks > (int64_t)(size / (RF_CLIN_SENTENCE_MAX + 256)) - 2);
        int64_t max_sentence = 0;
        for (int64_t i = 0; i < d.n_sentences; i++) {
            int64_t l = d.sentences[i].span.byte_end - d.sentences[i].span.byte_start;
            max_sentence = l > max_sentence ? l : max_sentence;
        }
        CHECKF(max_sentence <= RF_CLIN_SENTENCE_MAX + 256, "longest sentence %lld bytes", (long long)max_sentence);
        rf_clin_doc_free(&d);
    }
    printf("50 MB without a sentence break: %.2f s\n", dt);
    CHECKF(dt < 60, "%.1f s for 50 MB without a sentence break", dt);

    /* no whitespace at all: one 50 MB "word" of multi-byte characters, cut on code point boundaries */
    size_t wl = size & ~(size_t)1;
    for (size_t i = 0; i + 2 <= wl; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    t = now();
    rc = rf_clin_extract(r, big, wl, &d, &err);
    dt = now() - t;
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(d.n_mentions == 0 && d.forced_breaks > 0);
        for (int64_t i = 0; i < d.n_sentences; i++)
            CHECK(((unsigned char)big[d.sentences[i].span.byte_start] & 0xc0) != 0x80);
        CHECK(d.sentences[d.n_sentences - 1].span.end == (int64_t)wl / 2);
        rf_clin_doc_free(&d);
    }
    printf("50 MB in one word: %.2f s\n", dt);
    CHECKF(dt < 60, "%.1f s for 50 MB in one word", dt);
    free(big);
}

static void test_rules_dir(void)
{
    char dir[256], path[1024];
    test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/findings.tsv", dir);
    const char *vocab = "finding\tNo Finding\t-\tnormal\nfinding\tWidget\t-\tabnormal\nphrase\tWidget\tblue widget\n";
    test_write_file(path, vocab, strlen(vocab));
    rf_err err;
    rf_clin_rules *r = NULL;
    CHECKF(rf_clin_rules_load(dir, &r, &err) == 0, "%s", err.msg);
    if (r) {
        CHECK(rf_clin_finding_count(r) == 2 && rf_clin_finding_id(r, "Pneumonia") < 0);
        rf_clin_doc d;
        if (!extract(r, "No blue widget. Pneumonia.", &d)) {
            CHECK(d.n_mentions == 1 && d.mentions[0].finding == 1 && d.mentions[0].status == RF_CLIN_ABSENT);
            rf_clin_doc_free(&d);
        }
        rf_clin_rules_free(r);
    }
    /* malformed tables name the file and the line */
    static const struct {
        const char *file, *text, *want;
    } bad[] = {
        {"findings.tsv", "finding\tA\t-\tabnormal\nphrase\tB\tword\n", "findings.tsv: line 2: finding 'B' not declared"},
        {"findings.tsv", "finding\tA\tZ\tabnormal\n", "line 1: parent 'Z'"},
        {"findings.tsv", "finding\tA\t-\tabnormal\nphrase\tA\t* word\n", "line 2: '*' must stand between"},
        {"findings.tsv", "finding\tA\t-\tabnormal\nphrase\tA\tword\nphrase\tA\tWORD\n", "line 3: phrase 'WORD' listed twice"},
        {"triggers.tsv", "pre-neg\tno\n", "triggers.tsv: line 1: expected: pre-neg PHRASE WINDOW"},
        {"triggers.tsv", "pre-neg\tno\t99\n", "line 1: window '99'"},
        {"triggers.tsv", "sideways\tno\t3\n", "unknown trigger type 'sideways'"},
        {"triggers.tsv", "pre-neg\tno\t3\npre-unc\tno\t3\n", "line 2: 'no' has two pre- roles"},
        {"sections.tsv", "section\tA\tobservation\nheader\tfoo:\tA\nfree\tA\n", "line 2: a header is words"},
        {"sections.tsv", "section\tA\tobservation\n", "no 'free' row"},
        {"mesh_map.tsv", "Cardiomegaly\tNo Such Finding\n", "mesh_map.tsv: line 1: finding 'No Such Finding'"},
        {"findings.tsv", "finding\tA\t-\tabnormal\n\xff\n", "invalid UTF-8"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char sub[600];
        snprintf(sub, sizeof sub, "%s/bad%zu", dir, k);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", sub);
        CHECK(system(cmd) == 0);
        snprintf(path, sizeof path, "%s/%s", sub, bad[k].file);
        test_write_file(path, bad[k].text, strlen(bad[k].text));
        r = NULL;
        CHECKF(rf_clin_rules_load(sub, &r, &err) == RF_EFORMAT && !r, "case %zu loaded", k);
        CHECKF(strstr(err.msg, bad[k].want) != NULL, "case %zu: '%s' lacks '%s'", k, err.msg, bad[k].want);
        rf_clin_rules_free(r);
    }
    CHECK(rf_clin_rules_load("/nonexistent/rules", &r, &err) == RF_EIO && !r);
}

static void test_eval(const rf_clin_rules *r, const char *csv, size_t len, const char *labels, size_t llen)
{
    rf_err err;
    rf_clin_eval ev;
    double macro[3] = {0};
    for (int split = 0; split < 3; split++) {
        rf_clin_eval_opts o = {.split = (rf_clin_split)split};
        int rc = rf_clin_eval_iu(r, csv, len, "indiana_reports.csv", &o, &ev, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc)
            continue;
        macro[split] = ev.macro_f1;
        CHECKF(ev.n_macro >= 18, "%d findings in the macro average", ev.n_macro);
        int64_t tp = 0;
        for (int f = 0; f < ev.n_findings; f++)
            tp += ev.per[f].tp;
        CHECK(tp > 0);
        CHECK(ev.per[finding(r, "Cardiomegaly")].in_macro && ev.per[finding(r, "No Finding")].in_macro);
        CHECK(!ev.per[finding(r, "COVID-19")].gold); /* no MeSH code names it */
        CHECKF(split != 0 || (ev.n_reports + ev.n_skipped == 3049), "%lld + %lld reports", (long long)ev.n_reports,
               (long long)ev.n_skipped);
        rf_clin_eval_free(&ev);
    }
    printf("macro-F1 vs MeSH: all %.4f, dev %.4f, held-out %.4f\n", macro[0], macro[1], macro[2]);
    CHECKF(macro[2] >= HELDOUT_MACRO_F1_MIN, "held-out macro-F1 %.4f < %.3f", macro[2], HELDOUT_MACRO_F1_MIN);
    CHECKF(macro[1] >= DEV_MACRO_F1_MIN, "dev macro-F1 %.4f < %.3f", macro[1], DEV_MACRO_F1_MIN);
    rf_clin_eval_opts o = {.split = RF_CLIN_SPLIT_HELDOUT, .labels_csv = labels, .labels_len = llen,
                           .labels_name = "openi_gold_labels14.csv"};
    if (!rf_clin_eval_iu(r, csv, len, "indiana_reports.csv", &o, &ev, &err)) {
        printf("macro-F1 vs NegBio labels: held-out %.4f over %d findings\n", ev.macro_f1, ev.n_macro);
        CHECKF(ev.macro_f1 >= NEGBIO_HELDOUT_MACRO_F1_MIN, "NegBio held-out macro-F1 %.4f", ev.macro_f1);
        CHECK(ev.per[finding(r, "Pleural Effusion")].gold && !ev.per[finding(r, "Lung Opacity")].gold);
        rf_clin_eval_free(&ev);
    } else {
        CHECKF(0, "%s", err.msg);
    }
    /* hostile report tables */
    static const struct {
        const char *csv, *want;
    } bad[] = {
        {"uid,MeSH,findings,impression\n1,normal,\"unterminated\n", "line 2: quoted field not closed"},
        {"uid,MeSH,findings\n1,normal,x\n", "no 'impression' column"},
        {"uid,MeSH,findings,impression\nx1,normal,a,b\n", "line 2: uid is not"},
        {"uid,MeSH,findings,impression\n1,normal,a\n", "line 2: 3 fields"},
        {"uid,MeSH,findings,impression\n1,normal,a,\"b\xff\"\n", "invalid UTF-8"},
        {"", "empty"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        rf_clin_eval_opts d = {0};
        CHECKF(rf_clin_eval_iu(r, bad[k].csv, strlen(bad[k].csv), "t.csv", &d, &ev, &err) != 0, "case %zu", k);
        CHECKF(strstr(err.msg, bad[k].want) != NULL, "case %zu: '%s' lacks '%s'", k, err.msg, bad[k].want);
        CHECK(ev.per == NULL);
    }
    /* a tiny table scored by hand: one true positive, one false positive, one false negative */
    const char *tiny = "uid,MeSH,findings,impression\n"
                       "2,Cardiomegaly/mild,The heart is enlarged.,Cardiomegaly.\n"
                       "4,normal,Cardiomegaly.,\n"
                       "6,Pleural Effusion/right,The heart is not enlarged.,No acute disease.\n"
                       "8,No Indexing,Cardiomegaly.,\n";
    rf_clin_eval_opts to = {.min_support = 1};
    if (!rf_clin_eval_iu(r, tiny, strlen(tiny), "tiny.csv", &to, &ev, &err)) {
        const rf_clin_score *s = &ev.per[finding(r, "Cardiomegaly")];
        CHECK(ev.n_reports == 3 && ev.n_skipped == 1);
        CHECK(s->tp == 1 && s->fp == 1 && s->fn == 0 && s->tn == 1 && s->support == 1);
        CHECK(s->precision == 0.5 && s->recall == 1.0 && s->f1 > 0.666 && s->f1 < 0.667);
        s = &ev.per[finding(r, "Pleural Effusion")];
        CHECK(s->tp == 0 && s->fn == 1 && s->f1 == 0);
        rf_clin_eval_free(&ev);
    } else {
        CHECKF(0, "%s", err.msg);
    }
}

static void test_cli(const char *reports)
{
    char dir[256], path[512], out[1 << 16], errb[4096];
    test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/note.txt", dir);
    const char *note = "FINDINGS: No pleural effusion. Mild cardiomegaly.\n";
    test_write_file(path, note, strlen(note));
    char *argv[] = {(char *)test_radfuse_bin(), "text", "extract", "--json", path, NULL};
    int rc = test_run(argv, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 0, "extract: %d %s", rc, errb);
    cJSON *o = cJSON_Parse(out);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "mentions");
    CHECK(cJSON_GetArraySize(ms) == 2);
    const cJSON *m0 = cJSON_GetArrayItem(ms, 0), *span = cJSON_GetObjectItemCaseSensitive(m0, "span");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m0, "status")) &&
          strcmp(cJSON_GetObjectItemCaseSensitive(m0, "status")->valuestring, "absent") == 0);
    CHECK(cJSON_GetArraySize(span) == 2 && cJSON_GetArrayItem(span, 0)->valueint == 13 &&
          cJSON_GetArrayItem(span, 1)->valueint == 29);
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "labels");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(labels, "Cardiomegaly")));
    cJSON_Delete(o);

    /* invalid UTF-8 and NUL through the CLI */
    test_write_file(path, "No effusion \xfe.", 14);
    rc = test_run(argv, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 2 && strstr(errb, "invalid UTF-8 at byte 12"), "rc %d: %s", rc, errb);
    test_write_file(path, "No effusion.\0Cardiomegaly.", 26);
    rc = test_run(argv, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 0 && strstr(errb, "1 NUL or other control characters"), "rc %d: %s", rc, errb);
    CHECK(strstr(out, "\"control_chars\":1") != NULL);

    char *ev[] = {(char *)test_radfuse_bin(), "text", "eval", (char *)reports, "--json", "--split", "heldout", NULL};
    rc = test_run(ev, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 0, "eval: %d %s", rc, errb);
    o = cJSON_Parse(out);
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(o, "per_finding"),
                *card = cJSON_GetObjectItemCaseSensitive(per, "Cardiomegaly");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "macro_f1")));
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "macro_f1")->valuedouble >= HELDOUT_MACRO_F1_MIN);
    static const char *const keys[] = {"precision", "recall", "f1", "support"};
    for (int k = 0; k < 4; k++)
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(card, keys[k])));
    cJSON_Delete(o);
    char *bad[] = {(char *)test_radfuse_bin(), "text", "eval", "/nonexistent.csv", NULL};
    rc = test_run(bad, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 2 && strstr(errb, "/nonexistent.csv"), "rc %d: %s", rc, errb);
}

int main(void)
{
    rf_err err;
    rf_clin_rules *r;
    if (rf_clin_rules_load(NULL, &r, &err)) {
        fprintf(stderr, "built-in rules: %s\n", err.msg);
        return 1;
    }
    /* the vocabulary the issue asks for: CheXpert's 14, pneumonia subtypes, COVID-19 */
    static const char *const chexpert[] = {
        "No Finding",   "Enlarged Cardiomediastinum", "Cardiomegaly",     "Lung Opacity", "Lung Lesion",
        "Edema",        "Consolidation",              "Pneumonia",        "Atelectasis",  "Pneumothorax",
        "Pleural Effusion", "Pleural Other",          "Fracture",         "Support Devices"};
    for (size_t i = 0; i < 14; i++)
        finding(r, chexpert[i]);
    int pneu = finding(r, "Pneumonia"), subtypes = 0;
    for (int f = 0; f < rf_clin_finding_count(r); f++)
        for (int p = rf_clin_finding_parent(r, f); p >= 0; p = rf_clin_finding_parent(r, p))
            subtypes += p == pneu;
    CHECKF(subtypes >= 5, "%d pneumonia subtypes", subtypes);
    CHECK(rf_clin_finding_parent(r, finding(r, "COVID-19")) >= 0);
    CHECK(rf_clin_finding_parent(r, pneu) == finding(r, "Lung Opacity"));

    test_status(r);
    test_sections(r);
    test_code_points(r);
    test_hostile(r);
    test_rules_dir();

    char path[4096], lpath[4096];
    snprintf(path, sizeof path, "%s/data/iu-xray-reports/indiana_reports.csv", test_shared_dir());
    snprintf(lpath, sizeof lpath, "%s/data/iu-xray-reports/openi_gold_labels14.csv", test_shared_dir());
    size_t len, llen;
    char *csv = test_read_file(path, &len), *labels = test_read_file(lpath, &llen);
    CHECKF(csv && labels, "cannot read %s or %s", path, lpath);
    if (csv && labels) {
        test_real_sections(r, csv, len);
        test_eval(r, csv, len, labels, llen);
        test_cli(path);
    }
    free(csv);
    free(labels);
    test_large(r);
    rf_clin_rules_free(r);
    return test_finish("test_clinical");
}
