/*
 * solve.h: the dense float64 linear algebra the editing methods share (solve.c).
 */
#ifndef XLE_EDIT_SOLVE_H
#define XLE_EDIT_SOLVE_H

#include "xledit.h"

/* Solves (sym. positive definite A, n x n, both triangles filled, overwritten) X = A^-1 B for B n x nrhs
 * (overwritten by X) in float64 with LAPACK; XLE_ERR_NUMERIC when A is not positive definite. */
xle_status xle_solve_spd(double *a, double *b, int n, int nrhs, const char *what, xle_error *err);

/* The same for A stored as its lower triangle in LAPACK's rectangular full packed form
 * (n (n + 1) / 2 doubles, half of the full matrix: 268 MB instead of 537 at n = 8192;
 * Cholesky with level-3 BLAS all the same): element A(i, j), i >= j, is arf[xle_rfp_index(n, i, j)]. */
int64_t xle_rfp_index(int n, int64_t i, int64_t j);
xle_status xle_solve_spd_rfp(double *arf, double *b, int n, int nrhs, const char *what, xle_error *err);

/* Solves X = A^-1 B for a general square A (n x n, row-major, overwritten; LU with pivoting,
 * LAPACK dgetrf/dgetrs on Aᵀ in place: no copy of A) and B n x nrhs (overwritten by X); XLE_ERR_NUMERIC when A is singular. */
xle_status xle_solve_general(double *a, double *b, int n, int nrhs, const char *what, xle_error *err);

/* AlphaEdit's projection onto the null space of a key covariance c (n x n, symmetric, row-major,
 * float64): P = U Uᵀ over the eigenvectors whose eigenvalue is below threshold in magnitude
 * (LAPACK dsyevd), written to p (n x n, float32). *null_dim receives their number (0: P = 0),
 * eig_min/eig_max the smallest and largest eigenvalue. */
xle_status xle_nullspace_projection(const double *c, int n, double threshold, float *p, int *null_dim,
                                    double *eig_min, double *eig_max, xle_error *err);

#endif
