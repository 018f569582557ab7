/*
 * Findings' names masked out of a note (rf_eval_mask_findings): does the
 * note simply state the answer? The terms are the diagnoses of the
 * covid-chestxray 'finding' column and their common spellings, plus the
 * evaluated targets' own names. Matching is ASCII case-insensitive on word
 * boundaries, so "sars" does not hit "sarscov" and "flu" does not hit
 * "fluid"; the longest term at a position wins ("covid-19" before "covid").
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/eval.h"

static const char *const mask_terms[] = {
    /* COVID-19 */
    "covid", "covid-19", "covid19", "covid 19", "covid-2019", "sars-cov-2", "sars-cov2", "sars cov 2", "sarscov2",
    "2019-ncov", "ncov", "2019 novel coronavirus", "novel coronavirus", "coronavirus", "coronaviruses",
    "corona virus", "corona", "sars", "mers", "mers-cov",
    /* pneumonia and ARDS */
    "pneumonia", "pneumonias", "pneumonic", "bronchopneumonia", "pneumonitis", "ards",
    "acute respiratory distress syndrome", "respiratory distress syndrome",
    /* the collection's pathogens and kinds */
    "bacterial", "viral", "fungal", "pneumocystis", "pneumocystis jirovecii", "pneumocystis carinii", "pcp", "pjp",
    "klebsiella", "mycoplasma", "streptococcus", "streptococcal", "pneumococcus", "pneumococcal", "legionella",
    "legionnaires", "legionnaire's", "e. coli", "e.coli", "e coli", "escherichia coli", "chlamydophila",
    "chlamydia", "influenza", "flu", "h1n1", "varicella", "chickenpox", "herpes", "aspergillosis", "aspergillus",
    "nocardia", "nocardiosis", "histoplasmosis", "candida", "tuberculosis", "mycobacterium", "lipoid",
    "staphylococcus", "staphylococcal", "mrsa", "haemophilus", "pseudomonas",
    NULL};

const char *const *rf_eval_mask_terms(void) { return mask_terms; }

static int is_word(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* Length of the match of term at text[i..n), or 0: spaces and underscores in
 * term match a run of white space, a '-' or '_' (target codes such as
 * "pleural_effusion"), other characters themselves (ASCII case folded). */
static size_t match_at(const char *text, size_t n, size_t i, const char *term)
{
    size_t j = i;
    for (const char *t = term; *t; t++) {
        if (*t == ' ' || *t == '_') {
            size_t k = j;
            while (k < n && (isspace((unsigned char)text[k]) || text[k] == '-' || text[k] == '_'))
                k++;
            if (k == j)
                return 0;
            j = k;
            while (t[1] == ' ' || t[1] == '_')
                t++;
            continue;
        }
        if (j >= n || tolower((unsigned char)text[j]) != tolower((unsigned char)*t))
            return 0;
        j++;
    }
    if (j < n && is_word((unsigned char)text[j]) && is_word((unsigned char)text[j - 1]))
        return 0;
    return j - i;
}

int rf_eval_mask_findings(const char *text, size_t len, const char *const *extra, int nextra, char **out,
                          size_t *out_len, int *masked, rf_err *err)
{
    static const char mark[] = "[MASK]";
    /* a match is never shorter than 2 bytes ("tb" is not a term), so the
     * output is at most 3x the input plus the terminator */
    size_t cap = len * 3 + 1;
    char *o = malloc(cap);
    if (!o)
        return rf_err_set(err, RF_ENOMEM, "out of memory masking a note of %zu bytes", len);
    size_t w = 0;
    int count = 0;
    for (size_t i = 0; i < len;) {
        size_t best = 0;
        if (i == 0 || !is_word((unsigned char)text[i - 1])) {
            for (const char *const *t = mask_terms; *t; t++) {
                size_t m = match_at(text, len, i, *t);
                best = m > best ? m : best;
            }
            for (int k = 0; k < nextra; k++) {
                if (!extra[k] || strlen(extra[k]) < 2)
                    continue;
                size_t m = match_at(text, len, i, extra[k]);
                best = m > best ? m : best;
            }
        }
        if (best) {
            memcpy(o + w, mark, sizeof mark - 1);
            w += sizeof mark - 1;
            i += best;
            count++;
        } else {
            o[w++] = text[i++];
        }
    }
    o[w] = 0;
    *out = o;
    if (out_len)
        *out_len = w;
    if (masked)
        *masked = count;
    return RF_OK;
}
