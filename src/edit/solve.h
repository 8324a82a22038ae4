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

#endif
