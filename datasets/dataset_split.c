/*
 * Patient-level splits (radfuse/datasets.h): every patient's side from a
 * keyed hash of its key, so a patient's images never fall on two sides;
 * optionally stratified by the patient's positive finding targets (the
 * hash then only orders the patients of a group); split files fix the sides.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/datasets_internal.h"
#include "runtime/fileio.h"
#include "runtime/sha256.h"

static void hmac_sha256(const char *key, const char *msg, uint8_t out[32])
{
    uint8_t k[64] = {0}, pad[64], inner[32];
    size_t kn = strlen(key);
    if (kn > 64) {
        rf_sha256 s;
        rf_sha256_init(&s);
        rf_sha256_update(&s, key, kn);
        rf_sha256_final(&s, k);
    } else
        memcpy(k, key, kn);
    rf_sha256 s;
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x36;
    rf_sha256_init(&s);
    rf_sha256_update(&s, pad, 64);
    rf_sha256_update(&s, msg, strlen(msg));
    rf_sha256_final(&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k[i] ^ 0x5c;
    rf_sha256_init(&s);
    rf_sha256_update(&s, pad, 64);
    rf_sha256_update(&s, inner, 32);
    rf_sha256_final(&s, out);
}

double rf_split_hash(const char *key, const char *patient)
{
    uint8_t d[32];
    hmac_sha256(key ? key : RF_SPLIT_DEFAULT_KEY, patient, d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | d[i];
    return (double)(v >> 11) * 0x1.0p-53; /* the top 53 bits: exact in a double, < 1 */
}

/* The fractions, normalized; RF_EINVAL when unusable. */
static int fractions(const rf_split_opts *o, double f[3], rf_err *err)
{
    f[0] = o ? o->test : 0, f[1] = o ? o->val : 0, f[2] = o ? o->train : 0;
    if (f[0] == 0 && f[1] == 0 && f[2] == 0)
        f[0] = 0.15, f[1] = 0.15, f[2] = 0.70;
    if (!(f[0] >= 0 && f[1] >= 0 && f[2] >= 0) || !isfinite(f[0] + f[1] + f[2]) || f[0] + f[1] + f[2] <= 0)
        return rf_err_set(err, RF_EINVAL, "split fractions must be >= 0 with a positive sum");
    double sum = f[0] + f[1] + f[2];
    for (int i = 0; i < 3; i++)
        f[i] /= sum;
    return RF_OK;
}

typedef struct pat {
    size_t index;
    uint64_t stratum; /* bit k: a row of the patient is positive for finding target k */
    double u;
} pat;

static int cmp_pat(const void *a, const void *b)
{
    const pat *x = a, *y = b;
    if (x->stratum != y->stratum)
        return x->stratum < y->stratum ? -1 : 1;
    if (x->u != y->u)
        return x->u < y->u ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The side of every patient (sides[npatients]) by opts. */
static int split_patients(const rf_dataset *ds, const rf_split_opts *opts, rf_split *sides, rf_err *err)
{
    double f[3];
    int rc = fractions(opts, f, err);
    if (rc)
        return rc;
    const char *key = opts && opts->key ? opts->key : RF_SPLIT_DEFAULT_KEY;
    size_t np = ds->npatients;
    if (!np)
        return RF_OK;
    pat *p = calloc(np, sizeof *p);
    if (!p)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    for (size_t i = 0; i < np; i++) {
        p[i].index = i;
        p[i].u = rf_split_hash(key, ds->patients[i]);
    }
    bool stratify = opts && opts->stratify;
    if (stratify) {
        int nf = ds->nfinding < 64 ? ds->nfinding : 64;
        for (size_t r = 0; r < ds->nrows; r++)
            for (int k = 0; k < nf; k++)
                if (ds->targets[r * (size_t)ds->ntargets + (size_t)k] == RF_TARGET_POS)
                    p[ds->row_patient[r]].stratum |= 1ull << k;
        qsort(p, np, sizeof *p, cmp_pat);
        /* each group: its first round(n f_test) patients by hash to test, up
         * to round(n (f_test + f_val)) to val, the rest to train */
        for (size_t a = 0; a < np;) {
            size_t b = a;
            while (b < np && p[b].stratum == p[a].stratum)
                b++;
            double n = (double)(b - a);
            size_t ntest = (size_t)floor(n * f[0] + 0.5), nval = (size_t)floor(n * (f[0] + f[1]) + 0.5) - ntest;
            for (size_t i = a; i < b; i++)
                sides[p[i].index] = i - a < ntest ? RF_SPLIT_TEST : i - a < ntest + nval ? RF_SPLIT_VAL : RF_SPLIT_TRAIN;
            a = b;
        }
    } else {
        for (size_t i = 0; i < np; i++)
            sides[i] = p[i].u < f[0] ? RF_SPLIT_TEST : p[i].u < f[0] + f[1] ? RF_SPLIT_VAL : RF_SPLIT_TRAIN;
    }
    free(p);
    return RF_OK;
}

/* The sides a split file gives the dataset's patients (sides[npatients]). */
static int read_split_file(const rf_dataset *ds, const char *path, rf_split *sides, rf_err *err)
{
    char *data;
    size_t len;
    int rc = rf_read_file(path, DS_CSV_MAX, &data, &len, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < ds->npatients; i++)
        sides[i] = RF_SPLIT_NONE;
    text_csv csv;
    static const char *const names[] = {"patientid", "split"};
    size_t col[2], ncols;
    rc = ds_csv_open(&csv, path, data, len, names, 2, 0, col, &ncols, err);
    while (!rc) {
        bool got;
        if ((rc = ds_record(&csv, path, ncols, &got, err)) || !got)
            break;
        const char *key = ds_field(&csv, col[0], NULL), *side = ds_field(&csv, col[1], NULL);
        rf_split s = rf_split_parse(side);
        if (s == RF_SPLIT_NONE || !*key) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: needs a patientid and a split of train, val or test",
                            path, csv.line);
            break;
        }
        /* the dataset's keys are sorted by strcmp */
        size_t lo = 0, hi = ds->npatients;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(ds->patients[mid], key);
            if (c == 0) {
                lo = mid;
                break;
            }
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < ds->npatients && !strcmp(ds->patients[lo], key)) {
            if (sides[lo] != RF_SPLIT_NONE && sides[lo] != s) {
                rc = rf_err_set(err, RF_EFORMAT, "%s: line %zu: a patient already given another side", path,
                                csv.line);
                break;
            }
            sides[lo] = s;
        } /* patients not in the dataset: held out elsewhere, not an error */
    }
    text_csv_free(&csv);
    free(data);
    if (rc)
        return rc;
    size_t missing = 0, first = 0;
    for (size_t i = 0; i < ds->npatients; i++)
        if (sides[i] == RF_SPLIT_NONE && !missing++)
            first = i;
    if (missing) {
        long line = 0;
        for (size_t r = 0; r < ds->nrows; r++)
            if (ds->row_patient[r] == first) {
                line = ds->rows[r].line;
                break;
            }
        return rf_err_set(err, RF_EINVAL,
                          "%s: %zu of the %zu patients of %s are not in the split file (the first at line %ld of "
                          "its CSV); make a new one with radfuse dataset split",
                          path, missing, ds->npatients, ds->root, line);
    }
    return RF_OK;
}

int rf_dataset_split(const rf_dataset *ds, const char *split_file, const rf_split_opts *opts, rf_split *out,
                     rf_err *err)
{
    rf_split *sides = malloc((ds->npatients ? ds->npatients : 1) * sizeof *sides);
    if (!sides)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    int rc = split_file ? read_split_file(ds, split_file, sides, err) : split_patients(ds, opts, sides, err);
    if (!rc)
        for (size_t r = 0; r < ds->nrows; r++)
            out[r] = sides[ds->row_patient[r]];
    free(sides);
    return rc;
}

int rf_dataset_split_write(const rf_dataset *ds, const rf_split_opts *opts, const char *path, rf_err *err)
{
    rf_split *sides = malloc((ds->npatients ? ds->npatients : 1) * sizeof *sides);
    if (!sides)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    int rc = split_patients(ds, opts, sides, err);
    size_t cap = 32, n = 0;
    for (size_t i = 0; i < ds->npatients; i++)
        cap += strlen(ds->patients[i]) * 2 + 16;
    char *text = rc ? NULL : malloc(cap);
    if (!rc && !text)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    if (!rc) {
        n += (size_t)snprintf(text, cap, "patientid,split\n");
        for (size_t i = 0; i < ds->npatients; i++) {
            const char *k = ds->patients[i];
            if (strpbrk(k, ",\"\r\n")) { /* quoted as RFC 4180 says */
                text[n++] = '"';
                for (; *k; k++) {
                    if (*k == '"')
                        text[n++] = '"';
                    text[n++] = *k;
                }
                text[n++] = '"';
            } else
                n += (size_t)snprintf(text + n, cap - n, "%s", k);
            n += (size_t)snprintf(text + n, cap - n, ",%s\n", rf_split_name(sides[i]));
        }
        rc = rf_write_file_atomic(path, text, n, err);
    }
    free(text);
    free(sides);
    return rc;
}
