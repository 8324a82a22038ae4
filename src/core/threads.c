/*
 * threads.c: how many threads xledit computes with. All of the library's parallel loops are
 * OpenMP regions sized by omp_get_max_threads(), which reads the *calling thread's* OpenMP
 * setting (its nthreads-var); so the count lives in OpenMP, per calling thread, and this file
 * keeps no state of its own. OpenBLAS (the f32 products, the statistics, the solves) has one
 * process-wide setting, which follows the same count.
 */
#define _GNU_SOURCE
#include <sched.h>

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "xledit.h"

int xle_threads_available(void) {
    /* The affinity mask, not the machine: under taskset, cgroups' cpusets or a container the
     * process may run on fewer CPUs than the machine has. Masks of up to 8192 CPUs. */
    for (int n_cpus = 1024; n_cpus <= 8192; n_cpus *= 2) {
        cpu_set_t *set = CPU_ALLOC(n_cpus);
        if (!set) return 1;
        const size_t size = CPU_ALLOC_SIZE(n_cpus);
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) {
            const int count = CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return count > 0 ? count : 1;
        }
        CPU_FREE(set);
    }
    return 1;
}

void xle_threads_set(int n) {
    if (n <= 0) n = xle_threads_available();
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

int xle_threads_get(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
