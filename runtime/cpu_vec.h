/*
 * Vector kernels of the CPU backend, written once (cpu_vec.c) and compiled
 * for three instruction sets: x86-64-v4 (AVX-512), x86-64-v3 (AVX2 + FMA) and
 * the baseline. rf_vec_select picks the widest the CPU runs, per call.
 */
#ifndef RADFUSE_RUNTIME_CPU_VEC_H
#define RADFUSE_RUNTIME_CPU_VEC_H

#include <stdint.h>

#include "runtime/backend.h"

/* One (sequence, head, query tile) of attention. Rows of q, k, v and out are
 * row_stride floats apart and start at the head's first column. */
typedef struct rf_attn_tile {
    const float *q, *k, *v;
    float *out;
    int64_t q_stride, k_stride, v_stride, out_stride;
    int64_t T;     /* keys */
    int64_t D;     /* head size, at most RF_ATTN_DMAX */
    int64_t qn;    /* query rows in this tile, at most RF_ATTN_QT */
    const int32_t *key_mask; /* [T], 0 = masked, or NULL */
    float scale;
} rf_attn_tile;

#define RF_ATTN_QT 32
#define RF_ATTN_KT 64
#define RF_ATTN_DMAX 256

typedef struct rf_vec_kernels {
    const char *isa;
    void (*act_row)(float *x, int64_t n, rf_act act);
    void (*attention_tile)(const rf_attn_tile *t);
} rf_vec_kernels;

/* The kernels for the widest instruction set this CPU supports (cheap: a
 * read of the CPU feature bits). */
const rf_vec_kernels *rf_vec_select(void);

/* The per-ISA tables (cpu_vec.c compiled three times; v4 and v3 on x86-64
 * only). Tests call each directly. */
extern const rf_vec_kernels rf_vec_kernels_v4, rf_vec_kernels_v3, rf_vec_kernels_base;

#endif
