/*
 * test_outpath.c: the output rules every writer shares (src/core/outpath.c). A trailing "/" is
 * trimmed; the temporary is "OUT.tmp-PID"; an atomic write leaves either the whole new file or
 * nothing (a failed write keeps the old file and no temporary, and its error names the user's
 * path, not the temporary); new files follow the umask; a temporary left by a process that is
 * gone is removed by the next writer, one of a live process is not.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/outpath.h"
#include "test_files.h"
#include "xledit.h"

static char g_dir[64];

static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void test_names(void) {
    char buf[64];
    CHECK(xle_out_trim("edited/", buf, sizeof buf) && strcmp(buf, "edited") == 0);
    CHECK(xle_out_trim("a//", buf, sizeof buf) && strcmp(buf, "a") == 0);
    CHECK(xle_out_trim("/", buf, sizeof buf) && strcmp(buf, "/") == 0);
    char want[64];
    snprintf(want, sizeof want, "out.tmp-%ld", (long)getpid());
    CHECK(xle_out_tmp_name("out/", buf, sizeof buf) && strcmp(buf, want) == 0);
    CHECK(!xle_out_tmp_name("out", buf, 4)); /* does not fit */
}

static void test_atomic_write(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/a.txt", g_dir);
    xle_error err = {0};
    const mode_t old_mask = umask(027);
    CHECK_OK(xle_atomic_write(path, "first", 5, &err), &err);
    umask(old_mask);
    size_t n = 0;
    char *text = test_read_file(path, &n);
    CHECK(text && n == 5 && strcmp(text, "first") == 0);
    free(text);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640);
    CHECK(test_count_prefixed(g_dir, "a.txt.tmp-") == 0);

    /* a writer that fails part-way: the old file stays whole, no temporary is left */
    xle_atomic_file a;
    CHECK_OK(xle_atomic_open(&a, path, &err), &err);
    fputs("half of the sec", a.f);
    xle_fail(&err, XLE_ERR_FORMAT, "the writer's own reason");
    CHECK(xle_atomic_close(&a, 0, &err) != XLE_OK);
    CHECK(strcmp(err.msg, "the writer's own reason") == 0);
    text = test_read_file(path, &n);
    CHECK(text && strcmp(text, "first") == 0);
    free(text);
    CHECK(test_count_prefixed(g_dir, "a.txt.tmp-") == 0);
}

/* A writer that takes a file name, as xle_safetensors_write does: writes text to tmp, or fails
 * with a message naming the file it was given. */
static xle_status write_named(const char *tmp, const char *text, xle_error *err) {
    FILE *f = fopen(tmp, "wb");
    if (!f) return xle_fail(err, XLE_ERR_IO, "%s: cannot create", tmp);
    int ok = fputs(text, f) >= 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok || strcmp(text, "bad") == 0) return xle_fail(err, XLE_ERR_IO, "%s: disk full", tmp);
    return XLE_OK;
}

static void test_atomic_name_commit(void) {
    char path[128], msg[256];
    snprintf(path, sizeof path, "%s/b.bin", g_dir);
    xle_error err = {0};
    xle_atomic_file a;
    CHECK_OK(xle_atomic_name(&a, path, &err), &err);
    CHECK(a.f == NULL && !exists(a.tmp));
    CHECK_OK(xle_atomic_commit(&a, write_named(a.tmp, "good", &err), &err), &err);
    char *text = test_read_file(path, NULL);
    CHECK(text && strcmp(text, "good") == 0);
    free(text);

    CHECK_OK(xle_atomic_name(&a, path, &err), &err);
    CHECK(xle_atomic_commit(&a, write_named(a.tmp, "bad", &err), &err) == XLE_ERR_IO);
    snprintf(msg, sizeof msg, "%s: disk full", path);
    CHECK_MSG(strcmp(err.msg, msg) == 0, "%s", err.msg); /* the user's path, not OUT.tmp-PID */
    text = test_read_file(path, NULL);
    CHECK(text && strcmp(text, "good") == 0);
    free(text);
    CHECK(test_count_prefixed(g_dir, "b.bin.tmp-") == 0);
}

static void test_stale_temporaries(void) {
    char path[128], dead[160], alive[160];
    snprintf(path, sizeof path, "%s/c.txt", g_dir);
    /* pid 0x7ffffff0 is above any pid_max Linux allows (4194304): no such process */
    snprintf(dead, sizeof dead, "%s.tmp-%ld", path, 0x7ffffff0L);
    snprintf(alive, sizeof alive, "%s.tmp-%ld", path, (long)getppid());
    xle_error err = {0};
    CHECK_OK(xle_atomic_write(dead, "x", 1, &err), &err);
    CHECK_OK(xle_atomic_write(alive, "x", 1, &err), &err);
    CHECK_OK(xle_atomic_write(path, "new", 3, &err), &err);
    CHECK(!exists(dead));
    CHECK(exists(alive)); /* its writer may still be at work */
    unlink(alive);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/xle_test_outpath_%ld", (long)getpid());
    if (mkdir(g_dir, 0700) != 0) {
        perror(g_dir);
        return 1;
    }
    RUN(test_names);
    RUN(test_atomic_write);
    RUN(test_atomic_name_commit);
    RUN(test_stale_temporaries);
    test_rm_dir(g_dir);
    return check_summary();
}
