/*
 * hugepages.h: advice that large working buffers be backed by transparent huge pages
 * (hugepages.c). On a virtual machine every 4 KB page fault costs microseconds; a forward pass
 * over a 2,048-token batch of a 1B model touches ~330 MB of fresh workspace, and the key
 * statistics a 537 MB float64 matrix, so the faults alone were ~10% of the statistics' CPU time
 * (docs/performance.md). With THP in "madvise" mode (Debian's default) only advised memory gets
 * 2 MB pages.
 */
#ifndef XLE_HUGEPAGES_H
#define XLE_HUGEPAGES_H

#include <stddef.h>

/* Advises huge pages for the whole pages inside [p, p + n) when n is at least 4 MB (smaller
 * buffers sit in malloc's heap, where it buys nothing). Advice only: contents, ownership and
 * the allocator's bookkeeping are unchanged; without THP it does nothing. */
void xle_advise_huge_pages(void *p, size_t n);

#endif
