/*
 * solve.h: the dense float64 linear algebra the editing methods share (solve.c).
 */
#ifndef XLE_EDIT_SOLVE_H
#define XLE_EDIT_SOLVE_H

#include "xledit.h"

/* Solves (sym. positive definite A, n x n, both triangles filled, overwritten) X = A^-1 B for B n x nrhs
 * (overwritten by X) in float64 with LAPACK; XLE_ERR_NUMERIC when A is not positive definite. */
xle_status xle_solve_spd(double *a, double *b, int n, int nrhs, const char *what, xle_error *err);

#endif
