/*
 * check.h: the tiny test harness every tests/test_*.c uses. A test file defines test
 * functions, lists them in main with RUN(fn), and returns check_summary(). Each failing CHECK
 * prints file:line and the condition; the closing line is "N passed, N failed".
 */
#ifndef XLE_CHECK_H
#define XLE_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct check_state {
    int passed, failed;     /* test functions */
    int current_failures;   /* failing checks in the running test */
} check_state;

static check_state check_g; /* per test executable; a test binary is single-threaded */

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            check_g.current_failures++;                                                \
        }                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            check_g.current_failures++;                                                \
        }                                                                              \
    } while (0)

/* Asserts an xle_status is XLE_OK, printing the error message otherwise. */
#define CHECK_OK(expr, errp)                                                           \
    do {                                                                               \
        xle_status check_st_ = (expr);                                                 \
        if (check_st_ != XLE_OK) {                                                     \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,       \
                    (errp)->msg);                                                      \
            check_g.current_failures++;                                                \
        }                                                                              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double check_a_ = (a), check_b_ = (b);                                         \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                   \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g (tol %g)\n", \
                    __FILE__, __LINE__, #a, check_a_, #b, check_b_, (double)(tol));    \
            check_g.current_failures++;                                                \
        }                                                                              \
    } while (0)

#define RUN(fn)                                                                        \
    do {                                                                               \
        check_g.current_failures = 0;                                                  \
        fn();                                                                          \
        if (check_g.current_failures) {                                                \
            check_g.failed++;                                                          \
            fprintf(stderr, "FAIL %s\n", #fn);                                         \
        } else {                                                                       \
            check_g.passed++;                                                          \
            fprintf(stderr, "ok   %s\n", #fn);                                         \
        }                                                                              \
    } while (0)

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_g.passed, check_g.failed);
    return check_g.failed ? 1 : 0;
}

/* Worst absolute and relative difference between two float arrays. */
static inline void check_max_diff(const float *got, const float *want, size_t n, double *max_abs,
                                  double *max_rel) {
    double ma = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double r = d / (fabs((double)want[i]) + 1e-6);
        if (d > ma || d != d) ma = d;
        if (r > mr || r != r) mr = r;
    }
    *max_abs = ma;
    *max_rel = mr;
}

#endif
