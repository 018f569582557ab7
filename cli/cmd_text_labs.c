/* radfuse text labs FILE... [--json]: lab files read and normalized, one record per line. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "radfuse/labs.h"

static const char *const cmp_text[] = {"", "<", "<=", ">", ">="};
static const char *const zsrc_text[] = {"none", "record", "population"};

/* s with control characters (tabs, line breaks of quoted CSV fields) as spaces, for one table line. */
static void put(const char *s)
{
    if (!s || !*s) {
        fputc('-', stdout);
        return;
    }
    for (; *s; s++)
        fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, stdout);
}

static void put_flags(uint32_t flags)
{
    int n = 0;
    for (int b = 0; b < RF_LAB_FLAG_BITS; b++)
        if (flags & (1u << b))
            printf("%s%s", n++ ? "," : "", rf_lab_flag_name(1u << b));
    if (!n)
        fputc('-', stdout);
}

/* "3.5-5 mmol/L", or one bound as "<=5" / ">=10" */
static void put_range(bool has_lo, double lo, bool has_hi, double hi, const char *unit)
{
    if (has_lo && has_hi)
        printf("%.6g-%.6g", lo, hi);
    else if (has_hi)
        printf("<=%.6g", hi);
    else
        printf(">=%.6g", lo);
    if (unit && *unit) {
        putchar(' ');
        put(unit);
    }
}

static void table_lab(const rf_lab *r)
{
    const rf_lab_def *def = rf_lab_def_get(r->lab);
    char when[48];
    rf_time_format(&r->time, when, sizeof when);
    put(r->source);
    putchar('\t');
    put(def ? def->key : NULL);
    putchar('\t');
    put(r->loinc ? r->loinc : r->code);
    putchar('\t');
    put(r->name);
    putchar('\t');
    put(r->value_raw);
    if (r->unit_raw && *r->unit_raw) {
        putchar(' ');
        put(r->unit_raw);
    }
    putchar('\t');
    if (r->has_norm) {
        printf("%s%.6g ", cmp_text[r->cmp], r->value_norm);
        put(r->unit);
        if (r->factor != 1 || r->offset != 0) {
            printf(" (x%.6g", r->factor);
            if (r->offset != 0)
                printf(" %+.6g", r->offset);
            if (r->molar_mass > 0)
                printf(", %.6g g/mol", r->molar_mass);
            putchar(')');
        }
    } else {
        putchar('-');
    }
    putchar('\t');
    if (r->has_norm_low || r->has_norm_high)
        put_range(r->has_norm_low, r->low_norm, r->has_norm_high, r->high_norm, r->unit);
    else if (r->has_low || r->has_high)
        put_range(r->has_low, r->low, r->has_high, r->high, r->range_unit ? r->range_unit : r->unit_raw);
    else
        put(r->range_raw);
    putchar('\t');
    if (r->z_source != RF_Z_NONE)
        printf("%+.3f %s", r->z, zsrc_text[r->z_source]);
    else
        putchar('-');
    putchar('\t');
    put_flags(r->flags);
    putchar('\t');
    put(when);
    putchar('\n');
}

/* key: v, or null when v is absent */
static void add_str(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static void add_num(cJSON *o, const char *key, bool has, double v)
{
    if (has)
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *json_lab(const rf_lab *r)
{
    cJSON *o = cJSON_CreateObject();
    const rf_lab_def *def = rf_lab_def_get(r->lab);
    char when[48];
    rf_time_format(&r->time, when, sizeof when);
    cJSON_AddStringToObject(o, "type", "lab");
    cJSON_AddStringToObject(o, "source", r->source);
    if (def) {
        cJSON_AddNumberToObject(o, "lab_id", r->lab);
        cJSON_AddStringToObject(o, "lab", def->key);
    } else {
        cJSON_AddNullToObject(o, "lab");
    }
    add_str(o, "loinc", r->loinc);
    add_str(o, "code", r->code);
    add_str(o, "system", r->system);
    add_str(o, "name", r->name);
    add_str(o, "value_raw", r->value_raw);
    add_num(o, "value", r->has_value, r->value);
    add_str(o, "comparator", r->cmp ? cmp_text[r->cmp] : NULL);
    add_str(o, "unit_raw", r->unit_raw);
    add_num(o, "low", r->has_low, r->low);
    add_num(o, "high", r->has_high, r->high);
    add_str(o, "range_unit", r->range_unit);
    add_str(o, "range_raw", r->range_raw);
    add_str(o, "unit", r->unit);
    add_num(o, "value_norm", r->has_norm, r->value_norm);
    add_num(o, "factor", r->unit != NULL, r->factor);
    add_num(o, "offset", r->unit != NULL, r->offset);
    add_num(o, "molar_mass", r->molar_mass > 0, r->molar_mass);
    add_num(o, "low_norm", r->has_norm_low, r->low_norm);
    add_num(o, "high_norm", r->has_norm_high, r->high_norm);
    add_num(o, "z", r->z_source != RF_Z_NONE, r->z);
    cJSON_AddStringToObject(o, "z_source", zsrc_text[r->z_source]);
    cJSON *flags = cJSON_AddArrayToObject(o, "flags");
    for (int b = 0; b < RF_LAB_FLAG_BITS; b++)
        if (r->flags & (1u << b))
            cJSON_AddItemToArray(flags, cJSON_CreateString(rf_lab_flag_name(1u << b)));
    add_str(o, "source_flags", r->source_flags);
    add_str(o, "status", r->status);
    add_str(o, "time_raw", r->time_raw);
    add_str(o, "time", r->time.precision ? when : NULL);
    return o;
}

static cJSON *json_note(const rf_note *n)
{
    cJSON *o = cJSON_CreateObject();
    char when[48];
    rf_time_format(&n->time, when, sizeof when);
    cJSON_AddStringToObject(o, "type", "note");
    add_str(o, "source", n->source);
    add_str(o, "kind", n->kind);
    add_str(o, "title", n->title);
    add_str(o, "time_raw", n->time_raw);
    add_str(o, "time", n->time.precision ? when : NULL);
    cJSON *flags = cJSON_AddArrayToObject(o, "flags");
    if (n->flags & RF_LAB_BAD_TIME)
        cJSON_AddItemToArray(flags, cJSON_CreateString(rf_lab_flag_name(RF_LAB_BAD_TIME)));
    cJSON_AddNumberToObject(o, "bytes", (double)n->len);
    add_str(o, "text", n->text);
    return o;
}

static int print_json(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return cli_fail("text labs: out of memory printing a record");
    puts(s);
    free(s);
    return 0;
}

int cli_text_labs(int argc, char **argv)
{
    int json = 0, nfiles = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_fail("text labs: unexpected option '%s'", argv[i]);
        else
            nfiles++;
    }
    if (!nfiles)
        return cli_fail("text labs: expected FILE... (CSV, FHIR JSON or HL7 v2)");
    if (!json)
        puts("source\tlab\tcode\tname\tvalue\tnormalized\trange\tz\tflags\ttime");
    int status = CLI_EXIT_OK;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            continue;
        rf_labs L = {0};
        rf_err err;
        if (rf_labs_read_file(argv[i], RF_LABS_AUTO, &L, &err)) {
            status = cli_fail("%s", err.msg);
            continue;
        }
        for (size_t k = 0; k < L.nissues; k++) {
            fprintf(stderr, "radfuse: warning: %s: %s\n", L.issues[k].source, L.issues[k].message);
            if (json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "type", "issue");
                cJSON_AddStringToObject(o, "source", L.issues[k].source);
                cJSON_AddStringToObject(o, "message", L.issues[k].message);
                if (print_json(o))
                    status = CLI_EXIT_FAIL;
            }
        }
        for (size_t k = 0; k < L.nlabs; k++) {
            if (!json)
                table_lab(&L.labs[k]);
            else if (print_json(json_lab(&L.labs[k])))
                status = CLI_EXIT_FAIL;
        }
        for (size_t k = 0; k < L.nnotes; k++) {
            const rf_note *n = &L.notes[k];
            if (json) {
                if (print_json(json_note(n)))
                    status = CLI_EXIT_FAIL;
                continue;
            }
            char when[48];
            rf_time_format(&n->time, when, sizeof when);
            put(n->source);
            printf("\tnote\t");
            put(n->kind);
            putchar('\t');
            put(n->title);
            printf("\t%zu bytes\t-\t-\t-\t", n->len);
            put_flags(n->flags);
            putchar('\t');
            put(when);
            putchar('\n');
        }
        rf_labs_free(&L);
    }
    if (fflush(stdout) != 0)
        status = cli_fail("text labs: cannot write standard output");
    return status;
}
