/*
 * solve.c: the dense float64 linear algebra the editing methods share, done by LAPACK: solves
 * and the null-space projection of AlphaEdit.
 */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

xle_status xle_solve_general(double *a, double *b, int n, int nrhs, const char *what, xle_error *err) {
    /* The row-major memory of A is the column-major form of Aᵀ: LAPACK factors Aᵀ = P L U in
     * place and dgetrs with 'T' solves (Aᵀ)ᵀ X = A X = B. Row-major LAPACKE dgesv would first
     * copy the n x n matrix (537 MB at n = 8192: AlphaEdit's peak memory). Only B (n x nrhs,
     * small) is transposed to column-major. */
    lapack_int *ipiv = malloc((size_t)n * sizeof *ipiv);
    double *bt = malloc((size_t)n * nrhs * sizeof(double));
    if (!ipiv || !bt) {
        free(ipiv), free(bt);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", what);
    }
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < nrhs; j++) bt[(int64_t)j * n + i] = b[i * nrhs + j];
    lapack_int info = LAPACKE_dgetrf(LAPACK_COL_MAJOR, n, n, a, n, ipiv);
    if (info == 0) info = LAPACKE_dgetrs(LAPACK_COL_MAJOR, 'T', n, nrhs, a, n, ipiv, bt, n);
    for (int64_t i = 0; info == 0 && i < n; i++)
        for (int j = 0; j < nrhs; j++) b[i * nrhs + j] = bt[(int64_t)j * n + i];
    free(ipiv), free(bt);
    if (info > 0) return xle_fail(err, XLE_ERR_NUMERIC, "%s: the %dx%d matrix is singular", what, n, n);
    if (info < 0) return xle_fail(err, XLE_ERR_ARG, "%s: LAPACK dgetrf/dgetrs argument %d is invalid", what, (int)-info);
    return XLE_OK;
}

xle_status xle_nullspace_projection(const double *c, int n, double threshold, float *p, int *null_dim,
                                    double *eig_min, double *eig_max, xle_error *err) {
    double *u = malloc((size_t)n * n * sizeof(double)), *w = malloc((size_t)n * sizeof(double));
    double *pp = malloc((size_t)n * n * sizeof(double));
    xle_status st = XLE_OK;
    if (!u || !w || !pp) {
        st = xle_fail(err, XLE_ERR_NOMEM, "null space: out of memory (%d x %d)", n, n);
        goto done;
    }
    memcpy(u, c, (size_t)n * n * sizeof(double));
    /* eigenvalues ascending; column k of u (row-major) is the eigenvector of w[k] */
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', n, u, n, w);
    if (info != 0) {
        st = xle_fail(err, XLE_ERR_NUMERIC, "null space: LAPACK dsyevd failed (info %d)", (int)info);
        goto done;
    }
    /* the reference selects singular values below the threshold: |λ| for a symmetric matrix */
    int k = 0;
    for (int i = 0; i < n; i++) k += fabs(w[i]) < threshold;
    *null_dim = k, *eig_min = w[0], *eig_max = w[n - 1];
    memset(pp, 0, (size_t)n * n * sizeof(double));
    /* P = Σ over the selected eigenvectors of v vᵀ; with ascending eigenvalues of a PSD matrix
     * they are columns 0..k-1 (a rounding-negative one still has |λ| small) */
    int *sel = malloc((size_t)(k > 0 ? k : 1) * sizeof(int));
    double *us = malloc((size_t)n * (k > 0 ? k : 1) * sizeof(double));
    if (!sel || !us) {
        free(sel), free(us);
        st = xle_fail(err, XLE_ERR_NOMEM, "null space: out of memory");
        goto done;
    }
    for (int i = 0, at = 0; i < n; i++)
        if (fabs(w[i]) < threshold) sel[at++] = i;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) us[(int64_t)i * k + j] = u[(int64_t)i * n + sel[j]];
    if (k > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, k, 1.0, us, k, us, k, 0.0, pp, n);
    for (int64_t i = 0; i < (int64_t)n * n; i++) p[i] = (float)pp[i];
    free(sel), free(us);
done:
    free(u), free(w), free(pp);
    return st;
}
