/*
 * merge_queue.h: the candidate pairs of a merge loop, shared by byte-level BPE (bpe.c) and
 * SentencePiece-style BPE (spm.c). Both merge the best adjacent pair first — the lowest merge
 * rank, or the highest piece score — and break ties by the leftmost pair; both queue pairs
 * lazily and skip the stale ones when popped, each by its own check (hence both checks' fields).
 * A binary min-heap: O(log n) per push and pop.
 */
#ifndef XLE_TOKENIZER_MERGE_QUEUE_H
#define XLE_TOKENIZER_MERGE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct xle_merge_pair {
    double order;              /* merged first: smallest (a rank, or minus a piece's score) */
    int32_t left;              /* left symbol; equal orders merge the leftmost first */
    int32_t right;             /* right symbol when queued */
    int32_t left_id, right_id; /* the symbols' tokens when queued (BPE's staleness check) */
    int32_t len;               /* combined byte length when queued (SentencePiece's check) */
    int32_t merged;            /* the token the pair becomes */
} xle_merge_pair;

/* Owns its array; zero-initialise, reuse across calls (set n = 0), free with
 * xle_merge_queue_free. */
typedef struct xle_merge_queue {
    xle_merge_pair *a;
    size_t n, cap;
} xle_merge_queue;

/* 0, or -1 when out of memory (the queue is unchanged). */
int xle_merge_queue_push(xle_merge_queue *q, xle_merge_pair p);
/* The best pair; the queue must not be empty. */
xle_merge_pair xle_merge_queue_pop(xle_merge_queue *q);
void xle_merge_queue_free(xle_merge_queue *q);

#endif
