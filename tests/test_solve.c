/*
 * test_solve.c: the float64 SPD solves editing uses (src/edit/solve.c): the rectangular full
 * packed layout against LAPACK's own conversion (dtrttf), and the packed and full solves
 * against each other and against the residual A X - B, for even and odd sizes; the general
 * (LU) solve against its residual.
 */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "edit/solve.h"

/* A random SPD matrix: M Mᵀ + n I, full, row-major (= column-major, symmetric). */
static double *random_spd(int n, unsigned seed) {
    double *m = malloc((size_t)n * n * sizeof *m), *a = malloc((size_t)n * n * sizeof *a);
    srand(seed);
    for (int i = 0; i < n * n; i++) m[i] = (double)rand() / RAND_MAX - 0.5;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = i == j ? n : 0;
            for (int k = 0; k < n; k++) s += m[i * n + k] * m[j * n + k];
            a[i * n + j] = s;
        }
    free(m);
    return a;
}

static void test_rfp_layout(void) {
    for (int n = 1; n <= 9; n++) {
        double *a = random_spd(n, (unsigned)n);
        double *want = calloc((size_t)n * (n + 1) / 2, sizeof *want);
        CHECK(LAPACKE_dtrttf(LAPACK_COL_MAJOR, 'N', 'L', n, a, n, want) == 0);
        int ok = 1;
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) ok &= want[xle_rfp_index(n, i, j)] == a[(int64_t)j * n + i];
        CHECK_MSG(ok, "n = %d: xle_rfp_index differs from LAPACK's dtrttf", n);
        free(a), free(want);
    }
}

static void test_solves_agree(void) {
    const int sizes[] = {6, 7, 64, 65};
    for (int s = 0; s < 4; s++) {
        const int n = sizes[s], nrhs = 3;
        double *a = random_spd(n, 100u + (unsigned)n);
        double *full = malloc((size_t)n * n * sizeof *full);
        double *arf = malloc((size_t)n * (n + 1) / 2 * sizeof *arf);
        double *b = malloc((size_t)n * nrhs * sizeof *b), *x1 = malloc((size_t)n * nrhs * sizeof *x1),
               *x2 = malloc((size_t)n * nrhs * sizeof *x2);
        for (int i = 0; i < n * n; i++) full[i] = a[i];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) arf[xle_rfp_index(n, i, j)] = a[(int64_t)i * n + j];
        for (int i = 0; i < n * nrhs; i++) b[i] = x1[i] = x2[i] = sin(i + 1.0);
        xle_error err;
        CHECK_OK(xle_solve_spd(full, x1, n, nrhs, "full", &err), &err);
        CHECK_OK(xle_solve_spd_rfp(arf, x2, n, nrhs, "rfp", &err), &err);
        double worst_diff = 0, worst_res = 0;
        for (int i = 0; i < n; i++)
            for (int r = 0; r < nrhs; r++) {
                double ax = 0;
                for (int k = 0; k < n; k++) ax += a[(int64_t)i * n + k] * x2[k * nrhs + r];
                worst_res = fmax(worst_res, fabs(ax - b[i * nrhs + r]));
                worst_diff = fmax(worst_diff, fabs(x1[i * nrhs + r] - x2[i * nrhs + r]));
            }
        CHECK_MSG(worst_res < 1e-10, "n = %d: |A x - b| = %.3g", n, worst_res);
        CHECK_MSG(worst_diff < 1e-12, "n = %d: packed and full solves differ by %.3g", n, worst_diff);
        free(a), free(full), free(arf), free(b), free(x1), free(x2);
    }
    /* not positive definite: a clear error, not a result */
    double bad[4] = {1, 2, 2, 1}, arf[3], x[2] = {1, 1};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j <= i; j++) arf[xle_rfp_index(2, i, j)] = bad[i * 2 + j];
    xle_error err;
    CHECK(xle_solve_spd_rfp(arf, x, 2, 1, "bad", &err) == XLE_ERR_NUMERIC);
}

/* A general (non-symmetric) A, solved in place: the residual A X - B, not Aᵀ X - B, is tiny
 * (the row-major memory is factored as Aᵀ, so a transposition slip shows here), and a
 * singular A is a clear error. */
static void test_solve_general(void) {
    const int sizes[] = {5, 64, 65};
    for (int s = 0; s < 3; s++) {
        const int n = sizes[s], nrhs = 3;
        double *a = malloc((size_t)n * n * sizeof *a), *work = malloc((size_t)n * n * sizeof *work);
        double *b = malloc((size_t)n * nrhs * sizeof *b), *x = malloc((size_t)n * nrhs * sizeof *x);
        srand(7u + (unsigned)n);
        for (int i = 0; i < n * n; i++) a[i] = work[i] = (double)rand() / RAND_MAX - 0.5 + (i % (n + 1) == 0 ? 2.0 : 0.0);
        for (int i = 0; i < n * nrhs; i++) b[i] = x[i] = cos(i + 0.5);
        xle_error err;
        CHECK_OK(xle_solve_general(work, x, n, nrhs, "general", &err), &err);
        double worst = 0, worst_t = 0;
        for (int i = 0; i < n; i++)
            for (int r = 0; r < nrhs; r++) {
                double ax = 0, atx = 0;
                for (int k = 0; k < n; k++) {
                    ax += a[(int64_t)i * n + k] * x[k * nrhs + r];
                    atx += a[(int64_t)k * n + i] * x[k * nrhs + r];
                }
                worst = fmax(worst, fabs(ax - b[i * nrhs + r]));
                worst_t = fmax(worst_t, fabs(atx - b[i * nrhs + r]));
            }
        CHECK_MSG(worst < 1e-10, "n = %d: |A x - b| = %.3g", n, worst);
        CHECK_MSG(worst_t > 1e-3, "n = %d: x also solves the transposed system (%.3g)", n, worst_t);
        free(a), free(work), free(b), free(x);
    }
    double singular[4] = {1, 2, 2, 4}, x[2] = {1, 1};
    xle_error err;
    CHECK(xle_solve_general(singular, x, 2, 1, "singular", &err) == XLE_ERR_NUMERIC);
    CHECK_MSG(strstr(err.msg, "singular: the 2x2 matrix is singular") != NULL, "%s", err.msg);
}

int main(void) {
    RUN(test_rfp_layout);
    RUN(test_solves_agree);
    RUN(test_solve_general);
    return check_summary();
}
