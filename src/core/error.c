/*
 * error.c: errors as values. A failing function fills the caller's xle_error with one line
 * ("file: field: what is wrong") and returns its status; nothing is printed here.
 */
#include <stdarg.h>
#include <stdio.h>

#include "xledit.h"

xle_status xle_fail(xle_error *err, xle_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
        /* Keep the message on one line whatever the inputs contained. */
        for (char *p = err->msg; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    return status;
}

const char *xle_status_name(xle_status status) {
    switch (status) {
    case XLE_OK: return "ok";
    case XLE_ERR_IO: return "i/o error";
    case XLE_ERR_FORMAT: return "format error";
    case XLE_ERR_ARG: return "invalid argument";
    case XLE_ERR_NOMEM: return "out of memory";
    case XLE_ERR_UNSUPPORTED: return "unsupported";
    case XLE_ERR_NUMERIC: return "numerical error";
    case XLE_ERR_NOT_FOUND: return "not found";
    case XLE_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}
