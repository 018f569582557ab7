/*
 * The evaluation metrics (radfuse/eval.h): AUROC, average precision, the
 * bootstrap interval of AUROC, ECE with its reliability table, and the
 * confusion counts at a threshold. Scores are sorted once per call; ties are
 * groups of exactly equal scores, as sklearn's curves take them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/eval.h"

typedef struct scored {
    double s;
    int y;
} scored;

static int cmp_desc(const void *a, const void *b)
{
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sorted copy (descending score); NULL on NaN or when out of memory. */
static scored *sorted_copy(const double *score, const int *label, size_t n, int *nan)
{
    *nan = 0;
    scored *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (isnan(score[i])) {
            *nan = 1;
            free(v);
            return NULL;
        }
        v[i].s = score[i];
        v[i].y = label[i] != 0;
    }
    qsort(v, n, sizeof *v, cmp_desc);
    return v;
}

/* AUROC of rows already sorted by descending score: for each group of tied
 * scores, its negatives times (positives above + half the group's
 * positives), in integers until the one division. */
static double auroc_sorted(const scored *v, size_t n)
{
    uint64_t pos = 0, neg = 0, area2 = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t tp = 0, fp = 0;
        while (j < n && v[j].s == v[i].s) {
            tp += (uint64_t)v[j].y;
            fp += (uint64_t)!v[j].y;
            j++;
        }
        area2 += fp * (2 * pos + tp);
        pos += tp;
        neg += fp;
        i = j;
    }
    if (pos == 0 || neg == 0)
        return NAN;
    return (double)area2 / (2.0 * (double)pos * (double)neg);
}

double rf_eval_auroc(const double *score, const int *label, size_t n)
{
    int nan;
    scored *v = sorted_copy(score, label, n, &nan);
    if (!v)
        return NAN;
    double a = auroc_sorted(v, n);
    free(v);
    return a;
}

double rf_eval_auprc(const double *score, const int *label, size_t n)
{
    int nan;
    scored *v = sorted_copy(score, label, n, &nan);
    if (!v)
        return NAN;
    uint64_t P = 0;
    for (size_t i = 0; i < n; i++)
        P += (uint64_t)v[i].y;
    double ap = NAN;
    if (P) {
        /* one point per distinct threshold: recall step times precision */
        uint64_t tp = 0, fp = 0, prev_tp = 0;
        ap = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j < n && v[j].s == v[i].s) {
                tp += (uint64_t)v[j].y;
                fp += (uint64_t)!v[j].y;
                j++;
            }
            if (tp != prev_tp)
                ap += ((double)tp / (double)P - (double)prev_tp / (double)P) * ((double)tp / (double)(tp + fp));
            prev_tp = tp;
            i = j;
        }
    }
    free(v);
    return ap;
}

/* ---- the generator ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rf_eval_rng_seed(rf_eval_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rf_eval_rng_next(rf_eval_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t rf_eval_rng_below(rf_eval_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rf_eval_rng_next(r) * n) >> 64);
}

/* ---- bootstrap ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* numpy's percentile with linear interpolation, q in [0, 1], v sorted. */
static double quantile(const double *v, int n, double q)
{
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1)
        return v[n - 1];
    double f = h - lo;
    /* numpy's _lerp: a + (b - a) * t, and b - (b - a) * (1 - t) for t >= 0.5 */
    double a = v[lo], b = v[lo + 1], d = b - a;
    return f >= 0.5 ? b - d * (1 - f) : a + d * f;
}

/* The bootstrap of AUROC(score), or of AUROC(score) - AUROC(other) over the
 * same resampled rows when other is not NULL. */
static int bootstrap(const double *score, const double *other, const int *label, const int *group, size_t n,
                     int resamples, uint64_t seed, double level, rf_eval_ci *out, rf_err *err)
{
    memset(out, 0, sizeof *out);
    out->lo = out->hi = NAN;
    out->resamples = resamples;
    if (resamples < 1 || !(level > 0 && level < 1) || n == 0)
        return rf_err_set(err, RF_EINVAL, "bootstrap: %d resamples at level %g over %zu rows", resamples, level, n);
    for (size_t i = 0; i < n; i++)
        if (isnan(score[i]) || (other && isnan(other[i])))
            return rf_err_set(err, RF_EINVAL, "bootstrap: row %zu has no score", i);
    /* groups renumbered 0..G-1 in order of first appearance; rows of each group listed together */
    int G = 0;
    int *gid = malloc(n * sizeof *gid), *start = calloc(n + 1, sizeof *start), *rows = malloc(n * sizeof *rows);
    double *aucs = malloc((size_t)resamples * sizeof *aucs);
    int *map = NULL;
    int rc = RF_OK;
    if (!gid || !start || !rows || !aucs) {
        rc = rf_err_set(err, RF_ENOMEM, "bootstrap: out of memory");
        goto done;
    }
    if (group) {
        int maxg = -1;
        for (size_t i = 0; i < n; i++) {
            if (group[i] < 0) {
                rc = rf_err_set(err, RF_EINVAL, "bootstrap: row %zu has a negative group", i);
                goto done;
            }
            if (group[i] > maxg)
                maxg = group[i];
        }
        map = malloc(((size_t)maxg + 1) * sizeof *map);
        if (!map) {
            rc = rf_err_set(err, RF_ENOMEM, "bootstrap: out of memory");
            goto done;
        }
        for (int g = 0; g <= maxg; g++)
            map[g] = -1;
        for (size_t i = 0; i < n; i++) {
            if (map[group[i]] < 0)
                map[group[i]] = G++;
            gid[i] = map[group[i]];
        }
    } else {
        for (size_t i = 0; i < n; i++)
            gid[i] = (int)i;
        G = (int)n;
    }
    for (size_t i = 0; i < n; i++)
        start[gid[i] + 1]++;
    for (int g = 0; g < G; g++)
        start[g + 1] += start[g];
    {
        int *fill = malloc(((size_t)G + 1) * sizeof *fill);
        if (!fill) {
            rc = rf_err_set(err, RF_ENOMEM, "bootstrap: out of memory");
            goto done;
        }
        memcpy(fill, start, ((size_t)G + 1) * sizeof *fill);
        for (size_t i = 0; i < n; i++)
            rows[fill[gid[i]]++] = (int)i;
        free(fill);
    }
    rf_eval_rng rng;
    rf_eval_rng_seed(&rng, seed);
    scored *buf = NULL, *buf2 = NULL;
    size_t cap = 0;
    for (int b = 0; b < resamples; b++) {
        size_t m = 0;
        for (int k = 0; k < G; k++) {
            int g = (int)rf_eval_rng_below(&rng, (uint64_t)G);
            size_t need = m + (size_t)(start[g + 1] - start[g]);
            if (need > cap) {
                size_t nc = need * 2;
                scored *nb = realloc(buf, nc * sizeof *nb), *nb2 = nb ? realloc(buf2, nc * sizeof *nb2) : NULL;
                if (nb)
                    buf = nb;
                if (nb2)
                    buf2 = nb2;
                if (!nb || !nb2) {
                    free(buf);
                    free(buf2);
                    rc = rf_err_set(err, RF_ENOMEM, "bootstrap: out of memory");
                    goto done;
                }
                cap = nc;
            }
            for (int r = start[g]; r < start[g + 1]; r++) {
                buf[m].s = score[rows[r]];
                buf[m].y = label[rows[r]] != 0;
                if (other) {
                    buf2[m].s = other[rows[r]];
                    buf2[m].y = buf[m].y;
                }
                m++;
            }
        }
        qsort(buf, m, sizeof *buf, cmp_desc);
        double a = auroc_sorted(buf, m);
        if (other && !isnan(a)) {
            qsort(buf2, m, sizeof *buf2, cmp_desc);
            a -= auroc_sorted(buf2, m);
        }
        if (!isnan(a))
            aucs[out->used++] = a;
    }
    free(buf);
    free(buf2);
    if (out->used) {
        qsort(aucs, (size_t)out->used, sizeof *aucs, cmp_double);
        out->lo = quantile(aucs, out->used, (1 - level) / 2);
        out->hi = quantile(aucs, out->used, (1 + level) / 2);
    }
done:
    free(gid);
    free(start);
    free(rows);
    free(aucs);
    free(map);
    return rc;
}

int rf_eval_auroc_ci(const double *score, const int *label, const int *group, size_t n, int resamples,
                     uint64_t seed, double level, rf_eval_ci *out, rf_err *err)
{
    return bootstrap(score, NULL, label, group, n, resamples, seed, level, out, err);
}

int rf_eval_auroc_diff_ci(const double *a, const double *b, const int *label, const int *group, size_t n,
                          int resamples, uint64_t seed, double level, rf_eval_ci *out, rf_err *err)
{
    if (!b)
        return rf_err_set(err, RF_EINVAL, "bootstrap: the difference needs two scores");
    return bootstrap(a, b, label, group, n, resamples, seed, level, out, err);
}

/* ---- calibration ---- */

double rf_eval_ece(const double *prob, const int *label, size_t n, rf_eval_bin *bins)
{
    rf_eval_bin b[RF_EVAL_BINS];
    double sum_p[RF_EVAL_BINS] = {0}, sum_y[RF_EVAL_BINS] = {0};
    /* numpy.linspace(0, 1, 11): k * 0.1, the last edge exactly 1 */
    for (int k = 0; k < RF_EVAL_BINS; k++) {
        b[k].lo = k * (1.0 / RF_EVAL_BINS);
        b[k].hi = k + 1 == RF_EVAL_BINS ? 1.0 : (k + 1) * (1.0 / RF_EVAL_BINS);
        b[k].count = 0;
    }
    int bad = n == 0;
    for (size_t i = 0; i < n && !bad; i++) {
        double p = prob[i];
        if (!(p >= 0 && p <= 1)) {
            bad = 1;
            break;
        }
        int k = 0;
        while (k < RF_EVAL_BINS - 1 && b[k].hi < p)
            k++;
        b[k].count++;
        sum_p[k] += p;
        sum_y[k] += label[i] != 0;
    }
    double ece = 0;
    for (int k = 0; k < RF_EVAL_BINS; k++) {
        b[k].confidence = b[k].count ? sum_p[k] / (double)b[k].count : 0;
        b[k].accuracy = b[k].count ? sum_y[k] / (double)b[k].count : 0;
        if (b[k].count)
            ece += (double)b[k].count / (double)n * fabs(b[k].accuracy - b[k].confidence);
    }
    if (bins)
        memcpy(bins, b, sizeof b);
    return bad ? NAN : ece;
}

void rf_eval_confusion_at(const double *prob, const int *label, size_t n, double threshold, rf_eval_confusion *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        int call = prob[i] >= threshold;
        if (label[i])
            call ? out->tp++ : out->fn++;
        else
            call ? out->fp++ : out->tn++;
    }
    out->sensitivity = out->tp + out->fn ? (double)out->tp / (double)(out->tp + out->fn) : NAN;
    out->specificity = out->tn + out->fp ? (double)out->tn / (double)(out->tn + out->fp) : NAN;
}
