/*
 * The dataset loaders and patient-level splits (radfuse/datasets.h).
 *
 * covid-chestxray: the loader against an independent reading of
 * ../shared/data/covid-chestxray/metadata.csv by Python's csv module
 * (tests/data/make_datasets_expected.py): counts, per-target positives /
 * negatives / unknowns, the rows of every distinct finding string, and the
 * keyed hash and stratified split computed with Python's hmac. The committed
 * split file (datasets/splits/covid-chestxray.csv) covers every patient, puts
 * none on two sides, equals Python's split and what `radfuse dataset split`
 * writes now. The sample study (datasets/samples/covid-442) rebuilds to
 * identical bytes and its patient is on the test side.
 *
 * CheXpert, MIMIC-CXR-JPG and NIH ChestX-ray14: the real data is not here, so
 * these are FORMAT FIXTURES: small layouts this test writes itself in the
 * published formats (column names, label values 1.0 / 0.0 / -1.0 / blank,
 * '|'-joined findings, the NIH 2017 file's split header and trailing comma,
 * MIMIC's gzipped CSVs and numeric StudyTime, the image folder trees), with
 * values chosen here; they check the parsing, not the collections.
 *
 * Hostile CSVs (a missing column, bad quoting, a huge field, invalid UTF-8,
 * a short record, a bad label) and bad directories give one error line naming
 * the file.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "radfuse/datasets.h"
#include "radfuse/labs.h"
#include "testutil.h"

static char tmp[256];

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    test_write_file(path, text, strlen(text));
}

static void make_dirs(const char *path)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0777);
            *s = '/';
        }
    mkdir(p, 0777);
}

static int one_line(const char *msg) { return msg[0] && !strchr(msg, '\n'); }

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* rf_dataset_open of root with layout, which must succeed: the dataset, or NULL (a failed check). */
static rf_dataset *open_ok(const char *root, rf_dataset_layout layout)
{
    rf_dataset *ds = NULL;
    rf_err err;
    int rc = rf_dataset_open(&ds, root, layout, &err);
    CHECKF(rc == 0, "%s", err.msg);
    return rc ? NULL : ds;
}

/* rf_dataset_open of root with layout, which must fail with one line holding want1 and want2 (unless NULL). */
static void expect_fail(const char *root, rf_dataset_layout layout, const char *want1, const char *want2)
{
    rf_dataset *ds = NULL;
    rf_err err;
    int rc = rf_dataset_open(&ds, root, layout, &err);
    CHECKF(rc != 0 && ds == NULL && one_line(err.msg) && strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)),
           "rc %d: %s (wanted '%s', '%s')", rc, rc ? err.msg : "", want1, want2 ? want2 : "");
}

static const rf_dataset_row *find_row(const rf_dataset *ds, const char *id, size_t *index)
{
    for (size_t i = 0; i < rf_dataset_count(ds); i++)
        if (!strcmp(rf_dataset_get(ds, i)->id, id)) {
            if (index)
                *index = i;
            return rf_dataset_get(ds, i);
        }
    return NULL;
}

/* ---- covid-chestxray ---- */

static void check_covid_rows(const rf_dataset *ds, const cJSON *exp)
{
    CHECKF(rf_dataset_count(ds) == (size_t)cJSON_GetObjectItem(exp, "rows")->valuedouble, "rows %zu",
           rf_dataset_count(ds));
    CHECKF(rf_dataset_patient_count(ds) == (size_t)cJSON_GetObjectItem(exp, "patients")->valuedouble,
           "patients %zu", rf_dataset_patient_count(ds));
    CHECK(rf_dataset_unmapped_rows(ds) == 0 && rf_dataset_skipped_rows(ds) == 0);
    int nt = rf_dataset_ntargets(ds);
    CHECK(nt == 11 && rf_dataset_nfinding_targets(ds) == 7);
    const cJSON *targets = cJSON_GetObjectItem(exp, "targets");
    CHECK(cJSON_GetArraySize(targets) == nt);
    for (int k = 0; k < nt; k++) {
        const char *name = rf_dataset_target_name(ds, k);
        const cJSON *c = cJSON_GetObjectItem(targets, name);
        CHECKF(c != NULL, "target %s not in the expected values", name);
        if (!c)
            continue;
        size_t got[3] = {0};
        for (size_t i = 0; i < rf_dataset_count(ds); i++) {
            int8_t v = rf_dataset_get(ds, i)->targets[k];
            got[v == 1 ? 0 : v == 0 ? 1 : 2]++;
        }
        for (int j = 0; j < 3; j++)
            CHECKF(got[j] == (size_t)cJSON_GetArrayItem(c, j)->valuedouble, "%s: %zu/%zu/%zu", name, got[0], got[1],
                   got[2]);
        CHECK(rf_dataset_target_index(ds, name) == k);
    }
    const cJSON *e;
    int nsample = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(exp, "sample"))
    {
        size_t index = (size_t)cJSON_GetObjectItem(e, "index")->valuedouble;
        const rf_dataset_row *r = rf_dataset_get(ds, index);
        CHECK(r != NULL);
        if (!r)
            continue;
        nsample++;
        const char *id = cJSON_GetObjectItem(e, "id")->valuestring;
        CHECKF(!strcmp(r->id, id), "row %zu: id %s, expected %s", index, r->id, id);
        CHECK(!strcmp(r->patient, cJSON_GetObjectItem(e, "patient")->valuestring));
        CHECKF(!strcmp(r->view, cJSON_GetObjectItem(e, "view")->valuestring), "row %zu: view %s", index, r->view);
        CHECK(r->frontal == (int)cJSON_GetObjectItem(e, "frontal")->valuedouble);
        const char *sex = cJSON_GetObjectItem(e, "sex")->valuestring;
        CHECK(r->sex == (!strcmp(sex, "M") ? 'M' : !strcmp(sex, "F") ? 'F' : 0));
        CHECK(fabs(r->age - cJSON_GetObjectItem(e, "age")->valuedouble) < 1e-9);
        const char *offset = cJSON_GetObjectItem(e, "offset")->valuestring;
        CHECK(*offset ? r->time_kind == RF_DATASET_TIME_OFFSET && r->time == atof(offset)
                      : r->time_kind == RF_DATASET_TIME_NONE);
        CHECKF(!strcmp(r->note, cJSON_GetObjectItem(e, "note")->valuestring), "row %zu: note differs", index);
        CHECKF(r->nlabs == (int)cJSON_GetObjectItem(e, "nlabs")->valuedouble, "row %zu: %d labs", index, r->nlabs);
        CHECK(!strcmp(r->license, cJSON_GetObjectItem(e, "license")->valuestring));
        const cJSON *t = cJSON_GetObjectItem(e, "targets");
        for (int k = 0; k < nt; k++)
            CHECKF(r->targets[k] == (int)cJSON_GetArrayItem(t, k)->valuedouble, "row %zu (%s): target %s is %d",
                   index, id, rf_dataset_target_name(ds, k), r->targets[k]);
        char path[4096];
        rf_err err;
        CHECKF(rf_dataset_image_path(ds, index, path, sizeof path, &err) == 0, "%s", err.msg);
    }
    CHECKF(nsample >= 16, "%d sample rows", nsample); /* one per finding string of the snapshot, and more */
}

/* The labs of a row: the text the study maker writes, read back by the lab reader. */
static void check_covid_labs(const rf_dataset *ds, const char *data)
{
    size_t index = 0;
    const rf_dataset_row *r = NULL;
    for (size_t i = 0; i < rf_dataset_count(ds) && !r; i++)
        if (rf_dataset_get(ds, i)->nlabs == 5)
            r = rf_dataset_get(ds, i), index = i;
    CHECK(r && r->nlabs == 5);
    if (!r)
        return;
    char *csv;
    size_t len;
    int n;
    char skipped[256];
    rf_err err;
    CHECKF(rf_dataset_labs_csv(ds, index, &csv, &len, &n, skipped, sizeof skipped, &err) == 0, "%s", err.msg);
    CHECK(n == 5 && !skipped[0]);
    char out[512], path[1100];
    snprintf(out, sizeof out, "%s/labs-study", tmp);
    rf_dataset_study_info info;
    CHECKF(rf_dataset_study(data, (long)index, NULL, out, &info, &err) == 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/labs.csv", out);
    size_t flen;
    char *file = test_read_file(path, &flen);
    CHECKF(file && flen == len && !memcmp(file, csv, len), "the loader's labs differ from the study maker's labs.csv");
    free(file);
    free(csv);
    rf_labs labs = {0};
    CHECKF(rf_dataset_labs(ds, index, &labs, &err) == 0, "%s", err.msg);
    CHECK(labs.nlabs == 5);
    for (size_t i = 0; i < labs.nlabs; i++)
        CHECKF(labs.labs[i].lab >= 0 && labs.labs[i].has_norm, "lab %zu not read as a known lab", i);
    rf_labs_free(&labs);
}

/* The committed split file: every patient once, sides as Python computes them,
 * and what rf_dataset_split_write gives now. */
static void check_covid_split(const rf_dataset *ds, const cJSON *exp, const char *src)
{
    char file[1024];
    snprintf(file, sizeof file, "%s/datasets/splits/covid-chestxray.csv", src);
    size_t len;
    char *text = test_read_file(file, &len);
    CHECKF(text != NULL, "%s: cannot read", file);
    if (!text)
        return;
    const cJSON *split = cJSON_GetObjectItem(exp, "split"), *hash = cJSON_GetObjectItem(exp, "hash");
    size_t lines = 0, mismatched = 0;
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    CHECK(line && !strcmp(line, "patientid,split"));
    cJSON *seen = cJSON_CreateObject();
    for (line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *comma = strchr(line, ',');
        CHECK(comma != NULL);
        if (!comma)
            continue;
        *comma = 0;
        lines++;
        CHECKF(!cJSON_GetObjectItem(seen, line), "patient on two lines of the split file");
        cJSON_AddItemToObject(seen, line, cJSON_CreateString(comma + 1));
        const cJSON *want = cJSON_GetObjectItem(split, line);
        if (!want || strcmp(want->valuestring, comma + 1))
            mismatched++;
    }
    cJSON_Delete(seen);
    free(text);
    CHECKF(lines == rf_dataset_patient_count(ds), "%zu lines for %zu patients", lines, rf_dataset_patient_count(ds));
    CHECKF(mismatched == 0, "%zu patients on another side than Python's split", mismatched);

    /* the hash itself */
    size_t bad = 0;
    for (size_t p = 0; p < rf_dataset_patient_count(ds); p++) {
        const cJSON *u = cJSON_GetObjectItem(hash, rf_dataset_patient(ds, p));
        if (!u || fabs(rf_split_hash(NULL, rf_dataset_patient(ds, p)) - u->valuedouble) > 1e-15)
            bad++;
    }
    CHECKF(bad == 0, "%zu hashes differ from Python's hmac", bad);

    /* rows through the file: no patient on two sides, every side used */
    size_t n = rf_dataset_count(ds), np = rf_dataset_patient_count(ds);
    rf_split *sides = test_xmalloc(n * sizeof *sides);
    rf_split *pside = test_xmalloc(np * sizeof *pside);
    rf_err err;
    CHECKF(rf_dataset_split(ds, file, NULL, sides, &err) == 0, "%s", err.msg);
    size_t per[RF_SPLIT_COUNT] = {0}, two = 0;
    for (size_t p = 0; p < np; p++)
        pside[p] = RF_SPLIT_NONE;
    for (size_t i = 0; i < n; i++) {
        size_t p = rf_dataset_row_patient(ds, i);
        CHECK(!strcmp(rf_dataset_patient(ds, p), rf_dataset_get(ds, i)->patient));
        if (pside[p] != RF_SPLIT_NONE && pside[p] != sides[i])
            two++;
        pside[p] = sides[i];
        per[sides[i]]++;
    }
    CHECKF(two == 0 && per[RF_SPLIT_NONE] == 0, "%zu rows on another side than their patient's", two);
    CHECK(per[RF_SPLIT_TRAIN] > per[RF_SPLIT_VAL] && per[RF_SPLIT_VAL] > 0 && per[RF_SPLIT_TEST] > 0);
    /* stratified: every finding target has positives on the test side */
    for (int k = 0; k < rf_dataset_nfinding_targets(ds); k++) {
        size_t pos = 0;
        for (size_t i = 0; i < n; i++)
            pos += sides[i] == RF_SPLIT_TEST && rf_dataset_get(ds, i)->targets[k] == RF_TARGET_POS;
        CHECKF(pos > 0, "no test positives of %s", rf_dataset_target_name(ds, k));
    }

    /* regenerated: the same bytes */
    char again[512];
    snprintf(again, sizeof again, "%s/split-again.csv", tmp);
    rf_split_opts opts = {.stratify = 1};
    CHECKF(rf_dataset_split_write(ds, &opts, again, &err) == 0, "%s", err.msg);
    CHECKF(same_file(file, again), "rf_dataset_split_write does not give %s again", file);

    /* the hash split (not stratified) by its own rule, and its fractions */
    rf_split_opts hopts = {.train = 0.5, .val = 0.25, .test = 0.25, .key = "another key"};
    CHECKF(rf_dataset_split(ds, NULL, &hopts, sides, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        double u = rf_split_hash("another key", rf_dataset_get(ds, i)->patient);
        rf_split want = u < 0.25 ? RF_SPLIT_TEST : u < 0.5 ? RF_SPLIT_VAL : RF_SPLIT_TRAIN;
        if (sides[i] != want) {
            CHECKF(0, "row %zu: hash split side differs", i);
            break;
        }
    }

    /* broken split files */
    char bad_file[512];
    snprintf(bad_file, sizeof bad_file, "%s/split-bad.csv", tmp);
    test_write_file(bad_file, "patientid,split\n2,train\n", 24);
    int rc = rf_dataset_split(ds, bad_file, NULL, sides, &err);
    CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, bad_file) && strstr(err.msg, "257 of the 258"), "%s",
           err.msg);
    test_write_file(bad_file, "patientid,split\n2,train\n2,test\n", 31);
    rc = rf_dataset_split(ds, bad_file, NULL, sides, &err);
    CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, "line 3"), "%s", err.msg);
    test_write_file(bad_file, "patientid,split\n2,holdout\n", 26);
    rc = rf_dataset_split(ds, bad_file, NULL, sides, &err);
    CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, "line 2"), "%s", err.msg);
    test_write_file(bad_file, "patient,side\n", 13);
    rc = rf_dataset_split(ds, bad_file, NULL, sides, &err);
    CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, "patientid"), "%s", err.msg);
    rf_split_opts neg = {.train = -1, .val = 0.5, .test = 0.5};
    rc = rf_dataset_split(ds, NULL, &neg, sides, &err);
    CHECKF(rc != 0 && one_line(err.msg), "%s", err.msg);
    free(sides);
    free(pside);
}

/* The sample study: rebuilt from its row, the same bytes; its patient is a test patient. */
static void check_sample(const rf_dataset *ds, const char *data, const char *src)
{
    char sample[1024], out[512], a[1200], b[1200];
    snprintf(sample, sizeof sample, "%s/datasets/samples/covid-442", src);
    snprintf(out, sizeof out, "%s/sample", tmp);
    rf_dataset_study_info info;
    rf_err err;
    CHECKF(rf_dataset_study(data, 442, NULL, out, &info, &err) == 0, "%s", err.msg);
    const char *files[] = {"study/442.dcm", "note.txt", "labs.csv", "ATTRIBUTION.txt"};
    for (int i = 0; i < 4; i++) {
        snprintf(a, sizeof a, "%s/%s", sample, files[i]);
        snprintf(b, sizeof b, "%s/%s", out, files[i]);
        CHECKF(same_file(a, b), "%s differs from a rebuild", a);
    }
    size_t index;
    const rf_dataset_row *r = find_row(ds, "41182_2020_203_Fig3_HTML.jpg", &index);
    CHECK(r && index == 442 && r->frontal == 1 && r->note[0] && r->nlabs > 0);
    CHECK(r && !strncmp(r->license, "CC BY", 5) && !strstr(r->license, "NC") && !strstr(r->license, "ND"));
    char file[1024];
    snprintf(file, sizeof file, "%s/datasets/splits/covid-chestxray.csv", src);
    rf_split *sides = test_xmalloc(rf_dataset_count(ds) * sizeof *sides);
    CHECKF(rf_dataset_split(ds, file, NULL, sides, &err) == 0, "%s", err.msg);
    CHECKF(r && sides[index] == RF_SPLIT_TEST, "the sample's patient is not a test patient");
    free(sides);
    snprintf(a, sizeof a, "%s/ATTRIBUTION.txt", sample);
    char *attr = test_read_file(a, NULL);
    CHECK(attr && strstr(attr, "License: CC BY 4.0") && strstr(attr, "arXiv:2006.11988") && strstr(attr, "URL: http"));
    free(attr);
}

static void check_covid(const char *shared, const char *src)
{
    char data[1024], script[1024];
    snprintf(data, sizeof data, "%s/data/covid-chestxray", shared);
    snprintf(script, sizeof script, "%s/tests/data/make_datasets_expected.py", src);
    static char out[1 << 22], errb[1 << 14];
    char *argv[] = {"/usr/bin/python3", script, data, NULL};
    int rc = test_run(argv, out, sizeof out, errb, sizeof errb);
    CHECKF(rc == 0, "%s: status %d: %s", script, rc, errb);
    cJSON *exp = cJSON_Parse(out);
    CHECKF(exp != NULL, "%s: no JSON", script);
    if (!exp)
        return;
    rf_dataset *ds = open_ok(data, RF_DATASET_AUTO);
    if (ds) {
        CHECK(rf_dataset_get_layout(ds) == RF_DATASET_COVID);
        check_covid_rows(ds, exp);
        check_covid_labs(ds, data);
        check_covid_split(ds, exp, src);
        check_sample(ds, data, src);
        rf_dataset_free(ds);
    }
    expect_fail(data, RF_DATASET_NIH, "Data_Entry_2017", NULL);

    /* the images are checked when asked for: metadata.csv beside an empty images/ */
    char fake[512], path[1100], meta[1100];
    snprintf(fake, sizeof fake, "%s/covid-noimages/images", tmp);
    make_dirs(fake);
    snprintf(fake, sizeof fake, "%s/covid-noimages", tmp);
    snprintf(path, sizeof path, "%s/metadata.csv", fake);
    snprintf(meta, sizeof meta, "%s/metadata.csv", data);
    CHECK(symlink(meta, path) == 0);
    if ((ds = open_ok(fake, RF_DATASET_COVID))) {
        rf_err err;
        char img[4096];
        rc = rf_dataset_image_path(ds, 0, img, sizeof img, &err);
        CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, "/images/") && strstr(err.msg, "line 2"), "%s",
               err.msg);
        rf_dataset_free(ds);
    }
    cJSON_Delete(exp);
}

/* ---- CheXpert (format fixture) ---- */

static const char CHEXPERT_HEADER[] =
    "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,Lung Opacity,"
    "Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,Pleural Effusion,Pleural Other,Fracture,"
    "Support Devices\n";

static void check_chexpert(void)
{
    char root[512], dir[600], csv[4096];
    snprintf(root, sizeof root, "%s/chexpert", tmp);
    snprintf(dir, sizeof dir, "%s/CheXpert-v1.0-small/train/patient00001/study1", root);
    make_dirs(dir);
    write_text(dir, "view1_frontal.jpg", "not read by the loader");
    snprintf(dir, sizeof dir, "%s/CheXpert-v1.0-small", root);
    snprintf(csv, sizeof csv,
             "%s"
             "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,,,,,0.0,,,,1.0\n"
             "CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg,Female,87,Frontal,AP,,,-1.0,1.0,,-1.0,-1.0,,-1.0,,-1.0,,1.0,\n"
             "CheXpert-v1.0-small/train/patient00002/study1/view2_lateral.jpg,Male,83,Lateral,,,,,1.0,,,-1.0,,,,,,1.0,\n"
             "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Unknown,0,Frontal,PA,,,,,,1.0,,,,,1.0,,,\n",
             CHEXPERT_HEADER);
    write_text(dir, "train.csv", csv);
    snprintf(csv, sizeof csv,
             "%s"
             "CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg,Male,73,Frontal,AP,0.0,1.0,1.0,1.0,0.0,"
             "0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0\n",
             CHEXPERT_HEADER);
    write_text(dir, "valid.csv", csv);

    const char *roots[2] = {root, dir};
    for (int pass = 0; pass < 2; pass++) {
        rf_dataset *ds = open_ok(roots[pass], RF_DATASET_AUTO);
        if (!ds)
            continue;
        rf_err err;
        int rc;
        CHECK(rf_dataset_get_layout(ds) == RF_DATASET_CHEXPERT);
        CHECK(rf_dataset_count(ds) == 5 && rf_dataset_patient_count(ds) == 4 && rf_dataset_ntargets(ds) == 14);
        int nf = rf_dataset_target_index(ds, "no_finding"), card = rf_dataset_target_index(ds, "cardiomegaly"),
            lo = rf_dataset_target_index(ds, "lung_opacity"), pe = rf_dataset_target_index(ds, "pleural_effusion"),
            sd = rf_dataset_target_index(ds, "support_devices"), frac = rf_dataset_target_index(ds, "fracture"),
            px = rf_dataset_target_index(ds, "pneumothorax");
        CHECK(nf == 0 && card == 2 && lo == 3 && pe == 10 && frac == 12 && sd == 13 && px == 9);
        const rf_dataset_row *r = rf_dataset_get(ds, 0);
        CHECK(!strcmp(r->patient, "patient00001") && !strcmp(r->study, "patient00001/study1"));
        CHECK(r->sex == 'F' && r->age == 68 && r->frontal == 1 && !strcmp(r->view, "AP"));
        CHECK(r->targets[nf] == 1 && r->targets[px] == 0 && r->targets[sd] == 1 && r->targets[card] == -1);
        CHECK(r->source_split == RF_SPLIT_TRAIN && r->time_kind == RF_DATASET_TIME_NONE && !r->note[0]);
        CHECK(!strcmp(r->image, pass ? "train/patient00001/study1/view1_frontal.jpg"
                                     : "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg"));
        char path[4096];
        CHECKF(rf_dataset_image_path(ds, 0, path, sizeof path, &err) == 0, "%s", err.msg);
        rc = rf_dataset_image_path(ds, 1, path, sizeof path, &err);
        CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, "patient00002/study2/view1_frontal.jpg") &&
                   strstr(err.msg, "line 3"),
               "%s", err.msg);
        r = rf_dataset_get(ds, 1); /* uncertain -1.0 and blank: both unknown */
        CHECK(r->targets[card] == -1 && r->targets[lo] == 1 && r->targets[nf] == -1 && r->targets[frac] == 1);
        r = rf_dataset_get(ds, 2);
        CHECK(r->frontal == 0 && !strcmp(r->view, "LL") && r->sex == 'M' && !strcmp(r->patient, "patient00002"));
        r = rf_dataset_get(ds, 3);
        CHECK(r->sex == 0 && !strcmp(r->view, "PA") && r->targets[pe] == 1);
        r = rf_dataset_get(ds, 4);
        CHECK(r->source_split == RF_SPLIT_VAL && r->targets[nf] == 0 && r->targets[card] == 1 && r->targets[sd] == 0);
        /* patient-level: both images of patient00002 on one side, whatever the key */
        rf_split sides[5];
        const char *keys[] = {"a", "b", "c", "d", "e", "f"};
        for (int k = 0; k < 6; k++) {
            rf_split_opts o = {.key = keys[k]};
            CHECK(rf_dataset_split(ds, NULL, &o, sides, &err) == 0 && sides[1] == sides[2]);
        }
        rf_dataset_free(ds);
    }

    /* a renamed folder: with the layout named, its CSVs' paths from inside it */
    char renamed[600];
    snprintf(renamed, sizeof renamed, "%s/chexpert-renamed", tmp);
    CHECK(symlink(dir, renamed) == 0);
    expect_fail(renamed, RF_DATASET_AUTO, "no known dataset layout", NULL);
    rf_dataset *rds = open_ok(renamed, RF_DATASET_CHEXPERT);
    if (rds) {
        rf_err rerr;
        char p[4096];
        CHECK(rf_dataset_count(rds) == 5 && !strcmp(rf_dataset_get(rds, 0)->image,
                                                     "train/patient00001/study1/view1_frontal.jpg"));
        CHECKF(rf_dataset_image_path(rds, 0, p, sizeof p, &rerr) == 0, "%s", rerr.msg);
        rf_dataset_free(rds);
    }

    /* a label value that is not 1, 0, -1 or blank */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/chexpert-bad/CheXpert-v1.0", tmp);
    make_dirs(bad);
    snprintf(csv, sizeof csv,
             "%sCheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,,,2.0,,,,0.0,,,,\n",
             CHEXPERT_HEADER);
    write_text(bad, "train.csv", csv);
    expect_fail(bad, RF_DATASET_CHEXPERT, "train.csv: line 2", "'Edema'");
    snprintf(csv, sizeof csv, "%sCheXpert-v1.0/train/view1_frontal.jpg,Female,68,Frontal,AP,,,,,,,,,,,,,,\n",
             CHEXPERT_HEADER);
    write_text(bad, "train.csv", csv);
    expect_fail(bad, RF_DATASET_CHEXPERT, "line 2", "Path");
}

/* ---- MIMIC-CXR-JPG (format fixture) ---- */

static void write_gz(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile gz = gzopen(path, "wb");
    CHECK(gz != NULL);
    if (gz) {
        CHECK(gzwrite(gz, text, (unsigned)strlen(text)) == (int)strlen(text));
        gzclose(gz);
    }
}

static void check_mimic(void)
{
    char root[512], img[700];
    snprintf(root, sizeof root, "%s/mimic", tmp);
    snprintf(img, sizeof img, "%s/files/p10/p10000032/s50414267", root);
    make_dirs(img);
    write_text(img, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg", "not read by the loader");
    write_gz(root, "mimic-cxr-2.0.0-metadata.csv.gz",
             "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
             "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
             "PatientOrientationCodeSequence_CodeMeaning\n"
             "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,"
             "21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect\n"
             "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544,"
             "21800506,213014.531,CHEST (PA AND LAT),lateral,Erect\n"
             "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,10000032,53189527,CHEST (PA AND LAT),AP,3056,2544,"
             "21800626,5000.5,CHEST (PA AND LAT),antero-posterior,Erect\n"
             "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,10000764,57375967,CHEST (PORTABLE AP),,2705,2539,"
             "21321015,,CHEST (PORTABLE AP),,\n");
    write_gz(root, "mimic-cxr-2.0.0-chexpert.csv.gz",
             "subject_id,study_id,Atelectasis,Cardiomegaly,Consolidation,Edema,Enlarged Cardiomediastinum,Fracture,"
             "Lung Lesion,Lung Opacity,No Finding,Pleural Effusion,Pleural Other,Pneumonia,Pneumothorax,"
             "Support Devices\n"
             "10000032,50414267,,,,,,,,,1.0,,,,,\n"
             "10000032,53189527,,,,,,,,,,1.0,,-1.0,0.0,\n");
    write_text(root, "mimic-cxr-2.0.0-split.csv",
               "dicom_id,study_id,subject_id,split\n"
               "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,50414267,10000032,train\n"
               "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,50414267,10000032,train\n"
               "2a2277a9-b0ded155-c0de8eb9-c124d10e-82c5caab,53189527,10000032,validate\n"
               "68b5c4b1-227d0485-9cc38c3f-7b84ab51-4b472714,57375967,10000764,test\n");
    rf_dataset *ds = open_ok(root, RF_DATASET_AUTO);
    if (!ds)
        return;
    rf_err err;
    CHECK(rf_dataset_get_layout(ds) == RF_DATASET_MIMIC);
    CHECK(rf_dataset_count(ds) == 4 && rf_dataset_patient_count(ds) == 2 && rf_dataset_unmapped_rows(ds) == 1);
    int nf = rf_dataset_target_index(ds, "no_finding"), pe = rf_dataset_target_index(ds, "pleural_effusion"),
        pn = rf_dataset_target_index(ds, "pneumonia"), px = rf_dataset_target_index(ds, "pneumothorax");
    const rf_dataset_row *r = rf_dataset_get(ds, 0);
    CHECK(!strcmp(r->patient, "10000032") && !strcmp(r->study, "50414267") && r->frontal == 1 &&
          !strcmp(r->view, "PA") && r->sex == 0 && r->age < 0);
    CHECK(!strcmp(r->image, "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg"));
    CHECK(r->targets[nf] == 1 && r->targets[pe] == -1 && r->source_split == RF_SPLIT_TRAIN);
    /* 2180-05-06 21:30:14.531 (dates shifted by the source) */
    double want = 76827 + (21 * 3600 + 30 * 60 + 14.531) / 86400.0;
    CHECKF(r->time_kind == RF_DATASET_TIME_DATE && fabs(r->time - want) < 1e-6, "time %.6f, expected %.6f", r->time,
           want);
    char path[4096];
    CHECKF(rf_dataset_image_path(ds, 0, path, sizeof path, &err) == 0, "%s", err.msg);
    int rc = rf_dataset_image_path(ds, 1, path, sizeof path, &err);
    CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, "s50414267/174413ec"), "%s", err.msg);
    r = rf_dataset_get(ds, 1);
    CHECK(r->frontal == 0 && !strcmp(r->view, "LL"));
    r = rf_dataset_get(ds, 2); /* StudyTime 5000.5: 00:50:00.5 */
    CHECK(r->targets[pe] == 1 && r->targets[pn] == -1 && r->targets[px] == 0 && r->source_split == RF_SPLIT_VAL);
    CHECK(fabs(r->time - (76878 + 3000.5 / 86400.0)) < 1e-6);
    r = rf_dataset_get(ds, 3); /* a study without labels, no view */
    CHECK(r->frontal == -1 && r->targets[nf] == -1 && r->source_split == RF_SPLIT_TEST);
    rf_split sides[4];
    CHECK(rf_dataset_split(ds, NULL, NULL, sides, &err) == 0 && sides[0] == sides[1] && sides[1] == sides[2]);
    rf_dataset_free(ds);

    /* a gzip file that is not one */
    write_text(root, "mimic-cxr-2.0.0-metadata.csv.gz", "dicom_id,subject_id\n\x1f\x8b\x08garbage");
    expect_fail(root, RF_DATASET_MIMIC, "metadata.csv.gz", NULL);
}

/* ---- NIH ChestX-ray14 (format fixture) ---- */

static void check_nih(void)
{
    char root[512], dir[700];
    snprintf(root, sizeof root, "%s/nih", tmp);
    snprintf(dir, sizeof dir, "%s/images_001/images", root);
    make_dirs(dir);
    write_text(dir, "00000001_000.png", "not read by the loader");
    snprintf(dir, sizeof dir, "%s/images_002/images", root);
    make_dirs(dir);
    write_text(dir, "00000002_000.png", "not read by the loader");
    /* the 2017 file: the unquoted header splits OriginalImage[Width,Height]
     * and ends every line with a comma */
    write_text(root, "Data_Entry_2017.csv",
               "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
               "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n"
               "00000001_000.png,Cardiomegaly,0,1,058Y,M,PA,2682,2749,0.143,0.143,\n"
               "00000001_001.png,Cardiomegaly|Emphysema,1,1,058Y,M,PA,2894,2729,0.143,0.143,\n"
               "00000002_000.png,No Finding,0,2,81,M,AP,2500,2048,0.168,0.168,\n"
               "00000003_000.png,Hernia|Pleural_Thickening|Effusion,0,3,414,F,PA,2582,2905,0.143,0.143,\n");
    write_text(root, "train_val_list.txt", "00000001_000.png\n00000001_001.png\n00000003_000.png\n");
    write_text(root, "test_list.txt", "00000002_000.png\n");
    rf_dataset *ds = open_ok(root, RF_DATASET_AUTO);
    if (!ds)
        return;
    rf_err err;
    CHECK(rf_dataset_get_layout(ds) == RF_DATASET_NIH);
    CHECK(rf_dataset_count(ds) == 4 && rf_dataset_patient_count(ds) == 3 && rf_dataset_ntargets(ds) == 15);
    int card = rf_dataset_target_index(ds, "cardiomegaly"), emph = rf_dataset_target_index(ds, "emphysema"),
        nf = rf_dataset_target_index(ds, "no_finding"), her = rf_dataset_target_index(ds, "hernia"),
        pt = rf_dataset_target_index(ds, "pleural_thickening"), eff = rf_dataset_target_index(ds, "effusion");
    CHECK(card >= 0 && emph >= 0 && nf >= 0 && her >= 0 && pt >= 0 && eff >= 0);
    const rf_dataset_row *r = rf_dataset_get(ds, 1);
    CHECK(r->targets[card] == 1 && r->targets[emph] == 1 && r->targets[nf] == 0 && r->targets[her] == 0);
    CHECK(r->age == 58 && r->sex == 'M' && !strcmp(r->view, "PA") && r->time_kind == RF_DATASET_TIME_FOLLOWUP &&
          r->time == 1 && !strcmp(r->patient, "1") && r->source_split == RF_SPLIT_TRAIN);
    r = rf_dataset_get(ds, 2);
    CHECK(r->targets[nf] == 1 && r->targets[card] == 0 && r->age == 81 && !strcmp(r->view, "AP") &&
          r->source_split == RF_SPLIT_TEST);
    r = rf_dataset_get(ds, 3);
    CHECK(r->targets[her] == 1 && r->targets[pt] == 1 && r->targets[eff] == 1 && r->targets[card] == 0);
    CHECK(r->age < 0 && r->sex == 'F'); /* 414: one of the published ages that cannot be right */
    for (size_t i = 0; i < 4; i++)
        for (int k = 0; k < 15; k++)
            CHECK(rf_dataset_get(ds, i)->targets[k] != RF_TARGET_UNKNOWN); /* the findings are all stated */
    char path[4096];
    CHECKF(rf_dataset_image_path(ds, 2, path, sizeof path, &err) == 0 &&
               strstr(path, "images_002/images/00000002_000.png"),
           "%s", err.msg);
    CHECKF(rf_dataset_image_path(ds, 0, path, sizeof path, &err) == 0 && strstr(path, "images_001/images/"), "%s",
           err.msg);
    int rc = rf_dataset_image_path(ds, 1, path, sizeof path, &err);
    CHECKF(rc != 0 && one_line(err.msg) && strstr(err.msg, "00000001_001.png") && strstr(err.msg, "line 3"), "%s",
           err.msg);
    rf_split sides[4];
    CHECK(rf_dataset_split(ds, NULL, NULL, sides, &err) == 0 && sides[0] == sides[1]);
    rf_dataset_free(ds);

    /* a finding not among the 15 labels */
    write_text(root, "Data_Entry_2017_v2020.csv",
               "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
               "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"
               "00000001_000.png,Cardiomegaly|Covid,0,1,58,M,PA,2682,2749,0.143,0.143\n");
    expect_fail(root, RF_DATASET_AUTO, "Data_Entry_2017_v2020.csv: line 2", "'Covid'");
}

/* ---- hostile CSVs and directories ---- */

static void check_hostile(const char *shared)
{
    char dir[512], meta[1024];
    snprintf(dir, sizeof dir, "%s/hostile", tmp);
    make_dirs(dir);
    snprintf(meta, sizeof meta, "%s/metadata.csv", dir);
    static const char header[] =
        "patientid,offset,sex,age,finding,survival,intubated,went_icu,needed_supplemental_O2,temperature,"
        "pO2_saturation,leukocyte_count,neutrophil_count,lymphocyte_count,view,modality,folder,filename,doi,url,"
        "license,clinical_notes\n";
    char text[4096];
    /* a missing column */
    write_text(dir, "metadata.csv", "patientid,offset,sex,age,view,folder,filename\n1,0,M,50,PA,images,a.jpg\n");
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", "column");
    /* bad quoting */
    snprintf(text, sizeof text, "%s1,0,M,50,COVID-19,,,,,,,,,,PA,X-ray,images,a.jpg,,,,\"an unterminated note\n",
             header);
    write_text(dir, "metadata.csv", text);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", "line 2");
    snprintf(text, sizeof text, "%s1,0,M,50,COVID-19,,,,,,,,,,PA,X-ray,images,a.jpg,,,,a \"stray\" quote\n", header);
    write_text(dir, "metadata.csv", text);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", "line 2");
    /* a short record */
    snprintf(text, sizeof text, "%s1,0,M,50,COVID-19,,,,\n", header);
    write_text(dir, "metadata.csv", text);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", "fields where the header has 22");
    /* invalid UTF-8 (Latin-1 bytes) */
    snprintf(text, sizeof text, "%s1,0,M,50,COVID-19,,,,,,,,,,PA,X-ray,images,a.jpg,,,,fi\xe8vre \xe0 39\n", header);
    write_text(dir, "metadata.csv", text);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", "line 2");
    /* a huge field: a 2 MiB note */
    size_t big = (size_t)2 << 20;
    char *huge = test_xmalloc(sizeof header + big + 128);
    int n = snprintf(huge, sizeof header + 128, "%s1,0,M,50,COVID-19,,,,,,,,,,PA,X-ray,images,a.jpg,,,,", header);
    memset(huge + n, 'x', big);
    memcpy(huge + n + big, "\n", 2);
    test_write_file(meta, huge, strlen(huge));
    free(huge);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", "line 2");
    /* a bad offset, a file name that leaves the folder */
    snprintf(text, sizeof text, "%s1,two,M,50,COVID-19,,,,,,,,,,PA,X-ray,images,a.jpg,,,,\n", header);
    write_text(dir, "metadata.csv", text);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv: line 2", "offset");
    snprintf(text, sizeof text, "%s1,2,M,50,COVID-19,,,,,,,,,,PA,X-ray,..,a.jpg,,,,\n", header);
    write_text(dir, "metadata.csv", text);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv: line 2", "file name");
    /* CT rows are left out, unknown findings counted; the rest loads */
    snprintf(text, sizeof text,
             "%s1,2,M,50,COVID-19,Y,N,,,,,,,,PA,X-ray,images,a.jpg,,,,\n"
             "1,3,M,50,COVID-19,Y,N,,,,,,,,Axial,CT,images,b.jpg,,,,\n"
             "2,,F,,Tuberculosis,,,,,,,,,,AP Supine,X-ray,images,c.jpg,,,,\n"
             "3,,F,,\"Pneumonia/Viral/COVID-19\",,,,,,,,,,L,X-ray,images,d.jpg,,,,\n",
             header);
    write_text(dir, "metadata.csv", text);
    rf_dataset *ds = open_ok(dir, RF_DATASET_AUTO);
    if (ds) {
        CHECK(rf_dataset_count(ds) == 3 && rf_dataset_skipped_rows(ds) == 1 && rf_dataset_unmapped_rows(ds) == 1);
        const rf_dataset_row *r = rf_dataset_get(ds, 1);
        for (int k = 0; k < 7; k++)
            CHECK(r->targets[k] == RF_TARGET_UNKNOWN);
        CHECK(!strcmp(r->view, "AP") && r->frontal == 1 && r->time_kind == RF_DATASET_TIME_NONE);
        r = rf_dataset_get(ds, 2); /* a later snapshot's hierarchical finding */
        CHECK(r->targets[0] == 1 && r->targets[1] == 1 && r->targets[2] == 0 && r->targets[4] == 1 &&
              r->frontal == 0 && !strcmp(r->view, "LL"));
        r = rf_dataset_get(ds, 0);
        CHECK(r->targets[7] == 1 && r->targets[8] == 0 && r->targets[9] == -1);
        rf_dataset_free(ds);
    }
    /* an empty file, a file that is not there */
    write_text(dir, "metadata.csv", "");
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", "empty");
    unlink(meta);
    expect_fail(dir, RF_DATASET_COVID, "metadata.csv", NULL);
    /* no layout; two layouts; not a directory */
    expect_fail(dir, RF_DATASET_AUTO, "no known dataset layout", NULL);
    write_text(dir, "metadata.csv", header);
    write_text(dir, "Data_Entry_2017.csv", "Image Index\n");
    expect_fail(dir, RF_DATASET_AUTO, "more than one layout", NULL);
    expect_fail(meta, RF_DATASET_AUTO, "not a directory", NULL);
    expect_fail("/nonexistent-radfuse-dataset", RF_DATASET_AUTO, "/nonexistent-radfuse-dataset", NULL);
    rf_dataset_layout l;
    rf_err err;
    CHECK(rf_dataset_layout_parse("chexpert", &l, &err) == 0 && l == RF_DATASET_CHEXPERT);
    CHECK(rf_dataset_layout_parse("cxr", &l, &err) != 0 && one_line(err.msg));
    (void)shared;
}

/* ---- the commands ---- */

static void check_cli(const char *shared, const char *src)
{
    const char *bin = test_radfuse_bin();
    char data[1024], split[1024], out[512];
    snprintf(data, sizeof data, "%s/data/covid-chestxray", shared);
    snprintf(split, sizeof split, "%s/datasets/splits/covid-chestxray.csv", src);
    static char sout[1 << 16], serr[8192];
    char *ls[] = {(char *)bin, "dataset", "ls", data, "--split", split, "--json", NULL};
    int rc = test_run(ls, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 0, "radfuse dataset ls: status %d: %s", rc, serr);
    cJSON *o = cJSON_Parse(sout);
    CHECKF(o != NULL, "dataset ls --json: not JSON");
    if (o) {
        const cJSON *sets = cJSON_GetObjectItem(o, "sets");
        CHECK(!strcmp(cJSON_GetObjectItem(o, "layout")->valuestring, "covid-chestxray"));
        CHECK(cJSON_GetObjectItem(o, "rows")->valuedouble == 472 && cJSON_GetObjectItem(o, "patients")->valuedouble == 258);
        double rows = 0, pats = 0;
        const char *sides[] = {"train", "val", "test"};
        for (int s = 0; s < 3; s++) {
            const cJSON *x = cJSON_GetObjectItem(sets, sides[s]);
            CHECK(x != NULL);
            if (!x)
                continue;
            rows += cJSON_GetObjectItem(x, "rows")->valuedouble;
            pats += cJSON_GetObjectItem(x, "patients")->valuedouble;
            const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(x, "targets"), "covid19");
            CHECK(c && cJSON_GetObjectItem(c, "positive")->valuedouble > 0);
        }
        CHECKF(rows == 472 && pats == 258, "sides hold %g rows, %g patients", rows, pats); /* no patient twice */
        cJSON_Delete(o);
    }
    snprintf(out, sizeof out, "%s/cli-split.csv", tmp);
    char *sp[] = {(char *)bin, "dataset", "split", "--data", data, "--out", out, NULL};
    rc = test_run(sp, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 0 && strstr(sout, "258 patients"), "radfuse dataset split: status %d: %s", rc, serr);
    CHECKF(same_file(out, split), "radfuse dataset split does not give %s again", split);
    char *ls_text[] = {(char *)bin, "dataset", "ls", data, NULL};
    rc = test_run(ls_text, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 0 && strstr(sout, "layout: covid-chestxray") && strstr(sout, "needed_supplemental_O2"), "%s", serr);
    char *bad[] = {(char *)bin, "dataset", "ls", tmp, NULL};
    rc = test_run(bad, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 2 && test_count_lines(serr) == 1 && strstr(serr, "no known dataset layout"), "status %d: %s", rc,
           serr);
    char *bad_split[] = {(char *)bin, "dataset", "split", "--data", data, "--out", out, "--train", "2", NULL};
    rc = test_run(bad_split, sout, sizeof sout, serr, sizeof serr);
    CHECKF(rc == 2 && test_count_lines(serr) == 1, "status %d: %s", rc, serr);
}

int main(void)
{
    const char *shared = test_shared_dir();
    const char *src = getenv("RADFUSE_SOURCE");
    src = src ? src : ".";
    test_tmpdir(tmp, sizeof tmp);
    check_covid(shared, src);
    check_chexpert();
    check_mimic();
    check_nih();
    check_hostile(shared);
    check_cli(shared, src);
    return test_finish("test_datasets");
}
