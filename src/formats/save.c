/*
 * save.c: xle_model_save, writing a model back in its own format (a GGUF file keeps its KVs
 * and tensor order; a Hugging Face folder keeps its shard layout, tensor names and non-weight
 * files; a llama2.c checkpoint becomes a Hugging Face folder). Tensors still holding what was
 * loaded are copied byte for byte from the source mapping (block-quantized ones too); changed
 * tensors are written in their current dtype (f32 after xle_model_make_writable_f32), except
 * a changed tensor of a block-quantized GGUF source, stored as the model's quant_save says
 * (F16 by default, BF16, F32, or quantized again to its source type). Everything goes to
 * "OUT.tmp-<pid>" beside OUT (core/outpath.h: OUT may end in "/"; stale temporaries of killed
 * runs are removed first), is fsynced, and is renamed into place at the end; on failure the
 * temporary is removed and the error names OUT. (The file-system helpers it uses are in
 * paths.c.)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "core/quant.h"
#include "formats/formats_internal.h"

/* The parent folder of path (for fsync after rename); caller frees. */
static char *parent_dir(const char *path) {
    char *c = strdup(path);
    if (!c) return NULL;
    char *d = strdup(dirname(c));
    free(c);
    return d;
}

/* ---- tensors to write -------------------------------------------------------------------- */

/* A changed slot's data must cover the same number of elements as the source tensor. */
static xle_status check_numel(const xle_tensor *t, int64_t want, const char *out, const char *name,
                              xle_error *err) {
    if (xle_tensor_numel(t) != want)
        return xle_fail(err, XLE_ERR_ARG, "%s: %s: tensor now has %lld elements, the source had %lld",
                        out, name, (long long)xle_tensor_numel(t), (long long)want);
    return XLE_OK;
}

static uint32_t ggml_type_of(xle_dtype dt) {
    const int t = xle_ggml_of_dtype(dt);
    return t < 0 ? XLE_GGML_F32 : (uint32_t)t;
}

/* A changed f32 tensor whose source was block-quantized, converted for storage as mode says:
 * *data and *type are what to write (*owned is the caller's to free). */
static xle_status store_quantized_source(const xle_tensor *t, xle_dtype source, xle_quant_save mode,
                                         const void **data, uint32_t *type, void **owned,
                                         xle_error *err) {
    const int64_t n = xle_tensor_numel(t);
    const xle_dtype to = mode == XLE_QSAVE_REQUANTIZE ? source
                         : mode == XLE_QSAVE_BF16    ? XLE_BF16
                         : mode == XLE_QSAVE_F32     ? XLE_F32
                                                     : XLE_F16;
    void *buf = malloc(xle_dtype_row_bytes(to, n) + 1);
    if (!buf) return xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
    const float *x = t->data;
    if (to == XLE_F16)
        for (int64_t i = 0; i < n; i++) ((uint16_t *)buf)[i] = xle_f32_to_f16(x[i]);
    else if (to == XLE_BF16)
        for (int64_t i = 0; i < n; i++) ((uint16_t *)buf)[i] = xle_f32_to_bf16(x[i]);
    else if (to == XLE_F32)
        memcpy(buf, x, (size_t)n * sizeof(float));
    else
        xle_quant_quantize(to, x, n, buf);
    *owned = buf;
    *data = buf;
    *type = (uint32_t)xle_ggml_of_dtype(to);
    return XLE_OK;
}

/* A GGUF tensor the loader split (fused q/k/v rows) or converted (Gemma's 1 + w norms) still
 * holds what was loaded: every part in its loaded buffer and dtype, and for a converted norm
 * adding the 1 back gives the stored bytes (an f32 copy is edited in place). */
static int gguf_converted_untouched(const xle_fmt_bind *b, const xle_gguf_tensor_info *ti) {
    if (b->layout == XLE_LAYOUT_FUSED_QKV_ROWS) {
        for (int p = 0; p < 3; p++)
            if (b->parts[p]->data != b->parts_loaded[p] || b->parts[p]->dtype != xle_dtype_of_ggml(ti->ggml_type))
                return 0;
        return 1;
    }
    if (b->slot->data != b->loaded_data || b->slot->dtype != XLE_F32 || ti->ggml_type != XLE_GGML_F32)
        return 0;
    const float *w = b->slot->data;
    const unsigned char *stored = ti->data;
    for (int64_t i = 0; i < xle_tensor_numel(b->slot); i++) {
        float back = w[i] + 1.0f;
        if (memcmp(&back, stored + (size_t)i * sizeof back, sizeof back) != 0) return 0;
    }
    return 1;
}

/* A split or converted tensor back in the file's layout as f32 (*buf, caller frees). */
static xle_status gguf_convert_back(const xle_model *m, const xle_fmt_bind *b, const xle_gguf_tensor_info *ti,
                                    const char *out, void **buf, xle_error *err) {
    (void)m;
    const int64_t numel = ti->ne[0] * ti->ne[1] * ti->ne[2] * ti->ne[3];
    const xle_tensor *parts[3] = {b->slot, NULL, NULL};
    const int n_parts = b->layout == XLE_LAYOUT_FUSED_QKV_ROWS ? 3 : 1;
    if (n_parts == 3)
        for (int p = 0; p < 3; p++) parts[p] = b->parts[p];
    int64_t have = 0;
    for (int p = 0; p < n_parts; p++) have += xle_tensor_numel(parts[p]);
    if (have != numel)
        return xle_fail(err, XLE_ERR_ARG, "%s: %.*s: tensor now has %lld elements, the source had %lld",
                        out, (int)(ti->name.len > 200 ? 200 : ti->name.len), ti->name.ptr,
                        (long long)have, (long long)numel);
    float *f = malloc((size_t)(numel ? numel : 1) * sizeof *f);
    if (!f) return xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
    int64_t at = 0;
    for (int p = 0; p < n_parts; p++) {
        const int64_t n = xle_tensor_numel(parts[p]);
        xle_tensor_row_to_f32(parts[p], 0, n, f + at);
        at += n;
    }
    if (b->layout == XLE_LAYOUT_PLUS_ONE)
        for (int64_t i = 0; i < numel; i++) f[i] += 1.0f;
    *buf = f;
    return XLE_OK;
}

static xle_status save_gguf(const xle_model *m, const char *tmp, const char *out, xle_error *err) {
    const xle_gguf_state *s = m->format_state;
    const xle_gguf *g = s->gguf;
    xle_gguf_writer *w;
    xle_status st = xle_gguf_writer_new(&w, err);
    if (st != XLE_OK) return st;
    void **owned = calloc((size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *owned);
    if (!owned) {
        xle_gguf_writer_free(w);
        return xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
    }
    st = xle_gguf_writer_copy_kvs(w, g, err);
    for (uint64_t i = 0; i < g->n_tensors && st == XLE_OK; i++) {
        const xle_gguf_tensor_info *ti = &g->tensors[i];
        const xle_fmt_bind *b = &s->binds[i];
        if (b->layout != XLE_LAYOUT_SAME && !gguf_converted_untouched(b, ti)) {
            st = gguf_convert_back(m, b, ti, out, &owned[i], err);
            if (st == XLE_OK) {
                const xle_dtype source = xle_dtype_of_ggml(ti->ggml_type);
                xle_tensor f = {.dtype = XLE_F32, .ndim = 1, .shape = {ti->ne[0] * ti->ne[1]}, .data = owned[i]};
                const void *data = owned[i];
                uint32_t type = XLE_GGML_F32;
                void *requant = NULL;
                if (xle_dtype_is_quantized(source))
                    st = store_quantized_source(&f, source, m->quant_save, &data, &type, &requant, err);
                if (st == XLE_OK)
                    st = xle_gguf_writer_add_tensor(w, ti->name.ptr, (size_t)ti->name.len, ti->n_dims,
                                                    ti->ne, type, data, err);
                if (requant) { /* the writer keeps pointers until written: keep the quantized copy */
                    free(owned[i]);
                    owned[i] = requant;
                }
            }
            continue;
        }
        if (b->layout != XLE_LAYOUT_SAME || xle_fmt_bind_untouched(b)) {
            st = xle_gguf_writer_add_tensor(w, ti->name.ptr, (size_t)ti->name.len, ti->n_dims,
                                            ti->ne, ti->ggml_type, ti->data, err);
            continue;
        }
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(ti->name.len > 200 ? 200 : ti->name.len), ti->name.ptr);
        st = check_numel(b->slot, ti->ne[0] * ti->ne[1] * ti->ne[2] * ti->ne[3], out, name, err);
        const void *data = b->slot->data;
        uint32_t type = ggml_type_of(b->slot->dtype);
        const xle_dtype source = xle_dtype_of_ggml(ti->ggml_type);
        if (st == XLE_OK && xle_dtype_is_quantized(source) && b->slot->dtype == XLE_F32)
            st = store_quantized_source(b->slot, source, m->quant_save, &data, &type, &owned[i], err);
        if (st == XLE_OK)
            st = xle_gguf_writer_add_tensor(w, ti->name.ptr, (size_t)ti->name.len, ti->n_dims,
                                            ti->ne, type, data, err);
    }
    if (st == XLE_OK) st = xle_gguf_writer_write(w, tmp, err);
    xle_gguf_writer_free(w);
    for (uint64_t i = 0; i < g->n_tensors; i++) free(owned[i]);
    free(owned);
    return st;
}

/* Non-weight files of a HF folder to carry over (config, tokenizer, generation config, ...). */
int xle_hf_is_weight_file(const char *name) {
    static const char *const sfx[] = {".safetensors", ".pt", ".pth", ".gguf", ".ckpt", ".h5",
                                       ".msgpack", ".safetensors.index.json", ".bin.index.json"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
        size_t k = strlen(sfx[i]);
        if (n >= k && strcmp(name + n - k, sfx[i]) == 0) return 1;
    }
    return strncmp(name, "pytorch_model", 13) == 0 || strncmp(name, "consolidated", 12) == 0;
}

static xle_status copy_side_files(const char *src_dir, const char *dst_dir, xle_error *err) {
    DIR *d = opendir(src_dir);
    if (!d) return xle_fail(err, XLE_ERR_IO, "%s: cannot list: %s", src_dir, strerror(errno));
    xle_status st = XLE_OK;
    struct dirent *e;
    while (st == XLE_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.' || xle_hf_is_weight_file(e->d_name)) continue;
        char *sp = xle_path_join(src_dir, e->d_name), *dp = xle_path_join(dst_dir, e->d_name);
        struct stat sb;
        if (!sp || !dp) st = xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
        else if (stat(sp, &sb) == 0 && S_ISREG(sb.st_mode)) st = xle_file_copy(sp, dp, err);
        free(sp);
        free(dp);
    }
    closedir(d);
    return st;
}

static int cmp_entry_begin(const void *a, const void *b) {
    const xle_st_entry *x = *(const xle_st_entry *const *)a, *y = *(const xle_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Element src of t written at dst as dtype dt (es bytes): its own bytes when t already has dt,
 * else as f32 (the dtype convert_back falls back to when the parts differ). */
static void copy_element(unsigned char *dst, const xle_tensor *t, int64_t src, xle_dtype dt, size_t es) {
    if (t->dtype == dt) {
        memcpy(dst, (const unsigned char *)t->data + (size_t)src * es, es);
    } else {
        float v = xle_tensor_get_f32(t, src);
        memcpy(dst, &v, sizeof v);
    }
}

/* The bytes of a tensor the loader converted (bind layout not SAME), back in the file's layout,
 * in a new buffer (*out, caller frees) of dtype *dtype: the slots' dtype when they share one
 * (then an unchanged tensor comes back byte for byte), else F32. */
static xle_status convert_back(const xle_fmt_bind *b, const xle_st_entry *e, const char *path,
                               void **out, xle_dtype *dtype, xle_error *err) {
    const xle_tensor *parts[3] = {b->slot, NULL, NULL};
    int n_parts = 1;
    if (b->layout == XLE_LAYOUT_FUSED_QKV_T || b->layout == XLE_LAYOUT_FUSED_QKV_HEADS) {
        n_parts = 3;
        for (int p = 0; p < 3; p++) parts[p] = b->parts[p];
    }
    xle_dtype dt = parts[0]->dtype;
    for (int p = 1; p < n_parts; p++)
        if (parts[p]->dtype != dt) dt = XLE_F32;
    if (xle_dtype_is_quantized(dt)) dt = XLE_F32;
    int64_t numel = 1;
    for (int k = 0; k < e->ndim; k++) numel *= e->shape[k];
    int64_t have = 0;
    for (int p = 0; p < n_parts; p++) have += xle_tensor_numel(parts[p]);
    if (have != numel)
        return xle_fail(err, XLE_ERR_ARG, "%s: %s: tensor now has %lld elements, the source had %lld",
                        path, e->name, (long long)have, (long long)numel);
    const size_t es = xle_dtype_size(dt);
    unsigned char *buf = malloc((size_t)numel * es);
    if (!buf) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    /* File element (r, c) of a [rows, cols] matrix (or element c of a vector, rows = 1) comes
     * from part c / w at [c % w, r] for a matrix (the transpose), [c % w] for a vector. */
    const int64_t rows = e->ndim == 2 ? e->shape[0] : 1, cols = e->ndim == 2 ? e->shape[1] : e->shape[0];
    const int64_t w = cols / n_parts;
    if (b->layout == XLE_LAYOUT_FUSED_QKV_HEADS) {
        /* BLOOM: the fused dimension is the first (rows of a matrix, elements of a vector),
         * [n_head, 3, hd]: file index i comes from part (i / hd) % 3 at row (i / 3hd)·hd + i % hd */
        const int64_t n_fused = e->shape[0], inner = e->ndim == 2 ? e->shape[1] : 1, hd = b->head_rows;
        for (int64_t i = 0; i < n_fused; i++) {
            const xle_tensor *t = parts[(i / hd) % 3];
            const int64_t src_row = (i / (3 * hd)) * hd + i % hd;
            for (int64_t c = 0; c < inner; c++) {
                copy_element(buf + (size_t)(i * inner + c) * es, t, src_row * inner + c, dt, es);
            }
        }
        *out = buf;
        *dtype = dt;
        return XLE_OK;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const xle_tensor *t = parts[c / w];
            const int64_t src = e->ndim == 2 ? (c % w) * rows + r : c % w;
            copy_element(buf + (size_t)(r * cols + c) * es, t, src, dt, es);
        }
    *out = buf;
    *dtype = dt;
    return XLE_OK;
}

/* One shard: tensors in their source data order; untouched ones from the source bytes. */
static xle_status save_shard(const xle_hf_shard *sh, const char *path, uint64_t *bytes, xle_error *err) {
    int n = sh->st->n;
    xle_st_tensor *ts = calloc((size_t)(n ? n : 1), sizeof *ts);
    const xle_st_entry **order = calloc((size_t)(n ? n : 1), sizeof *order);
    void **converted = calloc((size_t)(n ? n : 1), sizeof *converted);
    xle_status st = XLE_OK;
    if (!ts || !order || !converted) st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < n && st == XLE_OK; i++) order[i] = &sh->st->entries[i];
    if (st == XLE_OK) qsort(order, (size_t)n, sizeof *order, cmp_entry_begin);
    for (int i = 0; i < n && st == XLE_OK; i++) {
        const xle_st_entry *e = order[i];
        const xle_fmt_bind *b = &sh->binds[e - sh->st->entries];
        xle_st_tensor *t = &ts[i];
        t->name = e->name;
        t->ndim = e->ndim;
        memcpy(t->shape, e->shape, sizeof t->shape);
        if (b->slot && b->layout != XLE_LAYOUT_SAME) {
            xle_dtype dt = XLE_F32;
            st = convert_back(b, e, path, &converted[i], &dt, err);
            t->dtype = xle_st_dtype_name(dt);
            t->data = converted[i];
            continue;
        }
        if (xle_fmt_bind_untouched(b)) {
            t->dtype = e->dtype;
            t->data = e->data;
            continue;
        }
        int64_t numel = 1;
        for (int k = 0; k < e->ndim; k++) numel *= e->shape[k];
        st = check_numel(b->slot, numel, path, e->name, err);
        t->dtype = xle_st_dtype_name(b->slot->dtype);
        t->data = b->slot->data;
        if (!t->dtype) st = xle_fail(err, XLE_ERR_ARG, "%s: %s: dtype cannot be stored", path, e->name);
    }
    if (st == XLE_OK) st = xle_safetensors_write(path, ts, (size_t)n, sh->st->metadata_json, bytes, err);
    for (int i = 0; converted && i < n; i++) free(converted[i]);
    free(converted);
    free(ts);
    free(order);
    return st;
}

/* The safetensors name a torch.save shard is written under (a .bin folder is saved as
 * safetensors, as transformers' conversion names them): pytorch_model.bin -> model.safetensors,
 * pytorch_model-00001-of-00002.bin -> model-00001-of-00002.safetensors. Caller frees. */
static char *safetensors_name(const char *bin_name) {
    const char *stem = bin_name;
    size_t len = strlen(bin_name);
    if (len > 4 && strcmp(bin_name + len - 4, ".bin") == 0) len -= 4;
    const char *lead = "";
    if (strncmp(stem, "pytorch_model", 13) == 0) {
        stem += 13;
        len -= 13;
        lead = "model";
    }
    char *out = malloc(strlen(lead) + len + sizeof ".safetensors");
    if (out) sprintf(out, "%s%.*s.safetensors", lead, (int)len, stem);
    return out;
}

/* Rewrites the index as model.safetensors.index.json with the new total size, the weight_map
 * as it was (shard names renamed to safetensors ones when the source was torch.save shards). */
static xle_status save_index(const char *src, const char *dst, uint64_t total, int rename,
                             xle_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(src, 0, &jerr);
    if (!root) return xle_fail(err, XLE_ERR_FORMAT, "%s: invalid JSON: %s", src, jerr.text);
    json_t *meta = json_object_get(root, "metadata");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(root, "metadata", meta);
    }
    json_object_set_new(meta, "total_size", json_integer((json_int_t)total));
    json_t *wm = json_object_get(root, "weight_map"), *v;
    const char *key;
    if (rename && json_is_object(wm))
        json_object_foreach(wm, key, v) {
            char *n = json_is_string(v) ? safetensors_name(json_string_value(v)) : NULL;
            if (n) json_object_set_new(wm, key, json_string(n));
            free(n);
        }
    int rc = json_dump_file(root, dst, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot write", dst);
    int fd = open(dst, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return XLE_OK;
}

static xle_status save_hf(const xle_model *m, const char *tmp, xle_error *err) {
    const xle_hf_state *s = m->format_state;
    xle_status st = copy_side_files(s->dir, tmp, err);
    uint64_t total = 0;
    for (int i = 0; i < s->n_shards && st == XLE_OK; i++) {
        char *name = s->torch_bin ? safetensors_name(s->shards[i].name) : strdup(s->shards[i].name);
        char *p = name ? xle_path_join(tmp, name) : NULL;
        uint64_t bytes = 0;
        st = p ? save_shard(&s->shards[i], p, &bytes, err) : xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
        total += bytes;
        free(p);
        free(name);
    }
    if (st == XLE_OK && s->sharded) {
        char *dst = xle_path_join(tmp, "model.safetensors.index.json");
        st = dst ? save_index(s->source, dst, total, s->torch_bin, err) : xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
        free(dst);
    }
    return st;
}

/* ---- llama2.c -> Hugging Face ------------------------------------------------------------ */

/* Interleaved-RoPE rows (2i, 2i+1) of each head become HF rows (i, i + hd/2), as llama2.c's
 * export.py does for its HF export. Returns an f32 copy (caller frees). */
static float *unpermute_rows(const xle_tensor *t, int n_heads, int hd) {
    int64_t rows = t->shape[0], cols = t->shape[1];
    float *out = malloc((size_t)(rows * cols) * sizeof(float));
    if (!out) return NULL;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                xle_tensor_row_to_f32(t, ((int64_t)h * hd + 2 * i + j) * cols, cols,
                                      out + ((int64_t)h * hd + (int64_t)j * (hd / 2) + i) * cols);
    return out;
}

xle_status xle_hf_write_config(const xle_config *c, xle_dtype dtype, const char *path, xle_error *err) {
    static const char *const torch_names[XLE_DTYPE_COUNT] = {"float32", "float16", "bfloat16", "float64"};
    json_t *root = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:i, s:i, s:s, s:s, "
        "s:b, s:b}",
        "architectures", "LlamaForCausalLM", "model_type", "llama", "hidden_size", c->dim,
        "intermediate_size", c->ffn_dim, "num_hidden_layers", c->n_layers,
        "num_attention_heads", c->n_heads, "num_key_value_heads", c->n_kv_heads, "vocab_size",
        c->vocab_size, "max_position_embeddings", c->max_seq_len, "rms_norm_eps",
        (double)c->norm_eps, "rope_theta", (double)c->rope_theta, "tie_word_embeddings",
        c->tied_embeddings, "bos_token_id", c->bos_id, "eos_token_id", c->eos_id, "hidden_act",
        "silu", "torch_dtype", torch_names[dtype], "attention_bias", 0, "mlp_bias", 0);
    if (!root) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    if (c->head_dim * c->n_heads != c->dim) json_object_set_new(root, "head_dim", json_integer(c->head_dim));
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc != 0) return xle_fail(err, XLE_ERR_IO, "%s: cannot write", path);
    return XLE_OK;
}

static xle_status save_llama2c_as_hf(const xle_model *m, const char *tmp, xle_error *err) {
    const xle_llama2c_state *s = m->format_state;
    const xle_config *c = &m->cfg;
    xle_weights *w = (xle_weights *)&m->w;
    char *cfg = xle_path_join(tmp, "config.json"), *st_path = xle_path_join(tmp, "model.safetensors");
    int n_max = XLE_W_KIND_COUNT * c->n_layers + 4;
    xle_st_tensor *ts = calloc((size_t)n_max, sizeof *ts);
    char (*names)[96] = calloc((size_t)n_max, sizeof *names);
    float **owned = calloc((size_t)n_max, sizeof *owned);
    xle_status st = XLE_OK;
    if (!cfg || !st_path || !ts || !names || !owned) st = xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
    if (st == XLE_OK) st = xle_hf_write_config(&m->cfg, XLE_F32, cfg, err);
    int n = 0;
    for (int k = 0; k < XLE_W_KIND_COUNT && st == XLE_OK; k++) {
        if (k == XLE_W_LM_HEAD && c->tied_embeddings) continue;
        int nl = xle_wkind_per_layer((xle_wkind)k) ? c->n_layers : 1;
        for (int l = 0; l < nl && st == XLE_OK; l++) {
            const xle_tensor *t = xle_weight_slot(w, (xle_wkind)k, l);
            if (!t->data) continue;
            xle_st_tensor *o = &ts[n];
            o->name = xle_weight_name(XLE_FORMAT_HF, (xle_wkind)k, l, names[n], sizeof names[n]);
            o->ndim = t->ndim;
            for (int i = 0; i < t->ndim; i++) o->shape[i] = t->shape[i];
            o->dtype = xle_st_dtype_name(t->dtype);
            o->data = t->data;
            if (k == XLE_W_Q || k == XLE_W_K) {
                owned[n] = unpermute_rows(t, k == XLE_W_Q ? c->n_heads : c->n_kv_heads, c->head_dim);
                if (!owned[n]) st = xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
                o->data = owned[n];
                o->dtype = "F32";
            }
            n++;
        }
    }
    if (st == XLE_OK) st = xle_safetensors_write(st_path, ts, (size_t)n, NULL, NULL, err);
    if (st == XLE_OK && s->tokenizer_path) {
        char *dst = xle_path_join(tmp, "tokenizer.bin");
        st = dst ? xle_file_copy(s->tokenizer_path, dst, err) : xle_fail(err, XLE_ERR_NOMEM, "save: out of memory");
        free(dst);
    }
    for (int i = 0; owned && i < n_max; i++) free(owned[i]);
    free(owned);
    free(names);
    free(ts);
    free(cfg);
    free(st_path);
    return st;
}

/* ---- the atomic frame ---------------------------------------------------------------------- */

static int same_file(const char *a, const char *b) {
    struct stat x, y;
    return stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

xle_status xle_model_save_check(const xle_model *m, const char *out, xle_error *err) {
    if (!m || !out || !*out) return xle_fail(err, XLE_ERR_ARG, "save: no model or output path");
    if (!m->format_state) return xle_fail(err, XLE_ERR_ARG, "%s: model has no source format state", out);
    char trimmed[PATH_MAX];
    if (!xle_out_trim(out, trimmed, sizeof trimmed)) return xle_fail(err, XLE_ERR_ARG, "%s: path too long", out);
    if (same_file(trimmed, m->path))
        return xle_fail(err, XLE_ERR_ARG, "%s: output is the model's own source; choose another path", out);
    int to_dir = m->format != XLE_FORMAT_GGUF;
    if (!to_dir && xle_path_is_dir(trimmed))
        return xle_fail(err, XLE_ERR_ARG, "%s: is a folder (a GGUF model is saved as a file)", out);
    return xle_out_check(out, to_dir ? XLE_OUT_DIR : XLE_OUT_FILE, err);
}

xle_status xle_model_save(const xle_model *m, const char *out, xle_error *err) {
    xle_status st = xle_model_save_check(m, out, err);
    if (st != XLE_OK) return st;
    int to_dir = m->format != XLE_FORMAT_GGUF;
    char trimmed[PATH_MAX], tmp[PATH_MAX];
    if (!xle_out_trim(out, trimmed, sizeof trimmed) || !xle_out_tmp_name(out, tmp, sizeof tmp))
        return xle_fail(err, XLE_ERR_ARG, "%s: path too long", out);
    xle_out_clean_stale(trimmed);
    xle_out_remove_tree(tmp);
    if (to_dir && mkdir(tmp, 0777) != 0)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", out, strerror(errno));
    switch (m->format) {
    case XLE_FORMAT_GGUF: st = save_gguf(m, tmp, trimmed, err); break;
    case XLE_FORMAT_HF: st = save_hf(m, tmp, err); break;
    default: st = save_llama2c_as_hf(m, tmp, err); break;
    }
    if (st == XLE_OK && to_dir) xle_dir_sync(tmp);
    if (st == XLE_OK && rename(tmp, trimmed) != 0)
        st = xle_fail(err, XLE_ERR_IO, "%s: cannot rename the finished output into place: %s", out,
                      strerror(errno));
    if (st != XLE_OK) {
        xle_out_error_rename(err, tmp, trimmed);
        xle_out_remove_tree(tmp);
        return st;
    }
    char *parent = parent_dir(trimmed);
    if (parent) xle_dir_sync(parent);
    free(parent);
    return XLE_OK;
}
