#include "runtime/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <unistd.h>

int rf_atomic_open(rf_atomic_file *af, const char *path, rf_err *err)
{
    memset(af, 0, sizeof af[0]);
    if (strlen(path) >= sizeof af->path)
        return rf_err_set(err, RF_EINVAL, "%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rf_err_set(err, RF_EIO, "%s: cannot create: %s", af->tmp, strerror(errno));
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        unlink(af->tmp);
        return rf_err_set(err, RF_EIO, "%s: cannot open: %s", af->tmp, strerror(errno));
    }
    return RF_OK;
}

void rf_atomic_abort(rf_atomic_file *af)
{
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
        unlink(af->tmp);
    }
}

int rf_atomic_commit(rf_atomic_file *af, rf_err *err)
{
    int bad = fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0;
    int saved = errno;
    if (fclose(af->f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    af->f = NULL;
    if (bad || rename(af->tmp, af->path) != 0) {
        if (!bad)
            saved = errno;
        unlink(af->tmp);
        return rf_err_set(err, RF_EIO, "%s: write failed: %s", af->path, strerror(saved));
    }
    /* make the rename itself durable */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", af->path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return RF_OK;
}

int rf_write_file_atomic(const char *path, const void *data, size_t n, rf_err *err)
{
    rf_atomic_file af;
    int rc = rf_atomic_open(&af, path, err);
    if (rc)
        return rc;
    if (n && fwrite(data, 1, n, af.f) != n) {
        int saved = errno;
        rf_atomic_abort(&af);
        return rf_err_set(err, RF_EIO, "%s: write failed: %s", path, strerror(saved));
    }
    return rf_atomic_commit(&af, err);
}
