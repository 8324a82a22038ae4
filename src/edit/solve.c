/*
 * solve.c: the dense float64 linear algebra the editing methods share, done by LAPACK.
 */
#include <lapacke.h>
#include <stdlib.h>

#include "edit/solve.h"

xle_status xle_solve_spd(double *a, double *b, int n, int nrhs, const char *what, xle_error *err) {
    /* A is symmetric and stored whole, so its row-major memory is also its column-major form:
     * LAPACK reads it in place (row-major LAPACKE would first copy the n x n matrix, 537 MB at
     * n = 8192: MEMIT's peak memory). Only B (n x nrhs, small) is transposed to column-major.
     * The upper triangle LAPACK reads holds the same values as the row-major one. */
    double *bt = malloc((size_t)n * nrhs * sizeof(double));
    if (!bt) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", what);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++) bt[(int64_t)j * n + i] = b[i * nrhs + j];
    lapack_int info = LAPACKE_dposv(LAPACK_COL_MAJOR, 'U', n, nrhs, a, n, bt, n);
    for (int64_t i = 0; info == 0 && i < n; i++)
        for (int j = 0; j < nrhs; j++) b[i * nrhs + j] = bt[(int64_t)j * n + i];
    free(bt);
    if (info > 0)
        return xle_fail(err, XLE_ERR_NUMERIC, "%s: the %dx%d matrix is not positive definite (collect statistics over more tokens)", what, n, n);
    if (info < 0) return xle_fail(err, XLE_ERR_ARG, "%s: LAPACK dposv argument %d is invalid", what, (int)-info);
    return XLE_OK;
}

int64_t xle_rfp_index(int n, int64_t i, int64_t j) {
    /* LAPACK's rectangular full packed form, TRANSR = 'N', UPLO = 'L', column-major: the first
     * k columns of the lower triangle in place (shifted down one row when n is even), the
     * trailing triangle transposed into the rows above them. */
    if (n % 2 == 0) {
        const int64_t k = n / 2, lda = (int64_t)n + 1;
        return j < k ? (i + 1) + j * lda : (j - k) + (i - k) * lda;
    }
    const int64_t k = (n + 1) / 2;
    return j < k ? i + j * n : (j - k) + (i - k + 1) * n;
}

xle_status xle_solve_spd_rfp(double *arf, double *b, int n, int nrhs, const char *what, xle_error *err) {
    double *bt = malloc((size_t)n * nrhs * sizeof(double));
    if (!bt) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", what);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++) bt[(int64_t)j * n + i] = b[i * nrhs + j];
    lapack_int info = LAPACKE_dpftrf(LAPACK_COL_MAJOR, 'N', 'L', n, arf);
    if (info == 0) info = LAPACKE_dpftrs(LAPACK_COL_MAJOR, 'N', 'L', n, nrhs, arf, bt, n);
    for (int64_t i = 0; info == 0 && i < n; i++)
        for (int j = 0; j < nrhs; j++) b[i * nrhs + j] = bt[(int64_t)j * n + i];
    free(bt);
    if (info > 0)
        return xle_fail(err, XLE_ERR_NUMERIC, "%s: the %dx%d matrix is not positive definite (collect statistics over more tokens)", what, n, n);
    if (info < 0) return xle_fail(err, XLE_ERR_ARG, "%s: LAPACK dpftrf/dpftrs argument %d is invalid", what, (int)-info);
    return XLE_OK;
}
