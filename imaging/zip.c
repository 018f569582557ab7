/*
 * Zip archives through libzip (Debian's libzip-dev). Archives come from
 * outside (PACS and viewer exports, mail attachments), so they are parsed by a
 * library that has been fuzzed and fixed for years rather than by our own
 * code: libzip checks the central directory against the local headers
 * (ZIP_CHECKCONS), verifies each entry's CRC when its end is read, handles
 * Zip64 and refuses what it cannot do with an error code. radfuse adds the
 * limits that make a zip bomb harmless (rf_input_limits): entry count, per
 * entry and per archive uncompressed size, compression ratio, all checked on
 * the declared sizes before anything is allocated, and on the data itself
 * while it is decompressed (never more than the declared size is read).
 * Entries are only ever read into memory: their names are display names, so
 * "../" in a name cannot write anywhere.
 */
#define _GNU_SOURCE /* asprintf */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zip.h>

#include "imaging/input_internal.h"

struct rfzip {
    zip_t *za;
    char *path;
};

static const char *zip_code_text(int code, char *buf, size_t size)
{
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    snprintf(buf, size, "%s", zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return buf;
}

int rfzip_open(const char *path, rfzip **out, rf_err *err)
{
    int code = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!za) {
        char buf[256];
        return rf_err_set(err, RF_EFORMAT, "%s: not a readable zip archive: %s", path,
                          code == ZIP_ER_EXISTS ? "two entries have the same name"
                                                : zip_code_text(code, buf, sizeof buf));
    }
    rfzip *z = calloc(1, sizeof *z);
    if (!z || !(z->path = strdup(path))) {
        free(z);
        zip_discard(za);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    }
    z->za = za;
    *out = z;
    return RF_OK;
}

void rfzip_close(rfzip *z)
{
    if (!z)
        return;
    zip_discard(z->za); /* read-only: nothing to write back */
    free(z->path);
    free(z);
}

static char *entry_name(const char *archive, const char *entry)
{
    size_t la = strlen(archive), le = strlen(entry);
    char *p = malloc(la + le + 2);
    if (p) {
        memcpy(p, archive, la);
        p[la] = ':';
        memcpy(p + la + 1, entry, le + 1);
    }
    return p;
}

static int is_symlink_entry(zip_t *za, zip_uint64_t i)
{
    zip_uint8_t opsys;
    zip_uint32_t attr;
    if (zip_file_get_external_attributes(za, i, 0, &opsys, &attr) != 0)
        return 0;
    return opsys == ZIP_OPSYS_UNIX && S_ISLNK((mode_t)(attr >> 16));
}

static const char *base_name(const char *s)
{
    const char *slash = strrchr(s, '/');
    return slash ? slash + 1 : s;
}

/* A DICOMDIR entry: its references checked against the archive's names
 * (ignoring case); missing ones become error items. */
static int check_dicomdir(rf_inputs *in, long idx, rfzip *z, const char *aname, const char *entry, rf_err *err)
{
    void *data;
    size_t size;
    rf_err lerr;
    const rf_input *it = &in->items[idx].pub;
    char *dname = strdup(it->name);
    if (!dname)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", aname);
    dicomdir_refs refs;
    int bad = rfzip_load(in, it, in->lim.max_dicomdir_bytes, &data, &size, &lerr);
    if (!bad) {
        bad = dicomdir_read(dname, NULL, data, size, &refs, &lerr);
        free(data);
    }
    if (bad) {
        /* not readable as a DICOMDIR: left to the reader, which says why */
        in->items[idx].pub.kind = RF_INPUT_ZIP_ENTRY;
        free(dname);
        return RF_OK;
    }
    const char *slash = strrchr(entry, '/');
    size_t dirlen = slash ? (size_t)(slash - entry) + 1 : 0;
    long missing = 0;
    int rc = RF_OK;
    for (size_t r = 0; r < refs.count && !rc; r++) {
        char buf[1024], *comp[32], full[2048];
        int ncomp = 0;
        const char *why = dicomdir_split_id(refs.file_ids[r], buf, sizeof buf, comp, 32, &ncomp);
        size_t k = (size_t)snprintf(full, sizeof full, "%.*s", (int)dirlen, entry);
        if (!why)
            for (int c = 0; c < ncomp && k < sizeof full; c++)
                k += (size_t)snprintf(full + k, sizeof full - k, "%s%s", c ? "/" : "", comp[c]);
        else
            for (const char *p = refs.file_ids[r]; *p && k + 1 < sizeof full; p++)
                full[k++] = *p == '\\' ? '/' : *p, full[k] = 0;
        if (k >= sizeof full)
            why = "too long";
        char *shown = entry_name(aname, full);
        if (!shown) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", aname);
            break;
        }
        long e = 0;
        if (why) {
            missing++;
            e = inputs_add_error(in, shown, err, "ReferencedFileID '%s' in DICOMDIR %s refused: %s", refs.file_ids[r],
                                 dname, why);
        } else if (zip_name_locate(z->za, full, ZIP_FL_NOCASE) < 0) {
            missing++;
            e = inputs_add_error(in, shown, err, "referenced by DICOMDIR %s but not in the archive", dname);
        }
        if (e < 0)
            rc = RF_ENOMEM;
        free(shown);
    }
    in->items[idx].pub.records = refs.records;
    in->items[idx].pub.referenced = (long)refs.count;
    in->items[idx].pub.missing = missing;
    dicomdir_refs_free(&refs);
    free(dname);
    return rc;
}

int rfzip_enumerate(rf_inputs *in, int a, const char *aname, rf_err *err)
{
    rfzip *z = in->archives[a];
    zip_int64_t n = zip_get_num_entries(z->za, 0);
    uint64_t total = 0;
    int rc = RF_OK;
    if (n < 0)
        n = 0;
    if ((uint64_t)n > in->lim.max_entries) {
        if (inputs_add_error(in, aname, err, "%lld entries, more than the limit of %llu: only the first %llu listed",
                             (long long)n, (unsigned long long)in->lim.max_entries,
                             (unsigned long long)in->lim.max_entries) < 0)
            return RF_ENOMEM;
        n = (zip_int64_t)in->lim.max_entries;
    }
    for (zip_int64_t i = 0; i < n && !rc; i++) {
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(z->za, (zip_uint64_t)i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME))
            continue; /* a deleted or unnamed entry: nothing to read */
        size_t len = strlen(st.name);
        if (len == 0 || st.name[len - 1] == '/' || is_symlink_entry(z->za, (zip_uint64_t)i))
            continue; /* directories and symbolic links, as in a directory walk */
        char *name = entry_name(aname, st.name);
        if (!name)
            return rf_err_set(err, RF_ENOMEM, "%s: out of memory", aname);
        if (zip_name_locate(z->za, st.name, 0) != i) {
            /* a second entry of the same name (libzip 1.7 refuses such archives at open;
             * should one get through, it is listed too, under a name of its own) */
            char *again = NULL;
            if (asprintf(&again, "%s (entry %lld)", name, (long long)i) < 0)
                again = NULL;
            free(name);
            if (!(name = again))
                return rf_err_set(err, RF_ENOMEM, "%s: out of memory", aname);
        }
        long idx;
        uint64_t size = (st.valid & ZIP_STAT_SIZE) ? st.size : 0;
        if (len > 4 && strcasecmp(st.name + len - 4, ".zip") == 0) {
            idx = inputs_add_error(in, name, err, "a zip archive inside a zip archive: not opened");
        } else if (total + size > in->lim.max_total_bytes || total + size < total) {
            idx = inputs_add_error(in, name, err,
                                   "past the archive's limit of %llu uncompressed bytes in all: not read",
                                   (unsigned long long)in->lim.max_total_bytes);
        } else {
            total += size;
            idx = inputs_add(in, RF_INPUT_ZIP_ENTRY, name, NULL, err);
        }
        free(name);
        if (idx < 0)
            return RF_ENOMEM;
        in->items[idx].pass = 2;
        in->items[idx].pub.archive = a;
        in->items[idx].pub.entry = (uint64_t)i;
        if (in->items[idx].pub.kind == RF_INPUT_ZIP_ENTRY && strcasecmp(base_name(st.name), "DICOMDIR") == 0) {
            in->items[idx].pub.kind = RF_INPUT_DICOMDIR;
            rc = check_dicomdir(in, idx, z, aname, st.name, err);
        }
    }
    return rc;
}

int rfzip_load(rf_inputs *in, const rf_input *it, uint64_t max_bytes, void **data, size_t *size, rf_err *err)
{
    *data = NULL;
    *size = 0;
    if (it->archive < 0 || it->archive >= in->narchives)
        return rf_err_set(err, RF_EINVAL, "%s: not a zip entry", it->name);
    rfzip *z = in->archives[it->archive];
    const rf_input_limits *lim = &in->lim;
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z->za, it->entry, 0, &st) != 0)
        return rf_err_set(err, RF_EFORMAT, "%s: %s", it->name, zip_strerror(z->za));
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
        return rf_err_set(err, RF_EUNSUP, "%s: encrypted entry (method %u): not read, radfuse takes no passwords",
                          it->name, (unsigned)st.encryption_method);
    if ((st.valid & ZIP_STAT_COMP_METHOD) && !zip_compression_method_supported((zip_int32_t)st.comp_method, 0))
        return rf_err_set(err, RF_EUNSUP, "%s: compression method %u not supported", it->name,
                          (unsigned)st.comp_method);
    if (!(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE))
        return rf_err_set(err, RF_EFORMAT, "%s: entry sizes unknown", it->name);
    if (st.size > max_bytes || st.size > (uint64_t)SIZE_MAX - 1)
        return rf_err_set(err, RF_ENOMEM, "%s: %llu bytes uncompressed, over the limit of %llu per entry", it->name,
                          (unsigned long long)st.size, (unsigned long long)max_bytes);
    if (st.size > lim->ratio_min_bytes &&
        (st.comp_size == 0 || st.size / st.comp_size >= lim->max_ratio))
        return rf_err_set(err, RF_ENOMEM,
                          "%s: compression ratio %llu:1 (%llu bytes from %llu), over the limit of %llu:1 (a zip bomb?)",
                          it->name, (unsigned long long)(st.comp_size ? st.size / st.comp_size : 0),
                          (unsigned long long)st.size, (unsigned long long)st.comp_size,
                          (unsigned long long)lim->max_ratio);
    zip_file_t *zf = zip_fopen_index(z->za, it->entry, 0);
    if (!zf)
        return rf_err_set(err, RF_EFORMAT, "%s: cannot open the entry: %s", it->name, zip_strerror(z->za));
    unsigned char *buf = malloc(st.size ? (size_t)st.size : 1);
    if (!buf) {
        zip_fclose(zf);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory for %llu bytes", it->name, (unsigned long long)st.size);
    }
    uint64_t got = 0;
    int rc = RF_OK;
    while (got < st.size) {
        zip_uint64_t want = st.size - got > (1u << 30) ? (1u << 30) : st.size - got;
        zip_int64_t r = zip_fread(zf, buf + got, want);
        if (r < 0) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: damaged entry: %s", it->name, zip_file_strerror(zf));
            break;
        }
        if (r == 0) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: truncated entry: %llu of %llu bytes", it->name,
                            (unsigned long long)got, (unsigned long long)st.size);
            break;
        }
        got += (uint64_t)r;
    }
    if (!rc) {
        /* the end: libzip checks the CRC here, and data past the declared size is a lie */
        unsigned char extra;
        zip_int64_t r = zip_fread(zf, &extra, 1);
        if (r < 0)
            rc = rf_err_set(err, RF_EFORMAT, "%s: damaged entry: %s", it->name, zip_file_strerror(zf));
        else if (r > 0)
            rc = rf_err_set(err, RF_EFORMAT, "%s: entry longer than its header's %llu bytes", it->name,
                            (unsigned long long)st.size);
    }
    zip_fclose(zf);
    if (rc) {
        free(buf);
        return rc;
    }
    *data = buf;
    *size = (size_t)st.size;
    return RF_OK;
}
