/*
 * outpath.c: output paths (outpath.h): trailing slashes, temporary siblings, stale temporaries
 * of killed processes, checks before work, and errors that name the user's path.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/outpath.h"

int xle_out_trim(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    if (n + 1 > cap) return 0;
    memcpy(buf, path, n);
    buf[n] = 0;
    return 1;
}

int xle_out_tmp_name(const char *out, char *buf, size_t cap) {
    if (!xle_out_trim(out, buf, cap)) return 0;
    size_t n = strlen(buf);
    return snprintf(buf + n, cap - n, ".tmp-%ld", (long)getpid()) < (int)(cap - n);
}

/* Splits a trimmed path into its folder ("." when none) and last name; caller frees *dir. */
static char *split(const char *trimmed, const char **base) {
    const char *slash = strrchr(trimmed, '/');
    if (!slash) {
        *base = trimmed;
        return strdup(".");
    }
    *base = slash + 1;
    size_t n = slash == trimmed ? 1 : (size_t)(slash - trimmed);
    char *dir = malloc(n + 1);
    if (dir) {
        memcpy(dir, trimmed, n);
        dir[n] = 0;
    }
    return dir;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void xle_out_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else unlink(path);
}

void xle_out_clean_stale(const char *out) {
    char trimmed[4096];
    if (!xle_out_trim(out, trimmed, sizeof trimmed)) return;
    const char *base;
    char *dir = split(trimmed, &base);
    if (!dir) return;
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        const char *name = e->d_name;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp-", 5) != 0) continue;
        char *end;
        errno = 0;
        long pid = strtol(name + blen + 5, &end, 10);
        if (*end || end == name + blen + 5 || errno || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
        size_t n = strlen(dir) + strlen(name) + 2;
        char *p = malloc(n);
        if (!p) break;
        snprintf(p, n, "%s/%s", dir, name);
        xle_out_remove_tree(p);
        free(p);
    }
    if (d) closedir(d);
    free(dir);
}

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

xle_status xle_out_check(const char *out, xle_out_kind kind, xle_error *err) {
    if (!out || !*out) return xle_fail(err, XLE_ERR_ARG, "output path: empty");
    size_t len = strlen(out);
    char trimmed[4096];
    if (!xle_out_trim(out, trimmed, sizeof trimmed)) return xle_fail(err, XLE_ERR_ARG, "%s: path too long", out);
    struct stat st;
    int exists = stat(trimmed, &st) == 0;
    if (kind == XLE_OUT_FILE) {
        if (exists && S_ISDIR(st.st_mode))
            return xle_fail(err, XLE_ERR_ARG, "%s: is a directory (a file is written here)", out);
        if (out[len - 1] == '/')
            return xle_fail(err, XLE_ERR_ARG, "%s: ends in '/' but a file is written here", out);
    } else if (exists && !S_ISDIR(st.st_mode)) {
        return xle_fail(err, XLE_ERR_ARG, "%s: already exists and is not a folder", out);
    } else if (exists && !dir_is_empty(trimmed)) {
        return xle_fail(err, XLE_ERR_ARG, "%s: already exists (the output folder must be new or empty)", out);
    }
    const char *base;
    char *dir = split(trimmed, &base);
    if (!dir) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    xle_status rc = XLE_OK;
    if (stat(dir, &st) != 0)
        rc = xle_fail(err, XLE_ERR_IO, "%s: the folder %s does not exist", out, dir);
    else if (!S_ISDIR(st.st_mode))
        rc = xle_fail(err, XLE_ERR_IO, "%s: %s is not a folder", out, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        rc = xle_fail(err, XLE_ERR_IO, "%s: cannot write in %s: %s", out, dir, strerror(errno));
    free(dir);
    return rc;
}

void xle_out_error_rename(xle_error *err, const char *tmp, const char *out) {
    if (!err || !tmp || !*tmp) return;
    char trimmed[4096];
    if (!xle_out_trim(out, trimmed, sizeof trimmed)) return;
    char msg[sizeof err->msg];
    size_t tl = strlen(tmp), k = 0;
    for (const char *p = err->msg; *p && k + 1 < sizeof msg;) {
        if (strncmp(p, tmp, tl) == 0) {
            k += (size_t)snprintf(msg + k, sizeof msg - k, "%s", trimmed);
            if (k >= sizeof msg) k = sizeof msg - 1;
            p += tl;
        } else {
            msg[k++] = *p++;
        }
    }
    msg[k] = 0;
    memcpy(err->msg, msg, sizeof msg);
}

unsigned xle_out_file_mode(void) {
    unsigned mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Umask: %o", &mask) == 1) break;
    if (f) fclose(f);
    return 0666u & ~mask;
}

xle_status xle_in_check_file(const char *path, xle_error *err) {
    struct stat st;
    if (stat(path, &st) != 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return xle_fail(err, XLE_ERR_IO, "%s: is a directory (a file is expected)", path);
    if (access(path, R_OK) != 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    return XLE_OK;
}

xle_status xle_atomic_name(xle_atomic_file *a, const char *path, xle_error *err) {
    a->f = NULL;
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path ||
        !xle_out_tmp_name(path, a->tmp, sizeof a->tmp))
        return xle_fail(err, XLE_ERR_ARG, "%s: path too long", path);
    xle_out_clean_stale(path); /* a killed writer's temporary */
    return XLE_OK;
}

xle_status xle_atomic_commit(xle_atomic_file *a, xle_status written, xle_error *err) {
    if (written == XLE_OK && rename(a->tmp, a->path) != 0)
        written = xle_fail(err, XLE_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(errno));
    if (written != XLE_OK) {
        unlink(a->tmp);
        xle_out_error_rename(err, a->tmp, a->path);
    }
    return written;
}

xle_status xle_atomic_open(xle_atomic_file *a, const char *path, xle_error *err) {
    xle_status st = xle_atomic_name(a, path, err);
    if (st != XLE_OK) return st;
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return xle_fail(err, XLE_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
    return XLE_OK;
}

xle_status xle_atomic_close(xle_atomic_file *a, int ok, xle_error *err) {
    xle_status st = XLE_OK;
    int e = 0;
    if (!a->f) return xle_fail(err, XLE_ERR_ARG, "%s: not open", a->path);
    if (ok && (ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0)) ok = 0, e = errno;
    if (fclose(a->f) != 0 && ok) ok = 0, e = errno;
    a->f = NULL;
    if (ok && rename(a->tmp, a->path) != 0) ok = 0, e = errno;
    if (!ok) {
        unlink(a->tmp);
        if (e) st = xle_fail(err, XLE_ERR_IO, "%s: cannot write: %s", a->path, strerror(e));
        else st = XLE_ERR_IO; /* the caller's own failure: err already says what */
    }
    return st;
}

xle_status xle_atomic_write(const char *path, const void *data, size_t len, xle_error *err) {
    xle_atomic_file a;
    xle_status st = xle_atomic_open(&a, path, err);
    if (st != XLE_OK) return st;
    int ok = fwrite(data, 1, len, a.f) == len;
    int e = errno;
    st = xle_atomic_close(&a, ok, err);
    if (!ok) st = xle_fail(err, XLE_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    return st;
}
