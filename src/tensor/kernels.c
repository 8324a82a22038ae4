/*
 * kernels.c: run-time choice among the kernel variants compiled from tensor/isa/kernels_isa.c
 * (see kernels.h), by what the CPU reports (cpuid through __builtin_cpu_supports).
 */
#include "tensor/kernels.h"

#include <stdlib.h>
#include <string.h>

/* The variants CMakeLists.txt builds define XLE_KERNELS_HAVE_<NAME>. */
#ifdef XLE_KERNELS_HAVE_AVX512BF16
extern const xle_kernels xle_kernels_avx512bf16;
#endif
#ifdef XLE_KERNELS_HAVE_AVX512
extern const xle_kernels xle_kernels_avx512;
#endif
#ifdef XLE_KERNELS_HAVE_AVX2
extern const xle_kernels xle_kernels_avx2;
#endif
extern const xle_kernels xle_kernels_generic;

typedef struct variant {
    const xle_kernels *kernels;
    int (*supported)(void);
} variant;

#if defined(__x86_64__) || defined(__i386__)
#ifdef XLE_KERNELS_HAVE_AVX512BF16
static int has_avx512bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("avx2");
}
#endif
#ifdef XLE_KERNELS_HAVE_AVX512
static int has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
}
#endif
#ifdef XLE_KERNELS_HAVE_AVX2
static int has_avx2(void) {
    __builtin_cpu_init();
    /* F16C has no __builtin_cpu_supports name in GCC 12; every CPU with AVX2 and FMA has it
     * (Intel since Ivy Bridge, AMD since Piledriver). */
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif
#endif

static int always(void) { return 1; }

/* Best first. */
static const variant VARIANTS[] = {
#ifdef XLE_KERNELS_HAVE_AVX512BF16
    {&xle_kernels_avx512bf16, has_avx512bf16},
#endif
#ifdef XLE_KERNELS_HAVE_AVX512
    {&xle_kernels_avx512, has_avx512},
#endif
#ifdef XLE_KERNELS_HAVE_AVX2
    {&xle_kernels_avx2, has_avx2},
#endif
    {&xle_kernels_generic, always},
};
enum { N_VARIANTS = sizeof VARIANTS / sizeof *VARIANTS };

const xle_kernels *xle_kernels_named(const char *name) {
    for (int i = 0; i < N_VARIANTS; i++)
        if (strcmp(VARIANTS[i].kernels->name, name) == 0)
            return VARIANTS[i].supported() ? VARIANTS[i].kernels : NULL;
    return NULL;
}

const xle_kernels *xle_kernels_select(void) {
    const char *forced = getenv("XLE_KERNELS");
    if (forced && *forced) {
        const xle_kernels *k = xle_kernels_named(forced);
        if (k) return k;
    }
    for (int i = 0; i < N_VARIANTS; i++)
        if (VARIANTS[i].supported()) return VARIANTS[i].kernels;
    return &xle_kernels_generic;
}

const char *const *xle_kernels_built(int *n) {
    static const char *const names[] = {
#ifdef XLE_KERNELS_HAVE_AVX512BF16
        "avx512bf16",
#endif
#ifdef XLE_KERNELS_HAVE_AVX512
        "avx512",
#endif
#ifdef XLE_KERNELS_HAVE_AVX2
        "avx2",
#endif
        "generic",
    };
    *n = (int)(sizeof names / sizeof *names);
    return names;
}
