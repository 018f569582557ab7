/* Picks the widest vector-kernel table the CPU runs. */
#include "runtime/cpu_vec.h"

const rf_vec_kernels *rf_vec_select(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return &rf_vec_kernels_v4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &rf_vec_kernels_v3;
#endif
    return &rf_vec_kernels_base;
}
