/*
 * paths.c: the small file-system helpers the formats module shares (joining paths, tests for
 * files and folders, copying a file with fsync, syncing a folder, removing a flat folder), used
 * by the loaders and by save.c's atomic writing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/formats_internal.h"

char *xle_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int xle_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int xle_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

xle_status xle_file_copy(const char *src, const char *dst, xle_error *err) {
    int in = open(src, O_RDONLY);
    if (in < 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        close(in);
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    xle_status st = XLE_OK;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            st = xle_fail(err, XLE_ERR_IO, "%s: read failed: %s", src, strerror(errno));
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                st = xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", dst, strerror(errno));
                break;
            }
            off += w;
        }
        if (st != XLE_OK) break;
    }
    if (st == XLE_OK && fsync(out) != 0)
        st = xle_fail(err, XLE_ERR_IO, "%s: fsync failed: %s", dst, strerror(errno));
    close(in);
    if (close(out) != 0 && st == XLE_OK)
        st = xle_fail(err, XLE_ERR_IO, "%s: close failed: %s", dst, strerror(errno));
    return st;
}

void xle_dir_sync(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

void xle_path_remove(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *p = xle_path_join(path, e->d_name);
            if (p) unlink(p);
            free(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

