/* Lab records into the fusion model's lab tokens (the rule in labs.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/labs.h"

/* A usable number in the lab's canonical unit (a censored bound counts). */
static bool usable(const rf_lab *r)
{
    return r->lab >= 0 && r->lab < rf_lab_count() && r->has_value && r->has_norm && isfinite(r->value_norm);
}

/* Is a (time a, dated) better than b (time b, dated) as "the latest"? Later
 * dated results win; any dated result beats an undated one; on equal footing
 * the later record (higher index) wins. */
static bool later(int64_t ta, bool da, size_t ia, int64_t tb, bool db, size_t ib)
{
    if (da != db)
        return da;
    if (da && ta != tb)
        return ta > tb;
    return ia > ib;
}

int rf_lab_tokens(const rf_labs *labs, const rf_time *reference, rf_lab_token **out, size_t *n, rf_err *err)
{
    *out = NULL;
    *n = 0;
    int nlab = rf_lab_count();
    bool zoned;
    int64_t ref = reference && reference->precision ? rf_time_unix(reference, &zoned) : INT64_MAX;
    long *best = malloc((size_t)nlab * sizeof *best);
    if (!best)
        return rf_err_set(err, RF_ENOMEM, "lab tokens: out of memory");
    for (int i = 0; i < nlab; i++)
        best[i] = -1;
    size_t count = 0;
    for (size_t i = 0; i < labs->nlabs; i++) {
        const rf_lab *r = &labs->labs[i];
        if (!usable(r))
            continue;
        bool dated = r->time.precision != 0;
        int64_t t = dated ? rf_time_unix(&r->time, &zoned) : 0;
        if (dated && t > ref)
            continue; /* after the study: never used */
        long b = best[r->lab];
        if (b < 0) {
            best[r->lab] = (long)i;
            count++;
            continue;
        }
        const rf_lab *o = &labs->labs[b];
        bool odated = o->time.precision != 0;
        int64_t ot = odated ? rf_time_unix(&o->time, &zoned) : 0;
        if (later(t, dated, i, ot, odated, (size_t)b))
            best[r->lab] = (long)i;
    }
    if (count == 0) {
        free(best);
        return RF_OK;
    }
    rf_lab_token *tok = calloc(count, sizeof *tok);
    if (!tok) {
        free(best);
        return rf_err_set(err, RF_ENOMEM, "lab tokens: out of memory");
    }
    size_t k = 0;
    for (int id = 0; id < nlab; id++) {
        if (best[id] < 0)
            continue;
        const rf_lab *r = &labs->labs[best[id]];
        rf_lab_token *t = &tok[k++];
        t->lab = id;
        t->record = (size_t)best[id];
        float *f = t->features;
        f[0] = r->z_source != RF_Z_NONE && isfinite(r->z) ? (float)tanh(r->z / 2) : 0.f;
        f[1] = 1.f;
        f[2] = (r->flags & RF_LAB_LOW) ? 1.f : 0.f;
        f[3] = (r->flags & RF_LAB_HIGH) ? 1.f : 0.f;
        f[4] = (r->flags & RF_LAB_CRITICAL) ? 1.f : 0.f;
        f[5] = r->cmp != RF_CMP_NONE ? 1.f : 0.f;
        f[6] = r->z_source == RF_Z_POPULATION ? 1.f : 0.f;
        if (r->time.precision && ref != INT64_MAX) {
            double days = (double)(ref - rf_time_unix(&r->time, &zoned)) / 86400.0;
            double age = log1p(days > 0 ? days : 0) / log(366.0);
            f[7] = (float)(age > 1 ? 1 : age);
        } else {
            f[7] = r->time.precision ? 0.f : 1.f;
        }
    }
    free(best);
    *out = tok;
    *n = count;
    return RF_OK;
}
