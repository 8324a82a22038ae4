/*
 * run_files.c: the file handling of evaluation runs (run.c): whole-file reads, a content
 * hash, atomic writes, and append-only JSONL files whose every line is written with one
 * write() and fsynced, read back with a torn last line cut off.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/outpath.h"
#include "eval/run_files.h"

char *xle_path_join_dir(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Reads a whole file; *len gets its size. NULL with errno set on failure. */
char *xle_read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n + 1 < cap) break;
        char *b2 = realloc(buf, cap * 2);
        if (!b2) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b2, cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf || failed) {
        free(buf);
        errno = failed ? EIO : ENOMEM;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Two independent 64-bit hashes of bytes, as 32 hex digits (change detection, not security). */
void xle_hash_hex(const unsigned char *p, size_t n, char out[33]) {
    uint64_t a = 0xcbf29ce484222325ull, b = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        a = (a ^ p[i]) * 0x100000001b3ull;
        b = (b + p[i] + 1) * 0xff51afd7ed558ccdull;
        b ^= b >> 29;
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

/* Writes text to path atomically: a temporary file beside it, fsync, rename. */
const char *xle_json_first_difference(const json_t *old, const json_t *now) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)now, key, v)
        if (!json_equal(json_object_get(old, key), v)) return key;
    json_object_foreach((json_t *)old, key, v)
        if (!json_object_get(now, key)) return key;
    return "config";
}

xle_status xle_run_description_check(const char *run_dir, const char *name, const char *kind, const json_t *doc,
                                     int resume, xle_error *err) {
    char *path = xle_path_join_dir(run_dir, name);
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_status st = XLE_OK;
    json_error_t je;
    json_t *old = json_load_file(path, 0, &je);
    const json_t *config = json_object_get(doc, "config");
    if (old) {
        if (!resume) {
            st = xle_fail(err, XLE_ERR_ARG, "%s: holds %s already (add --resume to continue it, or "
                          "choose another directory)", run_dir, kind);
        } else if (!json_equal(json_object_get(old, "config"), config)) {
            const char *what = xle_json_first_difference(json_object_get(old, "config"), config);
            st = xle_fail(err, XLE_ERR_ARG, "%s: %s: %s: this run was made with other arguments, model "
                          "or data; cannot resume it", run_dir, name, what);
        }
        json_decref(old);
    } else if (access(path, F_OK) == 0) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: %s", path, je.text);
    } else {
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        st = text ? xle_atomic_write(path, text, strlen(text), err) : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        free(text);
    }
    free(path);
    return st;
}

char *xle_jsonl_text(const json_t *line) { return json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(17)); }

xle_status xle_jsonl_append_text(jsonl_out *o, const char *text, size_t n, xle_error *err) {
    char *buf = malloc(n + 1);
    if (!buf) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    memcpy(buf, text, n);
    buf[n] = '\n'; /* line and newline in one write */
    size_t done = 0;
    while (done < n + 1) {
        ssize_t w = write(o->fd, buf + done, n + 1 - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            free(buf);
            return xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
        }
        done += (size_t)w;
    }
    free(buf);
    if (fsync(o->fd) != 0) return xle_fail(err, XLE_ERR_IO, "%s: fsync failed: %s", o->path, strerror(errno));
    return XLE_OK;
}

xle_status xle_jsonl_append(jsonl_out *o, json_t *line, xle_error *err) {
    char *text = xle_jsonl_text(line);
    if (!text) return xle_fail(err, XLE_ERR_NOMEM, "%s: cannot encode a line", o->path);
    xle_status st = xle_jsonl_append_text(o, text, strlen(text), err);
    free(text);
    return st;
}

typedef struct keyed_line {
    int64_t key;
    size_t at, n, seq;
} keyed_line;

static int by_key(const void *a, const void *b) {
    const keyed_line *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

xle_status xle_jsonl_sort(const char *path, xle_jsonl_key_fn key, void *user, xle_error *err) {
    size_t len = 0;
    char *buf = xle_read_all(path, &len);
    if (!buf) return errno == ENOENT ? XLE_OK : xle_fail(err, XLE_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += buf[i] == '\n';
    keyed_line *lines = calloc(n_lines + 1, sizeof *lines);
    xle_status st = lines ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    size_t n = 0;
    int sorted = 1;
    for (size_t at = 0; st == XLE_OK && at < len;) {
        char *nl = memchr(buf + at, '\n', len - at);
        if (!nl) break; /* a torn last line: left out (the caller cut it already) */
        size_t k = (size_t)(nl - (buf + at));
        if (k > 0) {
            json_error_t je;
            json_t *v = json_loadb(buf + at, k, 0, &je);
            int64_t kv = v ? key(user, v) : -1;
            json_decref(v);
            if (kv < 0) {
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: line %zu: not a line of this run", path, n + 1);
                break;
            }
            lines[n] = (keyed_line){kv, at, k, n};
            if (n > 0 && lines[n - 1].key >= kv) sorted = 0;
            n++;
        }
        at += k + 1;
    }
    if (st == XLE_OK && !sorted) {
        qsort(lines, n, sizeof *lines, by_key);
        char *out = malloc(len + 1);
        size_t w = 0;
        if (!out) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        for (size_t i = 0; out && i < n; i++) {
            if (i > 0 && lines[i].key == lines[i - 1].key) continue; /* a line given twice */
            memcpy(out + w, buf + lines[i].at, lines[i].n);
            w += lines[i].n;
            out[w++] = '\n';
        }
        if (out) {
            out[w] = 0;
            st = xle_atomic_write(path, out, w, err);
        }
        free(out);
    }
    free(lines);
    free(buf);
    return st;
}

xle_status xle_jsonl_each(const char *path, xle_jsonl_line_fn fn, void *user, xle_error *err) {
    size_t len = 0;
    char *buf = xle_read_all(path, &len);
    if (!buf) {
        if (errno == ENOENT) return XLE_OK;
        return xle_fail(err, XLE_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    }
    size_t complete = len;
    while (complete > 0 && buf[complete - 1] != '\n') complete--;
    xle_status st = XLE_OK;
    if (complete < len && truncate(path, (off_t)complete) != 0)
        st = xle_fail(err, XLE_ERR_IO, "%s: cannot cut the torn last line: %s", path, strerror(errno));
    size_t line_no = 0;
    for (size_t at = 0; at < complete && st == XLE_OK;) {
        char *nl = memchr(buf + at, '\n', complete - at);
        size_t n = (size_t)(nl - (buf + at));
        line_no++;
        if (n > 0) {
            json_error_t je;
            json_t *v = json_loadb(buf + at, n, 0, &je);
            if (!v || !json_is_object(v))
                st = xle_fail(err, XLE_ERR_FORMAT, "%s:%zu: json: not a line of a run (%s)", path,
                              line_no, v ? "not an object" : je.text);
            else
                st = fn(user, v, line_no, err);
            json_decref(v);
        }
        at += n + 1;
    }
    free(buf);
    return st;
}

xle_status xle_jsonl_open(jsonl_out *o, const char *dir, const char *name, xle_error *err) {
    o->path = xle_path_join_dir(dir, name);
    if (!o->path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    o->fd = open(o->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (o->fd < 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", o->path, strerror(errno));
    return XLE_OK;
}

void xle_jsonl_close(jsonl_out *o) {
    if (o->fd >= 0) close(o->fd);
    free(o->path);
    o->fd = -1;
    o->path = NULL;
}

