/* imaging: the C side of DICOM reading (the shim does the parsing), pixel
 * checksums and file discovery. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "imaging/dicom.h"
#include "radfuse/imaging.h"
#include "runtime/sha256.h"

int rf_dicom_read(const char *path, int flags, rf_dicom_image *img, rf_err *err)
{
    return dicom_read(path, flags, img, err);
}

int rf_dicom_read_memory(const void *data, size_t size, const char *name, int flags, rf_dicom_image *img,
                         rf_err *err)
{
    return dicom_read_memory(data, size, name, flags, img, err);
}

static void lut_free(rf_dicom_lut *lut)
{
    free(lut->data);
    memset(lut, 0, sizeof *lut);
}

void rf_dicom_image_free(rf_dicom_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    img->pixels = NULL;
    img->pixels_size = 0;
    lut_free(&img->display.modality_lut);
    lut_free(&img->display.voi_lut);
    for (int k = 0; k < 3; k++)
        lut_free(&img->display.palette[k]);
}

void rf_dicom_pixel_sha256(const rf_dicom_image *img, char out[65])
{
    rf_sha256 s;
    uint8_t d[32];
    rf_sha256_init(&s);
    if (img->pixels)
        rf_sha256_update(&s, img->pixels, img->pixels_size);
    rf_sha256_final(&s, d);
    rf_sha256_hex(d, out);
}

/* ---- file discovery ---- */

typedef struct path_list {
    char **v;
    size_t n, cap;
} path_list;

static int list_add(path_list *l, const char *a, const char *b, rf_err *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return rf_err_set(err, RF_ENOMEM, "%s: out of memory listing files", a);
        l->v = v;
        l->cap = cap;
    }
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    char *p = malloc(la + lb + 2);
    if (!p)
        return rf_err_set(err, RF_ENOMEM, "%s: out of memory listing files", a);
    memcpy(p, a, la);
    if (b) {
        size_t k = la;
        if (k == 0 || p[k - 1] != '/')
            p[k++] = '/';
        memcpy(p + k, b, lb + 1);
    } else {
        p[la] = 0;
    }
    l->v[l->n++] = p;
    return RF_OK;
}

/* Walks dir depth-first; depth bounds recursion on pathological trees. */
static int walk(path_list *l, const char *dir, int depth, rf_err *err)
{
    if (depth > 64)
        return rf_err_set(err, RF_EINVAL, "%s: directory tree deeper than 64 levels", dir);
    DIR *d = opendir(dir);
    if (!d) /* unreadable directory: reported per file by the reader */
        return list_add(l, dir, NULL, err);
    path_list sub = {0};
    int rc = RF_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = list_add(&sub, dir, e->d_name, err);
    }
    closedir(d);
    for (size_t i = 0; i < sub.n && !rc; i++) {
        struct stat st;
        if (lstat(sub.v[i], &st) != 0)
            continue; /* vanished */
        if (S_ISDIR(st.st_mode))
            rc = walk(l, sub.v[i], depth + 1, err);
        else if (S_ISREG(st.st_mode))
            rc = list_add(l, sub.v[i], NULL, err);
    }
    rf_paths_free(sub.v, sub.n);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rf_collect_files(const char *const *paths, int npaths, char ***out, size_t *count, rf_err *err)
{
    path_list l = {0};
    int rc = RF_OK;
    for (int i = 0; i < npaths && !rc; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
            rc = walk(&l, paths[i], 0, err);
        else if (stat(paths[i], &st) != 0 || S_ISREG(st.st_mode))
            rc = list_add(&l, paths[i], NULL, err); /* missing: the reader reports it */
        /* a named non-regular file (device, fifo) is skipped like one found in a tree */
    }
    if (rc) {
        rf_paths_free(l.v, l.n);
        return rc;
    }
    if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (k && strcmp(l.v[k - 1], l.v[i]) == 0)
            free(l.v[i]);
        else
            l.v[k++] = l.v[i];
    }
    *out = l.v;
    *count = k;
    return RF_OK;
}

void rf_paths_free(char **paths, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
}
