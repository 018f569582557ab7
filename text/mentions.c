/*
 * Finding mentions of one sentence and their status, NegEx/ConText style.
 *
 * The sentence's words are matched twice, each time left to right taking the
 * longest phrase at each word: once against the triggers, once against the
 * findings (a finding phrase may hold a gap, "heart * enlarged", so that the
 * trigger inside it, "heart is not enlarged", sets its status). A mention's
 * status comes from, in order: a negation or uncertainty trigger inside the
 * mention; else the nearest pre-trigger before it and the nearest
 * post-trigger after it, each within its window of words and with no
 * terminator between. Pseudo-triggers ("no change in") are passed over and
 * never count; a post-terminator (the comma) ends only post-trigger scopes,
 * so that a list stays in the scope of a negation before it. Uncertainty wins
 * over negation, negation over the default, present; a hedge of probable
 * existence ("probably") leaves the mention present and is reported as its
 * trigger. Work per mention is bounded by the largest window, so a sentence
 * costs time linear in its words.
 */
#include <stdlib.h>
#include <string.h>

#include "text/clin_internal.h"

#define SCAN_SLACK 64 /* punctuation tokens a scope scan may pass beyond its window of words */

void clin_scratch_free(clin_scratch *sc)
{
    free(sc->toks);
    free(sc->trig_start_at);
    free(sc->trig_end_at);
    free(sc->occ_trigger);
    free(sc->occ_start);
    free(sc->occ_end);
    memset(sc, 0, sizeof *sc);
}

static int scratch_reserve(clin_scratch *sc, int32_t n)
{
    if (n + 1 <= sc->cap)
        return 0;
    int32_t cap = sc->cap ? sc->cap : 256;
    while (cap < n + 1)
        cap *= 2;
    clin_tok *t = realloc(sc->toks, (size_t)cap * sizeof *t);
    if (!t)
        return -1;
    sc->toks = t;
    int32_t **arrays[5] = {&sc->trig_start_at, &sc->trig_end_at, &sc->occ_trigger, &sc->occ_start, &sc->occ_end};
    for (int k = 0; k < 5; k++) {
        int32_t *a = realloc(*arrays[k], (size_t)cap * sizeof *a);
        if (!a)
            return -1;
        *arrays[k] = a;
    }
    sc->cap = cap;
    return 0;
}

typedef struct scope_hit {
    int32_t occ; /* trigger occurrence, -1 none */
    int role;    /* the role it plays here */
} scope_hit;

static scope_hit scan_before(const rf_clin_rules *r, const clin_scratch *sc, int32_t a)
{
    scope_hit h = {-1, 0};
    int32_t words = 0, steps = 0, limit = r->max_pre_window + SCAN_SLACK;
    for (int32_t j = a; j > 0 && steps < limit;) {
        int32_t o = sc->trig_end_at[j];
        if (o >= 0) {
            const clin_trigger *t = &r->triggers[sc->occ_trigger[o]];
            if (t->roles & CLIN_TERM)
                break;
            int role = t->roles & (CLIN_PRE_NEG | CLIN_PRE_UNC | CLIN_PRE_PROB);
            if (role && words <= t->pre_window) {
                h.occ = o;
                h.role = role;
                return h;
            }
            j = sc->occ_start[o];
            steps++;
            continue;
        }
        j--;
        steps++;
        if (sc->toks[j].word && ++words > r->max_pre_window)
            break;
    }
    return h;
}

static scope_hit scan_after(const rf_clin_rules *r, const clin_scratch *sc, int32_t b, int32_t n)
{
    scope_hit h = {-1, 0};
    int32_t words = 0, steps = 0, limit = r->max_post_window + SCAN_SLACK;
    for (int32_t j = b; j < n && steps < limit;) {
        int32_t o = sc->trig_start_at[j];
        if (o >= 0) {
            const clin_trigger *t = &r->triggers[sc->occ_trigger[o]];
            if (t->roles & (CLIN_TERM | CLIN_POST_TERM))
                break;
            int role = t->roles & (CLIN_POST_NEG | CLIN_POST_UNC | CLIN_POST_PROB);
            if (role && words <= t->post_window) {
                h.occ = o;
                h.role = role;
                return h;
            }
            j = sc->occ_end[o];
            steps++;
            continue;
        }
        if (sc->toks[j].word && ++words > r->max_post_window)
            break;
        j++;
        steps++;
    }
    return h;
}

/* The status of the mention over tokens [a, b) and the trigger occurrence that set it (-1: none). */
static rf_clin_status resolve(const rf_clin_rules *r, const clin_scratch *sc, int32_t a, int32_t b, int32_t n,
                              int32_t *by)
{
    *by = -1;
    /* a trigger wholly inside the mention ("heart is not enlarged") */
    int32_t neg = -1, unc = -1;
    for (int32_t j = a; j < b; j++) {
        int32_t o = sc->trig_start_at[j];
        if (o < 0 || sc->occ_end[o] > b)
            continue;
        int roles = r->triggers[sc->occ_trigger[o]].roles;
        if ((roles & (CLIN_PRE_UNC | CLIN_POST_UNC)) && unc < 0)
            unc = o;
        if ((roles & (CLIN_PRE_NEG | CLIN_POST_NEG)) && neg < 0)
            neg = o;
    }
    if (unc >= 0 || neg >= 0) {
        *by = unc >= 0 ? unc : neg;
        return unc >= 0 ? RF_CLIN_UNCERTAIN : RF_CLIN_ABSENT;
    }
    scope_hit pre = scan_before(r, sc, a), post = scan_after(r, sc, b, n);
    if (pre.role & CLIN_PRE_UNC) {
        *by = pre.occ;
        return RF_CLIN_UNCERTAIN;
    }
    if (post.role & CLIN_POST_UNC) {
        *by = post.occ;
        return RF_CLIN_UNCERTAIN;
    }
    if (pre.role & CLIN_PRE_NEG) {
        *by = pre.occ;
        return RF_CLIN_ABSENT;
    }
    if (post.role & CLIN_POST_NEG) {
        *by = post.occ;
        return RF_CLIN_ABSENT;
    }
    /* probable existence: present, with the hedge kept as evidence */
    *by = pre.role & CLIN_PRE_PROB ? pre.occ : post.role & CLIN_POST_PROB ? post.occ : -1;
    return RF_CLIN_PRESENT;
}

int clin_mentions_sentence(const rf_clin_rules *r, const char *text, int64_t start, int64_t end, int32_t section,
                           int64_t sentence, clin_scratch *sc, rf_clin_doc *doc, rf_err *err)
{
    int32_t n = 0;
    size_t pos = (size_t)start;
    clin_tok tk;
    /* a sentence is at most RF_CLIN_SENTENCE_MAX + slack bytes, so n fits easily */
    while (clin_next_token(text, (size_t)end, &pos, &tk)) {
        if (scratch_reserve(sc, n + 1))
            return rf_err_set(err, RF_ENOMEM, "out of memory matching a sentence");
        tk.id = clin_word_find(r, text + tk.start, (size_t)(tk.end - tk.start));
        sc->toks[n++] = tk;
    }
    if (n == 0)
        return RF_OK;
    for (int32_t j = 0; j <= n; j++)
        sc->trig_start_at[j] = sc->trig_end_at[j] = -1;
    int32_t nocc = 0;
    for (int32_t i = 0; i < n;) {
        int32_t e, p = clin_dict_match(&r->trigger_dict, sc->toks, n, i, &e);
        if (p < 0) {
            i++;
            continue;
        }
        sc->occ_trigger[nocc] = r->trigger_dict.phrases[p].target;
        sc->occ_start[nocc] = i;
        sc->occ_end[nocc] = e;
        sc->trig_start_at[i] = nocc;
        sc->trig_end_at[e] = nocc;
        nocc++;
        i = e;
    }
    for (int32_t i = 0; i < n;) {
        int32_t e, p = clin_dict_match(&r->finding_dict, sc->toks, n, i, &e);
        if (p < 0) {
            i++;
            continue;
        }
        int32_t f = r->finding_dict.phrases[p].target;
        if (f >= 0) {
            if (doc->n_mentions == sc->mentions_cap) {
                int64_t cap = sc->mentions_cap ? sc->mentions_cap * 2 : 32;
                rf_clin_mention *m = realloc(doc->mentions, (size_t)cap * sizeof *m);
                if (!m)
                    return rf_err_set(err, RF_ENOMEM, "out of memory listing mentions");
                doc->mentions = m;
                sc->mentions_cap = cap;
            }
            rf_clin_mention *m = &doc->mentions[doc->n_mentions++];
            memset(m, 0, sizeof *m);
            m->finding = f;
            m->section = section;
            m->sentence = (int32_t)(sentence > INT32_MAX ? INT32_MAX : sentence);
            m->span.byte_start = sc->toks[i].start;
            m->span.byte_end = sc->toks[e - 1].end;
            int32_t by;
            m->status = resolve(r, sc, i, e, n, &by);
            if (by >= 0) {
                m->trigger.byte_start = sc->toks[sc->occ_start[by]].start;
                m->trigger.byte_end = sc->toks[sc->occ_end[by] - 1].end;
            }
        }
        i = e;
    }
    return RF_OK;
}

void rf_clin_labels(const rf_clin_rules *r, const rf_clin_doc *doc, uint8_t *labels)
{
    memset(labels, RF_CLIN_LABEL_NONE, (size_t)r->nfindings);
    for (int64_t k = 0; k < doc->n_mentions; k++) {
        const rf_clin_mention *m = &doc->mentions[k];
        if (!doc->sections[m->section].observation)
            continue;
        uint8_t v = m->status == RF_CLIN_PRESENT     ? RF_CLIN_LABEL_PRESENT
                    : m->status == RF_CLIN_UNCERTAIN ? RF_CLIN_LABEL_UNCERTAIN
                                                     : RF_CLIN_LABEL_ABSENT;
        if (v > labels[m->finding])
            labels[m->finding] = v;
    }
    /* parents are declared before their children: one pass from the end carries a label all the way up */
    for (int f = r->nfindings - 1; f >= 0; f--) {
        int p = r->findings[f].parent;
        if (p >= 0 && labels[f] > labels[p])
            labels[p] = labels[f];
    }
    for (int f = 0; f < r->nfindings; f++) {
        if (!r->findings[f].normal)
            continue;
        bool abnormal = false;
        for (int g = 0; g < r->nfindings; g++)
            abnormal |= r->findings[g].abnormal && labels[g] >= RF_CLIN_LABEL_UNCERTAIN;
        labels[f] = abnormal ? RF_CLIN_LABEL_ABSENT : RF_CLIN_LABEL_PRESENT;
    }
}
