/*
 * unit_queue.h: which unit of an evaluation run each process does next when several processes
 * share the run (run.c, docs/scale.md). Process 0 keeps the queue; the others ask it.
 */
#ifndef XLE_UNIT_QUEUE_H
#define XLE_UNIT_QUEUE_H

#include <stdint.h>

/* Units are numbered case by case (units_per_case of each, in run order). A process keeps to
 * one case while it has units left (so the unedited model's answers for the case, and whatever
 * else units of a case share, are computed once), then takes the first case nobody has
 * started, and at the end helps with the case that has the most units left. */
typedef struct xle_unit_queue {
    int n_cases, units_per_case, n_procs;
    const unsigned char *done; /* per unit: finished earlier (borrowed) */
    int *next;                 /* per case: the next unit within it to look at */
    int *left;                 /* per case: units neither finished nor handed out */
    unsigned char *started;    /* per case: a unit of it was handed out */
    int *current;              /* per process: its case, or -1 */
    int first_fresh;           /* no case below it is unstarted with units left */
    int64_t n_left;
} xle_unit_queue;

/* Returns 0, or -1 when out of memory. done is borrowed and must outlive the queue. */
int xle_unit_queue_init(xle_unit_queue *q, int n_cases, int units_per_case, int n_procs,
                        const unsigned char *done);
/* The next unit for process p, or -1 when none is left. */
int64_t xle_unit_queue_next(xle_unit_queue *q, int p);
void xle_unit_queue_free(xle_unit_queue *q);

#endif
