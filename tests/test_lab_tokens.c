/*
 * Lab tokens (rf_lab_tokens): which result of each lab becomes the token
 * (latest at or before the study, never after; dated before undated; unknown
 * labs and text values give none) and the features, recomputed here from the
 * rule in labs.h with double-precision libm.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/labs.h"
#include "tests/testutil.h"

static const char csv[] =
    "code,name,value,unit,low,high,time\n"
    "2345-7,Glucose,90,mg/dL,70,100,2020-03-01T08:00:00Z\n"     /* 0: older glucose */
    "2345-7,Glucose,250,mg/dL,70,100,2020-03-03T08:00:00Z\n"    /* 1: latest before the study */
    "2345-7,Glucose,40,mg/dL,70,100,2020-03-09T08:00:00Z\n"     /* 2: after the study: never */
    "1988-5,CRP,<0.5,mg/L,0,5,\n"                               /* 3: undated, censored */
    "1988-5,CRP,pending,mg/L,0,5,2020-03-04T00:00:00Z\n"        /* 4: text value: no token */
    "99999-9,Mystery,12,U/L,,,2020-03-04T00:00:00Z\n"           /* 5: unknown lab */
    "2160-0,Creatinine,0.9,mg/dL,,,2020-03-04T12:00:00Z\n";     /* 6: no range: population z */

int main(void)
{
    rf_labs labs;
    memset(&labs, 0, sizeof labs);
    rf_err err;
    CHECKF(rf_labs_parse("t.csv", csv, sizeof csv - 1, RF_LABS_CSV, &labs, &err) == 0, "%s", err.msg);
    CHECKF(labs.nlabs == 7, "%zu records", labs.nlabs);
    rf_time study;
    CHECK(rf_time_parse_iso("2020-03-05T08:00:00Z", 20, &study) == 0);
    rf_lab_token *tok;
    size_t n;
    CHECK(rf_lab_tokens(&labs, &study, &tok, &n, &err) == 0);
    CHECKF(n == 3, "%zu tokens", n);
    int glucose = rf_lab_by_loinc("2345-7"), crp = rf_lab_by_loinc("1988-5"), creat = rf_lab_by_loinc("2160-0");
    CHECK(glucose >= 0 && crp >= 0 && creat >= 0);
    for (size_t i = 0; i < n; i++) {
        if (i)
            CHECK(tok[i].lab > tok[i - 1].lab);
        const rf_lab *r = &labs.labs[tok[i].record];
        const float *f = tok[i].features;
        CHECK(r->lab == tok[i].lab && f[1] == 1.f);
        if (tok[i].lab == glucose) {
            CHECK(tok[i].record == 1);
            /* 250 against 70-100: z = (250 - 85) / 15 = 11 */
            CHECKF(fabs(f[0] - tanh(11.0 / 2)) < 1e-6, "%g", f[0]);
            CHECK(f[2] == 0 && f[3] == 1 && f[5] == 0 && f[6] == 0);
            CHECKF(fabs(f[7] - log1p(2.0) / log(366.0)) < 1e-6, "%g", f[7]); /* two days before */
        } else if (tok[i].lab == crp) {
            CHECK(tok[i].record == 3 && f[5] == 1 && f[7] == 1); /* undated: age 1 */
        } else if (tok[i].lab == creat) {
            CHECK(tok[i].record == 6 && f[6] == 1);
            CHECKF(fabs(f[7] - log1p(20.0 / 24) / log(366.0)) < 1e-6, "%g", f[7]);
        } else {
            CHECKF(0, "unexpected lab %d", tok[i].lab);
        }
    }
    free(tok);
    /* no reference time: the latest of all, dated ones at age 0 */
    CHECK(rf_lab_tokens(&labs, NULL, &tok, &n, &err) == 0 && n == 3);
    for (size_t i = 0; i < n; i++)
        if (tok[i].lab == glucose)
            CHECK(tok[i].record == 2 && tok[i].features[7] == 0 && tok[i].features[2] == 1);
    free(tok);
    /* nothing usable: no tokens, no allocation */
    rf_labs none;
    memset(&none, 0, sizeof none);
    CHECK(rf_lab_tokens(&none, &study, &tok, &n, &err) == 0 && n == 0 && tok == NULL);
    rf_labs_free(&labs);
    return test_finish("test_lab_tokens");
}
