/*
 * test_files.h: reading and removing files in tests, once for every tests/test_*.c (each had
 * its own copy). Header-only like check.h: a test binary includes it once.
 */
#ifndef XLE_TEST_FILES_H
#define XLE_TEST_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The whole file at path, malloc'd with one NUL byte after its contents (so text can be used as
 * a string); NULL if it cannot be opened or read whole. *size (if size is not NULL) gets the
 * length without the NUL. The caller frees. */
static inline void *test_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0; /* buf is a char *: the NUL after the contents */
    if (size) *size = (size_t)n;
    return buf;
}

/* How many entries of dir have a name starting with prefix (temporaries left behind?). */
static inline int test_count_prefixed(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    if (d) closedir(d);
    return n;
}

/* Removes dir and the plain files directly inside it (what the tests' output folders hold). */
static inline void test_rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    rmdir(dir);
}

#endif
