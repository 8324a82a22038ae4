/*
 * unit_queue.c: the order in which the processes sharing an evaluation run take its units
 * (unit_queue.h). Units differ in cost (an "all" unit edits several languages, a skipped unit
 * costs nothing), so they are handed out one at a time as processes ask, never split up front.
 */
#include <stdlib.h>

#include "eval/unit_queue.h"

int xle_unit_queue_init(xle_unit_queue *q, int n_cases, int units_per_case, int n_procs,
                        const unsigned char *done) {
    *q = (xle_unit_queue){.n_cases = n_cases, .units_per_case = units_per_case, .n_procs = n_procs,
                          .done = done};
    q->next = calloc((size_t)n_cases + 1, sizeof *q->next);
    q->left = calloc((size_t)n_cases + 1, sizeof *q->left);
    q->started = calloc((size_t)n_cases + 1, 1);
    q->current = malloc(((size_t)n_procs + 1) * sizeof *q->current);
    if (!q->next || !q->left || !q->started || !q->current) {
        xle_unit_queue_free(q);
        return -1;
    }
    for (int p = 0; p < n_procs; p++) q->current[p] = -1;
    for (int c = 0; c < n_cases; c++) {
        for (int k = 0; k < units_per_case; k++) q->left[c] += !done[(int64_t)c * units_per_case + k];
        q->n_left += q->left[c];
    }
    return 0;
}

static int64_t take(xle_unit_queue *q, int p, int c) {
    int64_t base = (int64_t)c * q->units_per_case;
    while (q->done[base + q->next[c]]) q->next[c]++;
    q->left[c]--;
    q->n_left--;
    q->started[c] = 1;
    q->current[p] = c;
    return base + q->next[c]++;
}

int64_t xle_unit_queue_next(xle_unit_queue *q, int p) {
    if (q->n_left == 0 || p < 0 || p >= q->n_procs) return -1;
    int c = q->current[p];
    if (c >= 0 && q->left[c] > 0) return take(q, p, c);
    while (q->first_fresh < q->n_cases && (q->started[q->first_fresh] || q->left[q->first_fresh] == 0))
        q->first_fresh++;
    if (q->first_fresh < q->n_cases) return take(q, p, q->first_fresh);
    int best = -1;
    for (c = 0; c < q->n_cases; c++)
        if (q->left[c] > 0 && (best < 0 || q->left[c] > q->left[best])) best = c;
    return take(q, p, best); /* n_left > 0, so some case has a unit left */
}

void xle_unit_queue_free(xle_unit_queue *q) {
    free(q->next), free(q->left), free(q->started), free(q->current);
    q->next = q->left = q->current = NULL;
    q->started = NULL;
}
