/*
 * load.c: the entry point xle_model_load, which only dispatches by what the path is: a folder is
 * Hugging Face (hf.c), a file starting with "GGUF" is GGUF (gguf_model.c), anything else a
 * llama2.c checkpoint (llama2c.c). What the loaders share is in model_layout.c,
 * config_check.c and paths.c, never here.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/formats_internal.h"

xle_status xle_model_load(const char *path, xle_model **out, xle_error *err) {
    *out = NULL;
    if (!path || !*path) return xle_fail(err, XLE_ERR_ARG, "model path: empty");
    struct stat st;
    if (stat(path, &st) != 0) return xle_fail(err, XLE_ERR_IO, "%s: no such file or folder", path);
    if (S_ISDIR(st.st_mode)) return xle_load_hf(path, out, err);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open", path);
    char magic[4] = {0};
    ssize_t got = read(fd, magic, 4);
    close(fd);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) return xle_load_gguf(path, out, err);
    return xle_load_llama2c(path, out, err);
}
