/*
 * The export of a batch: every DICOM instance under the root (rf_inputs:
 * trees, DICOMDIRs, zip files) grouped by StudyInstanceUID across the whole
 * export, one study wherever its instances lie; notes and labs
 * paired by a manifest CSV or by the folder convention (docs/batch.md).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "batch/batch_internal.h"
#include "radfuse/dicom_input.h"
#include "runtime/fileio.h"
#include "runtime/sha256.h"
#include "text/csv.h"

#define BT_MANIFEST_MAX ((size_t)1 << 30)

void rf_batch_key(const char *study_uid, char key[17])
{
    rf_sha256 s;
    uint8_t d[32];
    char hex[65];
    rf_sha256_init(&s);
    rf_sha256_update(&s, study_uid, strlen(study_uid));
    rf_sha256_final(&s, d);
    rf_sha256_hex(d, hex);
    memcpy(key, hex, 16);
    key[16] = 0;
}

int rf_batch_shard_of(const char *text, int n)
{
    if (n <= 1)
        return 0;
    rf_sha256 s;
    uint8_t d[32];
    rf_sha256_init(&s);
    rf_sha256_update(&s, text, strlen(text));
    rf_sha256_final(&s, d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | d[i];
    return (int)(v % (uint64_t)n);
}

static int push_str(char ***v, int *n, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (strcmp((*v)[i], s) == 0)
            return 0;
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv)
        return -1;
    *v = nv;
    if (!(nv[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

static void free_strs(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void bt_export_free(bt_export *ex)
{
    for (size_t i = 0; i < ex->n; i++) {
        bt_study *s = &ex->studies[i];
        free(s->uid);
        free_strs(s->paths, s->npaths);
        free(s->zip_items);
        free_strs(s->notes, s->nnotes);
        free_strs(s->labs, s->nlabs);
        free(s->prior_uid);
        free(s->accession);
    }
    free(ex->studies);
    for (size_t i = 0; i < ex->nerrors; i++) {
        free(ex->errors[i].name);
        free(ex->errors[i].reason);
    }
    free(ex->errors);
    for (size_t i = 0; i < ex->nignored; i++) {
        free(ex->ignored[i].name);
        free(ex->ignored[i].reason);
    }
    free(ex->ignored);
    if (ex->in) {
        rf_inputs_free(ex->in);
        pthread_mutex_destroy(&ex->zip_mu);
    }
    memset(ex, 0, sizeof *ex);
}

/* name relative to root ("ROOT/a/b" -> "a/b", "ROOT/x.zip:e" -> "x.zip:e"). */
static const char *relative(const char *root, const char *name)
{
    size_t n = strlen(root);
    if (strncmp(name, root, n) == 0 && name[n] == '/')
        return name + n + 1;
    return name;
}

/* A file of *list (the errors or the ignored files), its name relative to root. */
static int add_file(bt_file_error **list, size_t *n, const char *root, const char *name, const char *reason,
                    const char *stage, int shard, int nshards)
{
    bt_file_error *ne = realloc(*list, (*n + 1) * sizeof *ne);
    if (!ne)
        return -1;
    *list = ne;
    bt_file_error *e = &ne[*n];
    e->name = strdup(relative(root, name));
    e->reason = strdup(reason);
    e->stage = stage;
    if (!e->name || !e->reason) {
        free(e->name);
        free(e->reason);
        return -1;
    }
    e->shard_hit = rf_batch_shard_of(e->name, nshards) == shard;
    (*n)++;
    return 0;
}

static int add_error(bt_export *ex, const char *root, const char *name, const char *reason, const char *stage,
                     int shard, int nshards)
{
    return add_file(&ex->errors, &ex->nerrors, root, name, reason, stage, shard, nshards);
}

/* ---- files that are no DICOM by their name (docs/batch.md, "Files that are not DICOM") ---- */

/* Extensions of documents, tables, web pages and pictures: never a DICOM file's. */
static const char *const doc_ext[] = {"txt",  "md",   "markdown", "rst",  "html", "htm",  "pdf", "csv",
                                      "tsv",  "json", "xml",      "yaml", "yml",  "log",  "rtf", "doc",
                                      "docx", "odt",  "xls",      "xlsx", "ods",  "png",  "jpg", "jpeg",
                                      "gif",  "bmp",  "svg",      "webp", "ini",  "sha256", "md5"};
/* Names of a dataset's or a project's documents, with any or no extension. */
static const char *const doc_stem[] = {"readme",  "license",   "licence",   "copying",  "notice",
                                       "authors", "changelog", "attribution", "citation"};
/* What desktops leave in folders. */
static const char *const doc_name[] = {".ds_store", "thumbs.db", "desktop.ini"};

int bt_not_dicom_name(const char *name)
{
    const char *slash = strrchr(name, '/'), *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    for (size_t i = 0; i < sizeof doc_name / sizeof *doc_name; i++)
        if (strcasecmp(base, doc_name[i]) == 0)
            return 1;
    if (dot && dot > base)
        for (size_t i = 0; i < sizeof doc_ext / sizeof *doc_ext; i++)
            if (strcasecmp(dot + 1, doc_ext[i]) == 0)
                return 1;
    size_t stem = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    for (size_t i = 0; i < sizeof doc_stem / sizeof *doc_stem; i++)
        if (strlen(doc_stem[i]) == stem && strncasecmp(base, doc_stem[i], stem) == 0)
            return 1;
    return 0;
}

/* Whether the file at path carries the DICOM preamble ("DICM" at byte 128). */
static int has_dicm(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char b[132];
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    return n == sizeof b && memcmp(b + 128, "DICM", 4) == 0;
}

/* ---- the folder convention ---- */

/* Which study owns each folder: the only study whose DICOM files lie under it. */
typedef struct dir_owner {
    char *dir;
    long study; /* -2: several */
} dir_owner;

static int cmp_owner(const void *a, const void *b)
{
    return strcmp(((const dir_owner *)a)->dir, ((const dir_owner *)b)->dir);
}

static long owner_of(const dir_owner *o, size_t n, const char *dir)
{
    dir_owner key = {(char *)dir, 0};
    const dir_owner *hit = bsearch(&key, o, n, sizeof *o, cmp_owner);
    return hit ? hit->study : -1;
}

static int is_note_name(const char *base)
{
    size_t n = strlen(base);
    return strncasecmp(base, "note", 4) == 0 && n > 4 && strcasecmp(base + n - 4, ".txt") == 0;
}

static int is_labs_name(const char *base)
{
    size_t n = strlen(base);
    if (strncasecmp(base, "labs", 4) != 0 || n < 8)
        return 0;
    return strcasecmp(base + n - 4, ".csv") == 0 || strcasecmp(base + n - 4, ".hl7") == 0 ||
           strcasecmp(base + n - 5, ".json") == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The note and labs files directly in dir, sorted by name. */
static int scan_folder(const char *dir, bt_study *s)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char **notes = NULL, **labs = NULL;
    int nn = 0, nl = 0, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        int note = is_note_name(e->d_name), lab = !note && is_labs_name(e->d_name);
        if (!note && !lab)
            continue;
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat sb;
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        rc = push_str(note ? &notes : &labs, note ? &nn : &nl, path);
    }
    closedir(d);
    if (nn)
        qsort(notes, (size_t)nn, sizeof *notes, cmp_str);
    if (nl)
        qsort(labs, (size_t)nl, sizeof *labs, cmp_str);
    for (int i = 0; !rc && i < nn; i++)
        rc = push_str(&s->notes, &s->nnotes, notes[i]);
    for (int i = 0; !rc && i < nl; i++)
        rc = push_str(&s->labs, &s->nlabs, labs[i]);
    free_strs(notes, nn);
    free_strs(labs, nl);
    return rc;
}

/* Pairs notes and labs by folder: in the folder of the study's files and in
 * each folder above it that holds no other study, up to the root. */
static int pair_folders(const char *root, bt_export *ex)
{
    dir_owner *o = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    size_t rootlen = strlen(root);
    for (size_t i = 0; !rc && i < ex->n; i++) {
        bt_study *s = &ex->studies[i];
        for (int k = 0; !rc && k < s->npaths; k++) {
            char *d = strdup(s->paths[k]);
            if (!d) {
                rc = -1;
                break;
            }
            for (char *slash = strrchr(d, '/'); slash && (size_t)(slash - d) >= rootlen; slash = strrchr(d, '/')) {
                *slash = 0;
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    dir_owner *no = realloc(o, cap * sizeof *o);
                    if (!no) {
                        rc = -1;
                        break;
                    }
                    o = no;
                }
                if (!(o[n].dir = strdup(d))) {
                    rc = -1;
                    break;
                }
                o[n++].study = (long)i;
            }
            free(d);
        }
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            free(o[i].dir);
        free(o);
        return rc;
    }
    if (n)
        qsort(o, n, sizeof *o, cmp_owner);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && strcmp(o[m - 1].dir, o[i].dir) == 0) {
            if (o[m - 1].study != o[i].study)
                o[m - 1].study = -2;
            free(o[i].dir);
            continue;
        }
        o[m++] = o[i];
    }
    for (size_t i = 0; !rc && i < ex->n; i++) {
        bt_study *s = &ex->studies[i];
        if (s->pairing != BT_PAIR_NONE || s->npaths == 0)
            continue;
        /* the folders of its files that it owns, and theirs above */
        for (int k = 0; !rc && k < s->npaths; k++) {
            char *d = strdup(s->paths[k]);
            if (!d) {
                rc = -1;
                break;
            }
            for (char *slash = strrchr(d, '/'); slash && (size_t)(slash - d) >= rootlen; slash = strrchr(d, '/')) {
                *slash = 0;
                if (owner_of(o, m, d) != (long)i)
                    break;
                int nn = s->nnotes, nl = s->nlabs;
                rc = scan_folder(d, s);
                if (s->nnotes > nn || s->nlabs > nl)
                    s->pairing = BT_PAIR_FOLDER;
            }
            free(d);
        }
    }
    for (size_t i = 0; i < m; i++)
        free(o[i].dir);
    free(o);
    return rc;
}

/* ---- the manifest ---- */

static long find_uid(const bt_export *ex, const char *uid)
{
    size_t lo = 0, hi = ex->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(ex->studies[mid].uid, uid);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* ';'-separated paths, relative to base (the manifest's folder) unless absolute. */
static int add_paths(char ***v, int *n, const char *field, const char *base)
{
    const char *p = field;
    while (*p) {
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len) {
            char path[4096];
            int w = p[0] == '/' ? snprintf(path, sizeof path, "%.*s", (int)len, p)
                                : snprintf(path, sizeof path, "%s/%.*s", base, (int)len, p);
            if (w >= (int)sizeof path || push_str(v, n, path))
                return -1;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

typedef struct acc_ref {
    const char *acc;
    size_t study;
} acc_ref;

static int cmp_acc(const void *a, const void *b)
{
    const acc_ref *x = a, *y = b;
    int c = strcmp(x->acc, y->acc);
    return c ? c : x->study < y->study ? -1 : x->study > y->study;
}

static int read_manifest(const char *path, const char *root, bt_export *ex, int shard, int nshards, rf_err *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = rf_read_file(path, BT_MANIFEST_MAX, &data, &len, err);
    if (rc)
        return rc;
    char base[4096];
    snprintf(base, sizeof base, "%s", path);
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(base, sizeof base, ".");
    text_csv csv;
    text_csv_opts co = {.skip_blank = true};
    text_csv_init(&csv, path, data, len, &co);
    bool got;
    enum { C_UID, C_ACC, C_NOTES, C_LABS, C_PRIOR, C_N };
    static const char *const names[C_N] = {"study_instance_uid", "accession_number", "notes", "labs",
                                           "prior_study_instance_uid"};
    long col[C_N] = {-1, -1, -1, -1, -1};
    rc = text_csv_read(&csv, &got, err);
    if (!rc && !got)
        rc = rf_err_set(err, RF_EFORMAT, "%s: empty manifest (no header)", path);
    for (size_t i = 0; !rc && i < csv.nfields; i++) {
        const char *h = text_csv_field(&csv, i, NULL);
        for (int c = 0; c < C_N; c++)
            if (strcmp(h, names[c]) == 0)
                col[c] = (long)i;
    }
    if (!rc && col[C_UID] < 0 && col[C_ACC] < 0)
        rc = rf_err_set(err, RF_EFORMAT, "%s: the header has neither study_instance_uid nor accession_number", path);
    size_t ncols = csv.nfields;
    /* the studies that have an accession number, sorted by it */
    acc_ref *by_acc = calloc(ex->n ? ex->n : 1, sizeof *by_acc);
    size_t nacc = 0;
    if (!rc && !by_acc)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < ex->n; i++)
        if (ex->studies[i].accession)
            by_acc[nacc++] = (acc_ref){ex->studies[i].accession, i};
    if (nacc)
        qsort(by_acc, nacc, sizeof *by_acc, cmp_acc);
    while (!rc) {
        rc = text_csv_read(&csv, &got, err);
        if (rc || !got)
            break;
        if (csv.nfields != ncols) {
            rc = rf_err_set(err, RF_EFORMAT, "%s:%zu: %zu fields, the header has %zu", path, csv.line, csv.nfields,
                            ncols);
            break;
        }
        const char *uid = col[C_UID] >= 0 ? text_csv_field(&csv, (size_t)col[C_UID], NULL) : "";
        const char *acc = col[C_ACC] >= 0 ? text_csv_field(&csv, (size_t)col[C_ACC], NULL) : "";
        long hit = -1;
        int many = 0;
        if (uid[0]) {
            hit = find_uid(ex, uid);
        } else if (acc[0] && nacc) {
            /* the first of the studies with this accession number, and whether there are more */
            size_t lo = 0, hi = nacc;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (strcmp(by_acc[mid].acc, acc) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < nacc && strcmp(by_acc[lo].acc, acc) == 0) {
                hit = (long)by_acc[lo].study;
                many = lo + 1 < nacc && strcmp(by_acc[lo + 1].acc, acc) == 0;
            }
        }
        char where[64];
        snprintf(where, sizeof where, "manifest line %zu", csv.line);
        if (hit < 0 || many) {
            /* placed in a shard by what the row names, so that one shard reports it */
            const char *reason = !uid[0] && !acc[0] ? "names no study (study_instance_uid and accession_number empty)"
                                 : many           ? "its accession_number matches several studies"
                                                  : "names a study that is not in the export";
            if (add_error(ex, root, where, reason, "manifest", 0, 1)) {
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                break;
            }
            ex->errors[ex->nerrors - 1].shard_hit = rf_batch_shard_of(uid[0] ? uid : acc, nshards) == shard;
            continue;
        }
        bt_study *s = &ex->studies[hit];
        s->pairing = BT_PAIR_MANIFEST;
        if ((col[C_NOTES] >= 0 && add_paths(&s->notes, &s->nnotes, text_csv_field(&csv, (size_t)col[C_NOTES], NULL),
                                            base)) ||
            (col[C_LABS] >= 0 && add_paths(&s->labs, &s->nlabs, text_csv_field(&csv, (size_t)col[C_LABS], NULL), base))) {
            rc = rf_err_set(err, RF_ENOMEM, "%s:%zu: out of memory or a path too long", path, csv.line);
            break;
        }
        const char *prior = col[C_PRIOR] >= 0 ? text_csv_field(&csv, (size_t)col[C_PRIOR], NULL) : "";
        if (prior[0]) {
            free(s->prior_uid);
            if (!(s->prior_uid = strdup(prior))) {
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                break;
            }
            s->prior = find_uid(ex, prior);
        }
    }
    text_csv_free(&csv);
    free(by_acc);
    free(data);
    return rc;
}

/* ---- discovery ---- */

typedef struct bt_inst {
    char *study, *sop, *accession;
    size_t item; /* in the listing */
} bt_inst;

static int cmp_inst(const void *a, const void *b)
{
    const bt_inst *x = a, *y = b;
    int c = strcmp(x->study, y->study);
    if (!c)
        c = strcmp(x->sop, y->sop);
    return c ? c : x->item < y->item ? -1 : x->item > y->item;
}

/* An instance without the UIDs that place it cannot be part of a study (as rf_studies_add says). */
static int placeable(const char *name, const rf_dicom_image *img, rf_err *err)
{
    if (!img->study_uid[0])
        return rf_err_set(err, RF_EFORMAT, "%s: no StudyInstanceUID (0020,000D): cannot be placed in a study", name);
    if (!img->series_uid[0])
        return rf_err_set(err, RF_EFORMAT, "%s: no SeriesInstanceUID (0020,000E): cannot be placed in a study", name);
    if (!img->sop_uid[0])
        return rf_err_set(err, RF_EFORMAT, "%s: no SOPInstanceUID (0008,0018): cannot be placed in a study", name);
    return RF_OK;
}

static int cmp_study(const void *a, const void *b)
{
    return strcmp(((const bt_study *)a)->uid, ((const bt_study *)b)->uid);
}

/* The real paths of every note and labs file of the export, sorted: such
 * files met in the walk are no bad DICOM files. */
static int paired_files(const bt_export *ex, char ***out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < ex->n; i++) {
        const bt_study *s = &ex->studies[i];
        for (int k = 0; k < s->nnotes + s->nlabs; k++) {
            const char *p = k < s->nnotes ? s->notes[k] : s->labs[k - s->nnotes];
            char *rp = realpath(p, NULL);
            if (!rp)
                continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                char **nv = realloc(*out, cap * sizeof *nv);
                if (!nv) {
                    free(rp);
                    return -1;
                }
                *out = nv;
            }
            (*out)[(*n)++] = rp;
        }
    }
    if (*n)
        qsort(*out, *n, sizeof **out, cmp_str);
    return 0;
}

static int is_paired(char *const *paired, size_t n, const char *path)
{
    char *rp = realpath(path, NULL);
    int hit = rp && n && bsearch(&rp, paired, n, sizeof *paired, cmp_str) != NULL;
    free(rp);
    return hit;
}

/* The attributes of items [first, first + n): files read by `threads`
 * threads at once (DCMTK's reader is thread-safe); zip entries, which share
 * an archive handle, are left for the caller (rc[k] = -1). */
typedef struct read_chunk {
    rf_inputs *in;
    size_t first, n;
    rf_dicom_image *img;
    int *rc;
    rf_err *err;
    atomic_size_t next;
} read_chunk;

static void *read_files(void *arg)
{
    read_chunk *c = arg;
    for (size_t k; (k = atomic_fetch_add(&c->next, 1)) < c->n;) {
        const rf_input *item = rf_inputs_at(c->in, c->first + k);
        memset(&c->img[k], 0, sizeof c->img[k]);
        c->rc[k] = item->kind == RF_INPUT_FILE ? rf_inputs_read(c->in, c->first + k,
                                                                RF_DICOM_ATTRS | RF_DICOM_NO_PIXELS_OK, &c->img[k],
                                                                &c->err[k])
                                               : -1;
    }
    return NULL;
}

#define BT_CHUNK 512

int bt_discover(const char *root_in, const char *manifest, int shard, int nshards, int threads, bt_export *ex,
                rf_err *err)
{
    memset(ex, 0, sizeof *ex);
    char root[4096];
    if (snprintf(root, sizeof root, "%s", root_in) >= (int)sizeof root)
        return rf_err_set(err, RF_EINVAL, "%s: path too long", root_in);
    for (size_t n = strlen(root); n > 1 && root[n - 1] == '/'; n--)
        root[n - 1] = 0;
    struct stat sb;
    if (stat(root, &sb) != 0)
        return rf_err_set(err, RF_EIO, "%s: no such file or directory", root);
    const char *paths[1] = {root};
    rf_inputs *in = NULL;
    int rc = rf_inputs_collect(paths, 1, NULL, &in, err);
    if (rc)
        return rc;
    size_t nitems = rf_inputs_count(in);
    /* what grouping needs of each instance (the read groups a study's own again) */
    bt_inst *inst = calloc(nitems ? nitems : 1, sizeof *inst);
    size_t ninst = 0;
    /* items that failed: reported after pairing, unless they are notes or labs */
    size_t *bad = calloc(nitems ? nitems : 1, sizeof *bad);
    char **bad_reason = calloc(nitems ? nitems : 1, sizeof *bad_reason);
    size_t nbad = 0;
    if (!inst || !bad || !bad_reason)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory listing %s", root);
    read_chunk c = {.in = in};
    c.img = calloc(BT_CHUNK, sizeof *c.img);
    c.rc = calloc(BT_CHUNK, sizeof *c.rc);
    c.err = calloc(BT_CHUNK, sizeof *c.err);
    if (threads < 1)
        threads = 1;
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    if (!rc && (!c.img || !c.rc || !c.err || !th))
        rc = rf_err_set(err, RF_ENOMEM, "out of memory listing %s", root);
    for (size_t first = 0; !rc && first < nitems; first += BT_CHUNK) {
        c.first = first;
        c.n = nitems - first < BT_CHUNK ? nitems - first : BT_CHUNK;
        atomic_store(&c.next, 0);
        int started = 0;
        for (; started < threads - 1; started++)
            if (pthread_create(&th[started], NULL, read_files, &c) != 0)
                break;
        read_files(&c);
        for (int t = 0; t < started; t++)
            pthread_join(th[t], NULL);
        for (size_t k = 0; k < c.n; k++) {
            size_t i = first + k;
            const rf_input *item = rf_inputs_at(in, i);
            rf_dicom_image *img = &c.img[k];
            rf_err *e = &c.err[k];
            if (rc) {
                rf_dicom_image_free(img);
                continue;
            }
            if (item->kind == RF_INPUT_DICOMDIR) {
                if (item->missing > 0) {
                    char why[128];
                    snprintf(why, sizeof why, "DICOMDIR: %ld referenced file%s missing or refused", item->missing,
                             item->missing == 1 ? "" : "s");
                    if (!(bad_reason[nbad] = strdup(why)))
                        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                    bad[nbad++] = i;
                }
                continue;
            }
            if (c.rc[k] == -1)
                c.rc[k] = rf_inputs_read(in, i, RF_DICOM_ATTRS | RF_DICOM_NO_PIXELS_OK, img, e);
            if (!c.rc[k] && (c.rc[k] = placeable(item->name, img, e)) == 0) {
                bt_inst *t = &inst[ninst];
                t->item = i;
                t->study = strdup(img->study_uid);
                t->sop = strdup(img->sop_uid);
                t->accession = img->accession_number[0] ? strdup(img->accession_number) : NULL;
                ninst++;
                if (!t->study || !t->sop || (img->accession_number[0] && !t->accession))
                    rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            }
            if (!rc && c.rc[k]) {
                if (!(bad_reason[nbad] = strdup(rf_err_without_name(e->msg, item->name))))
                    rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                bad[nbad++] = i;
            }
            rf_dicom_image_free(img);
        }
    }
    free(c.img);
    free(c.rc);
    free(c.err);
    free(th);
    /* studies: runs of one StudyInstanceUID; an instance counted once per SOPInstanceUID */
    if (!rc && ninst)
        qsort(inst, ninst, sizeof *inst, cmp_inst);
    size_t nst = 0;
    for (size_t j = 0; j < ninst; j++)
        nst += j == 0 || strcmp(inst[j].study, inst[j - 1].study) != 0;
    if (!rc && nst && !(ex->studies = calloc(nst, sizeof *ex->studies)))
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    bt_study *st = NULL;
    for (size_t j = 0; !rc && j < ninst; j++) {
        const bt_inst *t = &inst[j];
        if (j == 0 || strcmp(t->study, inst[j - 1].study) != 0) {
            st = &ex->studies[ex->n++];
            st->prior = -1;
            if (!(st->uid = strdup(t->study))) {
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                break;
            }
            rf_batch_key(st->uid, st->key);
            st->shard_hit = rf_batch_shard_of(st->uid, nshards) == shard;
        }
        if (j == 0 || st->instances == 0 || strcmp(t->sop, inst[j - 1].sop) != 0)
            st->instances++;
        if (!st->accession && t->accession && !(st->accession = strdup(t->accession)))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        const rf_input *item = rf_inputs_at(in, t->item);
        if (item->kind == RF_INPUT_ZIP_ENTRY) {
            /* read from the listing for the study's read (stage_read.c): giving the read the
             * archive would list every entry of it again for each of its studies */
            size_t *nz = realloc(st->zip_items, (st->nzip + 1) * sizeof *nz);
            if (!nz)
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            else
                (st->zip_items = nz)[st->nzip++] = t->item;
        } else if (item->path) {
            /* each file is one item of the listing: no duplicates to look for */
            char **np = realloc(st->paths, (size_t)(st->npaths + 1) * sizeof *np);
            if (!np || !(np[st->npaths] = strdup(item->path))) {
                if (np)
                    st->paths = np;
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            } else {
                st->paths = np;
                st->npaths++;
            }
        }
    }
    if (!rc && ex->n)
        qsort(ex->studies, ex->n, sizeof *ex->studies, cmp_study);
    for (size_t i = 0; !rc && i + 1 < ex->n; i++)
        if (strcmp(ex->studies[i].key, ex->studies[i + 1].key) == 0)
            rc = rf_err_set(err, RF_EINVAL, "studies %s and %s have the same key %s", ex->studies[i].uid,
                            ex->studies[i + 1].uid, ex->studies[i].key);
    if (!rc && manifest)
        rc = read_manifest(manifest, root, ex, shard, nshards, err);
    if (!rc && pair_folders(root, ex))
        rc = rf_err_set(err, RF_ENOMEM, "out of memory pairing notes and labs");
    char **paired = NULL;
    size_t npaired = 0;
    char *manifest_real = manifest ? realpath(manifest, NULL) : NULL;
    if (!rc && paired_files(ex, &paired, &npaired))
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    for (size_t b = 0; !rc && b < nbad; b++) {
        const rf_input *item = rf_inputs_at(in, bad[b]);
        if (item->path && is_paired(paired, npaired, item->path))
            continue;
        if (manifest_real && item->path && is_paired(&manifest_real, 1, item->path))
            continue;
        /* a file on disk that is plainly no DICOM (a document by its name, no preamble) is
         * ignored, not an error: exports made from datasets carry READMEs and licences */
        int ignore = item->kind == RF_INPUT_FILE && item->path && bt_not_dicom_name(item->path) &&
                     !has_dicm(item->path);
        if (ignore ? add_file(&ex->ignored, &ex->nignored, root, item->name, "not DICOM (a document by its name)",
                              "discover", shard, nshards)
                   : add_error(ex, root, item->name, bad_reason[b], "discover", shard, nshards))
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < npaired; i++)
        free(paired[i]);
    free(paired);
    free(manifest_real);
    for (size_t b = 0; b < nbad; b++)
        free(bad_reason[b]);
    free(bad_reason);
    free(bad);
    for (size_t j = 0; j < ninst; j++) {
        free(inst[j].study);
        free(inst[j].sop);
        free(inst[j].accession);
    }
    free(inst);
    ex->in = in;
    pthread_mutex_init(&ex->zip_mu, NULL);
    if (rc)
        bt_export_free(ex);
    return rc;
}
