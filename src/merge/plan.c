/*
 * plan.c: everything a merge checks before it writes a byte: the options, the output path,
 * every input model (loaded memory-mapped: nothing is read but headers), their agreement with
 * the base (architecture, sizes, head counts, tensors, tokenizer), the vocabulary-extension
 * rule (docs/merging.md), and the list of output tensors with their sources and dtypes.
 */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/outpath.h"
#include "merge/merge_internal.h"

void xle_merge_plan_free(xle_merge_plan *p) {
    if (!p) return;
    for (int i = 0; p->tensors && i < p->n_tensors; i++) {
        free(p->tensors[i].src);
        free(p->tensors[i].weights);
        free(p->tensors[i].densities);
    }
    free(p->tensors);
    free(p->views);
    for (int i = 0; p->models && i < p->n_models; i++) xle_model_free(p->models[i]);
    free(p->models);
    xle_model_free(p->base);
    free(p->interleaved);
    free(p);
}

/* ---- options ----------------------------------------------------------------------------- */

/* A per-layer list (NULL or n == 0: not given): finite values, densities in (0, 1]. */
static xle_status check_gradient(const xle_merge_gradient *g, const char *what, int model, int is_density,
                                 xle_error *err) {
    if (!g || g->n == 0) return XLE_OK;
    if (g->n < 0 || g->n > 65536 || !g->values)
        return xle_fail(err, XLE_ERR_ARG, "merge: %s: entry %d: %d per-layer values", what, model + 1, g->n);
    for (int k = 0; k < g->n; k++) {
        double v = g->values[k];
        if (!isfinite(v) || (is_density && !(v > 0 && v <= 1)))
            return xle_fail(err, XLE_ERR_ARG, "merge: %s: entry %d: per-layer value %d (%g) is not %s", what,
                            model + 1, k + 1, v, is_density ? "in (0, 1]" : "a finite number");
    }
    return XLE_OK;
}

/* A per-layer list at layer `layer` of n_layers (-1: a tensor outside the layers, t = 0), as
 * mergekit interpolates it (config.py evaluate_setting, plan.py t = i / (L - 1)). */
static double gradient_at(const xle_merge_gradient *g, int layer, int n_layers) {
    double t = layer < 0 ? 0.0 : n_layers > 1 ? (double)layer / (double)(n_layers - 1) : 1.0;
    double scaled = t * (double)(g->n - 1);
    int i0 = (int)scaled, i1 = i0 + 1 < g->n ? i0 + 1 : g->n - 1;
    double frac = scaled - (double)i0;
    return (1.0 - frac) * g->values[i0] + frac * g->values[i1];
}

/* Every model's weight and density for tensor t of layer `layer` (-1: outside the layers); a
 * normalized linear merge whose weights sum to 0 here is refused. */
static xle_status resolve_parameters(xle_merge_plan *p, xle_merge_tensor *t, int layer, xle_error *err) {
    const xle_merge_opts *o = &p->opts;
    int n = p->n_models, L = p->ref->cfg.n_layers;
    t->weights = malloc((size_t)n * sizeof *t->weights);
    t->densities = malloc((size_t)n * sizeof *t->densities);
    if (!t->weights || !t->densities) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    float wsum = 0;
    for (int i = 0; i < n; i++) {
        const xle_merge_gradient *wg = o->weight_gradients ? &o->weight_gradients[i] : NULL;
        const xle_merge_gradient *dg = o->density_gradients ? &o->density_gradients[i] : NULL;
        t->weights[i] = wg && wg->n > 0 ? (float)gradient_at(wg, layer, L) : o->weights ? o->weights[i] : 1.0f;
        t->densities[i] = dg && dg->n > 0 ? gradient_at(dg, layer, L) : o->densities ? o->densities[i] : o->density;
        wsum = wsum + t->weights[i];
    }
    if (o->method == XLE_MERGE_LINEAR && o->normalize && wsum == 0)
        return xle_fail(err, XLE_ERR_ARG, "merge: weights: they sum to 0%s%s, so linear cannot normalize "
                        "(use --no-normalize)", o->weight_gradients ? " at " : "", o->weight_gradients ? t->canon_name : "");
    return XLE_OK;
}

static xle_status check_opts(xle_merge_opts *o, xle_error *err) {
    if ((int)o->method < 0 || o->method >= XLE_MERGE_METHOD_COUNT)
        return xle_fail(err, XLE_ERR_ARG, "merge: method: %d is not a merge method", (int)o->method);
    const char *mname = xle_merge_method_name(o->method);
    if (o->n_models < 1 || !o->models)
        return xle_fail(err, XLE_ERR_ARG, "merge: models: at least one model is needed");
    if (o->n_models > 4096) return xle_fail(err, XLE_ERR_ARG, "merge: models: %d is too many", o->n_models);
    for (int i = 0; i < o->n_models; i++)
        if (!o->models[i] || !*o->models[i])
            return xle_fail(err, XLE_ERR_ARG, "merge: models: entry %d is empty", i + 1);
    if (o->method != XLE_MERGE_LINEAR && (!o->base || !*o->base))
        return xle_fail(err, XLE_ERR_ARG, "merge: base: %s needs a base model", mname);
    for (int i = 0; i < o->n_models; i++) {
        float w = o->weights ? o->weights[i] : 1.0f;
        if (!isfinite(w)) return xle_fail(err, XLE_ERR_ARG, "merge: weights: entry %d is not a finite number", i + 1);
        const xle_merge_gradient *g = o->weight_gradients ? &o->weight_gradients[i] : NULL;
        xle_status st = check_gradient(g, "weights", i, 0, err);
        if (st != XLE_OK) return st;
    }
    int uses_density = o->method == XLE_MERGE_TIES || o->method == XLE_MERGE_DARE_TIES ||
                       o->method == XLE_MERGE_DARE_LINEAR;
    if (uses_density && !o->densities && !(o->density > 0 && o->density <= 1))
        return xle_fail(err, XLE_ERR_ARG, "merge: density: %g is not in (0, 1]", (double)o->density);
    for (int i = 0; uses_density && i < o->n_models; i++) {
        if (o->densities && !(o->densities[i] > 0 && o->densities[i] <= 1))
            return xle_fail(err, XLE_ERR_ARG, "merge: densities: entry %d: %g is not in (0, 1]", i + 1,
                            o->densities[i]);
        const xle_merge_gradient *g = o->density_gradients ? &o->density_gradients[i] : NULL;
        xle_status st = check_gradient(g, "densities", i, 1, err);
        if (st != XLE_OK) return st;
    }
    if (!isfinite(o->lambda)) return xle_fail(err, XLE_ERR_ARG, "merge: lambda: not a finite number");
    if (o->normalize < 0) o->normalize = xle_merge_method_normalizes(o->method);
    double wsum = 0;
    for (int i = 0; i < o->n_models; i++) wsum += o->weights ? o->weights[i] : 1.0f;
    if (o->method == XLE_MERGE_LINEAR && o->normalize && wsum == 0 && !o->weight_gradients)
        return xle_fail(err, XLE_ERR_ARG, "merge: weights: they sum to 0, so linear cannot normalize "
                        "(use --no-normalize)");
    if (o->out_format != XLE_FORMAT_HF && o->out_format != XLE_FORMAT_GGUF)
        return xle_fail(err, XLE_ERR_ARG, "merge: output format: only hf and gguf can be written");
    return XLE_OK;
}

/* The absolute form of path, which need not exist: realpath of its folder + its last name.
 * Caller frees; NULL when the folder cannot be resolved. */
static char *absolute_path(const char *path) {
    char trimmed[PATH_MAX];
    if (!xle_out_trim(path, trimmed, sizeof trimmed)) return NULL;
    char *r = realpath(trimmed, NULL);
    if (r) return r;
    char *slash = strrchr(trimmed, '/');
    const char *dir = ".", *base = trimmed;
    if (slash) {
        *slash = 0;
        dir = slash == trimmed ? "/" : trimmed;
        base = slash + 1;
    }
    char *d = realpath(dir, NULL);
    if (!d) return NULL;
    size_t n = strlen(d) + strlen(base) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", strcmp(d, "/") ? d : "", base);
    free(d);
    return out;
}

/* The output may not be an input, nor lie inside an input's folder (it would change the model
 * folder the user gave, and a later load of that folder would see an extra file). */
static xle_status check_out_not_in_inputs(const xle_merge_opts *o, const char *out, xle_error *err) {
    char *abs_out = absolute_path(out);
    if (!abs_out) return XLE_OK; /* an unresolvable folder fails later with a clear message */
    xle_status st = XLE_OK;
    for (int i = -1; i < o->n_models && st == XLE_OK; i++) {
        const char *in = i < 0 ? o->base : o->models[i];
        if (!in) continue;
        char *abs_in = realpath(in, NULL);
        if (!abs_in) continue;
        size_t n = strlen(abs_in);
        if (!strcmp(abs_in, abs_out))
            st = xle_fail(err, XLE_ERR_ARG, "%s: the output is the input %s", out, in);
        else if (xle_path_is_dir(abs_in) && !strncmp(abs_out, abs_in, n) && abs_out[n] == '/')
            st = xle_fail(err, XLE_ERR_ARG, "%s: the output is inside the input folder %s; choose a path "
                          "outside it", out, in);
        free(abs_in);
    }
    free(abs_out);
    return st;
}

static xle_status check_out_path(const xle_merge_opts *o, const char *out, xle_error *err) {
    if (!out || !*out) return xle_fail(err, XLE_ERR_ARG, "merge: output path: empty");
    xle_status st = check_out_not_in_inputs(o, out, err);
    if (st != XLE_OK) return st;
    char trimmed[PATH_MAX];
    if (o->out_format != XLE_FORMAT_HF && xle_out_trim(out, trimmed, sizeof trimmed) &&
        xle_path_exists(trimmed))
        return xle_fail(err, XLE_ERR_ARG, "%s: already exists (the output must be new)", out);
    return xle_out_check(out, o->out_format == XLE_FORMAT_HF ? XLE_OUT_DIR : XLE_OUT_FILE, err);
}

/* ---- agreement of the inputs --------------------------------------------------------------- */

static const xle_config_names *names_of(const xle_model *m) {
    if (m->format == XLE_FORMAT_HF)
        return m->cfg.arch == XLE_ARCH_GPT2 || m->cfg.arch == XLE_ARCH_GPTJ ? &XLE_NAMES_HF_GPT2 : &XLE_NAMES_HF;
    return m->format == XLE_FORMAT_GGUF ? &XLE_NAMES_GGUF : &XLE_NAMES_LLAMA2C;
}

/* Llama and Mistral share the tensors (a Mistral GGUF even says "llama"); Qwen2 adds biases. */
static int arch_family(xle_arch a) { return a == XLE_ARCH_QWEN2; }
static const char *arch_name(xle_arch a) {
    return a == XLE_ARCH_QWEN2 ? "qwen2" : a == XLE_ARCH_MISTRAL ? "mistral" : "llama";
}

static xle_status field_differs(const xle_model *m, const char *field, int v, const xle_model *ref,
                                int rv, xle_error *err) {
    return xle_fail(err, XLE_ERR_ARG, "%s: %s: %d does not match %s (%d)", m->path, field, v,
                    ref->path, rv);
}

static xle_status check_tokenizer(const xle_model *m, const xle_model *ref, xle_error *err) {
    const xle_tokenizer *tm = m->tokenizer, *tr = ref->tokenizer;
    if (!tm || !tr) return XLE_OK; /* nothing to compare (documented) */
    int nm = xle_tokenizer_vocab_size(tm), nr = xle_tokenizer_vocab_size(tr);
    if (m->cfg.vocab_size == ref->cfg.vocab_size && nm != nr)
        return xle_fail(err, XLE_ERR_ARG, "%s: tokenizer: %d tokens, but %s has %d", m->path, nm,
                        ref->path, nr);
    if (m->cfg.vocab_size > ref->cfg.vocab_size && nm < nr)
        return xle_fail(err, XLE_ERR_ARG, "%s: tokenizer: %d tokens, fewer than the %d of %s it "
                        "should extend", m->path, nm, nr, ref->path);
    int n = nm < nr ? nm : nr;
    for (int id = 0; id < n; id++) {
        const char *a = xle_tokenizer_piece(tm, id), *b = xle_tokenizer_piece(tr, id);
        if (!a || !b || strcmp(a, b) != 0)
            return xle_fail(err, XLE_ERR_ARG, "%s: tokenizer: token %d is '%.40s', but in %s it is "
                            "'%.40s'", m->path, id, a ? a : "", ref->path, b ? b : "");
    }
    return XLE_OK;
}

/* Optional tensors (biases) must be present in both or in neither. */
static xle_status check_optional(xle_model *m, xle_model *ref, xle_error *err) {
    for (int k = XLE_W_BQ; k <= XLE_W_BO; k++)
        for (int l = 0; l < ref->cfg.n_layers; l++) {
            int have = xle_weight_slot(&m->w, (xle_wkind)k, l)->data != NULL;
            int want = xle_weight_slot(&ref->w, (xle_wkind)k, l)->data != NULL;
            if (have != want) {
                char name[96];
                xle_weight_name(m->format, (xle_wkind)k, l, name, sizeof name);
                return xle_fail(err, XLE_ERR_ARG, "%s: %s: %s here but %s in %s", m->path, name,
                                have ? "present" : "missing", want ? "present" : "missing", ref->path);
            }
        }
    return XLE_OK;
}

/* Families other than Llama are merged tensor by tensor as their Hugging Face files store them
 * (build_stored_tensors), which needs every input to be such a folder. */
static int merges_stored(const xle_model *ref) { return xle_family_of(ref->cfg.arch)->arch != XLE_ARCH_LLAMA; }

static xle_status check_stored_input(const xle_model *m, xle_error *err) {
    if (m->format != XLE_FORMAT_HF)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: merging %s models needs Hugging Face folders "
                        "(docs/merging.md)", m->path, xle_family_of(m->cfg.arch)->name);
    return XLE_OK;
}

static xle_status check_against(xle_model *m, xle_model *ref, xle_error *err) {
    const xle_config *c = &m->cfg, *r = &ref->cfg;
    const xle_config_names *nm = names_of(m);
    const xle_family *fm = xle_family_of(c->arch), *fr = xle_family_of(r->arch);
    if (fm->arch != fr->arch)
        return xle_fail(err, XLE_ERR_ARG, "%s: architecture: %s does not match %s (%s)", m->path, fm->name,
                        ref->path, fr->name);
    if (merges_stored(ref)) {
        xle_status st = check_stored_input(m, err);
        if (st != XLE_OK) return st;
    }
    if (arch_family(c->arch) != arch_family(r->arch))
        return xle_fail(err, XLE_ERR_ARG, "%s: architecture: %s does not match %s (%s)", m->path,
                        arch_name(c->arch), ref->path, arch_name(r->arch));
    if (c->dim != r->dim) return field_differs(m, nm->dim, c->dim, ref, r->dim, err);
    if (c->ffn_dim != r->ffn_dim) return field_differs(m, nm->ffn_dim, c->ffn_dim, ref, r->ffn_dim, err);
    if (c->n_layers != r->n_layers) return field_differs(m, nm->n_layers, c->n_layers, ref, r->n_layers, err);
    if (c->n_heads != r->n_heads) return field_differs(m, nm->n_heads, c->n_heads, ref, r->n_heads, err);
    if (c->n_kv_heads != r->n_kv_heads)
        return field_differs(m, nm->n_kv_heads, c->n_kv_heads, ref, r->n_kv_heads, err);
    if (c->head_dim != r->head_dim) return field_differs(m, nm->head_dim, c->head_dim, ref, r->head_dim, err);
    /* A tied model's lm_head is its embedding (the loader aliases it), so it can join an untied
     * base; an untied model's own lm_head has no place in a tied output. */
    if (r->tied_embeddings && !c->tied_embeddings)
        return xle_fail(err, XLE_ERR_ARG, "%s: tie_word_embeddings: untied (own lm_head), but %s "
                        "ties it to the embedding and so does the output", m->path, ref->path);
    if (c->vocab_size < r->vocab_size)
        return xle_fail(err, XLE_ERR_ARG, "%s: %s: %d is smaller than the %d of %s (only extended "
                        "vocabularies can be merged)", m->path, nm->vocab_size, c->vocab_size,
                        r->vocab_size, ref->path);
    /* the stored route compares the tensors themselves (build_stored_tensors) */
    xle_status st = merges_stored(ref) ? XLE_OK : check_optional(m, ref, err);
    if (st == XLE_OK) st = check_tokenizer(m, ref, err);
    return st;
}

/* ---- output constraints --------------------------------------------------------------------- */

static xle_status check_output_format(const xle_merge_plan *p, xle_error *err) {
    const xle_model *ref = p->ref;
    if (p->opts.out_format == XLE_FORMAT_GGUF) {
        if (ref->format != XLE_FORMAT_GGUF)
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: --out-format gguf needs a GGUF base (its "
                            "metadata is the output's); convert the base first", ref->path);
        if (p->donor >= 0 && p->models[p->donor]->format != XLE_FORMAT_GGUF)
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: --out-format gguf takes the extended "
                            "tokenizer from this model, which is not a GGUF file", p->models[p->donor]->path);
        return XLE_OK;
    }
    if (ref->format == XLE_FORMAT_HF) return XLE_OK;
    /* config.json is written from the configuration: only what xle_hf_write_config can say */
    const xle_config *c = &ref->cfg;
    if (c->arch == XLE_ARCH_QWEN2 || c->rope_scaling != XLE_ROPE_NONE || c->sliding_window ||
        ref->w.rope_freqs.data)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: an HF folder can be written from this base "
                        "only for plain Llama models (no qwen2, RoPE scaling, rope_freqs or sliding "
                        "window); use --out-format gguf", ref->path);
    return XLE_OK;
}

/* ---- the tensor list ------------------------------------------------------------------------ */

static xle_dtype out_dtype_of(const xle_tensor *ref, xle_format fmt) {
    if (fmt == XLE_FORMAT_GGUF && ref->dtype == XLE_F64) return XLE_F32;
    if (xle_dtype_is_quantized(ref->dtype)) return XLE_F16; /* merged values are not re-quantized */
    return ref->dtype;
}

static uint64_t tensor_bytes(const xle_tensor *t) { return t ? (uint64_t)xle_tensor_nbytes(t) : 0; }

static xle_status add_tensor(xle_merge_plan *p, xle_wkind kind, int layer, xle_error *err) {
    xle_tensor *ref = xle_weight_slot(&p->ref->w, kind, layer);
    if (!ref->data) return XLE_OK;
    xle_merge_tensor *t = &p->tensors[p->n_tensors];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->layer = layer;
    xle_weight_name(p->opts.out_format, kind, layer, t->name, sizeof t->name);
    xle_weight_name(XLE_FORMAT_HF, kind, layer, t->canon_name, sizeof t->canon_name);
    t->ref = ref;
    t->out_dtype = out_dtype_of(ref, p->opts.out_format);
    t->ndim = ref->ndim;
    t->shape[0] = ref->shape[0];
    t->shape[1] = ref->ndim == 2 ? ref->shape[1] : 0;
    t->rope_rows = kind == XLE_W_Q || kind == XLE_W_K || kind == XLE_W_BQ || kind == XLE_W_BK;
    if (ref->ndim == 2) {
        t->rows = ref->shape[0];
        t->cols = ref->shape[1];
    } else if (t->rope_rows) {
        t->rows = ref->shape[0]; /* one element per row so that rows can be reordered */
        t->cols = 1;
    } else {
        t->rows = 1;
        t->cols = ref->shape[0];
    }
    t->shared_rows = t->rows;
    p->n_tensors++;
    if (kind == XLE_W_ROPE_FREQS) {
        t->copy_only = 1;
        t->input_bytes = tensor_bytes(ref);
        return XLE_OK;
    }
    t->base = p->base ? xle_weight_slot(&p->base->w, kind, layer) : NULL;
    t->src = calloc((size_t)p->n_models, sizeof *t->src);
    if (!t->src) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    xle_status st = resolve_parameters(p, t, xle_wkind_per_layer(kind) ? layer : -1, err);
    if (st != XLE_OK) return st;
    t->input_bytes = tensor_bytes(t->base);
    for (int i = 0; i < p->n_models; i++) {
        t->src[i] = xle_weight_slot(&p->models[i]->w, kind, layer);
        t->input_bytes += tensor_bytes(t->src[i]);
    }
    if (kind == XLE_W_TOK_EMBD || kind == XLE_W_LM_HEAD) {
        t->shared_rows = p->ref->cfg.vocab_size;
        if (p->donor >= 0) {
            t->donor = xle_weight_slot(&p->models[p->donor]->w, kind, layer);
            t->rows = t->shape[0] = p->out_vocab;
        }
    }
    return XLE_OK;
}

static xle_status build_tensors(xle_merge_plan *p, xle_error *err) {
    int L = p->ref->cfg.n_layers;
    p->tensors = calloc((size_t)(XLE_W_KIND_COUNT * (L + 1)), sizeof *p->tensors);
    if (!p->tensors) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    xle_status st = add_tensor(p, XLE_W_TOK_EMBD, 0, err);
    for (int l = 0; l < L && st == XLE_OK; l++)
        for (int k = XLE_W_FIRST_LAYER_KIND; k < XLE_W_KIND_COUNT && st == XLE_OK; k++)
            st = add_tensor(p, (xle_wkind)k, l, err);
    if (st == XLE_OK) st = add_tensor(p, XLE_W_OUT_NORM, 0, err);
    if (st == XLE_OK && !p->ref->cfg.tied_embeddings) st = add_tensor(p, XLE_W_LM_HEAD, 0, err);
    if (st == XLE_OK && p->opts.out_format == XLE_FORMAT_GGUF) st = add_tensor(p, XLE_W_ROPE_FREQS, 0, err);
    return st;
}

/* ---- the tensor list of the stored route ----------------------------------------------------- */

/* The stored tensor called name in m (any shard), or NULL; *bind gets its binding. */
static const xle_st_entry *find_stored(const xle_model *m, const char *name, const xle_fmt_bind **bind) {
    const xle_hf_state *s = m->format_state;
    for (int k = 0; k < s->n_shards; k++) {
        const xle_st_entry *e = xle_safetensors_find(s->shards[k].st, name);
        if (e) {
            if (bind) *bind = &s->shards[k].binds[e - s->shards[k].st->entries];
            return e;
        }
    }
    return NULL;
}

/* Whether a stored tensor has one row per token (the embedding, the head and its bias). */
static int is_vocab_tensor(const xle_model *m, const xle_fmt_bind *b) {
    return b && b->slot && (b->slot == &m->w.tok_embd || b->slot == &m->w.lm_head || b->slot == &m->w.lm_head_b);
}

/* The layer a stored name belongs to by the family's per-layer prefix ("transformer.h.%d."), or -1. */
static int layer_of_name(const xle_family *f, const char *name) {
    const char *fmt = f->hf_layer_prefix, *pct = fmt ? strstr(fmt, "%d") : NULL;
    if (!pct) return -1;
    size_t pre = (size_t)(pct - fmt);
    if (strncmp(name, fmt, pre) != 0) return -1;
    char *end;
    long l = strtol(name + pre, &end, 10);
    if (end == name + pre || strncmp(end, pct + 2, strlen(pct + 2)) != 0 || l < 0 || l > INT_MAX) return -1;
    return (int)l;
}

static xle_status view_of(const xle_model *m, const xle_st_entry *e, xle_tensor *v, xle_error *err) {
    memset(v, 0, sizeof *v);
    if (!xle_st_dtype_to_xle(e->dtype, &v->dtype) || xle_dtype_is_quantized(v->dtype) ||
        (v->dtype != XLE_F32 && v->dtype != XLE_F16 && v->dtype != XLE_BF16 && v->dtype != XLE_F64))
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: dtype %s cannot be merged (F32, F16, BF16, F64)",
                        m->path, e->name, e->dtype);
    int64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
    v->ndim = 1;
    v->shape[0] = numel;
    v->data = (void *)e->data;
    return XLE_OK;
}

/* Model m's tensor for the reference's stored tensor re (with binding rb): same name and shape;
 * a vocabulary tensor may have more rows (an extension); a tied model gives its embedding for
 * an untied reference's head. */
static xle_status match_stored(const xle_merge_plan *p, const xle_model *m, const xle_st_entry *re,
                               const xle_fmt_bind *rb, const xle_st_entry **out, xle_error *err) {
    const xle_fmt_bind *mb = NULL;
    const xle_st_entry *me = find_stored(m, re->name, &mb);
    if (!me && rb && rb->slot == &p->ref->w.lm_head && m->cfg.tied_embeddings)
        me = find_stored(m, xle_family_of(m->cfg.arch)->hf_name[XLE_W_TOK_EMBD], &mb);
    if (!me) return xle_fail(err, XLE_ERR_ARG, "%s: %s: missing here but present in %s", m->path, re->name, p->ref->path);
    int vocab = is_vocab_tensor(p->ref, rb);
    int same = me->ndim == re->ndim;
    for (int d = 0; same && d < re->ndim; d++)
        same = me->shape[d] == re->shape[d] || (d == 0 && vocab && me->shape[0] > re->shape[0]);
    if (!same) {
        char a[96] = "", b[96] = "";
        for (int d = 0; d < me->ndim; d++) snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? ", " : "", (long long)me->shape[d]);
        for (int d = 0; d < re->ndim; d++) snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? ", " : "", (long long)re->shape[d]);
        return xle_fail(err, XLE_ERR_ARG, "%s: %s: shape [%s] does not match [%s] in %s", m->path, re->name, a, b,
                        p->ref->path);
    }
    *out = me;
    return XLE_OK;
}

/* Every tensor of m must be one the reference has (else it would be dropped silently). */
static xle_status check_no_extra(const xle_merge_plan *p, const xle_model *m, xle_error *err) {
    const xle_hf_state *s = m->format_state;
    for (int k = 0; k < s->n_shards; k++)
        for (int e = 0; e < s->shards[k].st->n; e++) {
            const char *name = s->shards[k].st->entries[e].name;
            if (!find_stored(p->ref, name, NULL))
                return xle_fail(err, XLE_ERR_ARG, "%s: %s: present here but missing in %s", m->path, name, p->ref->path);
        }
    return XLE_OK;
}

/* One output tensor per tensor the reference's files store, in their order, merged by name
 * elementwise in the stored layout (Conv1D [in, out], fused q|k|v, ...): merging is elementwise,
 * so no family needs its own rule here. Rows are the first dimension (one element per row for a
 * 1-D vocabulary tensor, so that extended rows can be appended; one row for other 1-D tensors). */
static xle_status build_stored_tensors(xle_merge_plan *p, xle_error *err) {
    const xle_hf_state *rs = p->ref->format_state;
    const xle_family *fam = xle_family_of(p->ref->cfg.arch);
    int total = 0, n = p->n_models, per = n + 2; /* views per tensor: ref, models, donor */
    for (int k = 0; k < rs->n_shards; k++) total += rs->shards[k].st->n;
    p->tensors = calloc((size_t)total, sizeof *p->tensors);
    p->views = calloc((size_t)total * (size_t)per, sizeof *p->views);
    if (!p->tensors || !p->views) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    xle_status st = XLE_OK;
    for (int i = 0; st == XLE_OK && i < n; i++)
        if (p->models[i] != p->ref) st = check_no_extra(p, p->models[i], err);
    for (int k = 0; st == XLE_OK && k < rs->n_shards; k++) {
        const xle_safetensors *sf = rs->shards[k].st;
        for (int e = 0; st == XLE_OK && e < sf->n; e++) {
            const xle_st_entry *re = &sf->entries[e];
            const xle_fmt_bind *rb = &rs->shards[k].binds[e];
            xle_merge_tensor *t = &p->tensors[p->n_tensors];
            xle_tensor *v = p->views + (size_t)p->n_tensors * (size_t)per;
            p->n_tensors++;
            if (strlen(re->name) >= sizeof t->name || re->ndim > XLE_MAX_DIMS)
                return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: name too long or more than %d dimensions",
                                p->ref->path, re->name, XLE_MAX_DIMS);
            snprintf(t->name, sizeof t->name, "%s", re->name);
            snprintf(t->canon_name, sizeof t->canon_name, "%s", re->name);
            t->layer = layer_of_name(fam, re->name);
            if ((st = view_of(p->ref, re, &v[0], err)) != XLE_OK) break;
            t->ref = &v[0];
            t->out_dtype = out_dtype_of(t->ref, p->opts.out_format);
            t->ndim = re->ndim;
            for (int d = 0; d < re->ndim; d++) t->shape[d] = re->shape[d];
            int vocab = is_vocab_tensor(p->ref, rb);
            int64_t numel = v[0].shape[0];
            t->rows = re->ndim >= 2 || (vocab && re->ndim == 1) ? re->shape[0] : 1;
            t->cols = t->rows > 0 ? numel / t->rows : 1;
            if (t->cols < 1) t->cols = 1;
            t->shared_rows = t->rows;
            if ((st = resolve_parameters(p, t, t->layer, err)) != XLE_OK) break;
            t->src = calloc((size_t)n, sizeof *t->src);
            if (!t->src) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
            if (p->base) { /* the base is the reference */
                t->base = t->ref;
                t->input_bytes = (uint64_t)xle_tensor_nbytes(t->base);
            }
            for (int i = 0; st == XLE_OK && i < n; i++) {
                const xle_st_entry *me = re;
                if (p->models[i] != p->ref) st = match_stored(p, p->models[i], re, rb, &me, err);
                if (st == XLE_OK) st = view_of(p->models[i], me, &v[1 + i], err);
                t->src[i] = &v[1 + i];
                /* an extended model's larger tensor: only its first rows take part */
                t->input_bytes += (uint64_t)(t->rows * t->cols) * xle_dtype_size(v[1 + i].dtype);
            }
            if (st == XLE_OK && vocab && p->donor >= 0) {
                const xle_st_entry *de;
                st = match_stored(p, p->models[p->donor], re, rb, &de, err);
                if (st == XLE_OK) st = view_of(p->models[p->donor], de, &v[1 + n], err);
                if (st == XLE_OK) {
                    t->donor = &v[1 + n];
                    t->rows = t->shape[0] = de->shape[0];
                }
            }
        }
    }
    return st;
}

/* ---- the plan ------------------------------------------------------------------------------- */

static xle_status load_inputs(xle_merge_plan *p, xle_error *err) {
    xle_status st;
    if (p->opts.base && *p->opts.base && (st = xle_model_load(p->opts.base, &p->base, err)) != XLE_OK)
        return st;
    p->models = calloc((size_t)p->n_models, sizeof *p->models);
    p->interleaved = calloc((size_t)p->n_models, sizeof *p->interleaved);
    if (!p->models || !p->interleaved) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; i < p->n_models; i++) {
        if ((st = xle_model_load(p->opts.models[i], &p->models[i], err)) != XLE_OK) return st;
        p->interleaved[i] = p->models[i]->cfg.rope_interleaved;
    }
    p->ref = p->base ? p->base : p->models[0];
    p->base_interleaved = p->ref->cfg.rope_interleaved;
    return XLE_OK;
}

static xle_status choose_donor(xle_merge_plan *p) {
    p->donor = -1;
    p->out_vocab = p->ref->cfg.vocab_size;
    for (int i = 0; i < p->n_models; i++)
        if (p->models[i]->cfg.vocab_size > p->out_vocab) {
            p->out_vocab = p->models[i]->cfg.vocab_size;
            p->donor = i;
        }
    return XLE_OK;
}

xle_status xle_merge_plan_build(const xle_merge_opts *opts, const char *out_path,
                                xle_merge_plan **out, xle_error *err) {
    *out = NULL;
    xle_merge_plan *p = calloc(1, sizeof *p);
    if (!p) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    p->opts = *opts;
    p->n_models = opts->n_models;
    xle_status st = check_opts(&p->opts, err);
    if (st == XLE_OK) st = check_out_path(&p->opts, out_path, err);
    if (st == XLE_OK) st = load_inputs(p, err);
    if (st == XLE_OK && merges_stored(p->ref)) st = check_stored_input(p->ref, err);
    for (int i = 0; i < p->n_models && st == XLE_OK; i++)
        if (p->models[i] != p->ref) st = check_against(p->models[i], p->ref, err);
    if (st == XLE_OK) st = choose_donor(p);
    if (st == XLE_OK) st = check_output_format(p, err);
    if (st == XLE_OK) {
        p->out_interleaved = p->opts.out_format == XLE_FORMAT_GGUF ? p->ref->cfg.rope_interleaved : 0;
        p->stored = merges_stored(p->ref);
        st = p->stored ? build_stored_tensors(p, err) : build_tensors(p, err);
    }
    if (st != XLE_OK) {
        xle_merge_plan_free(p);
        return st;
    }
    *out = p;
    return XLE_OK;
}
