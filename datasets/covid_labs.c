/*
 * The lab columns of the COVID-19 image data collection as lab CSV text
 * (radfuse/labs.h): one conversion shared by the study maker (labs.csv) and
 * the loader (rf_dataset_labs_csv), so both give the same records.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "datasets/datasets_internal.h"

/* LOINC code, name and UCUM unit of each column (the collection's units:
 * Celsius, %, 10^9 cells per litre). */
static const struct {
    const char *code, *name, *unit;
} lab_codes[DS_COVID_NLABS] = {
    {"8310-5", "Body temperature", "Cel"},
    {"2708-6", "Oxygen saturation", "%"},
    {"26464-8", "Leukocytes", "10*9/L"},
    {"26499-4", "Neutrophils", "10*9/L"},
    {"26474-7", "Lymphocytes", "10*9/L"},
};

const char *const ds_covid_lab_columns[DS_COVID_NLABS] = {"temperature", "pO2_saturation", "leukocyte_count",
                                                          "neutrophil_count", "lymphocyte_count"};

static int is_number(const char *s)
{
    char *end;
    if (!*s)
        return 0;
    strtod(s, &end);
    return *end == 0;
}

void ds_study_date(long days, char out[9])
{
    struct tm t = {.tm_year = 2020 - 1900, .tm_mon = 0, .tm_mday = 1 + (int)days, .tm_hour = 12};
    time_t x = timegm(&t);
    gmtime_r(&x, &t);
    /* callers bound the offset (+-100 years), so the year has four digits */
    strftime(out, 9, "%Y%m%d", &t);
}

int ds_covid_labs_csv(const char *const vals[DS_COVID_NLABS], const char *iso_date, char **out, size_t *len,
                      int *nlabs, char *skipped, size_t cap, rf_err *err)
{
    static const char header[] = "code,name,value,unit,low,high,time\n";
    size_t need = sizeof header;
    for (int i = 0; i < DS_COVID_NLABS; i++)
        need += strlen(vals[i]) + strlen(iso_date) + 64 + strlen(lab_codes[i].name);
    char *p = malloc(need);
    if (!p)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    size_t n = (size_t)snprintf(p, need, "%s", header), nskip = 0;
    int count = 0;
    if (skipped && cap)
        skipped[0] = 0;
    for (int i = 0; i < DS_COVID_NLABS; i++) {
        const char *v = vals[i];
        if (!*v)
            continue;
        const char *why = NULL;
        if (!is_number(v))
            why = "not a number";
        else if (i == DS_COVID_LAB_PO2 && strtod(v, NULL) > 100)
            why = "above 100, so not a saturation in % (the column also holds pO2 in mm Hg)";
        if (why) {
            if (skipped && cap > nskip) {
                int k = snprintf(skipped + nskip, cap - nskip, "%s%s: %s", nskip ? "; " : "", ds_covid_lab_columns[i],
                                 why);
                if (k > 0 && (size_t)k < cap - nskip)
                    nskip += (size_t)k;
                else
                    skipped[nskip] = 0;
            }
            continue;
        }
        n += (size_t)snprintf(p + n, need - n, "%s,%s,%s,%s,,,%s\n", lab_codes[i].code, lab_codes[i].name, v,
                              lab_codes[i].unit, iso_date);
        count++;
    }
    *out = p;
    *len = n;
    *nlabs = count;
    return RF_OK;
}
