/*
 * run_files.h: file handling shared by evaluation runs (run.c, run_files.c).
 */
#ifndef XLE_RUN_FILES_H
#define XLE_RUN_FILES_H

#include <jansson.h>
#include <stddef.h>

#include "xledit.h"

/* "dir/name", malloc'd (NULL when out of memory). */
char *xle_path_join_dir(const char *dir, const char *name);
/* A whole file, NUL-terminated, malloc'd; *len gets its size. NULL with errno set on failure. */
char *xle_read_all(const char *path, size_t *len);
/* Two independent 64-bit hashes of bytes as 32 hex digits (change detection, not security). */
void xle_hash_hex(const unsigned char *p, size_t n, char out[33]);

/* The first key whose value differs between two JSON objects (present in one only counts), for
 * "cannot resume" messages; "config" when none (or either is not an object). The name is
 * borrowed from one of them. */
const char *xle_json_first_difference(const json_t *old, const json_t *now);

/* A run's description file DIR/name ({"config": ..., "info": ...}): written when absent; when
 * present, refused unless resume, and then its "config" must equal doc's (the message names the
 * first differing key). kind names the run in messages ("a run", "a sequential run"). doc is
 * borrowed. */
xle_status xle_run_description_check(const char *run_dir, const char *name, const char *kind, const json_t *doc,
                                     int resume, xle_error *err);

/* An append-only JSONL file: every line written with one write() and fsynced. */
typedef struct jsonl_out {
    int fd;
    char *path;
} jsonl_out;

/* Opens dir/name for appending (created when missing). */
xle_status xle_jsonl_open(jsonl_out *o, const char *dir, const char *name, xle_error *err);
xle_status xle_jsonl_append(jsonl_out *o, json_t *line, xle_error *err);
/* A line already encoded (n bytes, no newline), appended the same way. */
xle_status xle_jsonl_append_text(jsonl_out *o, const char *text, size_t n, xle_error *err);
/* The text xle_jsonl_append writes for line (without the newline), malloc'd; NULL: no memory. */
char *xle_jsonl_text(const json_t *line);
void xle_jsonl_close(jsonl_out *o);

/* Called with each line (a JSON object, borrowed: json_incref to keep it) and its number. */
typedef xle_status (*xle_jsonl_line_fn)(void *user, json_t *line, size_t line_no, xle_error *err);

/* Calls fn on every complete line of a JSONL file a run wrote (a missing file has none). A
 * last line without its newline (the writer was killed mid-write) is cut off the file; a
 * complete line that is not a JSON object is corruption (XLE_ERR_FORMAT). */
xle_status xle_jsonl_each(const char *path, xle_jsonl_line_fn fn, void *user, xle_error *err);

/* A line's place in its file (>= 0), or -1 when it is not a line of the file. */
typedef int64_t (*xle_jsonl_key_fn)(void *user, const json_t *line);

/* Rewrites a JSONL file of a run in order of key (a line given twice kept once), atomically;
 * a file already in strictly increasing order is left untouched. Several processes write a
 * run's lines in the order they finish; this gives the file one process would have written. */
xle_status xle_jsonl_sort(const char *path, xle_jsonl_key_fn key, void *user, xle_error *err);

#endif
