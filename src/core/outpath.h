/*
 * outpath.h: the rules every writer of a user-named output shares (outpath.c). A path may end
 * in "/" (`--out edited/`); the temporary sibling is "OUT.tmp-PID" of the path without it;
 * temporaries left by a killed process are removed by the next writer of the same output;
 * errors raised while writing the temporary name the user's path; and an output is checked
 * before any work, so that a bad one fails at once. And the matching check of an input file.
 */
#ifndef XLE_OUTPATH_H
#define XLE_OUTPATH_H

#include <stdio.h>

#include "xledit.h"

typedef enum xle_out_kind {
    XLE_OUT_FILE = 0,    /* a file: not a folder, not ending in "/" */
    XLE_OUT_DIR          /* a folder: new, or existing and empty */
} xle_out_kind;

/* path without trailing slashes ("/" stays "/") into buf; returns 0 if it does not fit. */
int xle_out_trim(const char *path, char *buf, size_t cap);
/* The temporary sibling "OUT.tmp-PID" of out (trimmed); returns 0 if it does not fit. */
int xle_out_tmp_name(const char *out, char *buf, size_t cap);
/* Removes every "OUT.tmp-N" beside out (file or folder tree) whose process N is gone. */
void xle_out_clean_stale(const char *out);
/* Whether out can be written as kind: its parent folder exists; a file output is not a folder
 * and does not end in "/"; a folder output is new or an empty folder. Writes nothing. */
xle_status xle_out_check(const char *out, xle_out_kind kind, xle_error *err);
/* Rewrites err->msg so that it names out where it named tmp. */
void xle_out_error_rename(xle_error *err, const char *tmp, const char *out);
/* Whether path can be read as a file: XLE_ERR_IO "PATH: cannot open: <reason>" when it cannot
 * be opened, "PATH: is a directory (a file is expected)" for a folder. For inputs, before a
 * reader whose own error for a folder would be "read error" or "invalid JSON". */
xle_status xle_in_check_file(const char *path, xle_error *err);
/* Removes a file or a whole folder tree (no error when absent). */
void xle_out_remove_tree(const char *path);
/* Mode bits a new file gets under the current umask (0666 & ~umask), read without changing
 * the process's umask (from /proc/self/status; 0644 when unreadable). For files made by
 * mkstemp, which creates them 0600. */
unsigned xle_out_file_mode(void);

/* A file written under its temporary sibling (xle_out_tmp_name: "PATH.tmp-PID", so concurrent
 * writers never share one and xle_out_clean_stale finds those of killed processes) and renamed
 * over PATH only when complete: no reader ever sees part of it. It gets the umask's mode. */
typedef struct xle_atomic_file {
    FILE *f;
    char path[4096], tmp[4200];
} xle_atomic_file;
/* Opens the temporary for writing (removing those of killed writers of the same path). */
xle_status xle_atomic_open(xle_atomic_file *a, const char *path, xle_error *err);
/* ok (and no write error on the stream): flush, fsync, close and rename over the path.
 * Otherwise, or when any of that fails, closes and removes the temporary: nothing is left.
 * Errors name the path. Call exactly once after a successful xle_atomic_open. */
xle_status xle_atomic_close(xle_atomic_file *a, int ok, xle_error *err);
/* For writers that open the file themselves by name (a safetensors writer, a file copy): fills
 * a->path and a->tmp (removing those of killed writers of the same path) without opening
 * anything; give them a->tmp, then call xle_atomic_commit with their status. */
xle_status xle_atomic_name(xle_atomic_file *a, const char *path, xle_error *err);
/* written == XLE_OK: renames a->tmp over a->path. Otherwise, or when the rename fails, removes
 * a->tmp and returns the failure, its message naming the path instead of the temporary. */
xle_status xle_atomic_commit(xle_atomic_file *a, xle_status written, xle_error *err);
/* len bytes of data as the whole of path, that way. */
xle_status xle_atomic_write(const char *path, const void *data, size_t len, xle_error *err);

#endif
