/*
 * merge_queue.c: the binary min-heap of merge candidates described in merge_queue.h.
 */
#include <stdlib.h>

#include "tokenizer/merge_queue.h"

static int pair_before(const xle_merge_pair *x, const xle_merge_pair *y) {
    return x->order < y->order || (x->order == y->order && x->left < y->left);
}

int xle_merge_queue_push(xle_merge_queue *q, xle_merge_pair p) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        xle_merge_pair *a = realloc(q->a, cap * sizeof *a);
        if (!a) return -1;
        q->a = a;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &q->a[parent])) break;
        q->a[i] = q->a[parent];
        i = parent;
    }
    q->a[i] = p;
    return 0;
}

xle_merge_pair xle_merge_queue_pop(xle_merge_queue *q) {
    xle_merge_pair top = q->a[0], last = q->a[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && pair_before(&q->a[c + 1], &q->a[c])) c++;
        if (!pair_before(&q->a[c], &last)) break;
        q->a[i] = q->a[c];
        i = c;
    }
    if (q->n) q->a[i] = last;
    return top;
}

void xle_merge_queue_free(xle_merge_queue *q) {
    free(q->a);
    *q = (xle_merge_queue){0};
}
