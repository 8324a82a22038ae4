/*
 * load.c: xle_tokenizer_load picks the loader by the file's content, not its name:
 *   "GGUF" magic                        -> GGUF metadata (load_gguf.c)
 *   a JSON object                       -> Hugging Face tokenizer.json (load_json.c)
 *   "BASE64 RANK" lines                 -> tiktoken ranks (load_tiktoken.c)
 *   protobuf starting with field 1      -> SentencePiece .model (load_spm_model.c)
 *   int32 + {f32, i32, bytes} records   -> llama2.c tokenizer.bin, all records to the end
 * A folder is searched for tokenizer.json, tokenizer.model, tokenizer.bin, *.tiktoken in that
 * order.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer_internal.h"

xle_status xle_tok_read_file(const char *path, char **data, size_t *size, xle_error *err) {
    *data = NULL;
    *size = 0;
    xle_status in = xle_in_check_file(path, err);
    if (in != XLE_OK) return in;
    FILE *f = fopen(path, "rb");
    if (!f) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return xle_fail(err, XLE_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, n);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int bad = ferror(f) || got != n;
    fclose(f);
    if (bad) {
        free(buf);
        return xle_fail(err, XLE_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return XLE_OK;
}

static int looks_like_tiktoken(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && i < 4096 && s[i] != ' ' && s[i] != '\n') {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/' || c == '='))
            return 0;
        i++;
    }
    if (i == 0 || i >= n || s[i] != ' ') return 0;
    i++;
    size_t d = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    return i > d && (i == n || s[i] == '\n' || s[i] == '\r');
}

static xle_status load_dir(const char *dir, xle_tokenizer **out, xle_error *err) {
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "tokenizer.bin"};
    char path[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (access(path, R_OK) == 0) return xle_tokenizer_load(path, out, err);
    }
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n > 9 && !strcmp(e->d_name + n - 9, ".tiktoken")) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                closedir(d);
                return xle_tokenizer_load(path, out, err);
            }
        }
        closedir(d);
    }
    return xle_fail(err, XLE_ERR_NOT_FOUND, "%s: no tokenizer.json, tokenizer.model, tokenizer.bin or *.tiktoken in this folder", dir);
}

xle_status xle_tokenizer_load(const char *path, xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    if (!path) return xle_fail(err, XLE_ERR_ARG, "tokenizer: no path");
    struct stat sb;
    if (stat(path, &sb) != 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return load_dir(path, out, err);
    char head[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fread(head, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(head, "GGUF", 4) == 0) {
        xle_gguf *g;
        xle_status st = xle_gguf_open(path, &g, err);
        if (st != XLE_OK) return st;
        st = xle_tokenizer_from_gguf(g, out, err);
        xle_gguf_close(g);
        return st;
    }
    char *data;
    size_t size;
    xle_status st = xle_tok_read_file(path, &data, &size, err);
    if (st != XLE_OK) return st;
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (i < size && data[i] == '{') {
        free(data);
        return xle_tokenizer_load_json(path, out, err);
    }
    if (looks_like_tiktoken(data, size)) st = xle_tokenizer_load_tiktoken(path, data, size, out, err);
    else if (size > 0 && (uint8_t)data[0] == 0x0a) st = xle_tokenizer_load_spm_model(path, (const uint8_t *)data, size, out, err);
    else {
        st = xle_tokenizer_load_llama2c_data(path, (const uint8_t *)data, size, 0, out, err);
        if (st == XLE_ERR_FORMAT) {
            /* the llama2.c reading's complaint, without the repeated file name */
            xle_error e2;
            const char *why = err ? err->msg : "";
            size_t n = strlen(path);
            if (!strncmp(why, path, n) && !strncmp(why + n, ": ", 2)) why += n + 2;
            st = xle_fail(&e2, XLE_ERR_UNSUPPORTED,
                          "%s: not a tokenizer file (not GGUF, JSON, tiktoken or SentencePiece; as llama2.c tokenizer.bin: %s)",
                          path, why);
            if (err) *err = e2;
        }
    }
    free(data);
    return st;
}
