/* Errors, dtypes, tensor views, arenas and half-precision conversion. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "radfuse/runtime.h"

int rf_err_set(rf_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *rf_err_without_name(const char *msg, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(msg, name, n) == 0) {
        msg += n;
        while (*msg == ':' || *msg == ' ')
            msg++;
    }
    return msg;
}

static const struct {
    const char *name;
    size_t size;
} dtype_info[RF_DTYPE_COUNT] = {
    [RF_F32] = {"f32", 4},
    [RF_F16] = {"f16", 2},
    [RF_BF16] = {"bf16", 2},
    [RF_I32] = {"i32", 4},
};

size_t rf_dtype_size(rf_dtype t)
{
    return (unsigned)t < RF_DTYPE_COUNT ? dtype_info[t].size : 0;
}

const char *rf_dtype_name(rf_dtype t)
{
    return (unsigned)t < RF_DTYPE_COUNT ? dtype_info[t].name : "?";
}

rf_tensor rf_tensor_make(rf_dtype dtype, void *data, int ndim, const int64_t *shape)
{
    rf_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    t.data = data;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

int64_t rf_tensor_numel(const rf_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

int rf_tensor_is_contiguous(const rf_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s)
            return 0;
        s *= t->shape[i];
    }
    return 1;
}

rf_tensor rf_tensor_slice(const rf_tensor *t, int dim, int64_t begin, int64_t end)
{
    rf_tensor v = *t;
    v.shape[dim] = end - begin;
    v.data = (char *)t->data + begin * t->stride[dim] * (int64_t)rf_dtype_size(t->dtype);
    return v;
}

/* ---- arenas ---- */

#define ARENA_ALIGN 64

int rf_arena_init(rf_arena *a, size_t size, rf_err *err)
{
    memset(a, 0, sizeof *a);
    if (size == 0)
        return RF_OK;
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    a->base = aligned_alloc(ARENA_ALIGN, size);
    if (!a->base)
        return rf_err_set(err, RF_ENOMEM, "cannot allocate an arena of %zu bytes", size);
    a->size = size;
    a->owns = 1;
    return RF_OK;
}

void rf_arena_wrap(rf_arena *a, void *base, size_t size)
{
    memset(a, 0, sizeof *a);
    a->base = base;
    a->size = size;
}

void rf_arena_free(rf_arena *a)
{
    if (a->owns)
        free(a->base);
    memset(a, 0, sizeof *a);
}

void *rf_arena_alloc(rf_arena *a, size_t bytes)
{
    size_t start = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (start > a->size || bytes > a->size - start)
        return NULL;
    a->used = start + bytes;
    if (a->used > a->peak)
        a->peak = a->used;
    return a->base + start;
}

void rf_arena_reset(rf_arena *a)
{
    a->used = 0;
}

rf_tensor rf_arena_tensor(rf_arena *a, rf_dtype dtype, int ndim, const int64_t *shape)
{
    rf_tensor t = rf_tensor_make(dtype, NULL, ndim, shape);
    t.data = rf_arena_alloc(a, (size_t)rf_tensor_numel(&t) * rf_dtype_size(dtype));
    return t;
}

/* ---- half precision ---- */

static float bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

float rf_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f)
        return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = (float)man * bits_to_f32(0x33800000u);
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t rf_f32_to_f16(float f)
{
    uint32_t u = f32_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (abs < 0x38800000u) {
        /* result is subnormal or zero: let float addition do the rounding */
        float v = bits_to_f32(abs) + 0.5f;
        return (uint16_t)(sign | (f32_to_bits(v) & 0x3ff));
    }
    uint32_t mant_odd = (abs >> 13) & 1;
    abs += 0xc8000fffu + mant_odd; /* rebias exponent, round to nearest even */
    return (uint16_t)(sign | (abs >> 13));
}

float rf_bf16_to_f32(uint16_t h)
{
    return bits_to_f32((uint32_t)h << 16);
}

uint16_t rf_f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

int rf_array_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    if (elem && n > SIZE_MAX / elem)
        return -1;
    void *a = realloc(*arr, n * elem);
    if (!a)
        return -1;
    memset((char *)a + *cap * elem, 0, (n - *cap) * elem);
    *arr = a;
    *cap = n;
    return 0;
}
