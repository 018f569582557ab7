/*
 * DICOM inputs (include/radfuse/dicom_input.h): files, directory trees,
 * DICOMDIRs and zip archives turned into one sorted list of items, each
 * file once. The DICOMDIR parsing is in imaging/dicomdir_shim.cpp (DCMTK),
 * the archives in imaging/zip.c (libzip); this file walks, sniffs, resolves
 * ReferencedFileIDs on disk and removes duplicates.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imaging/input_internal.h"

#define INPUT_ARCHIVE 100 /* internal kind: a zip archive, replaced by its entries */
#define INPUT_REMOVED 101 /* internal kind: a duplicate, dropped when the list is compacted */
#define MAX_DEPTH 64
#define SNIFF_BYTES 4096

void rf_input_limits_default(rf_input_limits *lim)
{
    lim->max_entry_bytes = (uint64_t)1 << 30;
    lim->max_total_bytes = (uint64_t)8 << 30;
    lim->max_ratio = 1000;
    lim->ratio_min_bytes = (uint64_t)1 << 20;
    lim->max_entries = 100000;
    lim->max_dicomdir_bytes = (uint64_t)256 << 20;
}

/* ---- the item list ---- */

char *inputs_clean_name(const char *s)
{
    char *c = strdup(s ? s : "");
    if (c)
        for (char *p = c; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
    return c;
}

long inputs_add(rf_inputs *in, rf_input_kind kind, const char *name, const char *path, rf_err *err)
{
    if (in->n == in->cap) {
        size_t cap = in->cap ? 2 * in->cap : 64;
        input_item *v = realloc(in->items, cap * sizeof *v);
        if (!v)
            return rf_err_set(err, RF_ENOMEM, "%s: out of memory listing inputs", name), -1;
        in->items = v;
        in->cap = cap;
    }
    input_item *it = &in->items[in->n];
    memset(it, 0, sizeof *it);
    it->pub.kind = kind;
    it->pub.archive = -1;
    it->pub.name = inputs_clean_name(name);
    it->pub.path = path ? strdup(path) : NULL;
    it->seq = in->n;
    if (!it->pub.name || (path && !it->pub.path)) {
        free(it->pub.name);
        free(it->pub.path);
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory listing inputs", name), -1;
    }
    return (long)in->n++;
}

static void item_free_strings(input_item *it)
{
    free(it->pub.name);
    free(it->pub.path);
    free(it->pub.error);
    free(it->pub.dicomdir);
    memset(&it->pub, 0, sizeof it->pub);
}

static int set_error_v(input_item *it, const char *fmt, va_list ap)
{
    char msg[RF_ERR_MAX];
    int k = snprintf(msg, sizeof msg, "%s: ", it->pub.name);
    if (k < 0 || (size_t)k >= sizeof msg)
        k = 0;
    vsnprintf(msg + k, sizeof msg - (size_t)k, fmt, ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    free(it->pub.error);
    it->pub.error = strdup(msg);
    it->pub.kind = RF_INPUT_ERROR;
    return it->pub.error ? RF_OK : RF_ENOMEM;
}

/* Sets an item's error from a message that already names it (rf_err from a reader). */
static int set_error_msg(input_item *it, const char *msg)
{
    free(it->pub.error);
    it->pub.error = strdup(msg);
    it->pub.kind = RF_INPUT_ERROR;
    return it->pub.error ? RF_OK : RF_ENOMEM;
}

long inputs_add_error(rf_inputs *in, const char *name, rf_err *err, const char *fmt, ...)
{
    long i = inputs_add(in, RF_INPUT_ERROR, name, NULL, err);
    if (i < 0)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = set_error_v(&in->items[i], fmt, ap);
    va_end(ap);
    if (rc)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory listing inputs", name), -1;
    return i;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    size_t k = la;
    if (k && p[k - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, b, lb + 1);
    return p;
}

/* ---- what a file is ---- */

static uint32_t le16(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8;
}

static uint32_t le32(const unsigned char *b)
{
    return le16(b) | le16(b + 2) << 16;
}

/* The meta header (explicit VR little endian, after "DICM") names the Media
 * Storage Directory SOP class: a DICOMDIR, whatever the file is called. */
static int meta_is_dicomdir(const unsigned char *b, size_t n)
{
    if (n < 132 || memcmp(b + 128, "DICM", 4) != 0)
        return 0;
    size_t p = 132;
    while (p + 8 <= n) {
        uint32_t g = le16(b + p), e = le16(b + p + 2);
        if (g != 2)
            return 0;
        size_t len, hdr;
        char v0 = (char)b[p + 4], v1 = (char)b[p + 5];
        if (isupper((unsigned char)v0) && isupper((unsigned char)v1)) {
            static const char *const long_vrs[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"};
            int is_long = 0;
            for (size_t k = 0; k < sizeof long_vrs / sizeof *long_vrs; k++)
                is_long |= v0 == long_vrs[k][0] && v1 == long_vrs[k][1];
            if (is_long) {
                if (p + 12 > n)
                    return 0;
                len = le32(b + p + 8);
                hdr = 12;
            } else {
                len = le16(b + p + 6);
                hdr = 8;
            }
        } else { /* implicit VR in the meta header: not allowed, but written */
            len = le32(b + p + 4);
            hdr = 8;
        }
        if (len > n - p - hdr)
            return 0;
        if (e == 2) {
            const char *v = (const char *)b + p + hdr;
            while (len && (v[len - 1] == 0 || v[len - 1] == ' '))
                len--;
            return len == strlen(DICOMDIR_SOP_CLASS) && memcmp(v, DICOMDIR_SOP_CLASS, len) == 0;
        }
        p += hdr + len;
    }
    return 0;
}

static int ends_with_zip(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".zip") == 0;
}

/* FILE, RF_INPUT_DICOMDIR or INPUT_ARCHIVE, from the first bytes (and the
 * name, for archives): a file that cannot be opened is a FILE, left to the
 * reader to report. */
static int sniff(const char *path)
{
    unsigned char b[SNIFF_BYTES];
    ssize_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        size_t got = 0;
        while (got < sizeof b) {
            ssize_t r = read(fd, b + got, sizeof b - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        n = (ssize_t)got;
        close(fd);
    }
    int dicm = n >= 132 && memcmp(b + 128, "DICM", 4) == 0;
    if (dicm && meta_is_dicomdir(b, (size_t)n))
        return RF_INPUT_DICOMDIR;
    if (!dicm && n >= 4 && b[0] == 'P' && b[1] == 'K' &&
        ((b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6)))
        return INPUT_ARCHIVE;
    if (ends_with_zip(path) && !dicm)
        return INPUT_ARCHIVE; /* libzip says why it is not one */
    return RF_INPUT_FILE;
}

static int add_file(rf_inputs *in, const char *path, const struct stat *st, int pass, int expand, rf_err *err)
{
    int kind = expand ? sniff(path) : RF_INPUT_FILE;
    long i = inputs_add(in, (rf_input_kind)kind, path, path, err);
    if (i < 0)
        return RF_ENOMEM;
    input_item *it = &in->items[i];
    it->has_id = 1;
    it->dev = st->st_dev;
    it->ino = st->st_ino;
    it->pass = pass;
    return RF_OK;
}

/* ---- directory trees ---- */

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(rf_inputs *in, const char *dir, int depth, rf_err *err)
{
    if (depth > MAX_DEPTH)
        return inputs_add_error(in, dir, err, "directory tree deeper than %d levels: not walked further",
                                MAX_DEPTH) < 0
                   ? RF_ENOMEM
                   : RF_OK;
    DIR *d = opendir(dir);
    if (!d)
        return inputs_add_error(in, dir, err, "cannot open directory: %s", strerror(errno)) < 0 ? RF_ENOMEM : RF_OK;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = RF_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 32;
            char **v = realloc(names, nc * sizeof *v);
            if (!v) {
                rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory listing files", dir);
                break;
            }
            names = v;
            cap = nc;
        }
        if (!(names[n] = join(dir, e->d_name)))
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory listing files", dir);
        else
            n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_cstr);
    for (size_t i = 0; i < n && !rc; i++) {
        struct stat st;
        if (lstat(names[i], &st) != 0)
            continue; /* vanished */
        if (S_ISDIR(st.st_mode))
            rc = walk(in, names[i], depth + 1, err);
        else if (S_ISREG(st.st_mode))
            rc = add_file(in, names[i], &st, 0, 1, err);
        /* symbolic links, devices, fifos, sockets: skipped */
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ---- DICOMDIR references on disk ---- */

const char *dicomdir_split_id(const char *id, char *buf, size_t bufsize, char **comp, int maxcomp, int *ncomp)
{
    size_t len = strlen(id);
    if (len + 1 > bufsize)
        return "too long";
    memcpy(buf, id, len + 1);
    int n = 0;
    char *p = buf;
    for (;;) {
        char *end = strchr(p, '\\');
        if (end)
            *end = 0;
        /* trailing spaces are CS padding; leading ones are not allowed but written */
        size_t l = strlen(p);
        while (l && p[l - 1] == ' ')
            p[--l] = 0;
        while (*p == ' ')
            p++;
        if (!*p)
            return n == 0 ? "empty first component (an absolute path)" : "empty component";
        if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0)
            return "'.' or '..' component";
        for (const char *c = p; *c; c++) {
            if (*c == '/')
                return "component with '/'";
            if (*c == ':')
                return "component with ':' (a drive or stream name)";
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                return "control character in a component";
        }
        if (n == maxcomp)
            return "too many components";
        comp[n++] = p;
        if (!end)
            break;
        p = end + 1;
    }
    *ncomp = n;
    return NULL;
}

/* dir/comp, or the one entry of dir whose name matches comp ignoring case
 * (exports written on Windows or from ISO 9660 media change case). Returns a
 * malloc'd path, or NULL with *why set (*why NULL: out of memory). */
static char *find_component(const char *dir, const char *comp, struct stat *st, const char **why)
{
    char *p = *dir ? join(dir, comp) : strdup(comp);
    *why = NULL;
    if (!p)
        return NULL;
    if (lstat(p, st) == 0)
        return p;
    free(p);
    DIR *d = opendir(*dir ? dir : ".");
    if (!d) {
        *why = "not found";
        return NULL;
    }
    char *found = NULL;
    int matches = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcasecmp(e->d_name, comp) != 0)
            continue;
        if (++matches == 1)
            found = *dir ? join(dir, e->d_name) : strdup(e->d_name);
    }
    closedir(d);
    if (matches > 1) {
        free(found);
        *why = "several names match ignoring case";
        return NULL;
    }
    if (!found) {
        *why = matches ? NULL : "not found";
        return NULL;
    }
    if (lstat(found, st) != 0) {
        free(found);
        *why = "not found";
        return NULL;
    }
    return found;
}

/* The file a ReferencedFileID names under dir; NULL with *why (missing,
 * refused) or with *why NULL when memory ran out. */
static char *resolve_ref(const char *dir, char **comp, int ncomp, struct stat *st, const char **why)
{
    char *cur = strdup(dir);
    if (!cur)
        return *why = NULL, NULL;
    for (int k = 0; k < ncomp; k++) {
        char *next = find_component(cur, comp[k], st, why);
        free(cur);
        if (!next)
            return NULL;
        cur = next;
        if (S_ISLNK(st->st_mode)) {
            *why = "a symbolic link (not followed)";
            break;
        }
        if (k + 1 < ncomp && !S_ISDIR(st->st_mode)) {
            *why = "not found (a component is not a directory)";
            break;
        }
        if (k + 1 == ncomp && !S_ISREG(st->st_mode)) {
            *why = "not a regular file";
            break;
        }
        if (k + 1 == ncomp)
            return cur;
    }
    free(cur);
    return NULL;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup("");
    if (slash == path)
        return strdup("/");
    char *d = strndup(path, (size_t)(slash - path));
    return d;
}

/* A name for a reference that was not found: dir/A/B/C as written. */
static char *ref_display(const char *dir, const char *id)
{
    char *slashed = strdup(id);
    if (!slashed)
        return NULL;
    for (char *p = slashed; *p; p++)
        if (*p == '\\')
            *p = '/';
    char *name = *dir ? join(dir, slashed) : strdup(slashed);
    free(slashed);
    return name;
}

static int expand_dicomdir(rf_inputs *in, size_t idx, rf_err *err)
{
    dicomdir_refs refs;
    rf_err rerr;
    const char *path = in->items[idx].pub.path;
    char *dname = strdup(in->items[idx].pub.name);
    if (!dname)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    if (dicomdir_read(dname, path, NULL, 0, &refs, &rerr)) {
        int rc = set_error_msg(&in->items[idx], rerr.msg);
        free(dname);
        return rc ? rf_err_set(err, RF_ENOMEM, "%s: out of memory", path) : RF_OK;
    }
    char *dir = dir_of(path);
    int rc = dir ? RF_OK : rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
    long missing = 0;
    for (size_t r = 0; r < refs.count && !rc; r++) {
        char buf[1024], *comp[32];
        int ncomp = 0;
        const char *why = dicomdir_split_id(refs.file_ids[r], buf, sizeof buf, comp, 32, &ncomp);
        char *shown = ref_display(dir, refs.file_ids[r]);
        if (!shown) {
            rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
            break;
        }
        if (why) {
            missing++;
            if (inputs_add_error(in, shown, err, "ReferencedFileID '%s' in DICOMDIR %s refused: %s",
                                 refs.file_ids[r], dname, why) < 0)
                rc = RF_ENOMEM;
        } else {
            struct stat st;
            char *file = resolve_ref(dir, comp, ncomp, &st, &why);
            if (file) {
                rc = add_file(in, file, &st, 1, 0, err);
                if (!rc && !(in->items[in->n - 1].pub.dicomdir = strdup(dname)))
                    rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
                free(file);
            } else if (!why) {
                rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
            } else {
                missing++;
                long e = inputs_add_error(in, shown, err, "referenced by DICOMDIR %s but %s", dname, why);
                if (e < 0 || !(in->items[e].pub.dicomdir = strdup(dname)))
                    rc = rf_err_set(err, RF_ENOMEM, "%s: out of memory", path);
            }
        }
        free(shown);
    }
    /* inputs_add may have moved the items */
    in->items[idx].pub.records = refs.records;
    in->items[idx].pub.referenced = (long)refs.count;
    in->items[idx].pub.missing = missing;
    dicomdir_refs_free(&refs);
    free(dir);
    free(dname);
    return rc;
}

/* ---- putting it together ---- */

static int cmp_item_name(const void *pa, const void *pb)
{
    const input_item *a = pa, *b = pb;
    int c = strcmp(a->pub.name, b->pub.name);
    if (!c)
        c = (a->pass > b->pass) - (a->pass < b->pass);
    if (!c)
        c = (a->seq > b->seq) - (a->seq < b->seq);
    return c;
}

static int cmp_item_id(const void *pa, const void *pb)
{
    const input_item *a = *(input_item *const *)pa, *b = *(input_item *const *)pb;
    if (a->dev != b->dev)
        return a->dev < b->dev ? -1 : 1;
    if (a->ino != b->ino)
        return a->ino < b->ino ? -1 : 1;
    return cmp_item_name(a, b);
}

/* Sorts by name and marks later copies of a name, or of a file, removed. */
static int dedupe(rf_inputs *in, rf_err *err)
{
    if (in->n > 1)
        qsort(in->items, in->n, sizeof *in->items, cmp_item_name);
    const input_item *last = NULL;
    for (size_t i = 0; i < in->n; i++) {
        if ((int)in->items[i].pub.kind == INPUT_REMOVED)
            continue;
        if (last && strcmp(in->items[i].pub.name, last->pub.name) == 0)
            in->items[i].pub.kind = INPUT_REMOVED;
        else
            last = &in->items[i];
    }
    input_item **ids = malloc((in->n ? in->n : 1) * sizeof *ids);
    if (!ids)
        return rf_err_set(err, RF_ENOMEM, "out of memory listing inputs");
    size_t k = 0;
    for (size_t i = 0; i < in->n; i++)
        if (in->items[i].has_id && (int)in->items[i].pub.kind != INPUT_REMOVED)
            ids[k++] = &in->items[i];
    if (k > 1)
        qsort(ids, k, sizeof *ids, cmp_item_id);
    for (size_t i = 1; i < k; i++)
        if (ids[i]->dev == ids[i - 1]->dev && ids[i]->ino == ids[i - 1]->ino)
            ids[i]->pub.kind = INPUT_REMOVED;
    free(ids);
    size_t w = 0;
    for (size_t i = 0; i < in->n; i++) {
        if ((int)in->items[i].pub.kind == INPUT_REMOVED)
            item_free_strings(&in->items[i]);
        else
            in->items[w++] = in->items[i];
    }
    in->n = w;
    return RF_OK;
}

static int add_named(rf_inputs *in, const char *path, rf_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return inputs_add_error(in, path, err, "cannot stat: %s", strerror(errno)) < 0 ? RF_ENOMEM : RF_OK;
    if (S_ISDIR(st.st_mode))
        return walk(in, path, 0, err);
    if (!S_ISREG(st.st_mode))
        return inputs_add_error(in, path, err, "not a regular file") < 0 ? RF_ENOMEM : RF_OK;
    return add_file(in, path, &st, 0, 1, err);
}

int rf_inputs_collect(const char *const *paths, int npaths, const rf_input_limits *lim, rf_inputs **out,
                      rf_err *err)
{
    rf_inputs *in = calloc(1, sizeof *in);
    if (!in)
        return rf_err_set(err, RF_ENOMEM, "out of memory listing inputs");
    if (lim)
        in->lim = *lim;
    else
        rf_input_limits_default(&in->lim);
    int rc = RF_OK;
    for (int i = 0; i < npaths && !rc; i++)
        rc = add_named(in, paths[i], err);
    /* the same DICOMDIR or archive reached twice is expanded once */
    if (!rc)
        rc = dedupe(in, err);
    size_t n0 = in->n;
    for (size_t i = 0; i < n0 && !rc; i++)
        if (in->items[i].pub.kind == RF_INPUT_DICOMDIR)
            rc = expand_dicomdir(in, i, err);
    size_t n1 = in->n;
    for (size_t i = 0; i < n1 && !rc; i++) {
        if ((int)in->items[i].pub.kind != INPUT_ARCHIVE)
            continue;
        rf_err zerr;
        rfzip *z;
        if (rfzip_open(in->items[i].pub.path, &z, &zerr)) {
            if (set_error_msg(&in->items[i], zerr.msg))
                rc = rf_err_set(err, RF_ENOMEM, "out of memory listing inputs");
            continue;
        }
        if (in->narchives == in->cap_archives) {
            int cap = in->cap_archives ? 2 * in->cap_archives : 8;
            rfzip **v = realloc(in->archives, (size_t)cap * sizeof *v);
            if (!v) {
                rfzip_close(z);
                rc = rf_err_set(err, RF_ENOMEM, "out of memory listing inputs");
                break;
            }
            in->archives = v;
            in->cap_archives = cap;
        }
        int a = in->narchives++;
        in->archives[a] = z;
        char *aname = strdup(in->items[i].pub.name);
        if (!aname) {
            rc = rf_err_set(err, RF_ENOMEM, "out of memory listing inputs");
            break;
        }
        in->items[i].pub.kind = INPUT_REMOVED; /* replaced by its entries */
        in->items[i].has_id = 0;
        rc = rfzip_enumerate(in, a, aname, err);
        free(aname);
    }
    if (!rc)
        rc = dedupe(in, err);
    if (rc) {
        rf_inputs_free(in);
        return rc;
    }
    *out = in;
    return RF_OK;
}

size_t rf_inputs_count(const rf_inputs *in)
{
    return in ? in->n : 0;
}

const rf_input *rf_inputs_at(const rf_inputs *in, size_t i)
{
    return in && i < in->n ? &in->items[i].pub : NULL;
}

int rf_inputs_load(rf_inputs *in, size_t i, void **data, size_t *size, rf_err *err)
{
    *data = NULL;
    *size = 0;
    if (!in || i >= in->n)
        return rf_err_set(err, RF_EINVAL, "input %zu: no such item", i);
    const rf_input *it = &in->items[i].pub;
    if (it->kind != RF_INPUT_ZIP_ENTRY && !(it->kind == RF_INPUT_DICOMDIR && it->archive >= 0))
        return rf_err_set(err, RF_EINVAL, "%s: not a zip entry", it->name);
    return rfzip_load(in, it, in->lim.max_entry_bytes, data, size, err);
}

int rf_inputs_read(rf_inputs *in, size_t i, int flags, rf_dicom_image *img, rf_err *err)
{
    memset(img, 0, sizeof *img);
    if (!in || i >= in->n)
        return rf_err_set(err, RF_EINVAL, "input %zu: no such item", i);
    const rf_input *it = &in->items[i].pub;
    switch (it->kind) {
    case RF_INPUT_FILE:
        return rf_dicom_read(it->path, flags, img, err);
    case RF_INPUT_ZIP_ENTRY: {
        void *data;
        size_t size;
        int rc = rf_inputs_load(in, i, &data, &size, err);
        if (rc)
            return rc;
        const unsigned char *b = data;
        if (size >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4 &&
            !(size >= 132 && memcmp(b + 128, "DICM", 4) == 0)) {
            free(data);
            return rf_err_set(err, RF_EUNSUP, "%s: a zip archive inside a zip archive: not opened", it->name);
        }
        rc = rf_dicom_read_memory(data, size, it->name, flags, img, err);
        free(data);
        return rc;
    }
    case RF_INPUT_DICOMDIR:
        return rf_err_set(err, RF_EINVAL, "%s: is a DICOMDIR, not an instance", it->name);
    default:
        return rf_err_set(err, RF_EINVAL, "%s", it->error ? it->error : it->name);
    }
}

void rf_inputs_free(rf_inputs *in)
{
    if (!in)
        return;
    for (size_t i = 0; i < in->n; i++)
        item_free_strings(&in->items[i]);
    free(in->items);
    for (int a = 0; a < in->narchives; a++)
        rfzip_close(in->archives[a]);
    free(in->archives);
    free(in);
}
