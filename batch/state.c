/*
 * The durable state of a batch directory: DIR/results.jsonl (appended, one
 * line per study, fsynced before anything records it) and DIR/state.sqlite
 * (SQLite from Debian: WAL, synchronous=FULL; a crash-safe store with
 * transactions rather than a journal format of our own).
 *
 * The order that makes a kill at any moment safe: a study's folder is
 * written under studies/<key>.tmp and renamed into place; its line is
 * appended to results.jsonl and fsynced; then the state commits it as done
 * with the line's offset. On open, the lines past the last committed one are
 * either a partial line (cut) or lines whose commit was lost (recorded now),
 * and leftovers of unfinished writes (*.tmp folders, *.tmp.<pid> files) are
 * removed. A study is therefore in results.jsonl exactly once.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch/batch_internal.h"
#include "runtime/fileio.h"

struct bt_state {
    sqlite3 *db;
    char *dir;
    int lock;     /* DIR/lock, flock'd for the process's life (released by the kernel on any exit); -1 read-only */
    int fd;       /* results.jsonl, append-only; -1 read-only */
    off_t size;   /* its length: every line complete */
};

int bt_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode))
        return unlink(path);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[4096];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub || bt_remove_tree(sub))
            rc = -1;
    }
    closedir(d);
    return rc ? rc : rmdir(path);
}

int bt_sync_dir(const char *dir, rf_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return rf_err_set(err, RF_EIO, "%s: cannot sync: %s", dir, strerror(e));
    }
    close(fd);
    return RF_OK;
}

/* A temporary name of an atomic write ("x.tmp.<pid>") or a study folder in the making ("<key>.tmp"). */
static int is_leftover(const char *name)
{
    const char *t = strstr(name, ".tmp");
    if (!t)
        return 0;
    if (t[4] == 0)
        return 1;
    if (t[4] != '.' || !t[5])
        return 0;
    return strspn(t + 5, "0123456789") == strlen(t + 5);
}

/* Removes the leftovers in dir (not recursing into the finished study folders). */
static int clean_dir(const char *dir, rf_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? RF_OK : rf_err_set(err, RF_EIO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = RF_OK;
    while (!rc && (e = readdir(d))) {
        if (!is_leftover(e->d_name))
            continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        if (bt_remove_tree(sub))
            rc = rf_err_set(err, RF_EIO, "%s: cannot remove: %s", sub, strerror(errno));
    }
    closedir(d);
    return rc;
}

static int db_fail(bt_state *st, rf_err *err, const char *what)
{
    int code = sqlite3_errcode(st->db);
    return rf_err_set(err, RF_EIO, "%s/state.sqlite: %s: %s%s", st->dir, what, sqlite3_errmsg(st->db),
                      code == SQLITE_FULL ? " (the disk is full)" : "");
}

static int exec(bt_state *st, const char *sql, rf_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = sqlite3_errcode(st->db);
        rf_err_set(err, RF_EIO, "%s/state.sqlite: %s%s", st->dir, msg ? msg : "error",
                   code == SQLITE_FULL ? " (the disk is full)" : "");
        sqlite3_free(msg);
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        return RF_EIO;
    }
    return RF_OK;
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS studies(key TEXT PRIMARY KEY, uid TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, offset INTEGER, length INTEGER, stage TEXT, error TEXT,"
    " updated TEXT);"
    "CREATE TABLE IF NOT EXISTS file_errors(name TEXT PRIMARY KEY, stage TEXT NOT NULL, reason TEXT NOT NULL);";

static int open_db(bt_state *st, int readonly, rf_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/state.sqlite", st->dir);
    int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &st->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        int rc = rf_err_set(err, RF_EIO, "%s: cannot open: %s", path, st->db ? sqlite3_errmsg(st->db) : "no memory");
        sqlite3_close(st->db);
        st->db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(st->db, 10000);
    if (readonly)
        return RF_OK;
    int rc = exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err);
    if (!rc)
        rc = exec(st, schema, err);
    return rc;
}

int bt_state_get_meta(bt_state *st, const char *name, char *value, size_t cap)
{
    sqlite3_stmt *q;
    value[0] = 0;
    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE name = ?", -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int found = sqlite3_step(q) == SQLITE_ROW;
    if (found)
        snprintf(value, cap, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    return found ? 0 : -1;
}

int bt_state_set_meta(bt_state *st, const char *name, const char *value, rf_err *err)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta(name, value) VALUES(?, ?)", -1, &q, NULL) !=
        SQLITE_OK)
        return db_fail(st, err, "meta");
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, value, -1, SQLITE_STATIC);
    int ok = sqlite3_step(q) == SQLITE_DONE;
    sqlite3_finalize(q);
    return ok ? RF_OK : db_fail(st, err, "meta");
}

static void now_iso(char buf[32])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Upserts a study's row (inside the caller's transaction or on its own). */
static int put_study(bt_state *st, const char *key, const char *uid, const char *status, long long offset,
                     long long length, const char *stage, const char *error, rf_err *err)
{
    static const char sql[] =
        "INSERT INTO studies(key, uid, status, attempts, offset, length, stage, error, updated)"
        " VALUES(?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(key) DO UPDATE SET uid = ?2, status = ?3,"
        " attempts = attempts + 1, offset = ?4, length = ?5, stage = ?6, error = ?7, updated = ?8";
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_fail(st, err, "studies");
    char now[32];
    now_iso(now);
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, uid, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, status, -1, SQLITE_STATIC);
    if (offset >= 0) {
        sqlite3_bind_int64(q, 4, offset);
        sqlite3_bind_int64(q, 5, length);
    }
    if (stage)
        sqlite3_bind_text(q, 6, stage, -1, SQLITE_STATIC);
    if (error)
        sqlite3_bind_text(q, 7, error, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, now, -1, SQLITE_STATIC);
    int ok = sqlite3_step(q) == SQLITE_DONE;
    sqlite3_finalize(q);
    return ok ? RF_OK : db_fail(st, err, "studies");
}

/* The study UID of a results.jsonl line, or NULL. */
static char *line_uid(const char *line, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(line, len);
    cJSON *s = j ? cJSON_GetObjectItemCaseSensitive(j, "study") : NULL;
    cJSON *u = s ? cJSON_GetObjectItemCaseSensitive(s, "study_instance_uid") : NULL;
    char *uid = cJSON_IsString(u) ? strdup(u->valuestring) : NULL;
    cJSON_Delete(j);
    return uid;
}

/* Cuts a partial last line and records the lines past the last committed one. */
static int reconcile(bt_state *st, rf_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/results.jsonl", st->dir);
    struct stat sb;
    if (fstat(st->fd, &sb) != 0)
        return rf_err_set(err, RF_EIO, "%s: %s", path, strerror(errno));
    long long end = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "SELECT max(offset + length) FROM studies WHERE status = 'done'", -1, &q, NULL) !=
        SQLITE_OK)
        return db_fail(st, err, "reconcile");
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
        end = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    if (end > sb.st_size)
        return rf_err_set(err, RF_EIO,
                          "%s: %lld bytes, but the state records lines up to byte %lld: the file was cut by "
                          "something else; restore it or use a new output directory",
                          path, (long long)sb.st_size, end);
    size_t tail = (size_t)(sb.st_size - end);
    char *buf = malloc(tail + 1);
    if (!buf)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory for %zu bytes", path, tail);
    size_t got = 0;
    while (got < tail) {
        ssize_t n = pread(st->fd, buf + got, tail - got, end + (off_t)got);
        if (n <= 0) {
            free(buf);
            return rf_err_set(err, RF_EIO, "%s: cannot read: %s", path, n < 0 ? strerror(errno) : "short read");
        }
        got += (size_t)n;
    }
    /* the whole lines that are results; the first that is not (a torn write of a power
     * loss), a partial last line and everything after them were never recorded: cut */
    size_t good = 0, nuids = 0;
    char **uids = NULL;
    int rc = RF_OK;
    while (good < tail) {
        char *nl = memchr(buf + good, '\n', tail - good);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (buf + good)) + 1;
        char *uid = line_uid(buf + good, len - 1);
        if (!uid)
            break;
        char **nu = realloc(uids, (nuids + 1) * sizeof *uids);
        if (!nu) {
            free(uid);
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            break;
        }
        uids = nu;
        uids[nuids++] = uid;
        good += len;
    }
    if (!rc && good < tail) {
        if (ftruncate(st->fd, end + (off_t)good) != 0 || fsync(st->fd) != 0)
            rc = rf_err_set(err, RF_EIO, "%s: cannot cut an unrecorded partial line: %s", path, strerror(errno));
    }
    if (!rc && nuids)
        rc = exec(st, "BEGIN IMMEDIATE", err);
    size_t p = 0;
    for (size_t i = 0; !rc && i < nuids; i++) {
        size_t len = (size_t)((char *)memchr(buf + p, '\n', good - p) - (buf + p)) + 1;
        char key[17];
        rf_batch_key(uids[i], key);
        rc = put_study(st, key, uids[i], "done", end + (long long)p, (long long)len, NULL, NULL, err);
        if (rc)
            sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        p += len;
    }
    if (!rc && nuids)
        rc = exec(st, "COMMIT", err);
    for (size_t i = 0; i < nuids; i++)
        free(uids[i]);
    free(uids);
    free(buf);
    st->size = end + (off_t)good;
    return rc;
}

int bt_state_open(bt_state **out, const char *dir, const char *model_sha256, rf_err *err)
{
    *out = NULL;
    bt_state *st = calloc(1, sizeof *st);
    if (!st || !(st->dir = strdup(dir))) {
        free(st);
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    st->fd = st->lock = -1;
    char path[4200];
    snprintf(path, sizeof path, "%s/studies", dir);
    int rc = rf_mkdirs(path, 0777, err);
    /* one process per directory: two would append the same studies twice */
    if (!rc) {
        snprintf(path, sizeof path, "%s/lock", dir);
        st->lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (st->lock < 0)
            rc = rf_err_set(err, RF_EIO, "%s: cannot open: %s", path, strerror(errno));
        else if (flock(st->lock, LOCK_EX | LOCK_NB) != 0)
            rc = rf_err_set(err, RF_EIO, "%s: in use by another radfuse batch (%s)", dir,
                            errno == EWOULDBLOCK ? "it holds DIR/lock" : strerror(errno));
    }
    snprintf(path, sizeof path, "%s/studies", dir);
    if (!rc)
        rc = clean_dir(dir, err);
    if (!rc)
        rc = clean_dir(path, err);
    if (!rc)
        rc = open_db(st, 0, err);
    char have[128];
    if (!rc && bt_state_get_meta(st, "model_sha256", have, sizeof have) == 0 && strcmp(have, model_sha256) != 0)
        rc = rf_err_set(err, RF_EINVAL,
                        "%s: made with another model (sha256 %.16s..., this one %.16s...): use a new output "
                        "directory",
                        dir, have, model_sha256);
    if (!rc)
        rc = bt_state_set_meta(st, "model_sha256", model_sha256, err);
    if (!rc) {
        snprintf(path, sizeof path, "%s/results.jsonl", dir);
        st->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
        if (st->fd < 0)
            rc = rf_err_set(err, RF_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    if (!rc)
        rc = reconcile(st, err);
    if (!rc)
        rc = bt_sync_dir(dir, err);
    if (rc) {
        bt_state_close(st);
        return rc;
    }
    *out = st;
    return RF_OK;
}

int bt_state_open_readonly(bt_state **out, const char *dir, rf_err *err)
{
    *out = NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/state.sqlite", dir);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rf_err_set(err, RF_EIO, "%s: no batch state", path);
    bt_state *st = calloc(1, sizeof *st);
    if (!st || !(st->dir = strdup(dir))) {
        free(st);
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    }
    st->fd = st->lock = -1;
    int rc = open_db(st, 1, err);
    if (rc) {
        bt_state_close(st);
        return rc;
    }
    *out = st;
    return RF_OK;
}

void bt_state_close(bt_state *st)
{
    if (!st)
        return;
    if (st->db)
        sqlite3_close(st->db);
    if (st->fd >= 0)
        close(st->fd);
    if (st->lock >= 0)
        close(st->lock);
    free(st->dir);
    free(st);
}

bt_status bt_state_status(bt_state *st, const char *key)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->db, "SELECT status FROM studies WHERE key = ?", -1, &q, NULL) != SQLITE_OK)
        return BT_PENDING;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    bt_status s = BT_PENDING;
    if (sqlite3_step(q) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(q, 0);
        s = v && strcmp(v, "done") == 0 ? BT_DONE : v && strcmp(v, "failed") == 0 ? BT_FAILED : BT_PENDING;
    }
    sqlite3_finalize(q);
    return s;
}

int bt_state_set_file_errors(bt_state *st, const bt_export *ex, rf_err *err)
{
    int rc = exec(st, "BEGIN IMMEDIATE; DELETE FROM file_errors;", err);
    sqlite3_stmt *q = NULL;
    if (!rc && sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO file_errors(name, stage, reason) VALUES(?, ?, ?)",
                                  -1, &q, NULL) != SQLITE_OK)
        rc = db_fail(st, err, "file errors");
    for (size_t i = 0; !rc && i < ex->nerrors; i++) {
        const bt_file_error *e = &ex->errors[i];
        if (!e->shard_hit)
            continue;
        sqlite3_reset(q);
        sqlite3_bind_text(q, 1, e->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, e->stage, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 3, e->reason, -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_DONE)
            rc = db_fail(st, err, "file errors");
    }
    sqlite3_finalize(q);
    if (rc)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    else
        rc = exec(st, "COMMIT", err);
    return rc;
}

int bt_state_record(bt_state *st, const bt_record *recs, size_t n, int *kept, rf_err *err)
{
    *kept = 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/results.jsonl", st->dir);
    off_t start = st->size, at = start;
    int appended = 0;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].line)
            continue;
        size_t put = 0;
        while (put < recs[i].len) {
            ssize_t w = write(st->fd, recs[i].line + put, recs[i].len - put);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                int e = w < 0 ? errno : EIO;
                /* the lines of this call go, so that the file stays whole lines (a kill here: cut on open) */
                if (ftruncate(st->fd, start) == 0)
                    fsync(st->fd);
                return rf_err_set(err, RF_EIO, "%s: cannot append: %s", path, strerror(e));
            }
            put += (size_t)w;
        }
        at += (off_t)recs[i].len;
        appended = 1;
    }
    if (appended && fsync(st->fd) != 0) {
        int e = errno;
        if (ftruncate(st->fd, start) == 0)
            fsync(st->fd);
        return rf_err_set(err, RF_EIO, "%s: cannot sync: %s", path, strerror(e));
    }
    st->size = at;
    *kept = 1;
    /* a failure from here leaves lines the state lacks: the next open records them */
    int rc = exec(st, "BEGIN IMMEDIATE", err);
    at = start;
    for (size_t i = 0; !rc && i < n; i++) {
        const bt_record *r = &recs[i];
        if (r->line) {
            rc = put_study(st, r->key, r->uid, "done", (long long)at, (long long)r->len, NULL, NULL, err);
            at += (off_t)r->len;
        } else {
            rc = put_study(st, r->key, r->uid, "failed", -1, 0, r->stage, r->reason, err);
        }
    }
    if (rc)
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
    else
        rc = exec(st, "COMMIT", err);
    return rc;
}

void bt_state_counts(bt_state *st, size_t *done, size_t *failed, size_t *file_errors)
{
    static const char *const sql[3] = {"SELECT count(*) FROM studies WHERE status = 'done'",
                                       "SELECT count(*) FROM studies WHERE status = 'failed'",
                                       "SELECT count(*) FROM file_errors"};
    size_t *out[3] = {done, failed, file_errors};
    for (int i = 0; i < 3; i++) {
        sqlite3_stmt *q;
        *out[i] = 0;
        if (sqlite3_prepare_v2(st->db, sql[i], -1, &q, NULL) != SQLITE_OK)
            continue;
        if (sqlite3_step(q) == SQLITE_ROW)
            *out[i] = (size_t)sqlite3_column_int64(q, 0);
        sqlite3_finalize(q);
    }
}

int bt_state_write_errors(bt_state *st, rf_err *err)
{
    cJSON *lines = cJSON_CreateArray();
    sqlite3_stmt *q;
    int rc = RF_OK;
    if (!lines)
        return rf_err_set(err, RF_ENOMEM, "out of memory");
    if (sqlite3_prepare_v2(st->db, "SELECT name, stage, reason FROM file_errors ORDER BY name", -1, &q, NULL) !=
        SQLITE_OK) {
        cJSON_Delete(lines);
        return db_fail(st, err, "errors");
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "file");
        cJSON_AddStringToObject(o, "path", (const char *)sqlite3_column_text(q, 0));
        cJSON_AddStringToObject(o, "stage", (const char *)sqlite3_column_text(q, 1));
        cJSON_AddStringToObject(o, "reason", (const char *)sqlite3_column_text(q, 2));
        cJSON_AddItemToArray(lines, o);
    }
    sqlite3_finalize(q);
    if (sqlite3_prepare_v2(st->db,
                           "SELECT uid, key, stage, error, attempts FROM studies WHERE status = 'failed' ORDER BY uid",
                           -1, &q, NULL) != SQLITE_OK) {
        cJSON_Delete(lines);
        return db_fail(st, err, "errors");
    }
    while (sqlite3_step(q) == SQLITE_ROW) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "study");
        cJSON_AddStringToObject(o, "study_instance_uid", (const char *)sqlite3_column_text(q, 0));
        cJSON_AddStringToObject(o, "key", (const char *)sqlite3_column_text(q, 1));
        const char *stage = (const char *)sqlite3_column_text(q, 2), *e = (const char *)sqlite3_column_text(q, 3);
        cJSON_AddStringToObject(o, "stage", stage ? stage : "?");
        cJSON_AddStringToObject(o, "reason", e ? e : "?");
        cJSON_AddNumberToObject(o, "attempts", (double)sqlite3_column_int64(q, 4));
        cJSON_AddItemToArray(lines, o);
    }
    sqlite3_finalize(q);
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    cJSON *o;
    cJSON_ArrayForEach(o, lines)
    {
        char *s = cJSON_PrintUnformatted(o);
        size_t n = s ? strlen(s) : 0;
        if (!s || !text) {
            free(s);
            rc = rf_err_set(err, RF_ENOMEM, "out of memory");
            break;
        }
        if (len + n + 2 > cap) {
            while (len + n + 2 > cap)
                cap *= 2;
            char *nt = realloc(text, cap);
            if (!nt) {
                free(s);
                rc = rf_err_set(err, RF_ENOMEM, "out of memory");
                break;
            }
            text = nt;
        }
        memcpy(text + len, s, n);
        text[len + n] = '\n';
        len += n + 1;
        free(s);
    }
    cJSON_Delete(lines);
    if (!rc && !text)
        rc = rf_err_set(err, RF_ENOMEM, "out of memory");
    if (!rc) {
        char path[4200];
        snprintf(path, sizeof path, "%s/errors.jsonl", st->dir);
        rc = rf_write_file_atomic(path, text, len, err);
    }
    free(text);
    return rc;
}
