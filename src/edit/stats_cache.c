/*
 * stats_cache.c: key statistics on disk (editing.md §1.4). Computing Σ k kᵀ over a corpus is
 * the slowest step of ROME/MEMIT, so it is done once per model and layer, checkpointed while it
 * runs (an interrupted run resumes where the last checkpoint left it, with the same batches, so
 * the sums are bit-identical to an uninterrupted run), and refused for another model.
 *
 * DIR/stats.json     fingerprint, options, progress, and the name of the current data file
 * DIR/partial-N.f64  during the run: the n_layers accumulators (upper triangle), row-major
 * DIR/layer-L.f64    when complete: Σ k kᵀ of layer L, full symmetric, float64, row-major
 * stats.json is always replaced last (write, fsync, rename), so it never names a missing file.
 *
 * Shared by several processes (xle_stats_build_shared, docs/scale.md): every process reads the
 * corpus and forms the same batches, process r runs the model on batches r, r+size, ...; at
 * each checkpoint and at the end the sums are added on process 0 (xle_comm.sum_f64), which
 * alone writes DIR, so the files and their resumption are those of one process.
 *
 * The per-model cache (`xledit stats` without --out) keeps one such folder per option set,
 * named by xle_stats_set_name, under the model's folder; xle_stats_load given that folder picks
 * the set that serves the layer (editing.md, "Key statistics").
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/outpath.h"
#include "xledit.h"

#define STATS_FORMAT "xledit-stats-1"
#define BATCH_TOKENS 4096        /* tokens per forward pass (fixed: it sets the summation order) */
#define CHECKPOINT_BATCHES 32    /* batches between checkpoints */

/* ---- fingerprint ------------------------------------------------------------------------ */

typedef struct hasher {
    uint64_t h[4];
} hasher;

static void hash_bytes(hasher *hs, const void *data, size_t n) {
    static const uint64_t prime = 0x100000001b3ull;
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) hs->h[k] = (hs->h[k] ^ (p[i] + (uint64_t)k)) * prime;
}

static void hash_i64(hasher *hs, int64_t v) { hash_bytes(hs, &v, sizeof v); }

/* Shape and the f32 values of up to 32 evenly spaced rows: a stored-dtype-independent sample
 * (the same model in bf16 from a HF folder or a GGUF file gives the same values). */
static void hash_tensor(hasher *hs, const xle_tensor *t, float *row) {
    hash_i64(hs, t->data ? t->ndim : -1);
    if (!t->data) return;
    for (int i = 0; i < t->ndim; i++) hash_i64(hs, t->shape[i]);
    int64_t cols = t->shape[t->ndim - 1], rows = xle_tensor_numel(t) / cols;
    int64_t n_sample = rows < 32 ? rows : 32;
    for (int64_t s = 0; s < n_sample; s++) {
        int64_t r = n_sample > 1 ? s * (rows - 1) / (n_sample - 1) : 0;
        xle_tensor_row_to_f32(t, r * cols, cols, row);
        hash_bytes(hs, row, (size_t)cols * sizeof *row);
    }
}

void xle_model_fingerprint(xle_model *model, char out[65]) {
    const xle_config *c = xle_model_config(model);
    xle_weights *w = xle_model_weights(model);
    hasher hs = {{0xcbf29ce484222325ull, 0x84222325cbf29ce4ull, 0x9e3779b97f4a7c15ull,
                  0x2545f4914f6cdd1dull}};
    int64_t fields[] = {c->arch, c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                        c->head_dim, c->vocab_size, c->sliding_window, c->rope_scaling};
    /* (tied embeddings are not hashed as a flag: the lm_head values are, and a converter may
     * store a tied head as a separate copy) */
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) hash_i64(&hs, fields[i]);
    float reals[] = {c->norm_eps, c->rope_theta, c->rope_factor};
    hash_bytes(&hs, reals, sizeof reals);
    int64_t widest = c->dim > c->ffn_dim ? c->dim : c->ffn_dim;
    if (c->n_heads * c->head_dim > widest) widest = (int64_t)c->n_heads * c->head_dim;
    float *row = malloc((size_t)widest * sizeof *row);
    if (row) {
        hash_tensor(&hs, &w->tok_embd, row);
        hash_tensor(&hs, &w->out_norm, row);
        hash_tensor(&hs, &w->lm_head, row);
        /* BLOOM's embedding LayerNorm changes every key; absent elsewhere (fingerprints unchanged) */
        if (w->embd_norm.data) hash_tensor(&hs, &w->embd_norm, row);
        if (w->embd_norm_b.data) hash_tensor(&hs, &w->embd_norm_b, row);
        /* wq/wk are left out: GGUF stores their rows permuted for its RoPE convention */
        for (int l = 0; l < c->n_layers; l++) {
            const xle_layer_weights *lw = &w->layers[l];
            const xle_tensor *ts[] = {&lw->attn_norm, &lw->wv, &lw->wo, &lw->bv, &lw->ffn_norm,
                                      &lw->w_gate, &lw->w_up, &lw->w_down};
            for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) hash_tensor(&hs, ts[i], row);
        }
        free(row);
    } else {
        hash_i64(&hs, -12345); /* out of memory: a fingerprint that matches nothing real */
    }
    for (int k = 0; k < 4; k++) snprintf(out + 16 * k, 17, "%016llx", (unsigned long long)hs.h[k]);
}

/* ---- files -------------------------------------------------------------------------------- */

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Reads exactly n bytes of path into data. */
static xle_status read_exact(const char *path, void *data, size_t n, xle_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int ok = fstat(fileno(f), &sb) == 0 && (size_t)sb.st_size == n && fread(data, 1, n, f) == n;
    fclose(f);
    if (!ok)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: size: expected %zu bytes of float64 sums", path, n);
    return XLE_OK;
}

/* ---- the corpus as a stream of documents --------------------------------------------------- */

typedef struct corpus_reader {
    const char *const *paths;
    int n_paths, current;
    FILE *f;
    int jsonl;
    int64_t line;
    char *buf;       /* a line */
    size_t cap;
    char *doc;       /* the current document */
    size_t doc_len, doc_cap;
} corpus_reader;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int doc_append(corpus_reader *r, const char *s, size_t n) {
    if (r->doc_len + n + 2 > r->doc_cap) {
        size_t cap = (r->doc_len + n + 2) * 2;
        char *p = realloc(r->doc, cap);
        if (!p) return 0;
        r->doc = p, r->doc_cap = cap;
    }
    memcpy(r->doc + r->doc_len, s, n);
    r->doc_len += n;
    r->doc[r->doc_len] = 0;
    return 1;
}

/* Next document into r->doc; *got = 0 at the end of the corpus. Plain text: each non-empty
 * line (as `xledit train` reads a corpus). JSONL (.jsonl/.json): the "text" field of each line. */
static xle_status corpus_next(corpus_reader *r, int *got, xle_error *err) {
    *got = 0;
    r->doc_len = 0;
    for (;;) {
        if (!r->f) {
            if (r->current >= r->n_paths) return XLE_OK;
            const char *p = r->paths[r->current];
            xle_status in = xle_in_check_file(p, err);
            if (in != XLE_OK) return in;
            r->f = fopen(p, "rb");
            if (!r->f) return xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", p, strerror(errno));
            r->jsonl = ends_with(p, ".jsonl") || ends_with(p, ".json");
            r->line = 0;
        }
        ssize_t n = getline(&r->buf, &r->cap, r->f);
        if (n < 0) {
            int bad = ferror(r->f);
            fclose(r->f);
            r->f = NULL;
            const char *p = r->paths[r->current++];
            if (bad) return xle_fail(err, XLE_ERR_IO, "%s: read error", p);
            continue;
        }
        r->line++;
        while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) r->buf[--n] = 0;
        if (n == 0) continue;
        if (r->jsonl) {
            json_error_t je;
            json_t *o = json_loadb(r->buf, (size_t)n, 0, &je);
            json_t *t = o ? json_object_get(o, "text") : NULL;
            if (!t || !json_is_string(t)) {
                json_decref(o);
                return xle_fail(err, XLE_ERR_FORMAT, "%s:%lld: text: %s", r->paths[r->current],
                                (long long)r->line, o ? "missing or not a string" : je.text);
            }
            int ok = doc_append(r, json_string_value(t), json_string_length(t));
            json_decref(o);
            if (!ok) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        } else if (!doc_append(r, r->buf, (size_t)n)) {
            return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        }
        if (r->doc_len == 0) continue;
        return *got = 1, XLE_OK;
    }
}

static void corpus_close(corpus_reader *r) {
    if (r->f) fclose(r->f);
    free(r->buf);
    free(r->doc);
}

/* ---- stats.json ------------------------------------------------------------------------- */

typedef struct stats_state {
    char fingerprint[65];
    int64_t docs_done, tokens_done, count;
    int complete;
    int partial_gen;     /* partial-<gen>.f64 holds the sums; 0: none yet */
} stats_state;

static json_t *options_json(const xle_stats_opts *o, int dim, int max_len) {
    json_t *layers = json_array(), *corpus = json_array();
    for (int i = 0; i < o->n_layers; i++) json_array_append_new(layers, json_integer(o->layers[i]));
    for (int i = 0; i < o->n_corpus; i++) {
        struct stat sb;
        json_t *e = json_object();
        json_object_set_new(e, "path", json_string(o->corpus[i]));
        json_object_set_new(e, "bytes", json_integer(stat(o->corpus[i], &sb) == 0 ? sb.st_size : -1));
        json_array_append_new(corpus, e);
    }
    return json_pack("{s:o, s:o, s:i, s:I, s:i, s:i}", "layers", layers, "corpus", corpus, "dim",
                     dim, "max_tokens", (json_int_t)o->max_tokens, "max_len", max_len,
                     "batch_tokens", BATCH_TOKENS);
}

/* The max_len a build uses: the option, else the model's context, at most one batch. */
static int effective_max_len(const xle_model *model, const xle_stats_opts *o) {
    const xle_config *c = xle_model_config((xle_model *)model);
    int max_len = o->max_len > 0 ? o->max_len : c->max_seq_len;
    return max_len > BATCH_TOKENS ? BATCH_TOKENS : max_len;
}

void xle_stats_set_name(const xle_model *model, const xle_stats_opts *o, char *out, size_t cap) {
    const xle_config *c = xle_model_config((xle_model *)model);
    json_t *options = options_json(o, c->ffn_dim, effective_max_len(model, o));
    char *text = options ? json_dumps(options, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(options);
    hasher hs = {{0xcbf29ce484222325ull, 0x84222325cbf29ce4ull, 0x9e3779b97f4a7c15ull,
                  0x2545f4914f6cdd1dull}};
    if (text) hash_bytes(&hs, text, strlen(text));
    free(text);
    char layers[64] = "";
    size_t k = 0;
    for (int i = 0; i < o->n_layers && k + 12 < sizeof layers; i++)
        k += (size_t)snprintf(layers + k, sizeof layers - k, "%s%d", i ? "," : "", o->layers[i]);
    if (o->n_layers && k + 12 >= sizeof layers) snprintf(layers + k, sizeof layers - k, ",...");
    char tokens[32];
    if (o->max_tokens > 0) snprintf(tokens, sizeof tokens, "%lld", (long long)o->max_tokens);
    else snprintf(tokens, sizeof tokens, "all");
    snprintf(out, cap, "layers-%s_tokens-%s_%012llx", layers, tokens,
             (unsigned long long)(hs.h[0] & 0xffffffffffffull));
}

static xle_status write_state(const char *dir, const stats_state *s, json_t *options,
                              xle_error *err) {
    json_t *j = json_pack("{s:s, s:s, s:O, s:I, s:I, s:I, s:b, s:i}", "format", STATS_FORMAT,
                          "fingerprint", s->fingerprint, "options", options, "docs_done",
                          (json_int_t)s->docs_done, "tokens_done", (json_int_t)s->tokens_done,
                          "count", (json_int_t)s->count, "complete", s->complete, "partial",
                          s->partial_gen);
    char *text = j ? json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    char *path = path_join(dir, "stats.json");
    xle_status st = text && path ? xle_atomic_write(path, text, strlen(text), err)
                                 : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(text);
    free(path);
    return st;
}

/* Reads DIR/stats.json; *found = 0 when there is none. *options_out gets the stored options. */
static xle_status read_state(const char *dir, stats_state *s, json_t **options_out, int *found,
                             xle_error *err) {
    *found = 0;
    *options_out = NULL;
    char *path = path_join(dir, "stats.json");
    if (!path) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (access(path, F_OK) != 0) {
        free(path);
        return XLE_OK;
    }
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    xle_status st = XLE_OK;
    const char *fmt = NULL, *fp = NULL;
    json_t *options = NULL;
    json_int_t docs = 0, tokens = 0, count = 0;
    int complete = 0, gen = 0;
    if (!j) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    } else if (json_unpack(j, "{s:s, s:s, s:o, s:I, s:I, s:I, s:b, s:i}", "format", &fmt,
                           "fingerprint", &fp, "options", &options, "docs_done", &docs,
                           "tokens_done", &tokens, "count", &count, "complete", &complete,
                           "partial", &gen) != 0 ||
               strcmp(fmt, STATS_FORMAT) != 0 || strlen(fp) != 64 || docs < 0 || tokens < 0 ||
               count < 0 || gen < 0) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: not an %s file (fields format, fingerprint, "
                      "options, docs_done, tokens_done, count, complete, partial)", path,
                      STATS_FORMAT);
    } else {
        memcpy(s->fingerprint, fp, 65);
        s->docs_done = docs, s->tokens_done = tokens, s->count = count;
        s->complete = complete, s->partial_gen = gen;
        *options_out = json_incref(options);
        *found = 1;
    }
    json_decref(j);
    free(path);
    return st;
}

/* ---- computing ---------------------------------------------------------------------------- */

static xle_status save_partial(const char *dir, stats_state *s, json_t *options,
                               xle_layer_stats *stats, int n_layers, xle_error *err) {
    int dim = stats[0].dim;
    size_t per = (size_t)dim * dim * sizeof(double);
    double *all = malloc(per * (size_t)n_layers);
    if (!all) return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_layers; i++) memcpy((char *)all + per * (size_t)i, stats[i].sum, per);
    char name[48], old_name[48];
    snprintf(old_name, sizeof old_name, "partial-%d.f64", s->partial_gen);
    snprintf(name, sizeof name, "partial-%d.f64", s->partial_gen + 1);
    char *path = path_join(dir, name);
    xle_status st = path ? xle_atomic_write(path, all, per * (size_t)n_layers, err)
                         : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(all);
    free(path);
    if (st != XLE_OK) return st;
    int old = s->partial_gen;
    s->partial_gen++;
    if ((st = write_state(dir, s, options, err)) != XLE_OK) return st;
    if (old > 0 && (path = path_join(dir, old_name))) remove(path), free(path);
    return XLE_OK;
}

static xle_status save_complete(const char *dir, stats_state *s, json_t *options,
                                xle_layer_stats *stats, int n_layers, xle_error *err) {
    xle_status st = XLE_OK;
    for (int i = 0; i < n_layers && st == XLE_OK; i++) {
        int d = stats[i].dim;
        double *sum = stats[i].sum;
        for (int r = 0; r < d; r++) /* the accumulator holds the upper triangle */
            for (int c = 0; c < r; c++) sum[(size_t)r * d + c] = sum[(size_t)c * d + r];
        char name[48];
        snprintf(name, sizeof name, "layer-%d.f64", stats[i].layer);
        char *path = path_join(dir, name);
        st = path ? xle_atomic_write(path, sum, (size_t)d * d * sizeof *sum, err)
                  : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
        free(path);
    }
    if (st != XLE_OK) return st;
    int old = s->partial_gen;
    s->complete = 1;
    s->partial_gen = 0;
    if ((st = write_state(dir, s, options, err)) != XLE_OK) return st;
    if (old > 0) {
        char name[48];
        snprintf(name, sizeof name, "partial-%d.f64", old);
        char *path = path_join(dir, name);
        if (path) remove(path), free(path);
    }
    return XLE_OK;
}

/* Shared pass: adds every process's sums into process 0's and zeroes the others' (so the total
 * over processes is unchanged), then tells every process whether process 0 wants to stop and
 * whether its last write succeeded. */
static xle_status gather_sums(const xle_comm *comm, xle_layer_stats *stats, int n_layers, int *stop,
                              xle_error *err) {
    for (int i = 0; i < n_layers; i++) {
        size_t n = (size_t)stats[i].dim * (size_t)stats[i].dim;
        if (comm->sum_f64(comm->user, stats[i].sum, n) != 0)
            return xle_fail(err, XLE_ERR_IO, "stats: adding the processes' sums failed");
        if (comm->rank != 0) memset(stats[i].sum, 0, n * sizeof(double));
    }
    int flag = *stop;
    if (comm->bcast(comm->user, &flag, sizeof flag) != 0)
        return xle_fail(err, XLE_ERR_IO, "stats: broadcast from process 0 failed");
    *stop = flag;
    return XLE_OK;
}

/* Shared pass: process 0's status after a write, to every process (the others stop too). */
static xle_status share_status(const xle_comm *comm, xle_status st, xle_error *err) {
    int code = (int)st;
    if (comm->bcast(comm->user, &code, sizeof code) != 0)
        return xle_fail(err, XLE_ERR_IO, "stats: broadcast from process 0 failed");
    if (comm->rank != 0 && code != XLE_OK)
        return xle_fail(err, (xle_status)code, "stats: process 0 failed (its message says why)");
    return st;
}

xle_status xle_stats_build(xle_model *model, const xle_tokenizer *tok, const xle_stats_opts *o,
                           xle_error *err) {
    return xle_stats_build_shared(model, tok, o, NULL, err);
}

static xle_status build_shared(xle_model *model, const xle_tokenizer *tok, const xle_stats_opts *o,
                               const xle_comm *comm, xle_error *err);

xle_status xle_stats_build_shared(xle_model *model, const xle_tokenizer *tok, const xle_stats_opts *o,
                                  const xle_comm *comm, xle_error *err) {
    /* The cache holds exact statistics whatever precision the model runs inference in (the
     * files do not record it, and the bf16 mode of xle_stats_accumulate moves the edits by
     * more than the goldens' 1e-3: docs/editing.md). */
    const xle_precision keep = xle_model_precision(model);
    xle_model_set_precision(model, XLE_PRECISION_EXACT);
    xle_status st = build_shared(model, tok, o, comm, err);
    xle_model_set_precision(model, keep);
    return st;
}

static xle_status build_shared(xle_model *model, const xle_tokenizer *tok, const xle_stats_opts *o,
                               const xle_comm *comm, xle_error *err) {
    const xle_config *c = xle_model_config(model);
    const int shared = comm && comm->size > 1, lead = !shared || comm->rank == 0;
    if (!tok) return xle_fail(err, XLE_ERR_ARG, "stats: the model has no tokenizer");
    if (o->n_layers < 1 || o->n_corpus < 1)
        return xle_fail(err, XLE_ERR_ARG, "stats: need at least one layer and one corpus file");
    for (int i = 0; i < o->n_layers; i++) {
        if (o->layers[i] < 0 || o->layers[i] >= c->n_layers)
            return xle_fail(err, XLE_ERR_ARG, "stats: layer %d: the model has layers 0..%d",
                            o->layers[i], c->n_layers - 1);
        for (int j = 0; j < i; j++)
            if (o->layers[j] == o->layers[i])
                return xle_fail(err, XLE_ERR_ARG, "stats: layer %d given twice", o->layers[i]);
    }
    int max_len = effective_max_len(model, o);
    for (int i = 0; i < o->n_corpus; i++) {
        xle_status in = xle_in_check_file(o->corpus[i], err);
        if (in != XLE_OK) return in;
    }
    int made_dir = mkdir(o->dir, 0777) == 0;
    if (!made_dir && errno != EEXIST)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", o->dir, strerror(errno));

    stats_state s = {0};
    xle_model_fingerprint(model, s.fingerprint);
    json_t *options = options_json(o, c->ffn_dim, max_len), *stored = NULL;
    int found = 0;
    stats_state prev = {0};
    xle_status st = read_state(o->dir, &prev, &stored, &found, err);
    xle_layer_stats *stats = calloc((size_t)o->n_layers, sizeof *stats);
    if (st == XLE_OK && !stats) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK && found) {
        if (strcmp(prev.fingerprint, s.fingerprint) != 0)
            st = xle_fail(err, XLE_ERR_ARG, "%s/stats.json: fingerprint: statistics of another "
                          "model (%.16s…, this model is %.16s…)", o->dir, prev.fingerprint,
                          s.fingerprint);
        else if (!json_equal(stored, options))
            st = xle_fail(err, XLE_ERR_ARG, "%s/stats.json: options: made with other layers, corpus "
                          "or limits; use another --out folder (and give it to edit/eval as --stats), "
                          "or no --out: the cache keeps each option set apart", o->dir);
    }
    size_t per = (size_t)c->ffn_dim * c->ffn_dim;
    for (int i = 0; st == XLE_OK && i < o->n_layers; i++) {
        stats[i].layer = o->layers[i];
        stats[i].dim = c->ffn_dim;
        stats[i].sum = calloc(per, sizeof(double));
        if (!stats[i].sum) st = xle_fail(err, XLE_ERR_NOMEM, "stats: out of memory for %d x %d "
                                         "float64 sums", c->ffn_dim, c->ffn_dim);
    }
    if (st == XLE_OK && found && prev.complete) goto done; /* nothing to do */
    if (st == XLE_OK && found) {
        s = prev;
        if (s.partial_gen > 0 && lead) { /* the others start from zero: sums add up on 0 */
            char name[48];
            snprintf(name, sizeof name, "partial-%d.f64", s.partial_gen);
            char *path = path_join(o->dir, name);
            double *all = path ? malloc(per * sizeof(double) * (size_t)o->n_layers) : NULL;
            st = all ? read_exact(path, all, per * sizeof(double) * (size_t)o->n_layers, err)
                     : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
            for (int i = 0; st == XLE_OK && i < o->n_layers; i++)
                memcpy(stats[i].sum, all + per * (size_t)i, per * sizeof(double));
            free(all);
            free(path);
        }
        for (int i = 0; i < o->n_layers; i++) stats[i].count = s.count;
    }

    /* Batches: whole documents (each truncated to max_len, BOS first) until BATCH_TOKENS. */
    corpus_reader rd = {.paths = o->corpus, .n_paths = o->n_corpus};
    int32_t *tokens = malloc(BATCH_TOKENS * sizeof *tokens);
    const int32_t **seqs = malloc(BATCH_TOKENS * sizeof *seqs);
    int *lens = malloc(BATCH_TOKENS * sizeof *lens);
    if (st == XLE_OK && (!tokens || !seqs || !lens)) st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    int64_t doc_index = 0, batches = 0;
    int stop_asked = 0;
    int n_seqs = 0, n_tok = 0, at_end = 0;
    xle_tokens pending = {0};
    int have_pending = 0;
    while (st == XLE_OK && !at_end) {
        /* fill one batch */
        n_seqs = n_tok = 0;
        int64_t docs_in_batch = 0;
        while (st == XLE_OK) {
            if (!have_pending) {
                if (o->max_tokens > 0 && s.tokens_done + n_tok >= o->max_tokens) {
                    at_end = 1;
                    break;
                }
                int got;
                if ((st = corpus_next(&rd, &got, err)) != XLE_OK) break;
                if (!got) {
                    at_end = 1;
                    break;
                }
                doc_index++;
                if (doc_index <= s.docs_done) continue; /* done before the interruption */
                if ((st = xle_tokenize(tok, rd.doc, rd.doc_len, -1, 0, &pending, err)) != XLE_OK)
                    break;
                have_pending = 1;
                if (pending.n > max_len) pending.n = max_len;
                if (o->max_tokens > 0 && s.tokens_done + n_tok + pending.n > o->max_tokens)
                    pending.n = (int)(o->max_tokens - s.tokens_done - n_tok);
            }
            if (n_tok + pending.n > BATCH_TOKENS) break; /* next batch */
            memcpy(tokens + n_tok, pending.ids, (size_t)pending.n * sizeof *tokens);
            seqs[n_seqs] = tokens + n_tok;
            lens[n_seqs++] = pending.n;
            n_tok += pending.n;
            docs_in_batch++;
            xle_tokens_free(&pending);
            have_pending = 0;
        }
        if (st != XLE_OK || n_seqs == 0) break;
        if (!shared || batches % comm->size == comm->rank)
            st = xle_stats_accumulate(model, o->layers, o->n_layers, seqs, lens, n_seqs, stats, err);
        if (st != XLE_OK) break;
        s.docs_done = doc_index - (have_pending ? 1 : 0);
        s.tokens_done += n_tok;
        if (shared) s.count += n_tok; /* every process sees every batch; sums are on their owners */
        else s.count = stats[0].count;
        batches++;
        if (shared) {
            /* stops and checkpoints happen together on every process, at fixed batches */
            stop_asked |= lead && o->progress &&
                          o->progress(o->progress_user, s.tokens_done, o->max_tokens > 0 ? o->max_tokens : -1);
            if (at_end || batches % CHECKPOINT_BATCHES != 0) continue;
            int stop = stop_asked;
            if ((st = gather_sums(comm, stats, o->n_layers, &stop, err)) != XLE_OK) break;
            if (lead) st = save_partial(o->dir, &s, options, stats, o->n_layers, err);
            if ((st = share_status(comm, st, err)) == XLE_OK && stop)
                st = xle_fail(err, XLE_ERR_INTERRUPTED, "stats: interrupted after %lld tokens; run "
                              "again to resume", (long long)s.tokens_done);
            continue;
        }
        /* a request to stop after the last batch changes nothing: the run is complete */
        int stop = o->progress && o->progress(o->progress_user, s.tokens_done,
                                              o->max_tokens > 0 ? o->max_tokens : -1) &&
                   !at_end;
        if (!at_end && (stop || batches % CHECKPOINT_BATCHES == 0))
            st = save_partial(o->dir, &s, options, stats, o->n_layers, err);
        if (st == XLE_OK && stop)
            st = xle_fail(err, XLE_ERR_INTERRUPTED, "stats: interrupted after %lld tokens; run "
                          "again to resume", (long long)s.tokens_done);
    }
    xle_tokens_free(&pending);
    corpus_close(&rd);
    free(tokens), free(seqs), free(lens);
    if (st == XLE_OK && s.tokens_done == 0)
        st = xle_fail(err, XLE_ERR_ARG, "stats: the corpus has no text");
    if (st == XLE_OK && shared) {
        int stop = 0;
        st = gather_sums(comm, stats, o->n_layers, &stop, err);
        for (int i = 0; i < o->n_layers; i++) stats[i].count = s.count;
    }
    if (st == XLE_OK && lead) st = save_complete(o->dir, &s, options, stats, o->n_layers, err);
    if (st == XLE_OK && shared) st = share_status(comm, st, err);
done:
    if (st != XLE_OK && made_dir) rmdir(o->dir); /* only when nothing was written into it */
    for (int i = 0; stats && i < o->n_layers; i++) free(stats[i].sum);
    free(stats);
    json_decref(options);
    json_decref(stored);
    return st;
}

/* A folder of statistics that can serve `layer` for this model: found, same fingerprint,
 * complete, listing the layer. *tokens gets its token count. */
static int serves_layer(const char *dir, const char *fp, int layer, int64_t *tokens) {
    stats_state s = {0};
    json_t *options = NULL;
    int found = 0, listed = 0;
    xle_error ignored = {0};
    if (read_state(dir, &s, &options, &found, &ignored) != XLE_OK || !found) return 0;
    json_t *layers = json_object_get(options, "layers");
    for (size_t i = 0; i < json_array_size(layers); i++)
        listed |= json_integer_value(json_array_get(layers, i)) == layer;
    json_decref(options);
    *tokens = s.tokens_done;
    return listed && s.complete && !strcmp(s.fingerprint, fp);
}

/* In a cache folder holding one subfolder per option set (xledit stats without --out), the
 * set that serves `layer` with the most tokens (ties: the first name in byte order), or NULL.
 * Caller frees. */
static char *cache_pick(const char *dir, const char *fp, int layer) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *best = NULL, *best_name = NULL;
    int64_t best_tokens = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *sub = path_join(dir, e->d_name);
        int64_t tokens = 0;
        int better = sub && serves_layer(sub, fp, layer, &tokens) &&
                     (tokens > best_tokens ||
                      (tokens == best_tokens && strcmp(e->d_name, best_name) < 0));
        if (better) {
            free(best), free(best_name);
            best = sub, best_name = strdup(e->d_name), best_tokens = tokens;
            if (!best_name) {
                free(best);
                best = NULL;
                best_tokens = -1;
            }
        } else {
            free(sub);
        }
    }
    closedir(d);
    free(best_name);
    return best;
}

xle_status xle_stats_load(xle_model *model, const char *dir, int layer, xle_layer_stats **out,
                          xle_error *err) {
    *out = NULL;
    char fp_here[65];
    xle_model_fingerprint(model, fp_here);
    int64_t ignored_tokens;
    if (!serves_layer(dir, fp_here, layer, &ignored_tokens)) {
        char *picked = cache_pick(dir, fp_here, layer);
        if (picked) {
            xle_status st = xle_stats_load(model, picked, layer, out, err);
            free(picked);
            return st;
        }
        stats_state s0 = {0};
        json_t *o0 = NULL;
        int found0 = 0;
        xle_status st0 = read_state(dir, &s0, &o0, &found0, err);
        json_decref(o0);
        if (st0 != XLE_OK) return st0;
        if (!found0)
            return xle_fail(err, XLE_ERR_NOT_FOUND, "%s: no key statistics of layer %d for this model "
                            "here (make them with xledit stats)", dir, layer);
    }
    stats_state s = {0};
    json_t *options = NULL;
    int found = 0;
    xle_status st = read_state(dir, &s, &options, &found, err);
    if (st != XLE_OK) return st;
    if (!found) return xle_fail(err, XLE_ERR_NOT_FOUND, "%s/stats.json: no key statistics here "
                                "(make them with xledit stats)", dir);
    char fp[65];
    xle_model_fingerprint(model, fp);
    const xle_config *c = xle_model_config(model);
    json_t *layers = json_object_get(options, "layers");
    int listed = 0;
    for (size_t i = 0; i < json_array_size(layers); i++)
        listed |= json_integer_value(json_array_get(layers, i)) == layer;
    if (strcmp(fp, s.fingerprint) != 0)
        st = xle_fail(err, XLE_ERR_ARG, "%s/stats.json: fingerprint: statistics of another model",
                      dir);
    else if (!s.complete)
        st = xle_fail(err, XLE_ERR_ARG, "%s/stats.json: complete: false (an interrupted run; run "
                      "xledit stats again to finish it)", dir);
    else if (!listed)
        st = xle_fail(err, XLE_ERR_NOT_FOUND, "%s/stats.json: layers: no statistics for layer %d",
                      dir, layer);
    json_decref(options);
    if (st != XLE_OK) return st;
    xle_layer_stats *ls = calloc(1, sizeof *ls);
    size_t n = (size_t)c->ffn_dim * c->ffn_dim;
    if (ls) ls->sum = malloc(n * sizeof(double));
    if (!ls || !ls->sum) {
        if (ls) free(ls);
        return xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    }
    ls->layer = layer, ls->dim = c->ffn_dim, ls->count = s.count;
    char name[48];
    snprintf(name, sizeof name, "layer-%d.f64", layer);
    char *path = path_join(dir, name);
    st = path ? read_exact(path, ls->sum, n * sizeof(double), err)
              : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    free(path);
    if (st != XLE_OK) {
        xle_layer_stats_free(ls);
        return st;
    }
    *out = ls;
    return XLE_OK;
}
