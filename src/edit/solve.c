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
