/*
 * rf_batch_merge: the output directories of shard runs into one. Results are
 * keyed by study; a study met in two directories must have the same model
 * and findings there (then it is kept once), else the merge is refused.
 * Lines are written in key order, so that a merge's results.jsonl does not
 * depend on the order the shards finished in.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "batch/batch_internal.h"
#include "runtime/fileio.h"
#include "runtime/sha256.h"

#define MERGE_FILE_MAX ((size_t)1 << 32)

typedef struct m_entry {
    char key[17];
    char model[65];  /* the model's hash */
    char digest[65]; /* of the model's hash and the findings */
    int dir;
    long long offset, length;
} m_entry;

static int cmp_entry(const void *a, const void *b)
{
    const m_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->dir - y->dir;
}

/* What must agree between two results of one study: the model and the findings. */
static int line_digest(const char *line, size_t len, char key[17], char model_sha[65], char digest[65])
{
    cJSON *j = cJSON_ParseWithLength(line, len);
    cJSON *study = j ? cJSON_GetObjectItemCaseSensitive(j, "study") : NULL;
    cJSON *uid = study ? cJSON_GetObjectItemCaseSensitive(study, "study_instance_uid") : NULL;
    cJSON *model = j ? cJSON_GetObjectItemCaseSensitive(j, "model") : NULL;
    cJSON *sha = model ? cJSON_GetObjectItemCaseSensitive(model, "sha256") : NULL;
    cJSON *findings = j ? cJSON_GetObjectItemCaseSensitive(j, "findings") : NULL;
    char *f = findings ? cJSON_PrintUnformatted(findings) : NULL;
    int ok = cJSON_IsString(uid) && cJSON_IsString(sha) && f;
    if (ok) {
        rf_batch_key(uid->valuestring, key);
        snprintf(model_sha, 65, "%s", sha->valuestring);
        rf_sha256 s;
        uint8_t d[32];
        rf_sha256_init(&s);
        rf_sha256_update(&s, sha->valuestring, strlen(sha->valuestring));
        rf_sha256_update(&s, "\n", 1);
        rf_sha256_update(&s, f, strlen(f));
        rf_sha256_final(&s, d);
        rf_sha256_hex(d, digest);
    }
    free(f);
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

/* Copies the tree src to dst (files atomically). */
static int copy_tree(const char *src, const char *dst, rf_err *err)
{
    int rc = rf_mkdirs(dst, 0777, err);
    DIR *d = rc ? NULL : opendir(src);
    if (!rc && !d)
        return rf_err_set(err, RF_EIO, "%s: cannot list: %s", src, strerror(errno));
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char s[4096], t[4096];
        if (snprintf(s, sizeof s, "%s/%s", src, e->d_name) >= (int)sizeof s ||
            snprintf(t, sizeof t, "%s/%s", dst, e->d_name) >= (int)sizeof t) {
            rc = rf_err_set(err, RF_EINVAL, "%s/%s: path too long", src, e->d_name);
            break;
        }
        struct stat sb;
        if (lstat(s, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode)) {
            rc = copy_tree(s, t, err);
        } else if (S_ISREG(sb.st_mode)) {
            char *data = NULL;
            size_t n = 0;
            rc = rf_read_file(s, MERGE_FILE_MAX, &data, &n, err);
            if (!rc)
                rc = rf_write_file_atomic(t, data, n, err);
            free(data);
        }
    }
    if (d)
        closedir(d);
    return rc;
}

static int read_at(FILE *f, long long off, long long len, char **out)
{
    char *b = malloc((size_t)len + 1);
    if (!b)
        return -1;
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        return -1;
    }
    b[len] = 0;
    *out = b;
    return 0;
}

typedef struct m_lines {
    char **v;
    size_t n, cap;
} m_lines;

static int lines_push(m_lines *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **nv = realloc(l->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        l->v = nv;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strndup(s, n)))
        return -1;
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int key_done(const m_entry *v, size_t n, const char *key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(v[mid].key, key);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/*
 * What a shard directory's state says is missing: *incomplete += its
 * studies not yet done or failed. A directory without state.sqlite (a
 * merge's output) has nothing to say. A state without the study count (a
 * run killed before it had listed the export and recorded "total") cannot
 * tell whether its shard is complete: refused, as is a state that cannot be
 * read.
 */
static int shard_state(const char *dir, size_t *incomplete, rf_err *err)
{
    char path[4300];
    struct stat sb;
    snprintf(path, sizeof path, "%s/state.sqlite", dir);
    if (stat(path, &sb) != 0)
        return RF_OK;
    bt_state *st;
    rf_err e;
    if (bt_state_open_readonly(&st, dir, &e))
        return rf_err_set(err, RF_EIO, "merge: %s: cannot read its state: %s", dir, e.msg);
    char total[32];
    int rc = RF_OK;
    if (bt_state_get_meta(st, "total", total, sizeof total) != 0) {
        rc = rf_err_set(err, RF_EINVAL,
                        "merge: %s: its run stopped before it had listed its shard's studies (state.sqlite holds no "
                        "study count), so what it lacks is unknown: run that shard again to the end, then merge",
                        dir);
    } else {
        size_t done, failed, ferr;
        bt_state_counts(st, &done, &failed, &ferr);
        if ((size_t)atoll(total) > done + failed)
            *incomplete += (size_t)atoll(total) - done - failed;
    }
    bt_state_close(st);
    return rc;
}

int rf_batch_merge(const char *out, const char *const *dirs, int n, rf_batch_merge_info *info, rf_err *err)
{
    memset(info, 0, sizeof *info);
    if (n < 1)
        return rf_err_set(err, RF_EINVAL, "merge: no directory to merge");
    DIR *od = opendir(out);
    if (od) {
        struct dirent *e;
        int empty = 1;
        while ((e = readdir(od)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                empty = 0;
        closedir(od);
        if (!empty)
            return rf_err_set(err, RF_EINVAL, "%s: not empty: a merge goes into a new directory", out);
    }
    m_entry *v = NULL;
    size_t nv = 0, cap = 0;
    FILE **files = calloc((size_t)n, sizeof *files);
    int rc = files ? RF_OK : rf_err_set(err, RF_ENOMEM, "out of memory");
    char path[4300];
    for (int d = 0; !rc && d < n; d++) {
        /* a shard that has not finished, or cannot say whether it has */
        if ((rc = shard_state(dirs[d], &info->incomplete, err)))
            break;
        snprintf(path, sizeof path, "%s/results.jsonl", dirs[d]);
        files[d] = fopen(path, "rb");
        if (!files[d] && errno == ENOENT) {
            rc = rf_err_set(err, RF_EIO, "merge: %s: no results.jsonl: not a batch output directory, or its shard "
                            "has not started",
                            dirs[d]);
            break;
        }
        if (!files[d]) {
            rc = rf_err_set(err, RF_EIO, "%s: cannot open: %s", path, strerror(errno));
            break;
        }
        char *line = NULL;
        size_t lcap = 0;
        long long off = 0;
        ssize_t got;
        while ((got = getline(&line, &lcap, files[d])) > 0) {
            if (line[got - 1] != '\n')
                break; /* a partial last line (a killed run): not a result */
            if (nv == cap) {
                cap = cap ? cap * 2 : 1024;
                m_entry *nvp = realloc(v, cap * sizeof *v);
                if (!nvp) {
                    rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                    break;
                }
                v = nvp;
            }
            m_entry *e = &v[nv];
            if (line_digest(line, (size_t)got - 1, e->key, e->model, e->digest)) {
                rc = rf_err_set(err, RF_EFORMAT, "%s: byte %lld: not a result line", path, off);
                break;
            }
            /* results of two models must not end up side by side in one file */
            if (nv && strcmp(e->model, v[0].model) != 0) {
                rc = rf_err_set(err, RF_EINVAL, "merge: %s holds results of model %.16s..., %s of model %.16s...: refused",
                                dirs[v[0].dir], v[0].model, dirs[d], e->model);
                break;
            }
            e->dir = d;
            e->offset = off;
            e->length = got;
            nv++;
            off += got;
        }
        free(line);
    }
    if (!rc && nv)
        qsort(v, nv, sizeof *v, cmp_entry);
    /* one entry per study; differing duplicates refused */
    size_t m = 0;
    for (size_t i = 0; !rc && i < nv; i++) {
        if (m && strcmp(v[m - 1].key, v[i].key) == 0) {
            if (strcmp(v[m - 1].digest, v[i].digest) != 0)
                rc = rf_err_set(err, RF_EINVAL,
                                "merge: study %s has different results in %s and %s (overlapping shards read "
                                "differently): refused",
                                v[i].key, dirs[v[m - 1].dir], dirs[v[i].dir]);
            info->duplicates++;
            continue;
        }
        v[m++] = v[i];
    }
    info->results = m;
    if (!rc)
        rc = rf_mkdirs(out, 0777, err);
    /* results.jsonl */
    rf_atomic_file af;
    snprintf(path, sizeof path, "%s/results.jsonl", out);
    if (!rc)
        rc = rf_atomic_open(&af, path, err);
    for (size_t i = 0; !rc && i < m; i++) {
        char *line;
        if (read_at(files[v[i].dir], v[i].offset, v[i].length, &line)) {
            rc = rf_err_set(err, RF_EIO, "%s/results.jsonl: cannot read byte %lld again", dirs[v[i].dir],
                            v[i].offset);
            rf_atomic_abort(&af);
            break;
        }
        rc = rf_atomic_write(&af, line, (size_t)v[i].length, err);
        free(line);
    }
    if (!rc)
        rc = rf_atomic_commit(&af, err);
    /* the studies' folders */
    for (size_t i = 0; !rc && i < m; i++) {
        char src[4300], dst[4300];
        snprintf(src, sizeof src, "%s/studies/%s", dirs[v[i].dir], v[i].key);
        snprintf(dst, sizeof dst, "%s/studies/%s", out, v[i].key);
        struct stat sb;
        if (stat(src, &sb) == 0)
            rc = copy_tree(src, dst, err);
    }
    /* errors: the union, without studies that are done */
    m_lines el = {0};
    for (int d = 0; !rc && d < n; d++) {
        snprintf(path, sizeof path, "%s/errors.jsonl", dirs[d]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char *line = NULL;
        size_t lcap = 0;
        ssize_t got;
        while (!rc && (got = getline(&line, &lcap, f)) > 0) {
            if (line[got - 1] != '\n')
                break;
            cJSON *j = cJSON_ParseWithLength(line, (size_t)got - 1);
            cJSON *k = j ? cJSON_GetObjectItemCaseSensitive(j, "key") : NULL;
            int skip = cJSON_IsString(k) && key_done(v, m, k->valuestring);
            cJSON_Delete(j);
            if (!skip && lines_push(&el, line, (size_t)got))
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
        }
        free(line);
        fclose(f);
    }
    if (!rc) {
        if (el.n)
            qsort(el.v, el.n, sizeof *el.v, cmp_str);
        snprintf(path, sizeof path, "%s/errors.jsonl", out);
        rc = rf_atomic_open(&af, path, err);
        for (size_t i = 0; !rc && i < el.n; i++) {
            if (i && strcmp(el.v[i], el.v[i - 1]) == 0)
                continue;
            info->errors++;
            rc = rf_atomic_write(&af, el.v[i], strlen(el.v[i]), err);
        }
        if (!rc)
            rc = rf_atomic_commit(&af, err);
    }
    for (size_t i = 0; i < el.n; i++)
        free(el.v[i]);
    free(el.v);
    for (int d = 0; files && d < n; d++)
        if (files[d])
            fclose(files[d]);
    free(files);
    free(v);
    return rc;
}
