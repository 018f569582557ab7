/*
 * Inputs, grouping and ordering (include/radfuse/dicom_input.h, study.h):
 *  - synthetic instances added in shuffled orders: InstanceNumber, then the
 *    position along the slice normal (axial and oblique), then SOPInstanceUID;
 *    studies, series, duplicates, missing UIDs;
 *  - the dicomdirtests corpus against tests/data/dicomdir_expected.txt (made
 *    with pydicom): every DICOMDIR variant lists the files pydicom lists, and
 *    the instances group, order and are selected as the expected list says;
 *    the DICOMDIR and a walk of the same tree give the same instances and
 *    pixel hashes, and nothing is listed twice;
 *  - hostile DICOMDIR trees (missing, renamed, linked and escaping references,
 *    a truncated DICOMDIR) and zip archives built here with libzip (the same
 *    export zipped gives the same hashes; zip bomb, encrypted entry, ../ names,
 *    nested zips, lying sizes, truncated archive, every limit).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "radfuse/dicom_input.h"
#include "radfuse/study.h"
#include "tests/testutil.h"

static char tmp[256];

/* ---- synthetic instances ---- */

static rf_dicom_image mk(const char *study, const char *series, const char *sop)
{
    rf_dicom_image m;
    memset(&m, 0, sizeof m);
    snprintf(m.study_uid, sizeof m.study_uid, "%s", study);
    snprintf(m.series_uid, sizeof m.series_uid, "%s", series);
    snprintf(m.sop_uid, sizeof m.sop_uid, "%s", sop);
    snprintf(m.modality, sizeof m.modality, "OT");
    snprintf(m.sop_class_uid, sizeof m.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    m.has_pixel_data = 1;
    m.frames = 1;
    m.rows = m.columns = 4;
    return m;
}

static void set_geometry(rf_dicom_image *m, const double o[6], double x, double y, double z)
{
    memcpy(m->orientation, o, sizeof m->orientation);
    m->position[0] = x;
    m->position[1] = y;
    m->position[2] = z;
    m->has_orientation = m->has_position = 1;
}

/* A permutation of 0..n-1 from seed (Fisher-Yates with a small LCG). */
static void permute(size_t *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = i;
    for (size_t i = n; i > 1; i--) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)(seed >> 33) % i;
        size_t t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
}

/* Adds imgs in the order of seed, builds, and checks that the one series holds
 * them in the order of want (indices into imgs). */
static void check_order(const char *what, const rf_dicom_image *imgs, size_t n, const size_t *want)
{
    for (uint64_t seed = 0; seed < 6; seed++) {
        size_t perm[64];
        permute(perm, n, seed);
        rf_studies s;
        rf_studies_init(&s);
        rf_err err;
        for (size_t k = 0; k < n; k++) {
            char name[32];
            snprintf(name, sizeof name, "f%02zu", perm[k]);
            CHECKF(rf_studies_add(&s, name, &imgs[perm[k]], NULL, &err) == 0, "%s: %s", what, err.msg);
        }
        CHECKF(rf_studies_build(&s, &err) == 0, "%s: %s", what, err.msg);
        CHECKF(s.nstudies == 1 && s.nseries == 1 && s.series[0].count == n, "%s: %zu studies, %zu series", what,
               s.nstudies, s.nseries);
        if (s.nseries == 1 && s.series[0].count == n)
            for (size_t k = 0; k < n; k++) {
                const char *got = s.inst[s.series[0].order[k]].attrs.sop_uid;
                CHECKF(strcmp(got, imgs[want[k]].sop_uid) == 0, "%s (seed %llu): place %zu holds %s, want %s", what,
                       (unsigned long long)seed, k, got, imgs[want[k]].sop_uid);
            }
        rf_studies_free(&s);
    }
}

static void test_ordering(void)
{
    static const double axial[6] = {1, 0, 0, 0, 1, 0};
    rf_dicom_image imgs[16];
    size_t want[16];
    char sop[32];

    /* no InstanceNumber: by z, whatever the file order */
    for (int k = 0; k < 9; k++) {
        snprintf(sop, sizeof sop, "1.9.%d", 9 - k); /* SOP UIDs run against z */
        imgs[k] = mk("1.1", "1.1.1", sop);
        set_geometry(&imgs[k], axial, -120.5, 33, -50.0 + 2.5 * k);
        want[k] = (size_t)k;
    }
    check_order("axial by z", imgs, 9, want);

    /* oblique slices (normal (0, sin t, cos t)), in-plane offsets that vary: by the
     * position along the normal, not by z or by y */
    double t = 0.6, cs = cos(t), sn = sin(t);
    double obl[6] = {1, 0, 0, 0, cs, -sn};
    for (int k = 0; k < 7; k++) {
        snprintf(sop, sizeof sop, "1.8.%d", k);
        imgs[k] = mk("1.1", "1.1.2", sop);
        double d = 4.0 * k, u = (k % 3) * 40.0, v = (k % 2) * -60.0; /* along normal; along row and column */
        set_geometry(&imgs[k], obl, u, d * sn + v * cs, d * cs - v * sn);
        want[k] = (size_t)k;
    }
    /* the position along z alone would put these out of order */
    check_order("oblique along the normal", imgs, 7, want);

    /* InstanceNumber first, even against the geometry; absent ones last, by position */
    for (int k = 0; k < 6; k++) {
        snprintf(sop, sizeof sop, "1.7.%d", k);
        imgs[k] = mk("1.1", "1.1.3", sop);
        set_geometry(&imgs[k], axial, 0, 0, -10.0 * k);
        if (k < 4) {
            imgs[k].has_instance_number = 1;
            imgs[k].instance_number = 4 - k; /* 4 3 2 1 */
        }
    }
    size_t want_in[6] = {3, 2, 1, 0, 5, 4}; /* numbers 1..4, then z -50 < -40 */
    check_order("InstanceNumber, then position", imgs, 6, want_in);

    /* the same InstanceNumber everywhere (some multi-plane localizers): by position */
    for (int k = 0; k < 5; k++) {
        snprintf(sop, sizeof sop, "1.6.%d", 5 - k);
        imgs[k] = mk("1.1", "1.1.4", sop);
        imgs[k].has_instance_number = 1;
        imgs[k].instance_number = 1;
        set_geometry(&imgs[k], axial, 0, 0, 3.0 * k);
        want[k] = (size_t)k;
    }
    check_order("tied InstanceNumber", imgs, 5, want);

    /* no number, no geometry: SOPInstanceUID (byte order) */
    static const char *const uids[] = {"1.5.10", "1.5.2", "1.5.1", "1.5.11"};
    for (int k = 0; k < 4; k++)
        imgs[k] = mk("1.1", "1.1.5", uids[k]);
    size_t want_uid[4] = {2, 0, 3, 1}; /* 1.5.1 < 1.5.10 < 1.5.11 < 1.5.2 */
    check_order("SOPInstanceUID", imgs, 4, want_uid);

    /* degenerate orientation (parallel cosines): as if absent */
    static const double flat[6] = {1, 0, 0, 1, 0, 0};
    for (int k = 0; k < 3; k++) {
        snprintf(sop, sizeof sop, "1.4.%d", k);
        imgs[k] = mk("1.1", "1.1.6", sop);
        set_geometry(&imgs[k], flat, 0, 0, -5.0 * k);
        want[k] = (size_t)k;
    }
    check_order("degenerate orientation", imgs, 3, want);
}

static void test_grouping(void)
{
    rf_studies s;
    rf_studies_init(&s);
    rf_err err;
    rf_dicom_image m;
    /* two studies (the later date added first), series numbers 10, 2 and none */
    m = mk("2.2", "2.2.1", "2.2.1.1");
    snprintf(m.study_date, sizeof m.study_date, "20240102");
    CHECK(rf_studies_add(&s, "late", &m, NULL, &err) == 0);
    m = mk("2.1", "2.1.10", "2.1.10.1");
    snprintf(m.study_date, sizeof m.study_date, "20240101");
    m.has_series_number = 1, m.series_number = 10;
    CHECK(rf_studies_add(&s, "s10", &m, NULL, &err) == 0);
    m = mk("2.1", "2.1.0", "2.1.0.1");
    snprintf(m.study_date, sizeof m.study_date, "20240101");
    CHECK(rf_studies_add(&s, "snone", &m, NULL, &err) == 0);
    m = mk("2.1", "2.1.2", "2.1.2.1");
    snprintf(m.study_date, sizeof m.study_date, "20240101");
    m.has_series_number = 1, m.series_number = 2;
    snprintf(m.modality, sizeof m.modality, "CT");
    CHECK(rf_studies_add(&s, "s2", &m, "aa", &err) == 0);
    /* the same instance twice (a file and its copy), and a third copy with other pixels */
    CHECK(rf_studies_add(&s, "z/copy", &m, "aa", &err) == 0);
    CHECK(rf_studies_add(&s, "a/orig", &m, "aa", &err) == 0);
    CHECK(rf_studies_add(&s, "y/changed", &m, "bb", &err) == 0);
    /* missing UIDs: the caller's error, naming the input */
    rf_dicom_image bad = mk("", "3.1", "3.1.1");
    CHECK(rf_studies_add(&s, "nostudy.dcm", &bad, NULL, &err) == RF_EFORMAT);
    CHECKF(strncmp(err.msg, "nostudy.dcm: ", 13) == 0 && strstr(err.msg, "StudyInstanceUID"), "%s", err.msg);
    bad = mk("3", "3.1", "");
    CHECK(rf_studies_add(&s, "nosop.dcm", &bad, NULL, &err) == RF_EFORMAT);
    CHECKF(strstr(err.msg, "SOPInstanceUID"), "%s", err.msg);
    bad = mk("3", "", "3.1.1");
    CHECK(rf_studies_add(&s, "noseries.dcm", &bad, NULL, &err) == RF_EFORMAT);
    CHECK(s.ninst == 7);

    CHECK(rf_studies_build(&s, &err) == 0);
    CHECKF(s.nstudies == 2 && s.nseries == 4, "%zu studies, %zu series", s.nstudies, s.nseries);
    const rf_study *first = &s.studies[s.study_order[0]];
    CHECKF(strcmp(first->uid, "2.1") == 0, "first study %s", first->uid);
    CHECKF(first->nseries == 3 && first->instances == 3 && first->duplicates == 3, "%zu series, %ld inst, %ld dup",
           first->nseries, first->instances, first->duplicates);
    CHECKF(strcmp(first->modalities, "CT OT") == 0, "modalities '%s'", first->modalities);
    if (first->nseries == 3) {
        CHECKF(strcmp(s.series[first->series[0]].uid, "2.1.2") == 0 &&
                   strcmp(s.series[first->series[1]].uid, "2.1.10") == 0 &&
                   strcmp(s.series[first->series[2]].uid, "2.1.0") == 0,
               "series order %s %s %s", s.series[first->series[0]].uid, s.series[first->series[1]].uid,
               s.series[first->series[2]].uid);
        const rf_series *se = &s.series[first->series[0]];
        CHECKF(se->count == 1 && strcmp(s.inst[se->order[0]].name, "a/orig") == 0, "kept %s",
               se->count ? s.inst[se->order[0]].name : "-");
    }
    int dups = 0, differs = 0;
    for (size_t i = 0; i < s.ninst; i++) {
        const rf_instance *in = &s.inst[i];
        CHECKF(in->reason[0], "%s: no reason", in->name);
        if (in->duplicate_of >= 0) {
            dups++;
            CHECKF(strcmp(s.inst[in->duplicate_of].name, "a/orig") == 0 && !in->selected &&
                       strncmp(in->reason, "duplicate: SOPInstanceUID already read from a/orig", 50) == 0,
                   "%s: %s", in->name, in->reason);
            differs += strstr(in->reason, "pixel data differs") != NULL;
        }
    }
    CHECKF(dups == 3 && differs == 1, "%d duplicates, %d with other pixels", dups, differs);
    rf_studies_free(&s);

    /* an empty set builds */
    rf_studies_init(&s);
    CHECK(rf_studies_build(&s, &err) == 0 && s.nstudies == 0);
    rf_studies_free(&s);
}

/* ---- files ---- */

static char *path_join(const char *a, const char *b)
{
    char *p;
    if (asprintf(&p, "%s/%s", a, b) < 0)
        abort();
    return p;
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *d = test_read_file(from, &n);
    if (!d) {
        fprintf(stderr, "cannot read %s\n", from);
        exit(1);
    }
    test_write_file(to, d, n);
    free(d);
}

static void mkdirs(const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0700);
            *p = '/';
        }
    mkdir(buf, 0700);
}

static rf_inputs *collect(const char *const *paths, int n, const rf_input_limits *lim)
{
    rf_inputs *in = NULL;
    rf_err err;
    int rc = rf_inputs_collect(paths, n, lim, &in, &err);
    CHECKF(rc == 0, "collect %s: %s", paths[0], err.msg);
    if (rc) {
        fprintf(stderr, "cannot go on\n");
        exit(1);
    }
    return in;
}

static long find(const rf_inputs *in, const char *name)
{
    for (size_t i = 0; i < rf_inputs_count(in); i++)
        if (strcmp(rf_inputs_at(in, i)->name, name) == 0)
            return (long)i;
    return -1;
}

static size_t count_kind(const rf_inputs *in, rf_input_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < rf_inputs_count(in); i++)
        n += rf_inputs_at(in, i)->kind == kind;
    return n;
}

/* No name twice, no file on disk twice, names in byte order. */
static void check_unique(const rf_inputs *in, const char *what)
{
    size_t n = rf_inputs_count(in);
    for (size_t i = 1; i < n; i++)
        CHECKF(strcmp(rf_inputs_at(in, i - 1)->name, rf_inputs_at(in, i)->name) < 0, "%s: %s then %s", what,
               rf_inputs_at(in, i - 1)->name, rf_inputs_at(in, i)->name);
    for (size_t i = 0; i < n; i++) {
        struct stat a, b;
        const rf_input *x = rf_inputs_at(in, i);
        if (!x->path || stat(x->path, &a) != 0)
            continue;
        for (size_t j = i + 1; j < n; j++) {
            const rf_input *y = rf_inputs_at(in, j);
            if (y->path && stat(y->path, &b) == 0)
                CHECKF(a.st_dev != b.st_dev || a.st_ino != b.st_ino, "%s: %s and %s are the same file", what,
                       x->name, y->name);
        }
    }
}

/* The pixel hash of item i, or "" when it does not read. */
static void item_sha(rf_inputs *in, size_t i, char sha[65])
{
    rf_dicom_image img;
    rf_err err;
    sha[0] = 0;
    if (rf_inputs_read(in, i, RF_DICOM_PIXELS, &img, &err) == 0) {
        rf_dicom_pixel_sha256(&img, sha);
        rf_dicom_image_free(&img);
    }
}

/* ---- the dicomdirtests corpus against pydicom ---- */

typedef struct exp_file {
    char path[128], study[80], series[80], word[32];
    int index, selected;
} exp_file;

static void test_dicomdir_corpus(const char *root)
{
    const char *src = getenv("RADFUSE_SOURCE");
    char file[1024];
    snprintf(file, sizeof file, "%s/tests/data/dicomdir_expected.txt", src ? src : ".");
    size_t len;
    char *text = test_read_file(file, &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", file);
        exit(1);
    }
    static exp_file files[64];
    int nfiles = 0, ndirs = 0;
    char *save = NULL;
    /* dicomdir lines first, each checked with its ref lines */
    char *copy = strdup(text);
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], p[256];
        long records, refs;
        if (sscanf(line, "dicomdir\t%127[^\t]\t%ld\t%ld", name, &records, &refs) == 3) {
            ndirs++;
            char *dd = path_join(root, name);
            const char *paths[] = {dd};
            rf_inputs *in = collect(paths, 1, NULL);
            long at = find(in, dd);
            CHECKF(at >= 0 && rf_inputs_at(in, (size_t)at)->kind == RF_INPUT_DICOMDIR, "%s: not a DICOMDIR item", name);
            if (at >= 0) {
                const rf_input *it = rf_inputs_at(in, (size_t)at);
                CHECKF(it->records == records && it->referenced == refs && it->missing == 0,
                       "%s: %ld records, %ld refs, %ld missing; pydicom: %ld, %ld", name, it->records, it->referenced,
                       it->missing, records, refs);
            }
            CHECKF((long)count_kind(in, RF_INPUT_FILE) == refs && count_kind(in, RF_INPUT_ERROR) == 0,
                   "%s: %zu files, %zu errors, pydicom lists %ld", name, count_kind(in, RF_INPUT_FILE),
                   count_kind(in, RF_INPUT_ERROR), refs);
            /* every file pydicom resolves is an item, referenced by this DICOMDIR */
            char dir[512];
            snprintf(dir, sizeof dir, "%s", dd);
            *strrchr(dir, '/') = 0;
            char *save2 = NULL, *copy2 = strdup(text);
            int nref = 0;
            for (char *l2 = strtok_r(copy2, "\n", &save2); l2; l2 = strtok_r(NULL, "\n", &save2)) {
                char n2[128];
                if (sscanf(l2, "ref\t%127[^\t]\t%255[^\t]", n2, p) != 2 || strcmp(n2, name) != 0)
                    continue;
                nref++;
                char *full = path_join(dir, p);
                long k = find(in, full);
                CHECKF(k >= 0 && rf_inputs_at(in, (size_t)k)->kind == RF_INPUT_FILE &&
                           rf_inputs_at(in, (size_t)k)->dicomdir &&
                           strcmp(rf_inputs_at(in, (size_t)k)->dicomdir, dd) == 0,
                       "%s: %s not listed as its file", name, p);
                free(full);
            }
            CHECKF(nref == refs, "%s: %d ref lines for %ld", name, nref, refs);
            free(copy2);
            check_unique(in, name);
            rf_inputs_free(in);
            free(dd);
        } else if (strncmp(line, "file\t", 5) == 0 && nfiles < 64) {
            exp_file *x = &files[nfiles];
            if (sscanf(line, "file\t%127[^\t]\t%79[^\t]\t%79[^\t]\t%d\t%d\t%31s", x->path, x->study, x->series,
                       &x->index, &x->selected, x->word) == 6)
                nfiles++;
            else
                CHECKF(0, "bad line %s", line);
        }
    }
    free(copy);
    free(text);
    CHECKF(ndirs == 8 && nfiles == 31, "%d DICOMDIRs, %d files in the expected list", ndirs, nfiles);

    /* the DICOMDIR's instances: grouped, ordered and selected as pydicom's reading says */
    char *dd = path_join(root, "DICOMDIR");
    const char *paths[] = {dd};
    rf_inputs *in = collect(paths, 1, NULL);
    rf_studies s;
    rf_studies_init(&s);
    rf_err err;
    size_t n = rf_inputs_count(in);
    char (*shas)[65] = calloc(n, 65);
    for (size_t i = 0; i < n; i++) {
        if (rf_inputs_at(in, i)->kind != RF_INPUT_FILE)
            continue;
        rf_dicom_image img;
        CHECKF(rf_inputs_read(in, i, RF_DICOM_PIXELS, &img, &err) == 0, "%s", err.msg);
        rf_dicom_pixel_sha256(&img, shas[i]);
        CHECKF(rf_studies_add(&s, rf_inputs_at(in, i)->name, &img, shas[i], &err) == 0, "%s", err.msg);
        rf_dicom_image_free(&img);
    }
    CHECK(rf_studies_build(&s, &err) == 0);
    CHECKF(s.ninst == 31 && s.nstudies == 6, "%zu instances in %zu studies", s.ninst, s.nstudies);
    for (int f = 0; f < nfiles; f++) {
        const exp_file *x = &files[f];
        char *full = path_join(root, x->path);
        const rf_instance *hit = NULL;
        for (size_t i = 0; i < s.ninst; i++)
            if (strcmp(s.inst[i].name, full) == 0)
                hit = &s.inst[i];
        CHECKF(hit != NULL, "%s: not read", x->path);
        if (hit) {
            const rf_series *se = &s.series[hit->series];
            long place = -1;
            for (size_t k = 0; k < se->count; k++)
                if (&s.inst[se->order[k]] == hit)
                    place = (long)k;
            CHECKF(strcmp(hit->attrs.study_uid, x->study) == 0 && strcmp(se->uid, x->series) == 0 &&
                       strcmp(s.studies[hit->study].uid, x->study) == 0,
                   "%s: in study %s series %s", x->path, s.studies[hit->study].uid, se->uid);
            CHECKF(place == x->index, "%s: place %ld in its series, pydicom's order says %d", x->path, place,
                   x->index);
            CHECKF(hit->selected == x->selected && strncmp(hit->reason, x->word, strlen(x->word)) == 0,
                   "%s: selected %d '%s', expected %d '%s...'", x->path, hit->selected, hit->reason, x->selected,
                   x->word);
        }
        free(full);
    }
    /* the brief's examples, spelled out */
    for (size_t i = 0; i < s.ninst; i++) {
        const rf_instance *in2 = &s.inst[i];
        if (strstr(in2->name, "/CR1/6154"))
            CHECKF(!in2->selected && strcmp(in2->reason, "lateral: ViewPosition LL") == 0, "CR1: %s", in2->reason);
        if (strstr(in2->name, "/CR2/6247") || strstr(in2->name, "/CR3/6278"))
            CHECKF(in2->selected && strncmp(in2->reason, "frontal: ViewPosition AP", 24) == 0, "%s: %s", in2->name,
                   in2->reason);
    }

    /* walking the same tree: the same instances, the same pixels */
    char *w1 = path_join(root, "77654033"), *w2 = path_join(root, "98892001"), *w3 = path_join(root, "98892003");
    const char *walk_paths[] = {w1, w2, w3};
    rf_inputs *walked = collect(walk_paths, 3, NULL);
    CHECKF(rf_inputs_count(walked) == 31 && count_kind(walked, RF_INPUT_FILE) == 31, "walk: %zu items",
           rf_inputs_count(walked));
    for (size_t i = 0; i < rf_inputs_count(walked); i++) {
        const rf_input *w = rf_inputs_at(walked, i);
        long k = find(in, w->name);
        CHECKF(k >= 0, "walk finds %s, the DICOMDIR does not", w->name);
        if (k >= 0) {
            char sha[65];
            item_sha(walked, i, sha);
            CHECKF(strcmp(sha, shas[k]) == 0, "%s: walked %s, through the DICOMDIR %s", w->name, sha, shas[k]);
        }
    }
    rf_inputs_free(walked);

    /* the whole tree, the DICOMDIR again, a path spelled differently, a file again:
     * each file once, every DICOMDIR an item, no errors from the references */
    char *dot = path_join(root, "./DICOMDIR"), *again = path_join(root, "77654033/CR1/6154");
    const char *many[] = {root, dd, dot, again, root};
    rf_inputs *all = collect(many, 5, NULL);
    check_unique(all, "tree + DICOMDIR + copies");
    CHECKF(count_kind(all, RF_INPUT_DICOMDIR) == 8, "%zu DICOMDIRs", count_kind(all, RF_INPUT_DICOMDIR));
    for (size_t i = 0; i < rf_inputs_count(all); i++) {
        const rf_input *it = rf_inputs_at(all, i);
        CHECKF(it->kind != RF_INPUT_ERROR || !it->dicomdir, "%s: %s", it->name, it->error);
    }
    rf_inputs_free(all);
    free(dot);
    free(again);
    free(w1);
    free(w2);
    free(w3);
    free(shas);
    rf_studies_free(&s);
    rf_inputs_free(in);
    free(dd);
}

/* ---- hostile DICOMDIR trees ---- */

static const char *const IMAGES[] = {
    "77654033/CR1/6154",   "77654033/CR2/6247",   "77654033/CR3/6278",   "77654033/CT2/17106",
    "77654033/CT2/17136",  "77654033/CT2/17166",  "77654033/CT2/17196",  "98892001/CT2N/6293",
    "98892001/CT2N/6924",  "98892001/CT5N/2062",  "98892001/CT5N/2392",  "98892001/CT5N/2693",
    "98892001/CT5N/3023",  "98892001/CT5N/3353",  "98892003/MR1/15820",  "98892003/MR1/4919",
    "98892003/MR1/5641",   "98892003/MR2/15970",  "98892003/MR2/4950",   "98892003/MR2/4981",
    "98892003/MR2/5011",   "98892003/MR2/6273",   "98892003/MR2/6605",   "98892003/MR2/6935",
    "98892003/MR700/4467", "98892003/MR700/4528", "98892003/MR700/4558", "98892003/MR700/4588",
    "98892003/MR700/4618", "98892003/MR700/4648", "98892003/MR700/4678",
};
#define NIMAGES (sizeof IMAGES / sizeof *IMAGES)

static void copy_tree(const char *root, const char *to)
{
    for (size_t k = 0; k < NIMAGES; k++) {
        char *from = path_join(root, IMAGES[k]), *dst = path_join(to, IMAGES[k]);
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", dst);
        *strrchr(dir, '/') = 0;
        mkdirs(dir);
        copy_file(from, dst);
        free(from);
        free(dst);
    }
    char *from = path_join(root, "DICOMDIR"), *dst = path_join(to, "DICOMDIR");
    copy_file(from, dst);
    free(from);
    free(dst);
}

/* Replaces the first occurrence of old in the file by rep (same length). */
static int patch_file(const char *path, const char *old, const char *rep)
{
    size_t n, lo = strlen(old);
    char *d = test_read_file(path, &n);
    int done = 0;
    for (size_t i = 0; d && i + lo <= n && !done; i++)
        if (memcmp(d + i, old, lo) == 0) {
            memcpy(d + i, rep, lo);
            done = 1;
        }
    if (done)
        test_write_file(path, d, n);
    free(d);
    return done;
}

static void test_dicomdir_hostile(const char *root)
{
    char *dd = path_join(tmp, "dd"), *dir = path_join(dd, "DICOMDIR");
    copy_tree(root, dd);

    /* the DICOMDIR found by its content under another name */
    char *renamed = path_join(dd, "export.dir");
    copy_file(dir, renamed);
    const char *p1[] = {renamed};
    rf_inputs *in = collect(p1, 1, NULL);
    CHECKF(count_kind(in, RF_INPUT_FILE) == NIMAGES && count_kind(in, RF_INPUT_ERROR) == 0, "export.dir: %zu files",
           count_kind(in, RF_INPUT_FILE));
    rf_inputs_free(in);
    unlink(renamed);
    free(renamed);

    /* a directory written in other case (a Windows export), a missing file, a
     * symbolic link, and references that would leave the tree */
    char *cr2 = path_join(dd, "77654033/CR2"), *cr2l = path_join(dd, "77654033/cr2");
    CHECK(rename(cr2, cr2l) == 0);
    char *gone = path_join(dd, "77654033/CR3/6278");
    CHECK(unlink(gone) == 0);
    char *link = path_join(dd, "77654033/CR1/6154"), *target = path_join(root, "77654033/CR1/6154");
    CHECK(unlink(link) == 0 && symlink(target, link) == 0);
    CHECK(patch_file(dir, "77654033\\CT2\\17106", "..\\..\\CT2\\17106   "));
    CHECK(patch_file(dir, "77654033\\CT2\\17136", "\\7654033\\CT2\\17136"));
    CHECK(patch_file(dir, "77654033\\CT2\\17166", "C:\\54033\\CT2\\17166"));
    CHECK(patch_file(dir, "77654033\\CT2\\17196", "77654033/../../17196"));

    const char *p2[] = {dir};
    in = collect(p2, 1, NULL);
    char *cr2file = path_join(dd, "77654033/cr2/6247");
    long k = find(in, cr2file);
    CHECKF(k >= 0 && rf_inputs_at(in, (size_t)k)->kind == RF_INPUT_FILE, "CR2 not found as cr2");
    k = find(in, gone);
    CHECKF(k >= 0 && rf_inputs_at(in, (size_t)k)->kind == RF_INPUT_ERROR &&
               strstr(rf_inputs_at(in, (size_t)k)->error, "referenced by DICOMDIR") &&
               strstr(rf_inputs_at(in, (size_t)k)->error, "not found") &&
               strncmp(rf_inputs_at(in, (size_t)k)->error, gone, strlen(gone)) == 0,
           "missing file: %s", k >= 0 ? rf_inputs_at(in, (size_t)k)->error : "not listed");
    k = find(in, link);
    CHECKF(k >= 0 && rf_inputs_at(in, (size_t)k)->kind == RF_INPUT_ERROR &&
               strstr(rf_inputs_at(in, (size_t)k)->error, "symbolic link"),
           "symlink: %s", k >= 0 ? rf_inputs_at(in, (size_t)k)->error : "not listed");
    int refused = 0;
    for (size_t i = 0; i < rf_inputs_count(in); i++) {
        const rf_input *it = rf_inputs_at(in, i);
        if (it->kind == RF_INPUT_ERROR && strstr(it->error, "refused"))
            refused++;
        /* nothing outside the tree is ever a file item */
        if (it->kind == RF_INPUT_FILE)
            CHECKF(strncmp(it->name, dd, strlen(dd)) == 0 && !strstr(it->name, ".."), "escaped: %s", it->name);
    }
    CHECKF(refused == 4, "%d refused references", refused);
    long at = find(in, dir);
    CHECKF(at >= 0 && rf_inputs_at(in, (size_t)at)->missing == 6, "missing %ld",
           at >= 0 ? rf_inputs_at(in, (size_t)at)->missing : -1);
    CHECKF(count_kind(in, RF_INPUT_FILE) == NIMAGES - 6, "%zu files", count_kind(in, RF_INPUT_FILE));

    /* the same tree walked: the same error items once, and the walk's files */
    const char *p3[] = {dd, dir};
    rf_inputs *w = collect(p3, 2, NULL);
    check_unique(w, "hostile tree");
    CHECKF(find(w, gone) >= 0 && count_kind(w, RF_INPUT_ERROR) == 6, "walk: %zu errors",
           count_kind(w, RF_INPUT_ERROR));
    /* the walk skips the link (as every symbolic link) and finds the four files the refused references name */
    CHECKF(count_kind(w, RF_INPUT_FILE) == NIMAGES - 2, "walk: %zu files", count_kind(w, RF_INPUT_FILE));
    rf_inputs_free(w);
    rf_inputs_free(in);

    /* a DICOMDIR cut short: one error item, nothing else from it */
    size_t n;
    char *data = test_read_file(dir, &n);
    char *cut = path_join(tmp, "cut/DICOMDIR"), *cutdir = path_join(tmp, "cut");
    mkdirs(cutdir);
    free(cutdir);
    test_write_file(cut, data, 400);
    free(data);
    const char *p4[] = {cut};
    in = collect(p4, 1, NULL);
    CHECKF(rf_inputs_count(in) == 1 && rf_inputs_at(in, 0)->kind == RF_INPUT_ERROR &&
               strncmp(rf_inputs_at(in, 0)->error, cut, strlen(cut)) == 0,
           "cut DICOMDIR: %zu items: %s", rf_inputs_count(in),
           rf_inputs_count(in) ? rf_inputs_at(in, 0)->error : "");
    rf_inputs_free(in);
    free(cut);
    free(cr2);
    free(cr2l);
    free(cr2file);
    free(gone);
    free(link);
    free(target);
    free(dir);
    free(dd);
}

/* ---- zip archives, built here with libzip ---- */

static zip_t *zip_new(const char *path)
{
    int e;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &e);
    if (!za) {
        fprintf(stderr, "%s: cannot create (%d)\n", path, e);
        exit(1);
    }
    return za;
}

static zip_int64_t zip_put(zip_t *za, const char *name, const void *data, size_t n, zip_int32_t method)
{
    void *copy = test_xmalloc(n);
    memcpy(copy, data, n);
    zip_source_t *src = zip_source_buffer(za, copy, n, 1);
    zip_int64_t idx = src ? zip_file_add(za, name, src, ZIP_FL_ENC_UTF_8) : -1;
    if (idx < 0) {
        fprintf(stderr, "zip_file_add %s: %s\n", name, zip_strerror(za));
        if (src)
            zip_source_free(src);
        exit(1);
    }
    zip_set_file_compression(za, (zip_uint64_t)idx, method, 9);
    return idx;
}

static void zip_put_file(zip_t *za, const char *name, const char *path, zip_int32_t method)
{
    size_t n;
    char *d = test_read_file(path, &n);
    if (!d)
        exit(1);
    zip_put(za, name, d, n, method);
    free(d);
}

static void zip_done(zip_t *za)
{
    if (zip_close(za) != 0) {
        fprintf(stderr, "zip_close: %s\n", zip_strerror(za));
        exit(1);
    }
}

/* The export as a zip: export/DICOMDIR and export/<the files> (skip: one left out). */
static void make_export_zip(const char *zpath, const char *root, const char *skip, int lower_cr2)
{
    zip_t *za = zip_new(zpath);
    zip_dir_add(za, "export/", ZIP_FL_ENC_UTF_8);
    char *dd = path_join(root, "DICOMDIR");
    zip_put_file(za, "export/DICOMDIR", dd, ZIP_CM_DEFLATE);
    free(dd);
    for (size_t k = 0; k < NIMAGES; k++) {
        if (skip && strcmp(IMAGES[k], skip) == 0)
            continue;
        char name[256], *from = path_join(root, IMAGES[k]);
        snprintf(name, sizeof name, "export/%s", IMAGES[k]);
        if (lower_cr2 && strstr(name, "/CR2/"))
            memcpy(strstr(name, "/CR2/"), "/cr2/", 5);
        zip_put_file(za, name, from, k % 2 ? ZIP_CM_DEFLATE : ZIP_CM_STORE);
        free(from);
    }
    zip_done(za);
}

static long find_entry(const rf_inputs *in, const char *zpath, const char *entry)
{
    char name[1024];
    snprintf(name, sizeof name, "%s:%s", zpath, entry);
    return find(in, name);
}

/* Finds the first local and central headers of the archive and sets the entry's
 * uncompressed size in both to size + delta (a header that lies). */
static void lie_about_size(const char *zpath, long delta)
{
    size_t n;
    unsigned char *d = (unsigned char *)test_read_file(zpath, &n);
    for (size_t i = 0; d && i + 46 <= n; i++) {
        int local = memcmp(d + i, "PK\3\4", 4) == 0, central = memcmp(d + i, "PK\1\2", 4) == 0;
        if (!local && !central)
            continue;
        size_t at = i + (local ? 22 : 24);
        uint32_t v = d[at] | d[at + 1] << 8 | d[at + 2] << 16 | (uint32_t)d[at + 3] << 24;
        v = (uint32_t)((long)v + delta);
        d[at] = (unsigned char)v, d[at + 1] = (unsigned char)(v >> 8), d[at + 2] = (unsigned char)(v >> 16),
        d[at + 3] = (unsigned char)(v >> 24);
    }
    test_write_file(zpath, d, n);
    free(d);
}

static void test_zip(const char *root)
{
    char *zdir = path_join(tmp, "z");
    mkdir(zdir, 0700);

    /* the export zipped: the same instances and pixels as the files, the DICOMDIR checked */
    char *good = path_join(zdir, "export.zip");
    make_export_zip(good, root, NULL, 0);
    const char *p1[] = {good};
    rf_inputs *in = collect(p1, 1, NULL);
    CHECKF(count_kind(in, RF_INPUT_ZIP_ENTRY) == NIMAGES && count_kind(in, RF_INPUT_DICOMDIR) == 1 &&
               count_kind(in, RF_INPUT_ERROR) == 0,
           "export.zip: %zu entries, %zu DICOMDIRs, %zu errors", count_kind(in, RF_INPUT_ZIP_ENTRY),
           count_kind(in, RF_INPUT_DICOMDIR), count_kind(in, RF_INPUT_ERROR));
    long at = find_entry(in, good, "export/DICOMDIR");
    CHECKF(at >= 0 && rf_inputs_at(in, (size_t)at)->kind == RF_INPUT_DICOMDIR &&
               rf_inputs_at(in, (size_t)at)->referenced == 31 && rf_inputs_at(in, (size_t)at)->missing == 0,
           "zipped DICOMDIR");
    for (size_t k = 0; k < NIMAGES; k++) {
        char entry[256], zsha[65], fsha[65];
        snprintf(entry, sizeof entry, "export/%s", IMAGES[k]);
        long i = find_entry(in, good, entry);
        CHECKF(i >= 0, "%s not listed", entry);
        if (i < 0)
            continue;
        item_sha(in, (size_t)i, zsha);
        char *fp = path_join(root, IMAGES[k]);
        const char *pf[] = {fp};
        rf_inputs *f = collect(pf, 1, NULL);
        item_sha(f, 0, fsha);
        CHECKF(zsha[0] && strcmp(zsha, fsha) == 0, "%s: zip %s, file %s", entry, zsha, fsha);
        rf_inputs_free(f);
        free(fp);
    }
    rf_inputs_free(in);

    /* a file left out, and a directory in other case: the DICOMDIR says which */
    char *partial = path_join(zdir, "partial.zip");
    make_export_zip(partial, root, "77654033/CT2/17136", 1);
    const char *p2[] = {partial};
    in = collect(p2, 1, NULL);
    long miss = find_entry(in, partial, "export/77654033/CT2/17136");
    CHECKF(miss >= 0 && rf_inputs_at(in, (size_t)miss)->kind == RF_INPUT_ERROR &&
               strstr(rf_inputs_at(in, (size_t)miss)->error, "not in the archive"),
           "missing entry");
    CHECKF(count_kind(in, RF_INPUT_ERROR) == 1, "%zu errors (cr2 must match CR2)", count_kind(in, RF_INPUT_ERROR));
    rf_inputs_free(in);

    /* hostile entries */
    char *ctp = path_join(root, "77654033/CT2/17106");
    size_t ctn;
    char *ct = test_read_file(ctp, &ctn);
    size_t zn;
    char *zbytes = test_read_file(good, &zn);
    char *bad = path_join(zdir, "hostile.zip");
    zip_t *za = zip_new(bad);
    size_t bomb_n = (size_t)48 << 20;
    char *zeros = calloc(1, bomb_n);
    zip_put(za, "bomb.dcm", zeros, bomb_n, ZIP_CM_DEFLATE);
    free(zeros);
    zip_int64_t enc = zip_put(za, "secret.dcm", ct, ctn, ZIP_CM_DEFLATE);
    CHECK(zip_file_set_encryption(za, (zip_uint64_t)enc, ZIP_EM_AES_256, "password") == 0);
    zip_put(za, "../../escape.dcm", ct, ctn, ZIP_CM_DEFLATE);
    zip_put(za, "/abs/olute.dcm", ct, ctn, ZIP_CM_STORE);
    zip_put(za, "inner.zip", zbytes, zn, ZIP_CM_STORE);
    zip_put(za, "disguised.dcm", zbytes, zn, ZIP_CM_STORE);
    zip_put(za, "ok.dcm", ct, ctn, ZIP_CM_DEFLATE);
    zip_dir_add(za, "empty/", ZIP_FL_ENC_UTF_8);
    zip_done(za);
    const char *p3[] = {bad};
    in = collect(p3, 1, NULL);
    CHECKF(rf_inputs_count(in) == 7, "hostile.zip: %zu items", rf_inputs_count(in));
    static const struct {
        const char *entry, *error; /* NULL: reads */
    } cases[] = {
        {"bomb.dcm", "compression ratio"},
        {"secret.dcm", "encrypted"},
        {"../../escape.dcm", NULL},
        {"/abs/olute.dcm", NULL},
        {"inner.zip", "zip archive inside a zip archive"},
        {"disguised.dcm", "zip archive inside a zip archive"},
        {"ok.dcm", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        long i = find_entry(in, bad, cases[c].entry);
        CHECKF(i >= 0, "%s not listed", cases[c].entry);
        if (i < 0)
            continue;
        rf_dicom_image img;
        rf_err err;
        int rc = rf_inputs_read(in, (size_t)i, RF_DICOM_PIXELS, &img, &err);
        if (!cases[c].error) {
            CHECKF(rc == 0, "%s: %s", cases[c].entry, err.msg);
        } else {
            const char *name = rf_inputs_at(in, (size_t)i)->name;
            CHECKF(rc != 0 && strstr(err.msg, cases[c].error) && strncmp(err.msg, name, strlen(name)) == 0 &&
                       !strchr(err.msg, '\n'),
                   "%s: rc %d: %s", cases[c].entry, rc, rc ? err.msg : "read");
        }
        if (!rc)
            rf_dicom_image_free(&img);
    }
    rf_inputs_free(in);

    /* the limits, each on its own */
    rf_input_limits lim;
    rf_input_limits_default(&lim);
    lim.max_entry_bytes = 1000;
    in = collect(p1, 1, &lim);
    int over = 0;
    for (size_t i = 0; i < rf_inputs_count(in); i++) {
        rf_dicom_image img;
        rf_err err;
        if (rf_inputs_at(in, i)->kind != RF_INPUT_ZIP_ENTRY)
            continue;
        if (rf_inputs_read(in, i, RF_DICOM_ATTRS, &img, &err) == 0)
            rf_dicom_image_free(&img);
        else
            over += strstr(err.msg, "over the limit of 1000 per entry") != NULL;
    }
    CHECKF(over == (int)NIMAGES, "per-entry limit: %d refused", over);
    rf_inputs_free(in);

    rf_input_limits_default(&lim);
    lim.max_total_bytes = 20000;
    in = collect(p1, 1, &lim);
    size_t past = 0;
    for (size_t i = 0; i < rf_inputs_count(in); i++)
        past += rf_inputs_at(in, i)->kind == RF_INPUT_ERROR && strstr(rf_inputs_at(in, i)->error, "archive's limit");
    CHECKF(past > 10 && count_kind(in, RF_INPUT_ZIP_ENTRY) > 0, "total limit: %zu refused", past);
    rf_inputs_free(in);

    rf_input_limits_default(&lim);
    lim.max_entries = 3;
    in = collect(p1, 1, &lim);
    at = find(in, good);
    CHECKF(at >= 0 && rf_inputs_at(in, (size_t)at)->kind == RF_INPUT_ERROR &&
               strstr(rf_inputs_at(in, (size_t)at)->error, "entries"),
           "entry count limit");
    CHECKF(rf_inputs_count(in) <= 4, "entry count limit: %zu items", rf_inputs_count(in));
    rf_inputs_free(in);

    /* a truncated archive, a file that only says .zip, an empty archive */
    char *trunc = path_join(zdir, "truncated.zip");
    test_write_file(trunc, zbytes, zn / 2);
    char *fake = path_join(zdir, "fake.zip");
    test_write_file(fake, "not a zip at all", 16);
    const char *p4[] = {trunc, fake};
    in = collect(p4, 2, NULL);
    CHECKF(rf_inputs_count(in) == 2 && count_kind(in, RF_INPUT_ERROR) == 2, "truncated/fake: %zu items",
           rf_inputs_count(in));
    for (size_t i = 0; i < rf_inputs_count(in); i++)
        CHECKF(strstr(rf_inputs_at(in, i)->error, "not a readable zip archive"), "%s", rf_inputs_at(in, i)->error);
    rf_inputs_free(in);

    /* sizes that lie: the data is longer, or shorter, than the headers say */
    for (int way = 0; way < 2; way++) {
        char *liar = path_join(zdir, way ? "shorter.zip" : "longer.zip");
        za = zip_new(liar);
        zip_put(za, "ct.dcm", ct, ctn, ZIP_CM_STORE);
        zip_done(za);
        lie_about_size(liar, way ? 100 : -100);
        const char *p5[] = {liar};
        in = collect(p5, 1, NULL);
        int failed = 0;
        for (size_t i = 0; i < rf_inputs_count(in); i++) {
            rf_dicom_image img;
            rf_err err;
            if (rf_inputs_read(in, i, RF_DICOM_PIXELS, &img, &err) == 0)
                rf_dicom_image_free(&img);
            else
                failed += strncmp(err.msg, liar, strlen(liar)) == 0;
        }
        CHECKF(rf_inputs_count(in) == 1 && failed == 1, "%s: %zu items, %d failed", liar, rf_inputs_count(in),
               failed);
        rf_inputs_free(in);
        free(liar);
    }

    /* two entries of one name (written by hand: libzip will not): the archive is refused, saying why */
    char *twice = path_join(zdir, "twice.zip");
    za = zip_new(twice);
    zip_put(za, "dupa.dcm", ct, ctn, ZIP_CM_DEFLATE);
    char *crp = path_join(root, "77654033/CR1/6154");
    zip_put_file(za, "dupb.dcm", crp, ZIP_CM_DEFLATE);
    free(crp);
    zip_done(za);
    while (patch_file(twice, "dupb.dcm", "dupa.dcm"))
        ;
    const char *p6[] = {twice};
    in = collect(p6, 1, NULL);
    CHECKF(rf_inputs_count(in) == 1 && rf_inputs_at(in, 0)->kind == RF_INPUT_ERROR &&
               strstr(rf_inputs_at(in, 0)->error, "two entries have the same name"),
           "same name twice: %zu items: %s", rf_inputs_count(in),
           rf_inputs_count(in) ? rf_inputs_at(in, 0)->error : "");
    rf_inputs_free(in);
    free(twice);

    /* radfuse dicom ls on the zip and on the DICOMDIR: the same hashes, exit 0;
     * on the hostile zip: exit 2, every entry a line */
    static char out[1 << 20], errb[1 << 14];
    char *dd = path_join(root, "DICOMDIR");
    char *argv1[] = {(char *)test_radfuse_bin(), "dicom", "ls", "--json", good, NULL};
    int st = test_run(argv1, out, sizeof out, errb, sizeof errb);
    CHECKF(st == 0, "ls export.zip: %d %s", st, errb);
    char *zout = strdup(out);
    char *argv2[] = {(char *)test_radfuse_bin(), "dicom", "ls", "--json", dd, NULL};
    st = test_run(argv2, out, sizeof out, errb, sizeof errb);
    CHECKF(st == 0, "ls DICOMDIR: %d %s", st, errb);
    int matched = 0;
    for (char *save = NULL, *line = strtok_r(zout, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(o, "pixel_sha256");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(o, "path");
        if (cJSON_IsString(sha) && cJSON_IsString(path)) {
            const char *rel = strstr(path->valuestring, ":export/");
            char want[512];
            snprintf(want, sizeof want, "\"path\":\"%s/%s\"", root, rel ? rel + 8 : "?");
            char *hit = strstr(out, want);
            char *eol = hit ? strchr(hit, '\n') : NULL;
            char *h = hit ? strstr(hit, sha->valuestring) : NULL;
            CHECKF(h && (!eol || h < eol), "%s: hash differs from the DICOMDIR's file", path->valuestring);
            matched += h && (!eol || h < eol);
        }
        cJSON_Delete(o);
    }
    CHECKF(matched == (int)NIMAGES, "%d hashes matched", matched);
    free(zout);
    char *argv3[] = {(char *)test_radfuse_bin(), "dicom", "ls", "--json", bad, NULL};
    st = test_run(argv3, out, sizeof out, errb, sizeof errb);
    CHECKF(st == 2 && test_count_lines(out) == 7, "ls hostile.zip: status %d, %d lines", st, test_count_lines(out));
    char *argv4[] = {(char *)test_radfuse_bin(), "dicom", "ls", bad, NULL};
    st = test_run(argv4, out, sizeof out, errb, sizeof errb);
    CHECKF(st == 2 && strstr(out, "errors (4):") && strstr(out, "hostile.zip:bomb.dcm: compression ratio"),
           "ls hostile.zip (report): %d: %s", st, out);

    free(dd);
    free(ct);
    free(ctp);
    free(zbytes);
    free(bad);
    free(trunc);
    free(fake);
    free(partial);
    free(good);
    free(zdir);
}

/* ---- DICOMDIRs that tripped DCMTK (tests/data/fuzz-regressions; the
 * allocation cap and leak checks are in test_dicom_fuzz_regressions) ---- */

static char *regression_file(const char *name, size_t *n)
{
    const char *src = getenv("RADFUSE_SOURCE");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/fuzz-regressions/%s", src && *src ? src : ".", name);
    char *d = test_read_file(path, n);
    CHECKF(d != NULL, "%s: cannot read", path);
    return d;
}

static void test_dicomdir_dcmtk_guards(void)
{
    char *ddir = path_join(tmp, "long-type"), *dd = path_join(ddir, "DICOMDIR");
    char *zpath = path_join(tmp, "long-type.zip"), *hpath = path_join(tmp, "huge-length.zip");
    mkdirs(ddir);
    size_t n, hn;
    char *data = regression_file("dicomdir-record-type-40-chars.dcm", &n);
    char *huge = regression_file("dicomdir-declared-length-4gib.dcm", &hn);
    if (!data || !huge)
        goto done;

    /* a 40-character DirectoryRecordType (DCMTK's DcmDirectoryRecord throws on
     * it): read as plain items, its one record and its file found missing */
    test_write_file(dd, data, n);
    const char *p1[] = {dd};
    rf_inputs *in = collect(p1, 1, NULL);
    long at = find(in, dd);
    CHECKF(at >= 0 && rf_inputs_at(in, (size_t)at)->kind == RF_INPUT_DICOMDIR &&
               rf_inputs_at(in, (size_t)at)->records == 1 && rf_inputs_at(in, (size_t)at)->referenced == 1 &&
               rf_inputs_at(in, (size_t)at)->missing == 1 && count_kind(in, RF_INPUT_ERROR) == 1,
           "long record type (file): %ld, %zu items", at, rf_inputs_count(in));
    rf_inputs_free(in);

    zip_t *za = zip_new(zpath);
    zip_put(za, "export/DICOMDIR", data, n, ZIP_CM_DEFLATE);
    zip_done(za);
    const char *p2[] = {zpath};
    in = collect(p2, 1, NULL);
    at = find_entry(in, zpath, "export/DICOMDIR");
    CHECKF(at >= 0 && rf_inputs_at(in, (size_t)at)->kind == RF_INPUT_DICOMDIR &&
               rf_inputs_at(in, (size_t)at)->records == 1 && rf_inputs_at(in, (size_t)at)->referenced == 1 &&
               rf_inputs_at(in, (size_t)at)->missing == 1 && find_entry(in, zpath, "export/IM1") >= 0,
           "long record type (zip entry)");
    rf_inputs_free(in);

    /* an element declaring 0xFFFFFFF0 bytes in a DICOMDIR read from memory:
     * not a DICOMDIR it can list, so left to the reader, which fails in one line */
    za = zip_new(hpath);
    zip_put(za, "DICOMDIR", huge, hn, ZIP_CM_STORE);
    zip_done(za);
    const char *p3[] = {hpath};
    in = collect(p3, 1, NULL);
    at = find_entry(in, hpath, "DICOMDIR");
    CHECKF(at >= 0 && rf_inputs_at(in, (size_t)at)->kind == RF_INPUT_ZIP_ENTRY && rf_inputs_count(in) == 1,
           "huge declared length (zip entry): %zu items", rf_inputs_count(in));
    if (at >= 0) {
        rf_dicom_image img;
        rf_err err;
        const char *name = rf_inputs_at(in, (size_t)at)->name;
        int rc = rf_inputs_read(in, (size_t)at, RF_DICOM_ATTRS, &img, &err);
        CHECKF(rc == RF_EFORMAT && strncmp(err.msg, name, strlen(name)) == 0 && !strchr(err.msg, '\n'),
               "huge declared length: %d %s", rc, rc ? err.msg : "read");
        rf_dicom_image_free(&img);
    }
    rf_inputs_free(in);
done:
    free(data);
    free(huge);
    free(dd);
    free(ddir);
    free(zpath);
    free(hpath);
}

int main(void)
{
    char root[1024];
    snprintf(root, sizeof root, "%s/data/dicom/pydicom-test-files/dicomdirtests", test_shared_dir());
    test_tmpdir(tmp, sizeof tmp);
    test_ordering();
    test_grouping();
    test_dicomdir_corpus(root);
    test_dicomdir_hostile(root);
    test_zip(root);
    test_dicomdir_dcmtk_guards();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return test_finish("test_dicom_study");
}
