/*
 * hugepages.c: transparent-huge-page advice for large working buffers (hugepages.h).
 */
#include "core/hugepages.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

void xle_advise_huge_pages(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    const long page_size = sysconf(_SC_PAGESIZE);
    if (!p || page_size <= 0 || n < ((size_t)4 << 20)) return;
    const uintptr_t page = (uintptr_t)page_size;
    const uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1), hi = ((uintptr_t)p + n) & ~(page - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* refused: plain pages */
#else
    (void)p, (void)n;
#endif
}
