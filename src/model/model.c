/*
 * model.c: the lifetime of an xle_model: allocation, the file mappings and buffers it owns,
 * accessors, and making one weight writable for editing (an owned f32 copy; the mapping of
 * the user's file is never written).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model_internal.h"

xle_model *xle_model_alloc(const char *path) {
    xle_model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->path = strdup(path ? path : "");
    if (!m->path) {
        free(m);
        return NULL;
    }
    m->cfg.bos_id = -1;
    m->cfg.eos_id = -1;
    return m;
}

void xle_model_set_precision(xle_model *m, xle_precision precision) { m->precision = precision; }

xle_precision xle_model_precision(const xle_model *m) { return m->precision; }

xle_status xle_model_alloc_layers(xle_model *m, xle_error *err) {
    if (m->cfg.n_layers <= 0 || m->cfg.n_layers > 4096)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: n_layers: %d is out of range", m->path,
                        m->cfg.n_layers);
    free(m->w.layers);
    m->w.layers = calloc((size_t)m->cfg.n_layers, sizeof *m->w.layers);
    if (!m->w.layers) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    return XLE_OK;
}

xle_status xle_model_own_mapping(xle_model *m, void *base, size_t size, xle_error *err) {
    if (m->n_maps == m->cap_maps) {
        int cap = m->cap_maps ? 2 * m->cap_maps : 4;
        xle_mapping *maps = realloc(m->maps, (size_t)cap * sizeof *maps);
        if (!maps) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        m->maps = maps;
        m->cap_maps = cap;
    }
    m->maps[m->n_maps++] = (xle_mapping){base, size};
    return XLE_OK;
}

xle_status xle_model_own_buffer(xle_model *m, void *buf, xle_error *err) {
    if (m->n_buffers == m->cap_buffers) {
        int cap = m->cap_buffers ? 2 * m->cap_buffers : 16;
        void **bufs = realloc(m->buffers, (size_t)cap * sizeof *bufs);
        if (!bufs) {
            free(buf);
            return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        }
        m->buffers = bufs;
        m->cap_buffers = cap;
    }
    m->buffers[m->n_buffers++] = buf;
    return XLE_OK;
}

xle_status xle_map_file(const char *path, void **base, size_t *size, xle_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return xle_fail(err, XLE_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return xle_fail(err, XLE_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return xle_fail(err, XLE_ERR_FORMAT, "%s: file is empty", path);
    }
    /* MAP_PRIVATE + PROT_WRITE: pages written by the engine are copied, the file never is. */
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return xle_fail(err, XLE_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    *base = p;
    *size = (size_t)st.st_size;
    return XLE_OK;
}

void xle_unmap(void *base, size_t size) {
    if (base) munmap(base, size);
}

void xle_model_free(xle_model *m) {
    if (!m) return;
    if (m->format_state && m->format_state_free) m->format_state_free(m->format_state);
    if (m->tokenizer) xle_tokenizer_free(m->tokenizer);
    for (int i = 0; i < m->n_buffers; i++) free(m->buffers[i]);
    for (int i = 0; i < m->n_maps; i++) xle_unmap(m->maps[i].base, m->maps[i].size);
    free(m->buffers);
    free(m->maps);
    free(m->w.layers);
    free(m->path);
    free(m);
}

const xle_config *xle_model_config(const xle_model *m) { return &m->cfg; }
xle_weights *xle_model_weights(xle_model *m) { return &m->w; }
xle_format xle_model_format(const xle_model *m) { return m->format; }
const char *xle_model_path(const xle_model *m) { return m->path; }
struct xle_tokenizer *xle_model_tokenizer(xle_model *m) { return m->tokenizer; }
xle_dtype xle_model_weight_dtype(const xle_model *m) { return m->weight_dtype; }
void xle_model_set_quant_save(xle_model *m, xle_quant_save mode) { m->quant_save = mode; }

xle_status xle_model_make_writable_f32(xle_model *m, xle_tensor *t, xle_error *err) {
    if (!t->data) return xle_fail(err, XLE_ERR_ARG, "%s: cannot make an absent tensor writable", m->path);
    /* Already an owned f32 buffer? Then it is writable as it is. */
    if (t->dtype == XLE_F32)
        for (int i = 0; i < m->n_buffers; i++)
            if (m->buffers[i] == t->data) return XLE_OK;
    int64_t n = xle_tensor_numel(t);
    float *copy = malloc((size_t)n * sizeof(float));
    if (!copy) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    xle_tensor_row_to_f32(t, 0, n, copy);
    xle_status st = xle_model_own_buffer(m, copy, err);
    if (st != XLE_OK) return st;
    t->data = copy;
    t->dtype = XLE_F32;
    /* Tied embeddings are one tensor seen twice: keep both views on the new buffer, or the
     * logits would still use the old values (and a save would miss the change). */
    if (m->cfg.tied_embeddings) {
        if (t == &m->w.tok_embd) m->w.lm_head = *t;
        else if (t == &m->w.lm_head) m->w.tok_embd = *t;
    }
    return XLE_OK;
}
