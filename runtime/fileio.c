#include "runtime/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* write() until done; returns 0 or an errno. */
static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        /* Linux moves at most ~2 GiB per write(); ask for no more. */
        size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * fsyncs the directory holding path, so the rename that put path in place
 * survives a crash. Returns 0 or an errno; EINVAL (a filesystem that cannot
 * sync directories) counts as success since there is nothing more to do.
 */
static int sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) != 0 && errno != EINVAL ? errno : 0;
    close(fd);
    return rc;
}

static void release(rf_atomic_file *af)
{
    free(af->path);
    free(af->tmp);
    af->path = af->tmp = NULL;
    af->fd = -1;
}

int rf_atomic_open(rf_atomic_file *af, const char *path, rf_err *err)
{
    af->fd = -1;
    af->path = strdup(path);
    size_t tlen = strlen(path) + 32;
    af->tmp = malloc(tlen);
    if (!af->path || !af->tmp) {
        release(af);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    snprintf(af->tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    /* exclusive: two writers of one path in one process fail, not interleave */
    af->fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (af->fd < 0) {
        int e = errno;
        release(af);
        return rf_err_set(err, RF_EIO, "%s: cannot create the temporary file: %s", path, strerror(e));
    }
    return RF_OK;
}

void rf_atomic_abort(rf_atomic_file *af)
{
    if (af->fd >= 0) {
        close(af->fd);
        unlink(af->tmp);
    }
    release(af);
}

int rf_atomic_write(rf_atomic_file *af, const void *data, size_t n, rf_err *err)
{
    int e = write_all(af->fd, data, n);
    if (e) {
        int rc = rf_err_set(err, RF_EIO, "%s: cannot write the temporary file: %s", af->path, strerror(e));
        rf_atomic_abort(af);
        return rc;
    }
    return RF_OK;
}

int rf_atomic_commit(rf_atomic_file *af, rf_err *err)
{
    const char *what = "cannot sync the temporary file";
    int e = fsync(af->fd) != 0 ? errno : 0;
    if (!e) {
        what = "cannot close the temporary file";
        int cr = close(af->fd);
        af->fd = -1;
        e = cr != 0 ? errno : 0;
        if (e)
            unlink(af->tmp);
    }
    if (!e) {
        what = "cannot rename the temporary file over it";
        e = rename(af->tmp, af->path) != 0 ? errno : 0;
        if (e)
            unlink(af->tmp);
    }
    if (!e) {
        what = "written, but cannot sync its directory";
        e = sync_parent_dir(af->path);
    }
    if (e) {
        int rc = rf_err_set(err, RF_EIO, "%s: %s: %s", af->path, what, strerror(e));
        rf_atomic_abort(af);
        return rc;
    }
    release(af);
    return RF_OK;
}

int rf_write_file_atomic(const char *path, const void *data, size_t n, rf_err *err)
{
    rf_atomic_file af;
    int rc = rf_atomic_open(&af, path, err);
    if (!rc)
        rc = rf_atomic_write(&af, data, n, err);
    if (!rc)
        rc = rf_atomic_commit(&af, err);
    return rc;
}

int rf_mkdirs(const char *dir, unsigned mode, rf_err *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return rf_err_set(err, RF_EINVAL, "%s: path too long", dir);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
                return rf_err_set(err, RF_EIO, "%s: cannot create: %s", buf, strerror(errno));
            *p = c;
        }
        if (!c)
            break;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return rf_err_set(err, RF_EIO, "%s: not a directory", dir);
    return RF_OK;
}

int rf_read_file(const char *path, size_t max_bytes, char **data, size_t *size, rf_err *err)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rf_err_set(err, RF_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return rf_err_set(err, RF_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return rf_err_set(err, RF_EFORMAT, "%s: larger than %zu bytes", path, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return rf_err_set(err, RF_ENOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return rf_err_set(err, RF_EIO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return RF_OK;
}

int rf_json_read_object(const char *path, size_t max_bytes, cJSON **root, rf_err *err)
{
    char *buf;
    size_t n;
    *root = NULL;
    int rc = rf_read_file(path, max_bytes, &buf, &n, err);
    if (rc)
        return rc;
    cJSON *r = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!r || !cJSON_IsObject(r)) {
        cJSON_Delete(r);
        return rf_err_set(err, RF_EFORMAT, "%s: not a JSON object", path);
    }
    *root = r;
    return RF_OK;
}
