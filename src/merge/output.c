/*
 * output.c: where a merge writes. Everything goes to "OUT.tmp-<pid>" beside OUT (a folder for
 * Hugging Face output, a file for GGUF) and is renamed into place after the last byte is
 * fsynced; a failure removes the temporary. The tensor data is streamed through the formats
 * module's streaming writers (the header with every shape and offset first, then the data in
 * chunks), so no tensor is ever held whole. Side files: the base's config.json (vocab_size
 * updated when the vocabulary was extended) and its other non-weight files; the tokenizer
 * files of the vocabulary donor when there is one; merge_info.json saying how it was made.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "merge/merge_internal.h"

struct xle_merge_sink {
    char *out;
    char tmp[PATH_MAX];
    xle_st_stream *st;
    xle_gguf_stream *gg;
};

/* ---- side files of a Hugging Face output ------------------------------------------------ */

/* Files that describe the vocabulary: taken from the donor when the vocabulary is extended. */
static int is_tokenizer_file(const char *name) {
    return strncmp(name, "tokenizer", 9) == 0 || strcmp(name, "special_tokens_map.json") == 0 ||
           strcmp(name, "added_tokens.json") == 0 || strcmp(name, "vocab.json") == 0 ||
           strcmp(name, "merges.txt") == 0;
}

static xle_status copy_named(const char *src_dir, const char *name, const char *dst_dir, xle_error *err) {
    char *sp = xle_path_join(src_dir, name), *dp = xle_path_join(dst_dir, name);
    xle_status st = sp && dp ? xle_file_copy(sp, dp, err) : xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    free(sp);
    free(dp);
    return st;
}

static int is_regular(const char *dir, const char *name) {
    char *p = xle_path_join(dir, name);
    struct stat sb;
    int ok = p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
    free(p);
    return ok;
}

/* config.json of an HF base, with vocab_size set to the output's. */
static xle_status write_config_from(const char *src, const char *dst, int vocab, xle_error *err) {
    json_error_t jerr;
    json_t *root = json_load_file(src, 0, &jerr);
    if (!root) return xle_fail(err, XLE_ERR_FORMAT, "%s: invalid JSON: %s", src, jerr.text);
    json_object_set_new(root, "vocab_size", json_integer(vocab));
    int rc = json_dump_file(root, dst, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return rc == 0 ? XLE_OK : xle_fail(err, XLE_ERR_IO, "%s: cannot write", dst);
}

/* Copies the tokenizer of m into dir: an HF folder's tokenizer files, or a llama2.c
 * tokenizer.bin. A GGUF tokenizer (metadata) has no file form here (docs/merging.md). */
static xle_status copy_tokenizer(const xle_model *m, const char *dir, xle_error *err) {
    if (m->format == XLE_FORMAT_HF) {
        const xle_hf_state *s = m->format_state;
        DIR *d = opendir(s->dir);
        if (!d) return xle_fail(err, XLE_ERR_IO, "%s: cannot list: %s", s->dir, strerror(errno));
        xle_status st = XLE_OK;
        struct dirent *e;
        while (st == XLE_OK && (e = readdir(d)))
            if (e->d_name[0] != '.' && is_tokenizer_file(e->d_name) && is_regular(s->dir, e->d_name))
                st = copy_named(s->dir, e->d_name, dir, err);
        closedir(d);
        return st;
    }
    if (m->format == XLE_FORMAT_LLAMA2C) {
        const xle_llama2c_state *s = m->format_state;
        if (!s->tokenizer_path) return XLE_OK;
        char *dst = xle_path_join(dir, "tokenizer.bin");
        xle_status st = dst ? xle_file_copy(s->tokenizer_path, dst, err) : xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
        free(dst);
        return st;
    }
    return XLE_OK;
}

static xle_status copy_base_side_files(const xle_merge_plan *p, const char *dir, xle_error *err) {
    const xle_hf_state *s = p->ref->format_state;
    DIR *d = opendir(s->dir);
    if (!d) return xle_fail(err, XLE_ERR_IO, "%s: cannot list: %s", s->dir, strerror(errno));
    xle_status st = XLE_OK;
    struct dirent *e;
    while (st == XLE_OK && (e = readdir(d))) {
        const char *name = e->d_name;
        if (name[0] == '.' || xle_hf_is_weight_file(name) || !is_regular(s->dir, name)) continue;
        if (p->donor >= 0 && is_tokenizer_file(name)) continue;
        if (strcmp(name, "config.json") == 0 && p->out_vocab != p->ref->cfg.vocab_size) {
            char *src = xle_path_join(s->dir, name), *dst = xle_path_join(dir, name);
            st = src && dst ? write_config_from(src, dst, p->out_vocab, err)
                            : xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
            free(src);
            free(dst);
            continue;
        }
        st = copy_named(s->dir, name, dir, err);
    }
    closedir(d);
    return st;
}

/* A model's weight or density as given: a number, or its per-layer list. */
static json_t *value_json(double v, const xle_merge_gradient *g) {
    if (!g || g->n <= 0) return json_real(v);
    json_t *a = json_array();
    for (int k = 0; k < g->n; k++) json_array_append_new(a, json_real(g->values[k]));
    return a;
}

/* merge_info.json: the recipe, for provenance (not read by xledit). */
static xle_status write_merge_info(const xle_merge_plan *p, const char *dir, xle_error *err) {
    const xle_merge_opts *o = &p->opts;
    json_t *models = json_array(), *weights = json_array(), *densities = json_array();
    for (int i = 0; i < p->n_models; i++) {
        json_array_append_new(models, json_string(o->models[i]));
        json_array_append_new(weights, value_json(o->weights ? o->weights[i] : 1.0,
                                                  o->weight_gradients ? &o->weight_gradients[i] : NULL));
        json_array_append_new(densities, value_json(o->densities ? o->densities[i] : o->density,
                                                    o->density_gradients ? &o->density_gradients[i] : NULL));
    }
    json_t *root = json_pack("{s:s, s:s?, s:o, s:o, s:f, s:o, s:f, s:b, s:I, s:i, s:s?}", "method",
                             xle_merge_method_name(o->method), "base", o->base, "models", models,
                             "weights", weights, "density", (double)o->density, "densities", densities, "lambda",
                             (double)o->lambda, "normalize", o->normalize, "seed",
                             (json_int_t)o->seed, "vocab_size", p->out_vocab, "vocab_donor",
                             p->donor >= 0 ? o->models[p->donor] : NULL);
    char *path = xle_path_join(dir, "merge_info.json");
    xle_status st = XLE_OK;
    if (!root || !path) st = xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    else if (json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
        st = xle_fail(err, XLE_ERR_IO, "%s: cannot write", path);
    json_decref(root);
    free(path);
    return st;
}

static xle_status hf_side_files(const xle_merge_plan *p, const char *dir, xle_error *err) {
    xle_status st;
    if (p->ref->format == XLE_FORMAT_HF) {
        st = copy_base_side_files(p, dir, err);
    } else {
        xle_config c = p->ref->cfg;
        c.vocab_size = p->out_vocab;
        char *cfg = xle_path_join(dir, "config.json");
        st = cfg ? xle_hf_write_config(&c, p->ref->weight_dtype, cfg, err)
                 : xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
        free(cfg);
        if (st == XLE_OK && p->donor < 0) st = copy_tokenizer(p->ref, dir, err);
    }
    if (st == XLE_OK && p->donor >= 0) st = copy_tokenizer(p->models[p->donor], dir, err);
    if (st == XLE_OK) st = write_merge_info(p, dir, err);
    return st;
}

static xle_status open_hf(xle_merge_sink *s, const xle_merge_plan *p, xle_error *err) {
    if (mkdir(s->tmp, 0777) != 0)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", s->tmp, strerror(errno));
    xle_status st = hf_side_files(p, s->tmp, err);
    if (st != XLE_OK) return st;
    xle_st_tensor *ts = calloc((size_t)p->n_tensors, sizeof *ts);
    char *path = xle_path_join(s->tmp, "model.safetensors");
    if (!ts || !path) st = xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; st == XLE_OK && i < p->n_tensors; i++) {
        const xle_merge_tensor *t = &p->tensors[i];
        ts[i].name = t->name;
        ts[i].dtype = xle_st_dtype_name(t->out_dtype);
        ts[i].ndim = t->ndim;
        ts[i].shape[0] = t->shape[0];
        ts[i].shape[1] = t->shape[1];
    }
    if (st == XLE_OK) st = xle_st_stream_open(path, ts, (size_t)p->n_tensors, NULL, &s->st, err);
    free(ts);
    free(path);
    return st;
}

/* ---- GGUF output ------------------------------------------------------------------------- */

static uint32_t ggml_type_of(xle_dtype dt) {
    return dt == XLE_BF16 ? XLE_GGML_BF16 : dt == XLE_F16 ? XLE_GGML_F16 : XLE_GGML_F32;
}

static int has_prefix(xle_gguf_str s, const char *prefix) {
    size_t k = strlen(prefix);
    return s.len >= k && memcmp(s.ptr, prefix, k) == 0;
}

/* The donor's tokenizer.* KVs replace the base's. */
static xle_status take_donor_tokenizer(xle_gguf_writer *w, const xle_gguf *ref, const xle_gguf *donor,
                                       xle_error *err) {
    for (uint64_t i = 0; i < ref->n_kv; i++) {
        if (!has_prefix(ref->kvs[i].key, "tokenizer.")) continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(ref->kvs[i].key.len > 255 ? 255 : ref->kvs[i].key.len),
                 ref->kvs[i].key.ptr);
        xle_gguf_writer_remove_kv(w, key);
    }
    for (uint64_t i = 0; i < donor->n_kv; i++) {
        if (!has_prefix(donor->kvs[i].key, "tokenizer.")) continue;
        xle_status st = xle_gguf_writer_set_kv(w, &donor->kvs[i], err);
        if (st != XLE_OK) return st;
    }
    return XLE_OK;
}

static xle_status open_gguf(xle_merge_sink *s, const xle_merge_plan *p, xle_error *err) {
    const xle_gguf *ref = ((const xle_gguf_state *)p->ref->format_state)->gguf;
    xle_gguf_writer *w;
    xle_status st = xle_gguf_writer_new(&w, err);
    if (st != XLE_OK) return st;
    st = xle_gguf_writer_copy_kvs(w, ref, err);
    if (st == XLE_OK && p->donor >= 0) {
        const xle_gguf *donor = ((const xle_gguf_state *)p->models[p->donor]->format_state)->gguf;
        st = take_donor_tokenizer(w, ref, donor, err);
        char *arch = xle_gguf_get_string(ref, "general.architecture");
        char key[96];
        snprintf(key, sizeof key, "%s.vocab_size", arch ? arch : "llama");
        free(arch);
        if (st == XLE_OK && xle_gguf_find(ref, key)) st = xle_gguf_writer_set_u32(w, key, (uint32_t)p->out_vocab, err);
    }
    /* general.file_type: what most weights now are (0 all f32, 1 mostly f16, 32 mostly bf16) */
    if (st == XLE_OK) {
        xle_dtype dt = p->tensors[0].out_dtype;
        st = xle_gguf_writer_set_u32(w, "general.file_type", dt == XLE_BF16 ? 32 : dt == XLE_F16 ? 1 : 0, err);
    }
    for (int i = 0; st == XLE_OK && i < p->n_tensors; i++) {
        const xle_merge_tensor *t = &p->tensors[i];
        int64_t ne[4] = {1, 1, 1, 1};
        for (int d = 0; d < t->ndim; d++) ne[d] = t->shape[t->ndim - 1 - d];
        st = xle_gguf_writer_add_tensor(w, t->name, strlen(t->name), (uint32_t)t->ndim, ne,
                                        ggml_type_of(t->out_dtype), NULL, err);
    }
    if (st == XLE_OK) st = xle_gguf_stream_open(w, s->tmp, &s->gg, err);
    xle_gguf_writer_free(w);
    return st;
}

/* ---- the atomic frame ---------------------------------------------------------------------- */

xle_status xle_merge_sink_open(const xle_merge_plan *p, const char *out_path, xle_merge_sink **out,
                               xle_error *err) {
    *out = NULL;
    xle_merge_sink *s = calloc(1, sizeof *s);
    if (s) s->out = strdup(out_path);
    if (!s || !s->out) {
        if (s) free(s->out);
        free(s);
        return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    }
    if (!xle_out_trim(out_path, s->out, strlen(s->out) + 1) || !xle_out_tmp_name(out_path, s->tmp, sizeof s->tmp)) {
        free(s->out);
        free(s);
        return xle_fail(err, XLE_ERR_ARG, "%s: path too long", out_path);
    }
    xle_out_clean_stale(s->out);
    xle_out_remove_tree(s->tmp);
    xle_status st = p->opts.out_format == XLE_FORMAT_GGUF ? open_gguf(s, p, err) : open_hf(s, p, err);
    if (st != XLE_OK) {
        xle_out_error_rename(err, s->tmp, s->out);
        xle_merge_sink_abort(s);
        return st;
    }
    *out = s;
    return XLE_OK;
}

xle_status xle_merge_sink_write(xle_merge_sink *s, const void *data, size_t n, xle_error *err) {
    xle_status st = s->st ? xle_st_stream_write(s->st, data, n, err) : xle_gguf_stream_write(s->gg, data, n, err);
    if (st != XLE_OK) xle_out_error_rename(err, s->tmp, s->out);
    return st;
}

void xle_merge_sink_abort(xle_merge_sink *s) {
    if (!s) return;
    xle_st_stream_abort(s->st);
    xle_gguf_stream_abort(s->gg);
    xle_out_remove_tree(s->tmp);
    free(s->out);
    free(s);
}

xle_status xle_merge_sink_commit(xle_merge_sink *s, xle_error *err) {
    xle_status st;
    if (s->st) {
        st = xle_st_stream_finish(s->st, NULL, err);
        s->st = NULL;
        if (st == XLE_OK) xle_dir_sync(s->tmp);
    } else {
        st = xle_gguf_stream_finish(s->gg, err);
        s->gg = NULL;
    }
    if (st == XLE_OK && rename(s->tmp, s->out) != 0)
        st = xle_fail(err, XLE_ERR_IO, "%s: cannot rename the finished output into place: %s", s->out,
                      strerror(errno));
    if (st != XLE_OK) {
        xle_out_error_rename(err, s->tmp, s->out);
        xle_merge_sink_abort(s);
        return st;
    }
    char *copy = strdup(s->out);
    if (copy) xle_dir_sync(dirname(copy));
    free(copy);
    free(s->out);
    free(s);
    return XLE_OK;
}
