/*
 * solve.c: the dense float64 linear algebra the editing methods share, done by LAPACK.
 */
#include <lapacke.h>

#include "edit/solve.h"

xle_status xle_solve_spd(double *a, double *b, int n, int nrhs, const char *what, xle_error *err) {
    lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', n, nrhs, a, n, b, nrhs);
    if (info > 0)
        return xle_fail(err, XLE_ERR_NUMERIC, "%s: the %dx%d matrix is not positive definite (collect statistics over more tokens)", what, n, n);
    if (info < 0) return xle_fail(err, XLE_ERR_ARG, "%s: LAPACK dposv argument %d is invalid", what, (int)-info);
    return XLE_OK;
}
