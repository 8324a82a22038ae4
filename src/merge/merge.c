/*
 * merge.c: xle_merge, the streaming driver. For each output tensor it walks the rows in chunks
 * (opts.chunk_elems elements), has the OpenMP threads compute whole rows into one output
 * buffer, appends the buffer to the output stream, and then drops the chunk's pages of every
 * memory-mapped input from the process (madvise MADV_DONTNEED: the pages stay in the page
 * cache, so a later pass re-reads them without disk traffic) while asking the kernel to read
 * the next chunk ahead (MADV_WILLNEED). Memory is thus a few chunk buffers however large the
 * models are. TIES first selects each model's exact trim threshold per tensor with two
 * histogram passes over the 32-bit patterns of |τ| (a radix select) and, when the threshold
 * value is tied, one counting pass that fixes which tied entries are kept (lowest canonical
 * index first); then one pass computes the output.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "merge/merge_internal.h"

/* ---- options and names ---------------------------------------------------------------------- */

static const char *const METHOD_NAMES[XLE_MERGE_METHOD_COUNT] = {"linear", "task-arithmetic", "ties",
                                                                 "dare-ties", "dare-linear"};

void xle_merge_opts_default(xle_merge_opts *o) {
    memset(o, 0, sizeof *o);
    o->method = XLE_MERGE_TIES;
    o->density = 0.2;
    o->lambda = 1.0f;
    o->normalize = -1;
    o->out_format = XLE_FORMAT_HF;
}

const char *xle_merge_method_name(xle_merge_method m) {
    return (int)m >= 0 && m < XLE_MERGE_METHOD_COUNT ? METHOD_NAMES[m] : "?";
}

int xle_merge_method_parse(const char *name, xle_merge_method *out) {
    char buf[32];
    size_t n = strlen(name);
    if (n >= sizeof buf) return 0;
    for (size_t i = 0; i <= n; i++) buf[i] = name[i] == '_' ? '-' : name[i];
    for (int m = 0; m < XLE_MERGE_METHOD_COUNT; m++)
        if (strcmp(buf, METHOD_NAMES[m]) == 0) {
            *out = (xle_merge_method)m;
            return 1;
        }
    return 0;
}

int xle_merge_method_normalizes(xle_merge_method m) {
    return m == XLE_MERGE_LINEAR || m == XLE_MERGE_TIES;
}

/* ---- paging of the inputs --------------------------------------------------------------------- */

/* Applies madvise(advice) to bytes [off, off + len) of t's data when they lie in one of m's
 * file mappings (a tensor copied into a malloc'd buffer is left alone), widened to whole pages
 * and clipped to the mapping. Dropping clean private file pages is harmless: they are re-read
 * from the file (normally from the page cache) on the next access. */
static void advise(const xle_model *m, const xle_tensor *t, uint64_t off, uint64_t len, int advice) {
    if (!m || !t || !t->data || len == 0) return;
    uintptr_t a = (uintptr_t)t->data + off, b = a + len;
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < m->n_maps; i++) {
        uintptr_t lo = (uintptr_t)m->maps[i].base, hi = lo + m->maps[i].size;
        if (a < lo || b > hi) continue;
        uintptr_t s = a / (uintptr_t)page * (uintptr_t)page, e = (b + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
        if (s < lo) s = lo;
        if (e > hi) e = hi;
        madvise((void *)s, e - s, advice);
        return;
    }
}

/* Rows [r0, r1) of every input of t (its own row order; chunks of RoPE tensors are aligned to
 * whole heads, so reordered rows stay inside the range). */
static void advise_rows(const xle_merge_plan *p, const xle_merge_tensor *t, int64_t r0, int64_t r1, int advice) {
    if (r1 <= r0) return;
    if (t->copy_only) {
        size_t es = xle_dtype_size(t->ref->dtype);
        advise(p->ref, t->ref, (uint64_t)(r0 * t->cols) * es, (uint64_t)((r1 - r0) * t->cols) * es, advice);
        return;
    }
    int64_t m0 = r0 < t->shared_rows ? r0 : t->shared_rows, m1 = r1 < t->shared_rows ? r1 : t->shared_rows;
    if (m1 > m0) {
        if (t->base) {
            size_t es = xle_dtype_size(t->base->dtype);
            advise(p->base, t->base, (uint64_t)(m0 * t->cols) * es, (uint64_t)((m1 - m0) * t->cols) * es, advice);
        }
        for (int i = 0; i < p->n_models; i++) {
            size_t es = xle_dtype_size(t->src[i]->dtype);
            advise(p->models[i], t->src[i], (uint64_t)(m0 * t->cols) * es, (uint64_t)((m1 - m0) * t->cols) * es, advice);
        }
    }
    if (t->donor && r1 > t->shared_rows) {
        int64_t d0 = r0 > t->shared_rows ? r0 : t->shared_rows;
        size_t es = xle_dtype_size(t->donor->dtype);
        advise(p->models[p->donor], t->donor, (uint64_t)(d0 * t->cols) * es, (uint64_t)((r1 - d0) * t->cols) * es, advice);
    }
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct runner {
    xle_merge_plan *p;
    xle_merge_sink *sink;
    int n_threads;
    float **scratch;           /* per thread */
    int *bad;                  /* per thread: model index + 1 with a non-finite task vector */
    uint8_t *out_buf;          /* one chunk of output rows */
    size_t out_cap;
    uint64_t done, total;      /* input bytes, for progress */
    int max_passes;
} runner;

static int64_t chunk_rows(const runner *r, const xle_merge_tensor *t) {
    size_t elems = r->p->opts.chunk_elems ? r->p->opts.chunk_elems : ((size_t)4 << 20);
    int64_t rows = (int64_t)(elems / (size_t)t->cols);
    if (rows < 1) rows = 1;
    if (t->rope_rows) {
        int hd = r->p->ref->cfg.head_dim;
        rows = (rows + hd - 1) / hd * hd;
    }
    return rows;
}

static int first_bad(const runner *r) {
    for (int i = 0; i < r->n_threads; i++)
        if (r->bad[i]) return r->bad[i];
    return 0;
}

static xle_status non_finite(const runner *r, const xle_merge_tensor *t, int model, xle_error *err) {
    return xle_fail(err, XLE_ERR_NUMERIC, "%s: %s: the task vector (model minus base) holds a "
                    "non-finite value", r->p->models[model - 1]->path, t->canon_name);
}

/* One scan pass of the TIES selection over canonical rows [0, shared_rows). */
static xle_status scan_pass(runner *r, const xle_merge_kernel *k, int pass, const uint32_t *hi,
                            uint64_t *hists, int64_t *row_counts, xle_error *err) {
    const xle_merge_tensor *t = k->t;
    int n = r->p->n_models;
    int64_t step = chunk_rows(r, t), rows = t->shared_rows;
    if (hists) memset(hists, 0, (size_t)r->n_threads * (size_t)n * 65536 * sizeof *hists);
    memset(r->bad, 0, (size_t)r->n_threads * sizeof *r->bad);
    for (int64_t c0 = 0; c0 < rows; c0 += step) {
        int64_t c1 = c0 + step < rows ? c0 + step : rows;
        advise_rows(r->p, t, c1, c1 + step < rows ? c1 + step : rows, MADV_WILLNEED);
#pragma omp parallel num_threads(r->n_threads)
        {
            int tid = omp_get_thread_num();
            uint64_t *h = hists ? hists + (size_t)tid * (size_t)n * 65536 : NULL;
            int64_t *cnt = xle_merge_scratch_counters(r->scratch[tid], n);
#pragma omp for schedule(dynamic, 8)
            for (int64_t c = c0; c < c1; c++) {
                if (row_counts) memset(cnt, 0, (size_t)n * sizeof *cnt);
                int b = xle_merge_scan_row(k, pass, c, hi, h, cnt, r->scratch[tid]);
                if (b && !r->bad[tid]) r->bad[tid] = b;
                if (row_counts)
                    for (int i = 0; i < n; i++) row_counts[(size_t)i * (size_t)rows + (size_t)c] = cnt[i];
            }
        }
        advise_rows(r->p, t, c0, c1, MADV_DONTNEED);
        int b = first_bad(r);
        if (b) return non_finite(r, t, b, err);
    }
    return XLE_OK;
}

/* Sums the per-thread histograms of model i into out. */
static void reduce_hist(const runner *r, const uint64_t *hists, int i, uint64_t *out) {
    int n = r->p->n_models;
    memset(out, 0, 65536 * sizeof *out);
    for (int tid = 0; tid < r->n_threads; tid++) {
        const uint64_t *h = hists + ((size_t)tid * (size_t)n + (size_t)i) * 65536;
        for (int b = 0; b < 65536; b++) out[b] += h[b];
    }
}

/* Fills trims[i] for TIES: the k-th largest |τᵢ| over the tensor's merged entries, exactly. */
static xle_status select_trims(runner *r, xle_merge_kernel *k, xle_merge_trim *trims, int64_t **equal_rows,
                               xle_error *err) {
    const xle_merge_tensor *t = k->t;
    int n = r->p->n_models;
    int64_t total = t->shared_rows * t->cols;
    int64_t *keep = malloc((size_t)n * sizeof *keep);
    if (!keep) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    int any = 0; /* each model keeps its own density's share */
    for (int i = 0; i < n; i++) {
        keep[i] = xle_merge_keep_count(t->densities[i], total);
        trims[i].active = keep[i] < total;
        any |= trims[i].active;
    }
    if (!any) {
        free(keep);
        return XLE_OK;
    }
    uint64_t *hists = malloc((size_t)r->n_threads * (size_t)n * 65536 * sizeof *hists);
    uint64_t *sum = malloc(65536 * sizeof *sum);
    uint32_t *hi = malloc((size_t)n * sizeof *hi);
    uint64_t *above = malloc((size_t)n * sizeof *above);
    xle_status st = XLE_OK;
    if (!hists || !sum || !hi || !above) st = xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    /* pass 0: high 16 bits */
    if (st == XLE_OK) st = scan_pass(r, k, 0, NULL, hists, NULL, err);
    for (int i = 0; st == XLE_OK && i < n; i++) {
        if (!trims[i].active) continue;
        reduce_hist(r, hists, i, sum);
        xle_merge_hist_select(sum, (uint64_t)keep[i], &hi[i], &above[i]);
    }
    /* pass 1: low 16 bits inside the chosen bucket */
    if (st == XLE_OK) st = scan_pass(r, k, 1, hi, hists, NULL, err);
    int need_ranks = 0;
    for (int i = 0; st == XLE_OK && i < n; i++) {
        if (!trims[i].active) continue;
        reduce_hist(r, hists, i, sum);
        uint32_t lo;
        uint64_t above_lo;
        xle_merge_hist_select(sum, (uint64_t)keep[i] - above[i], &lo, &above_lo);
        trims[i].bits = hi[i] << 16 | lo;
        trims[i].need = keep[i] - (int64_t)(above[i] + above_lo);
        trims[i].n_equal = (int64_t)sum[lo];
        if (trims[i].need < trims[i].n_equal) need_ranks = 1;
    }
    r->max_passes = r->max_passes > 3 ? r->max_passes : 3;
    /* pass 2 (only when the threshold value is tied): equal entries per canonical row */
    if (st == XLE_OK && need_ranks) {
        int64_t rows = t->shared_rows;
        *equal_rows = malloc((size_t)n * (size_t)rows * sizeof **equal_rows);
        if (!*equal_rows) st = xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
        if (st == XLE_OK) st = scan_pass(r, k, 2, NULL, NULL, *equal_rows, err);
        for (int i = 0; st == XLE_OK && i < n; i++) {
            if (!trims[i].active || trims[i].need == trims[i].n_equal) continue;
            int64_t *row = *equal_rows + (size_t)i * (size_t)rows, before = 0;
            for (int64_t c = 0; c < rows; c++) { /* counts become exclusive prefix sums */
                int64_t here = row[c];
                row[c] = before;
                before += here;
            }
            trims[i].equal_before = row;
        }
        r->max_passes = 4;
    }
    free(hists);
    free(sum);
    free(hi);
    free(above);
    free(keep);
    return st;
}

/* The final pass: output rows in chunks, written in order. */
static xle_status write_pass(runner *r, const xle_merge_kernel *k, xle_error *err) {
    const xle_merge_tensor *t = k->t;
    size_t es = xle_dtype_size(t->out_dtype), row_bytes = (size_t)t->cols * es;
    int64_t step = chunk_rows(r, t);
    if ((size_t)step * row_bytes > r->out_cap) {
        free(r->out_buf);
        r->out_cap = (size_t)step * row_bytes;
        r->out_buf = malloc(r->out_cap);
        if (!r->out_buf) {
            r->out_cap = 0;
            return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
        }
    }
    memset(r->bad, 0, (size_t)r->n_threads * sizeof *r->bad);
    for (int64_t o0 = 0; o0 < t->rows; o0 += step) {
        int64_t o1 = o0 + step < t->rows ? o0 + step : t->rows;
        advise_rows(r->p, t, o1, o1 + step < t->rows ? o1 + step : t->rows, MADV_WILLNEED);
#pragma omp parallel for num_threads(r->n_threads) schedule(dynamic, 8)
        for (int64_t o = o0; o < o1; o++) {
            int tid = omp_get_thread_num();
            int b = xle_merge_row(k, o, r->out_buf + (size_t)(o - o0) * row_bytes, r->scratch[tid]);
            if (b && !r->bad[tid]) r->bad[tid] = b;
        }
        advise_rows(r->p, t, o0, o1, MADV_DONTNEED);
        int b = first_bad(r);
        if (b) return non_finite(r, t, b, err);
        xle_status st = xle_merge_sink_write(r->sink, r->out_buf, (size_t)(o1 - o0) * row_bytes, err);
        if (st != XLE_OK) return st;
        r->done += (uint64_t)((double)t->input_bytes * (double)(o1 - o0) / (double)t->rows);
        if (r->p->opts.progress && r->p->opts.progress(r->p->opts.progress_user, (int64_t)r->done, (int64_t)r->total))
            return xle_fail(err, XLE_ERR_INTERRUPTED, "merge: interrupted; no output was written");
    }
    return XLE_OK;
}

static xle_status merge_tensor(runner *r, const xle_merge_tensor *t, xle_error *err) {
    xle_merge_plan *p = r->p;
    int n = p->n_models;
    xle_merge_kernel k = {p, t, NULL, NULL};
    xle_merge_trim *trims = NULL;
    uint64_t *streams = NULL;
    int64_t *equal_rows = NULL;
    xle_status st = XLE_OK;
    if (!t->copy_only && p->opts.method == XLE_MERGE_TIES) {
        trims = calloc((size_t)n, sizeof *trims);
        if (!trims) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
        k.trims = trims;
        st = select_trims(r, &k, trims, &equal_rows, err);
    } else if (!t->copy_only && (p->opts.method == XLE_MERGE_DARE_TIES || p->opts.method == XLE_MERGE_DARE_LINEAR)) {
        streams = malloc((size_t)n * sizeof *streams);
        if (!streams) return xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
        uint64_t h = xle_merge_name_hash(t->canon_name);
        for (int i = 0; i < n; i++) streams[i] = xle_merge_dare_stream(p->opts.seed, i, h);
        k.streams = streams;
    }
    if (r->max_passes < 1) r->max_passes = 1;
    if (st == XLE_OK) st = write_pass(r, &k, err);
    free(trims);
    free(streams);
    free(equal_rows);
    return st;
}

static void runner_free(runner *r) {
    for (int i = 0; r->scratch && i < r->n_threads; i++) free(r->scratch[i]);
    free(r->scratch);
    free(r->bad);
    free(r->out_buf);
}

xle_status xle_merge(const xle_merge_opts *opts, const char *out_path, xle_merge_stats *stats,
                     xle_error *err) {
    if (!opts) return xle_fail(err, XLE_ERR_ARG, "merge: no options");
    xle_merge_plan *p;
    xle_status st = xle_merge_plan_build(opts, out_path, &p, err);
    if (st != XLE_OK) return st;
    runner r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.n_threads = omp_get_max_threads();
    if (r.n_threads < 1) r.n_threads = 1;
    r.scratch = calloc((size_t)r.n_threads, sizeof *r.scratch);
    r.bad = calloc((size_t)r.n_threads, sizeof *r.bad);
    if (!r.scratch || !r.bad) st = xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; st == XLE_OK && i < r.n_threads; i++) {
        r.scratch[i] = malloc(xle_merge_scratch_floats(p->n_models) * sizeof(float));
        if (!r.scratch[i]) st = xle_fail(err, XLE_ERR_NOMEM, "merge: out of memory");
    }
    for (int i = 0; i < p->n_tensors; i++) r.total += p->tensors[i].input_bytes;
    if (st == XLE_OK) st = xle_merge_sink_open(p, out_path, &r.sink, err);
    for (int i = 0; st == XLE_OK && i < p->n_tensors; i++) st = merge_tensor(&r, &p->tensors[i], err);
    if (st == XLE_OK) {
        st = xle_merge_sink_commit(r.sink, err); /* frees the sink either way */
    } else if (r.sink) {
        xle_merge_sink_abort(r.sink);
    }
    if (st == XLE_OK && stats) {
        memset(stats, 0, sizeof *stats);
        stats->n_tensors = p->n_tensors;
        stats->out_vocab = p->out_vocab;
        stats->vocab_donor = p->donor;
        stats->input_bytes = r.total;
        for (int i = 0; i < p->n_tensors; i++)
            stats->output_bytes += (uint64_t)(p->tensors[i].rows * p->tensors[i].cols) *
                                   xle_dtype_size(p->tensors[i].out_dtype);
        stats->passes = r.max_passes;
    }
    runner_free(&r);
    xle_merge_plan_free(p);
    return st;
}
