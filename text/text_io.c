/* Reading text inputs: whole files with a size cap, strict UTF-8 checks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "text/text_internal.h"

int text_read_file(const char *path, size_t max_bytes, char **data, size_t *size, rf_err *err)
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
        return rf_err_set(err, RF_EFORMAT, "%s: %lld bytes, more than the %zu allowed", path, (long long)st.st_size,
                          max_bytes);
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

bool text_utf8_valid(const char *text, size_t len, size_t *bad)
{
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 2, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 3, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 4, cp = c & 0x07, min = 0x10000;
        } else {
            *bad = i;
            return false;
        }
        if (i + k > len) {
            *bad = i;
            return false;
        }
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                *bad = i;
                return false;
            }
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            *bad = i;
            return false;
        }
        i += k;
    }
    return true;
}
