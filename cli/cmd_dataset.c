/* radfuse dataset study|ls|split: one row of the COVID-19 image data
 * collection as a DICOM study with its note, labs and attribution; what a
 * dataset holds (rows, patients, targets, per split side); a patient-level
 * split file (radfuse/datasets.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "radfuse/datasets.h"

static const char usage[] =
    "usage: radfuse dataset study --data DIR (--row N | --image FILE) --out OUT\n"
    "  DIR holds metadata.csv and images/ (the COVID-19 image data collection);\n"
    "  N is the 0-based data row, FILE an image's file name (the 'filename' column).\n"
    "  Writes OUT/study/<row>.dcm, OUT/note.txt and OUT/labs.csv when the row has\n"
    "  them, and OUT/ATTRIBUTION.txt (the row's license and source).\n"
    "       radfuse dataset ls DIR [--layout NAME] [--split FILE|source|hash] [--json]\n"
    "  The layout (auto-detected, or NAME: covid-chestxray, chexpert, mimic-cxr-jpg,\n"
    "  nih-cxr14), rows, patients and each target's positives, negatives and\n"
    "  unknowns, for the whole dataset and each side of a split: a split file, the\n"
    "  source's published split, or the default hash split.\n"
    "       radfuse dataset split --data DIR --out FILE [--layout NAME] [--key K]\n"
    "               [--train F --val F --test F] [--stratify | --no-stratify]\n"
    "  Writes a patient-level split file (patientid,split): HMAC-SHA-256 of each\n"
    "  patient key with K (default " RF_SPLIT_DEFAULT_KEY "), fractions 0.70/0.15/0.15,\n"
    "  stratified by the patients' positive findings for covid-chestxray (default)\n"
    "  or each patient by its hash alone (default for the other layouts).\n";

static int cmd_study(int argc, char **argv)
{
    const char *data = NULL, *image = NULL, *out = NULL;
    long row = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data") && v)
            data = v, i++;
        else if (!strcmp(a, "--image") && v)
            image = v, i++;
        else if (!strcmp(a, "--out") && v)
            out = v, i++;
        else if (!strcmp(a, "--row")) {
            if (cli_parse_int("--row", v, 0, 100000000, &row))
                return CLI_EXIT_FAIL;
            i++;
        } else if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        } else
            return cli_fail("dataset study: unknown or incomplete option '%s' (see radfuse dataset study --help)", a);
    }
    if (!data || !out || (row < 0) == !image)
        return cli_fail("dataset study: --data DIR, --out OUT and one of --row N or --image FILE are needed");
    rf_dataset_study_info info;
    rf_err err;
    if (rf_dataset_study(data, row, image, out, &info, &err))
        return cli_fail("%s", err.msg);
    printf("row %ld\n", info.row);
    printf("study: %s/%s (%s, %s, %dx%d, study date %s)\n", out, info.dicom, info.modality,
           info.view[0] ? info.view : "view unknown", info.cols, info.rows, info.study_date);
    if (info.has_note)
        printf("note: %s/note.txt\n", out);
    else
        printf("note: none (the row has no clinical note)\n");
    if (info.nlabs)
        printf("labs: %s/labs.csv (%d results)\n", out, info.nlabs);
    else
        printf("labs: none (the row has no usable lab values)\n");
    if (info.skipped[0])
        printf("labs left out: %s\n", info.skipped);
    printf("attribution: %s/ATTRIBUTION.txt\n", out);
    return CLI_EXIT_OK;
}

/* Counts of one set of rows (the whole dataset or one side). */
typedef struct set_counts {
    size_t rows, patients;
    size_t (*t)[3]; /* [ntargets][positive, negative, unknown] */
} set_counts;

static int open_dataset(const char *dir, const char *layout_name, rf_dataset **ds)
{
    rf_dataset_layout layout = RF_DATASET_AUTO;
    rf_err err;
    if (layout_name && rf_dataset_layout_parse(layout_name, &layout, &err))
        return cli_fail("dataset: %s", err.msg);
    if (rf_dataset_open(ds, dir, layout, &err))
        return cli_fail("%s", err.msg);
    return CLI_EXIT_OK;
}

static int cmd_ls(int argc, char **argv)
{
    const char *dir = NULL, *layout_name = NULL, *split = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--layout") && v)
            layout_name = v, i++;
        else if (!strcmp(a, "--split") && v)
            split = v, i++;
        else if (!strcmp(a, "--json"))
            json = 1;
        else if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        } else if (a[0] != '-' && !dir)
            dir = a;
        else
            return cli_fail("dataset ls: unknown or incomplete option '%s' (see radfuse dataset --help)", a);
    }
    if (!dir)
        return cli_fail("dataset ls: a dataset directory is needed (radfuse dataset ls DIR)");
    rf_dataset *ds;
    int rc = open_dataset(dir, layout_name, &ds);
    if (rc)
        return rc;
    size_t n = rf_dataset_count(ds), np = rf_dataset_patient_count(ds);
    int nt = rf_dataset_ntargets(ds);
    rf_split *sides = calloc(n ? n : 1, sizeof *sides);
    set_counts sets[RF_SPLIT_COUNT] = {{0}}; /* [0]: all rows; [side]: that side */
    unsigned char *seen = calloc(np ? np : 1, RF_SPLIT_COUNT);
    for (int s = 0; s < RF_SPLIT_COUNT; s++)
        sets[s].t = calloc(nt ? (size_t)nt : 1, sizeof *sets[s].t);
    int ok = sides && seen;
    for (int s = 0; s < RF_SPLIT_COUNT; s++)
        ok = ok && sets[s].t;
    rf_err err;
    if (!ok)
        rc = cli_fail("dataset ls: out of memory");
    else if (split && !strcmp(split, "source")) {
        for (size_t i = 0; i < n; i++)
            sides[i] = rf_dataset_get(ds, i)->source_split;
    } else if (split && rf_dataset_split(ds, strcmp(split, "hash") ? split : NULL, NULL, sides, &err))
        rc = cli_fail("%s", err.msg);
    for (size_t i = 0; !rc && i < n; i++) {
        const rf_dataset_row *r = rf_dataset_get(ds, i);
        size_t p = rf_dataset_row_patient(ds, i);
        int where[2] = {0, split ? (int)sides[i] : 0};
        for (int w = 0; w < (split && sides[i] != RF_SPLIT_NONE ? 2 : 1); w++) {
            set_counts *c = &sets[where[w]];
            c->rows++;
            if (!seen[p * RF_SPLIT_COUNT + (size_t)where[w]]++)
                c->patients++;
            for (int k = 0; k < nt; k++)
                c->t[k][r->targets[k] == RF_TARGET_POS ? 0 : r->targets[k] == RF_TARGET_NEG ? 1 : 2]++;
        }
    }
    static const char *const set_names[RF_SPLIT_COUNT] = {"all", "train", "val", "test"};
    if (!rc && json) {
        cJSON *o = cJSON_CreateObject(), *js = cJSON_CreateObject(), *names = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "layout", rf_dataset_layout_name(rf_dataset_get_layout(ds)));
        cJSON_AddNumberToObject(o, "rows", (double)n);
        cJSON_AddNumberToObject(o, "patients", (double)np);
        cJSON_AddNumberToObject(o, "rows_left_out", (double)rf_dataset_skipped_rows(ds));
        cJSON_AddNumberToObject(o, "rows_unmapped", (double)rf_dataset_unmapped_rows(ds));
        for (int k = 0; k < nt; k++)
            cJSON_AddItemToArray(names, cJSON_CreateString(rf_dataset_target_name(ds, k)));
        cJSON_AddItemToObject(o, "targets", names);
        cJSON_AddNumberToObject(o, "finding_targets", rf_dataset_nfinding_targets(ds));
        if (split)
            cJSON_AddStringToObject(o, "split", split);
        else
            cJSON_AddNullToObject(o, "split");
        for (int s = 0; s < RF_SPLIT_COUNT; s++) {
            if (s && !split)
                break;
            cJSON *so = cJSON_CreateObject(), *to = cJSON_CreateObject();
            cJSON_AddNumberToObject(so, "rows", (double)sets[s].rows);
            cJSON_AddNumberToObject(so, "patients", (double)sets[s].patients);
            for (int k = 0; k < nt; k++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddNumberToObject(c, "positive", (double)sets[s].t[k][0]);
                cJSON_AddNumberToObject(c, "negative", (double)sets[s].t[k][1]);
                cJSON_AddNumberToObject(c, "unknown", (double)sets[s].t[k][2]);
                cJSON_AddItemToObject(to, rf_dataset_target_name(ds, k), c);
            }
            cJSON_AddItemToObject(so, "targets", to);
            cJSON_AddItemToObject(js, set_names[s], so);
        }
        cJSON_AddItemToObject(o, "sets", js);
        char *text = cJSON_Print(o);
        if (text)
            printf("%s\n", text);
        else
            rc = cli_fail("dataset ls: out of memory");
        cJSON_free(text);
        cJSON_Delete(o);
    } else if (!rc) {
        printf("layout: %s\n", rf_dataset_layout_name(rf_dataset_get_layout(ds)));
        printf("rows: %zu", n);
        if (rf_dataset_skipped_rows(ds))
            printf(" (%zu left out: not X-ray)", rf_dataset_skipped_rows(ds));
        if (rf_dataset_unmapped_rows(ds))
            printf(" (%zu with findings not mapped: targets unknown)", rf_dataset_unmapped_rows(ds));
        printf("\npatients: %zu\n", np);
        if (split)
            printf("split: %s\n", split);
        printf("\n%-26s", "");
        for (int s = 0; s < RF_SPLIT_COUNT; s++)
            if (!s || (split && sets[s].rows))
                printf(" %20s", set_names[s]);
        printf("\n%-26s", "patients");
        for (int s = 0; s < RF_SPLIT_COUNT; s++)
            if (!s || (split && sets[s].rows))
                printf(" %20zu", sets[s].patients);
        printf("\n%-26s", "rows");
        for (int s = 0; s < RF_SPLIT_COUNT; s++)
            if (!s || (split && sets[s].rows))
                printf(" %20zu", sets[s].rows);
        printf("\n%-26s", "target (pos/neg/unknown)");
        printf("\n");
        for (int k = 0; k < nt; k++) {
            printf("%-26s", rf_dataset_target_name(ds, k));
            for (int s = 0; s < RF_SPLIT_COUNT; s++)
                if (!s || (split && sets[s].rows)) {
                    char cell[64];
                    snprintf(cell, sizeof cell, "%zu/%zu/%zu", sets[s].t[k][0], sets[s].t[k][1], sets[s].t[k][2]);
                    printf(" %20s", cell);
                }
            printf("\n");
        }
    }
    for (int s = 0; s < RF_SPLIT_COUNT; s++)
        free(sets[s].t);
    free(seen);
    free(sides);
    rf_dataset_free(ds);
    return rc;
}

static int parse_fraction(const char *flag, const char *v, double *out)
{
    char *end;
    double x = v ? strtod(v, &end) : -1;
    if (!v || *end || !(x >= 0 && x <= 1))
        return cli_fail("dataset split: %s needs a fraction between 0 and 1", flag);
    *out = x;
    return CLI_EXIT_OK;
}

static int cmd_split(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL, *layout_name = NULL;
    rf_split_opts opts = {0};
    int stratify = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--data") && v)
            dir = v, i++;
        else if (!strcmp(a, "--out") && v)
            out = v, i++;
        else if (!strcmp(a, "--layout") && v)
            layout_name = v, i++;
        else if (!strcmp(a, "--key") && v)
            opts.key = v, i++;
        else if (!strcmp(a, "--train") || !strcmp(a, "--val") || !strcmp(a, "--test")) {
            double *f = a[2] == 't' && a[3] == 'r' ? &opts.train : a[2] == 'v' ? &opts.val : &opts.test;
            if (parse_fraction(a, v, f))
                return CLI_EXIT_FAIL;
            i++;
        } else if (!strcmp(a, "--stratify"))
            stratify = 1;
        else if (!strcmp(a, "--no-stratify"))
            stratify = 0;
        else if (!strcmp(a, "--help")) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        } else
            return cli_fail("dataset split: unknown or incomplete option '%s' (see radfuse dataset --help)", a);
    }
    if (!dir || !out)
        return cli_fail("dataset split: --data DIR and --out FILE are needed");
    if ((opts.train || opts.val || opts.test) && opts.train + opts.val + opts.test <= 0)
        return cli_fail("dataset split: the fractions sum to 0");
    rf_dataset *ds;
    int rc = open_dataset(dir, layout_name, &ds);
    if (rc)
        return rc;
    opts.stratify = stratify >= 0 ? stratify : rf_dataset_get_layout(ds) == RF_DATASET_COVID;
    rf_err err;
    size_t n = rf_dataset_count(ds);
    rf_split *sides = calloc(n ? n : 1, sizeof *sides);
    if (!sides)
        rc = cli_fail("dataset split: out of memory");
    else if (rf_dataset_split_write(ds, &opts, out, &err) || rf_dataset_split(ds, out, NULL, sides, &err))
        rc = cli_fail("%s", err.msg);
    if (!rc) {
        size_t rows[RF_SPLIT_COUNT] = {0}, pats[RF_SPLIT_COUNT] = {0};
        size_t np = rf_dataset_patient_count(ds);
        unsigned char *seen = calloc(np ? np : 1, 1);
        for (size_t i = 0; seen && i < n; i++) {
            rows[sides[i]]++;
            if (!seen[rf_dataset_row_patient(ds, i)]++)
                pats[sides[i]]++;
        }
        free(seen);
        printf("%s: %zu patients (%s split%s)\n", out, np, opts.stratify ? "stratified" : "hash",
               opts.key ? ", own key" : "");
        for (int s = RF_SPLIT_TRAIN; s < RF_SPLIT_COUNT; s++)
            printf("  %-5s %6zu patients %8zu rows\n", rf_split_name((rf_split)s), pats[s], rows[s]);
    }
    free(sides);
    rf_dataset_free(ds);
    return rc;
}

int cli_dataset(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help")) {
        fputs(usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    }
    if (!strcmp(argv[0], "study"))
        return cmd_study(argc - 1, argv + 1);
    if (!strcmp(argv[0], "ls"))
        return cmd_ls(argc - 1, argv + 1);
    if (!strcmp(argv[0], "split"))
        return cmd_split(argc - 1, argv + 1);
    return cli_fail("dataset: unknown subcommand '%s' (study, ls, split)", argv[0]);
}
