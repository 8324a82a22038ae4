/*
 * test_merge.c: model merging against golden outputs of an independent NumPy implementation
 * (tests/reference/merge_reference.py -> tests/fixtures/merge/): linear and task arithmetic
 * must match bit for bit, TIES and DARE-TIES within float tolerance (they match bitwise too
 * today, which is reported). Also: the same bytes for any chunk size and thread count; GGUF and
 * llama2.c inputs (interleaved RoPE rows) give the HF result; GGUF output; the extended
 * vocabulary rule and its side files; every mismatch fails before any output exists, naming
 * the file and the field; non-finite task vectors and interruptions leave no output.
 */
#include <dirent.h>
#include <jansson.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_files.h"
#include "formats/formats_internal.h"
#include "merge/merge_internal.h"

#define FIX XLE_SOURCE_DIR "/tests/fixtures/merge"

static char g_tmp[256];

static void rm_rf(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* g_tmp/name in storage that lives until exit (paths are kept in option structs). */
static char *tmp_path(const char *name) {
    static char pool[2048][600];
    static int used;
    if (used == 2048) abort();
    char *b = pool[used++];
    snprintf(b, sizeof pool[0], "%s/%s", g_tmp, name);
    return b;
}

/* ---- reading outputs ------------------------------------------------------------------------ */

typedef struct st_file {
    uint8_t *buf;
    size_t size;
    xle_safetensors *st;
} st_file;

static int st_read(const char *path, st_file *f) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    fseek(fp, 0, SEEK_END);
    f->size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->buf = malloc(f->size);
    int ok = f->buf && fread(f->buf, 1, f->size, fp) == f->size;
    fclose(fp);
    xle_error err = {0};
    if (ok) ok = xle_safetensors_parse(path, f->buf, f->size, &f->st, &err) == XLE_OK;
    return ok;
}

static void st_close(st_file *f) {
    xle_safetensors_free(f->st);
    free(f->buf);
}

static float st_value(const xle_st_entry *e, int64_t i) {
    xle_tensor t = {XLE_F32, 1, {i + 1}, (void *)e->data};
    xle_st_dtype_to_xle(e->dtype, &t.dtype);
    return xle_tensor_get_f32(&t, i);
}

static int64_t st_numel(const xle_st_entry *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

/* Compares every tensor of want with got: same names, dtypes, shapes; values bitwise when
 * exact, else |got - want| <= tol * (1 + |want|). Returns mismatching tensors; *n_bitwise
 * counts tensors that are bitwise equal. */
static int compare_st(const char *got_path, const char *want_path, int exact, double tol, int *n_bitwise) {
    st_file g, w;
    if (!st_read(got_path, &g) || !st_read(want_path, &w)) {
        fprintf(stderr, "cannot read %s or %s\n", got_path, want_path);
        return 1000;
    }
    int bad = 0;
    *n_bitwise = 0;
    if (g.st->n != w.st->n) {
        fprintf(stderr, "%s: %d tensors, want %d\n", got_path, g.st->n, w.st->n);
        bad++;
    }
    for (int i = 0; i < w.st->n; i++) {
        const xle_st_entry *we = &w.st->entries[i], *ge = xle_safetensors_find(g.st, we->name);
        if (!ge || strcmp(ge->dtype, we->dtype) || ge->ndim != we->ndim ||
            memcmp(ge->shape, we->shape, sizeof ge->shape)) {
            fprintf(stderr, "%s: %s: missing or dtype/shape differs\n", got_path, we->name);
            bad++;
            continue;
        }
        size_t nb = (size_t)(we->end - we->begin);
        if (memcmp(ge->data, we->data, nb) == 0) {
            (*n_bitwise)++;
            continue;
        }
        if (exact) {
            fprintf(stderr, "%s: %s: not bitwise equal to the reference\n", got_path, we->name);
            bad++;
            continue;
        }
        for (int64_t k = 0; k < st_numel(we); k++) {
            double a = st_value(ge, k), b = st_value(we, k);
            if (!(fabs(a - b) <= tol * (1 + fabs(b)))) {
                fprintf(stderr, "%s: %s[%lld]: %.9g, reference %.9g\n", got_path, we->name, (long long)k, a, b);
                bad++;
                break;
            }
        }
    }
    st_close(&g);
    st_close(&w);
    return bad;
}

static int files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) eq = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return eq;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *s = calloc(1, 1 << 16);
    if (s) s[fread(s, 1, (1 << 16) - 1, f)] = 0;
    fclose(f);
    return s;
}

/* ---- the golden cases --------------------------------------------------------------------- */

typedef struct gcase {
    char name[64];
    xle_merge_opts o;
    char base[512];
    char models[4][512];
    const char *model_ptrs[4];
    float weights[4];
    double densities[4];
    xle_merge_gradient wgrad[4], dgrad[4];
    double lists[8][8];      /* the per-layer lists wgrad and dgrad point at */
    int exact;
} gcase;

static json_t *g_cases;

static int load_cases(void) {
    json_error_t je;
    g_cases = json_load_file(FIX "/cases.json", 0, &je);
    return g_cases != NULL;
}

static int n_cases(void) { return g_cases ? (int)json_array_size(json_object_get(g_cases, "cases")) : 0; }

static void case_get(int i, gcase *c) {
    json_t *j = json_array_get(json_object_get(g_cases, "cases"), (size_t)i);
    memset(c, 0, sizeof *c);
    xle_merge_opts_default(&c->o);
    snprintf(c->name, sizeof c->name, "%s", json_string_value(json_object_get(j, "name")));
    xle_merge_method_parse(json_string_value(json_object_get(j, "method")), &c->o.method);
    json_t *b = json_object_get(j, "base");
    if (json_is_string(b)) {
        snprintf(c->base, sizeof c->base, FIX "/models/%s", json_string_value(b));
        c->o.base = c->base;
    }
    json_t *ms = json_object_get(j, "models"), *ws = json_object_get(j, "weights");
    json_t *ds = json_object_get(j, "densities");
    c->o.n_models = (int)json_array_size(ms);
    int n_lists = 0, any_w = 0, any_d = 0;
    for (int k = 0; k < c->o.n_models && k < 4; k++) {
        snprintf(c->models[k], sizeof c->models[k], FIX "/models/%s", json_string_value(json_array_get(ms, (size_t)k)));
        c->model_ptrs[k] = c->models[k];
        for (int which = 0; which < 2; which++) { /* a number, or a per-layer list */
            json_t *v = json_array_get(which ? ds : ws, (size_t)k);
            double first = json_number_value(v);
            if (json_is_array(v) && n_lists < 8) {
                double *list = c->lists[n_lists++];
                int n = (int)json_array_size(v) < 8 ? (int)json_array_size(v) : 8;
                for (int e = 0; e < n; e++) list[e] = json_number_value(json_array_get(v, (size_t)e));
                first = list[0];
                (which ? c->dgrad : c->wgrad)[k] = (xle_merge_gradient){list, n};
                *(which ? &any_d : &any_w) = 1;
            }
            if (which) c->densities[k] = first;
            else c->weights[k] = (float)first;
        }
    }
    c->o.models = c->model_ptrs;
    c->o.weights = c->weights;
    c->o.densities = c->densities;
    c->o.weight_gradients = any_w ? c->wgrad : NULL;
    c->o.density_gradients = any_d ? c->dgrad : NULL;
    c->o.density = json_number_value(json_object_get(j, "density"));
    c->o.lambda = (float)json_number_value(json_object_get(j, "lambda"));
    c->o.normalize = json_is_true(json_object_get(j, "normalize"));
    c->o.seed = (uint64_t)json_integer_value(json_object_get(j, "seed"));
    c->exact = json_is_true(json_object_get(j, "exact"));
}

static int find_case(const char *name, gcase *c) {
    for (int i = 0; i < n_cases(); i++) {
        case_get(i, c);
        if (strcmp(c->name, name) == 0) return 1;
    }
    return 0;
}

static char *expected_of(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, FIX "/expected/%s.safetensors", name);
    return buf;
}

/* Runs a case into g_tmp/<out> and compares with its golden file. */
static void run_and_compare(gcase *c, const char *out, xle_merge_stats *stats) {
    xle_error err = {0};
    CHECK_OK(xle_merge(&c->o, tmp_path(out), stats, &err), &err);
    char got[600];
    snprintf(got, sizeof got, "%s/model.safetensors", tmp_path(out));
    int bitwise = 0;
    int bad = compare_st(got, expected_of(c->name), c->exact, 2e-6, &bitwise);
    CHECK_MSG(bad == 0, "%s: %d tensors differ from the NumPy reference", c->name, bad);
    if (!c->exact) fprintf(stderr, "     %s: %d tensors bitwise equal to the reference\n", c->name, bitwise);
}

static void test_golden(void) {
    CHECK_MSG(n_cases() >= 10, "fixtures: %s/cases.json missing or short", FIX);
    for (int i = 0; i < n_cases(); i++) {
        gcase c;
        case_get(i, &c);
        xle_merge_stats stats;
        char out[96];
        snprintf(out, sizeof out, "golden_%s", c.name);
        run_and_compare(&c, out, &stats);
        if (c.o.method == XLE_MERGE_TIES) CHECK_MSG(stats.passes >= 3, "%s: TIES read %d passes", c.name, stats.passes);
        if (strstr(c.name, "_ext")) CHECK(stats.out_vocab == 30 && stats.vocab_donor >= 0);
        else CHECK(stats.out_vocab == 24 && stats.vocab_donor == -1);
    }
}

/* The grid-valued fixtures tie |tau| at the threshold: the tie-break pass must have run. */
static void test_ties_tie_break_pass(void) {
    gcase c;
    CHECK(find_case("ties_f32", &c));
    xle_merge_stats stats;
    xle_error err = {0};
    CHECK_OK(xle_merge(&c.o, tmp_path("tiebreak"), &stats, &err), &err);
    CHECK(stats.passes == 4);
}

/* Same bytes for chunks of a few elements (rows split across chunks, chunk edges inside heads
 * rounded to whole heads) and for 1 or 3 threads. */
static void test_chunks_and_threads(void) {
    const char *names[] = {"ties_f32", "dare_ties_bf16", "ties_ext", "ta_f32", "linear_ext"};
    int saved = omp_get_max_threads();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        gcase c;
        CHECK(find_case(names[i], &c));
        char ref[96], out[96], a[600], b[600];
        snprintf(ref, sizeof ref, "ct_%s_ref", names[i]);
        xle_error err = {0};
        CHECK_OK(xle_merge(&c.o, tmp_path(ref), NULL, &err), &err);
        const int threads[] = {1, 3, 2};
        const size_t chunks[] = {5, 3, 64};
        for (int k = 0; k < 3; k++) {
            omp_set_num_threads(threads[k]);
            c.o.chunk_elems = chunks[k];
            snprintf(out, sizeof out, "ct_%s_%d", names[i], k);
            CHECK_OK(xle_merge(&c.o, tmp_path(out), NULL, &err), &err);
            snprintf(a, sizeof a, "%s/model.safetensors", tmp_path(ref));
            snprintf(b, sizeof b, "%s/model.safetensors", tmp_path(out));
            CHECK_MSG(files_equal(a, b), "%s: %d threads, chunks of %zu: output differs", names[i], threads[k], chunks[k]);
        }
        omp_set_num_threads(saved);
    }
}

static void test_extended_vocab_files(void) {
    gcase c;
    CHECK(find_case("ties_ext", &c));
    xle_error err = {0};
    CHECK_OK(xle_merge(&c.o, tmp_path("extfiles"), NULL, &err), &err);
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", tmp_path("extfiles"));
    CHECK(files_equal(p, FIX "/models/ext/tokenizer_config.json"));
    snprintf(p, sizeof p, "%s/generation_config.json", tmp_path("extfiles"));
    CHECK(files_equal(p, FIX "/models/base/generation_config.json"));
    snprintf(p, sizeof p, "%s/merge_info.json", tmp_path("extfiles"));
    char *info = read_text(p);
    CHECK(info && strstr(info, "\"ties\"") && strstr(info, "models/ext"));
    free(info);
    xle_model *m = NULL;
    CHECK_OK(xle_model_load(tmp_path("extfiles"), &m, &err), &err);
    if (m) {
        CHECK(xle_model_config(m)->vocab_size == 30);
        CHECK(xle_model_weights(m)->lm_head.shape[0] == 30);
        xle_model_free(m);
    }
    /* without an extension the base's tokenizer files are kept */
    CHECK(find_case("ties_f32", &c));
    CHECK_OK(xle_merge(&c.o, tmp_path("basefiles"), NULL, &err), &err);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", tmp_path("basefiles"));
    CHECK(files_equal(p, FIX "/models/base/tokenizer_config.json"));
}

/* ---- other formats ---------------------------------------------------------------------------- */

/* An f32 copy of t with Q/K rows in interleaved RoPE order when interleave. */
static float *rows_f32(const xle_tensor *t, int interleave, int hd) {
    int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
    float *out = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t r = 0; r < rows; r++) {
        int64_t src = interleave ? xle_merge_canonical_row(r, hd) : r;
        xle_tensor_row_to_f32(t, src * cols, cols, out + r * cols);
    }
    return out;
}

/* Writes an HF model as a GGUF llama file (Q/K rows interleaved as llama.cpp's converter does). */
static int write_gguf_copy(const char *hf_dir, const char *path) {
    xle_error err = {0};
    xle_model *m;
    if (xle_model_load(hf_dir, &m, &err) != XLE_OK) return 0;
    const xle_config *c = xle_model_config(m);
    xle_weights *w = xle_model_weights(m);
    xle_gguf_writer *g;
    xle_gguf_writer_new(&g, &err);
    xle_gguf_writer_set_string(g, "general.architecture", "llama", &err);
    xle_gguf_writer_set_u32(g, "llama.embedding_length", (uint32_t)c->dim, &err);
    xle_gguf_writer_set_u32(g, "llama.feed_forward_length", (uint32_t)c->ffn_dim, &err);
    xle_gguf_writer_set_u32(g, "llama.block_count", (uint32_t)c->n_layers, &err);
    xle_gguf_writer_set_u32(g, "llama.attention.head_count", (uint32_t)c->n_heads, &err);
    xle_gguf_writer_set_u32(g, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads, &err);
    xle_gguf_writer_set_u32(g, "llama.context_length", (uint32_t)c->max_seq_len, &err);
    xle_gguf_writer_set_f32(g, "llama.attention.layer_norm_rms_epsilon", c->norm_eps, &err);
    xle_gguf_writer_set_f32(g, "llama.rope.freq_base", c->rope_theta, &err);
    float *owned[64];
    int n_owned = 0, ok = 1;
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        int nl = xle_wkind_per_layer((xle_wkind)k) ? c->n_layers : 1;
        for (int l = 0; l < nl; l++) {
            const xle_tensor *t = xle_weight_slot(w, (xle_wkind)k, l);
            if (!t->data) continue;
            char name[96];
            xle_weight_name(XLE_FORMAT_GGUF, (xle_wkind)k, l, name, sizeof name);
            float *data = rows_f32(t, k == XLE_W_Q || k == XLE_W_K, c->head_dim);
            owned[n_owned++] = data;
            int64_t ne[4] = {t->ndim == 2 ? t->shape[1] : t->shape[0], t->shape[0], 1, 1};
            ok &= xle_gguf_writer_add_tensor(g, name, strlen(name), (uint32_t)t->ndim, ne, XLE_GGML_F32, data, &err) == XLE_OK;
        }
    }
    ok &= xle_gguf_writer_write(g, path, &err) == XLE_OK;
    for (int i = 0; i < n_owned; i++) free(owned[i]);
    xle_gguf_writer_free(g);
    xle_model_free(m);
    return ok;
}

/* Writes an (untied, f32) HF model as a llama2.c checkpoint (interleaved Q/K rows). */
static int write_llama2c_copy(const char *hf_dir, const char *path) {
    xle_error err = {0};
    xle_model *m;
    if (xle_model_load(hf_dir, &m, &err) != XLE_OK) return 0;
    const xle_config *c = xle_model_config(m);
    xle_weights *w = xle_model_weights(m);
    FILE *f = fopen(path, "wb");
    int32_t h[7] = {c->dim, c->ffn_dim, c->n_layers, c->n_heads, c->n_kv_heads, -c->vocab_size, c->max_seq_len};
    fwrite(h, 4, 7, f);
    const xle_wkind order[] = {XLE_W_TOK_EMBD, XLE_W_ATTN_NORM, XLE_W_Q, XLE_W_K, XLE_W_V, XLE_W_O,
                               XLE_W_FFN_NORM, XLE_W_GATE, XLE_W_DOWN, XLE_W_UP, XLE_W_OUT_NORM};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        int nl = xle_wkind_per_layer(order[i]) ? c->n_layers : 1;
        for (int l = 0; l < nl; l++) {
            const xle_tensor *t = xle_weight_slot(w, order[i], l);
            float *d = rows_f32(t, order[i] == XLE_W_Q || order[i] == XLE_W_K, c->head_dim);
            fwrite(d, sizeof(float), (size_t)xle_tensor_numel(t), f);
            free(d);
        }
    }
    float *zeros = calloc((size_t)c->max_seq_len * (size_t)c->head_dim, sizeof(float));
    fwrite(zeros, sizeof(float), (size_t)c->max_seq_len * (size_t)c->head_dim, f); /* freq_cis */
    free(zeros);
    float *d = rows_f32(&w->lm_head, 0, c->head_dim);
    fwrite(d, sizeof(float), (size_t)xle_tensor_numel(&w->lm_head), f);
    free(d);
    fclose(f);
    xle_model_free(m);
    return 1;
}

static void test_mixed_input_formats(void) {
    CHECK(write_gguf_copy(FIX "/models/a", tmp_path("a.gguf")));
    CHECK(write_llama2c_copy(FIX "/models/b", tmp_path("b.bin")));
    const char *names[] = {"ties_f32_sum", "ta_f32_norm"};
    for (int i = 0; i < 2; i++) {
        gcase c;
        CHECK(find_case(names[i], &c));
        CHECK(c.o.n_models == 2);
        c.model_ptrs[0] = tmp_path("a.gguf");
        c.model_ptrs[1] = tmp_path("b.bin");
        char out[64];
        snprintf(out, sizeof out, "mixed_%s", names[i]);
        run_and_compare(&c, out, NULL);
    }
}

/* Compares a loaded GGUF output (interleaved Q/K rows) with a golden HF file. */
static int compare_gguf_model(const char *gguf, const char *want_path) {
    xle_error err = {0};
    xle_model *m;
    if (xle_model_load(gguf, &m, &err) != XLE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1000;
    }
    st_file w;
    if (!st_read(want_path, &w)) return 1000;
    const xle_config *c = xle_model_config(m);
    int bad = 0;
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        int nl = xle_wkind_per_layer((xle_wkind)k) ? c->n_layers : 1;
        for (int l = 0; l < nl; l++) {
            const xle_tensor *t = xle_weight_slot(xle_model_weights(m), (xle_wkind)k, l);
            if (!t->data) continue;
            char name[96];
            xle_weight_name(XLE_FORMAT_HF, (xle_wkind)k, l, name, sizeof name);
            const xle_st_entry *e = xle_safetensors_find(w.st, name);
            if (!e) {
                bad++;
                continue;
            }
            int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 1;
            int inter = k == XLE_W_Q || k == XLE_W_K;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < cols; j++) {
                    int64_t hr = inter ? xle_merge_canonical_row(r, c->head_dim) : r;
                    float a = xle_tensor_get_f32(t, r * cols + j), b = st_value(e, hr * cols + j);
                    if (memcmp(&a, &b, 4) != 0) {
                        if (!bad) fprintf(stderr, "%s: %s[%lld,%lld]: %g, reference %g\n", gguf, name, (long long)r, (long long)j, a, b);
                        bad++;
                    }
                }
        }
    }
    st_close(&w);
    xle_model_free(m);
    return bad;
}

static void test_gguf_base_and_output(void) {
    CHECK(write_gguf_copy(FIX "/models/base", tmp_path("base.gguf")));
    gcase c;
    CHECK(find_case("ties_f32", &c));
    c.o.base = tmp_path("base.gguf");
    /* GGUF base, HF output: rows back in HF order, config.json from the configuration */
    run_and_compare(&c, "gguf_base_hf_out", NULL);
    /* GGUF output */
    c.o.out_format = XLE_FORMAT_GGUF;
    xle_error err = {0};
    CHECK_OK(xle_merge(&c.o, tmp_path("out.gguf"), NULL, &err), &err);
    CHECK_MSG(compare_gguf_model(tmp_path("out.gguf"), expected_of("ties_f32")) == 0, "GGUF output differs");
    /* GGUF output needs a GGUF base */
    CHECK(find_case("ties_f32", &c));
    c.o.out_format = XLE_FORMAT_GGUF;
    CHECK(xle_merge(&c.o, tmp_path("out2.gguf"), NULL, &err) == XLE_ERR_UNSUPPORTED);
    CHECK(strstr(err.msg, "models/base") && strstr(err.msg, "gguf"));
    CHECK(!xle_path_exists(tmp_path("out2.gguf")));
}

/* ---- failures before any output --------------------------------------------------------------- */

typedef struct rnd_spec {
    int dim, ffn, layers, heads, kv_heads, vocab, tied, bias;
    xle_dtype dtype;
    uint64_t seed;
    int nan_at; /* > 0: element nan_at - 1 of the first q_proj is NaN */
    const char *tokens; /* tokenizer.bin with these pieces ("a b c"), or NULL */
} rnd_spec;

static rnd_spec spec_like_fixture(void) {
    rnd_spec s = {8, 16, 2, 2, 1, 24, 0, 0, XLE_F32, 1, 0, NULL};
    return s;
}

/* llama2.c tokenizer.bin with pieces t0..t{n-1}, piece `odd` spelled differently. */
static void write_tokenizer_bin(const char *path, int n, int odd) {
    FILE *f = fopen(path, "wb");
    int32_t maxlen = 8;
    fwrite(&maxlen, 4, 1, f);
    for (int i = 0; i < n; i++) {
        char piece[16];
        snprintf(piece, sizeof piece, i == odd ? "x%d" : "t%d", i);
        float score = (float)-i;
        int32_t len = (int32_t)strlen(piece);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(piece, 1, (size_t)len, f);
    }
    fclose(f);
}

static int write_random_hf(const char *dir, const rnd_spec *s, int tok_odd) {
    mkdir(dir, 0755);
    int hd = s->dim / s->heads;
    json_t *cfg = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:b, s:b}", "model_type", "llama",
                            "hidden_size", s->dim, "intermediate_size", s->ffn, "num_hidden_layers", s->layers,
                            "num_attention_heads", s->heads, "num_key_value_heads", s->kv_heads,
                            "vocab_size", s->vocab, "max_position_embeddings", 64, "rms_norm_eps", 1e-5,
                            "tie_word_embeddings", s->tied, "attention_bias", s->bias);
    char p[600];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_dump_file(cfg, p, 0);
    json_decref(cfg);
    xle_config c;
    memset(&c, 0, sizeof c);
    c.dim = s->dim;
    c.ffn_dim = s->ffn;
    c.n_heads = s->heads;
    c.n_kv_heads = s->kv_heads;
    c.head_dim = hd;
    c.vocab_size = s->vocab;
    xle_st_tensor ts[128];
    char names[128][96];
    void *bufs[128];
    int n = 0;
    xle_rng rng;
    xle_rng_seed(&rng, s->seed);
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (k == XLE_W_ROPE_FREQS || (k == XLE_W_LM_HEAD && s->tied)) continue;
        if (k >= XLE_W_BQ && k <= XLE_W_BO && !s->bias) continue;
        if (xle_family_of(XLE_ARCH_LLAMA)->has[k] == XLE_ABSENT) continue; /* other families' kinds */
        int nl = xle_wkind_per_layer((xle_wkind)k) ? s->layers : 1;
        for (int l = 0; l < nl; l++) {
            int nd;
            int64_t shape[2];
            xle_weight_expected_shape(&c, (xle_wkind)k, &nd, shape);
            int64_t numel = shape[0] * (nd == 2 ? shape[1] : 1);
            size_t es = xle_dtype_size(s->dtype);
            uint8_t *b = malloc((size_t)numel * es);
            for (int64_t i = 0; i < numel; i++) {
                float v = 0.1f * xle_rng_normal(&rng);
                if (k == XLE_W_Q && l == 0 && s->nan_at && i == s->nan_at - 1) v = NAN;
                if (s->dtype == XLE_F32) memcpy(b + i * 4, &v, 4);
                else {
                    uint16_t h = xle_f32_to_bf16(v);
                    memcpy(b + i * 2, &h, 2);
                }
            }
            bufs[n] = b;
            ts[n].name = xle_weight_name(XLE_FORMAT_HF, (xle_wkind)k, l, names[n], sizeof names[n]);
            ts[n].dtype = xle_st_dtype_name(s->dtype);
            ts[n].ndim = nd;
            ts[n].shape[0] = shape[0];
            ts[n].shape[1] = shape[1];
            ts[n].data = b;
            n++;
        }
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    xle_error err = {0};
    int ok = xle_safetensors_write(p, ts, (size_t)n, NULL, NULL, &err) == XLE_OK;
    for (int i = 0; i < n; i++) free(bufs[i]);
    if (s->tokens) {
        snprintf(p, sizeof p, "%s/tokenizer.bin", dir);
        write_tokenizer_bin(p, s->vocab, tok_odd);
    }
    return ok;
}

/* Expects a failure with status st whose message names `file` and `field`, and no output. */
static void expect_failure(const xle_merge_opts *o, const char *out, xle_status st, const char *file,
                           const char *field) {
    xle_error err = {0};
    xle_status got = xle_merge(o, tmp_path(out), NULL, &err);
    CHECK_MSG(got == st, "%s: status %s, want %s (%s)", out, xle_status_name(got), xle_status_name(st), err.msg);
    CHECK_MSG(!file || strstr(err.msg, file), "%s: message does not name %s: %s", out, file, err.msg);
    CHECK_MSG(!field || strstr(err.msg, field), "%s: message does not name %s: %s", out, field, err.msg);
    CHECK_MSG(!strchr(err.msg, '\n'), "%s: message is not one line", out);
    CHECK_MSG(!xle_path_exists(tmp_path(out)), "%s: output exists after a failure", out);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s.tmp", out);
    CHECK_MSG(test_count_prefixed(g_tmp, prefix) == 0, "%s: a temporary was left behind", out);
}

static void test_mismatches(void) {
    rnd_spec base = spec_like_fixture();
    CHECK(write_random_hf(tmp_path("m_base"), &base, -1));
    typedef struct bad_case {
        const char *dir, *field;
        rnd_spec s;
    } bad_case;
    bad_case bad[8];
    int nb = 0;
    rnd_spec s = spec_like_fixture();
    s.ffn = 12;
    bad[nb++] = (bad_case){"m_ffn", "intermediate_size", s};
    s = spec_like_fixture();
    s.layers = 3;
    bad[nb++] = (bad_case){"m_layers", "num_hidden_layers", s};
    s = spec_like_fixture();
    s.heads = 4; /* head_dim 2, kv 2: every tensor shape equals the base's */
    s.kv_heads = 2;
    bad[nb++] = (bad_case){"m_heads", "num_attention_heads", s};
    s = spec_like_fixture();
    s.kv_heads = 2;
    bad[nb++] = (bad_case){"m_kv", "num_key_value_heads", s};
    s = spec_like_fixture();
    s.vocab = 20;
    bad[nb++] = (bad_case){"m_vocab", "vocab_size", s};
    s = spec_like_fixture();
    s.bias = 1;
    bad[nb++] = (bad_case){"m_bias", "q_proj.bias", s};
    s = spec_like_fixture();
    s.dim = 12;
    s.heads = 3;
    s.kv_heads = 1;
    bad[nb++] = (bad_case){"m_dim", "hidden_size", s};
    for (int i = 0; i < nb; i++) {
        CHECK(write_random_hf(tmp_path(bad[i].dir), &bad[i].s, -1));
        rnd_spec ok = spec_like_fixture();
        ok.seed = 2;
        CHECK(write_random_hf(tmp_path("m_ok"), &ok, -1));
        const char *models[2] = {tmp_path("m_ok"), tmp_path(bad[i].dir)};
        xle_merge_opts o;
        xle_merge_opts_default(&o);
        o.base = tmp_path("m_base");
        o.models = models;
        o.n_models = 2;
        char out[64];
        snprintf(out, sizeof out, "out_%s", bad[i].dir);
        expect_failure(&o, out, XLE_ERR_ARG, bad[i].dir, bad[i].field);
        /* linear without a base compares with the first model */
        o.method = XLE_MERGE_LINEAR;
        o.base = NULL;
        expect_failure(&o, out, XLE_ERR_ARG, bad[i].dir, bad[i].field);
    }
    /* an untied model cannot join a tied base; a tied model can join an untied one */
    rnd_spec tied = spec_like_fixture();
    tied.tied = 1;
    tied.seed = 3;
    CHECK(write_random_hf(tmp_path("m_tied"), &tied, -1));
    {
        xle_merge_opts o;
        xle_merge_opts_default(&o);
        const char *untied_model[1] = {tmp_path("m_base")};
        o.base = tmp_path("m_tied");
        o.models = untied_model;
        o.n_models = 1;
        expect_failure(&o, "out_tied", XLE_ERR_ARG, "m_base", "tie_word_embeddings");
        const char *tied_model[1] = {tmp_path("m_tied")};
        o.base = tmp_path("m_base");
        o.models = tied_model;
        o.method = XLE_MERGE_TASK_ARITHMETIC;
        xle_error err = {0};
        CHECK_OK(xle_merge(&o, tmp_path("out_tied_ok"), NULL, &err), &err);
        /* base + (tied model - base) = the tied model: its embedding becomes the lm_head */
        xle_model *m = NULL, *t = NULL;
        CHECK_OK(xle_model_load(tmp_path("out_tied_ok"), &m, &err), &err);
        CHECK_OK(xle_model_load(tmp_path("m_tied"), &t, &err), &err);
        if (m && t) {
            const xle_tensor *lm = &xle_model_weights(m)->lm_head, *emb = &xle_model_weights(t)->tok_embd;
            double worst = 0;
            for (int64_t i = 0; i < xle_tensor_numel(emb); i++)
                worst = fmax(worst, fabs(xle_tensor_get_f32(lm, i) - xle_tensor_get_f32(emb, i)));
            CHECK(!xle_model_config(m)->tied_embeddings);
            CHECK_NEAR(worst, 0, 1e-6);
        }
        xle_model_free(m);
        xle_model_free(t);
    }
    /* a model that does not exist, a folder that is not a model */
    const char *missing[1] = {tmp_path("nonexistent")};
    xle_merge_opts o;
    xle_merge_opts_default(&o);
    o.base = tmp_path("m_base");
    o.models = missing;
    o.n_models = 1;
    expect_failure(&o, "out_missing", XLE_ERR_IO, "nonexistent", NULL);
}

static void test_tokenizer_mismatch(void) {
    rnd_spec s = spec_like_fixture();
    s.tokens = "yes";
    CHECK(write_random_hf(tmp_path("t_base"), &s, -1));
    s.seed = 5;
    CHECK(write_random_hf(tmp_path("t_same"), &s, -1));
    CHECK(write_random_hf(tmp_path("t_odd"), &s, 7));
    s.vocab = 30;
    CHECK(write_random_hf(tmp_path("t_ext"), &s, -1));
    CHECK(write_random_hf(tmp_path("t_ext_odd"), &s, 3));
    xle_error err = {0};
    xle_model *m = NULL;
    if (xle_model_load(tmp_path("t_base"), &m, &err) != XLE_OK || !xle_model_tokenizer(m)) {
        fprintf(stderr, "     tokenizer.bin not attached (%s): tokenizer checks skipped\n", err.msg);
        xle_model_free(m);
        return;
    }
    xle_model_free(m);
    xle_merge_opts o;
    xle_merge_opts_default(&o);
    o.base = tmp_path("t_base");
    const char *ok_models[2] = {tmp_path("t_same"), tmp_path("t_ext")};
    o.models = ok_models;
    o.n_models = 2;
    xle_merge_stats stats;
    CHECK_OK(xle_merge(&o, tmp_path("t_out"), &stats, &err), &err);
    CHECK(stats.out_vocab == 30 && stats.vocab_donor == 1);
    char p[600];
    snprintf(p, sizeof p, "%s/tokenizer.bin", tmp_path("t_out"));
    char q[600];
    snprintf(q, sizeof q, "%s/tokenizer.bin", tmp_path("t_ext"));
    CHECK(files_equal(p, q));
    const char *bad1[2] = {tmp_path("t_same"), tmp_path("t_odd")};
    o.models = bad1;
    expect_failure(&o, "t_out_odd", XLE_ERR_ARG, "t_odd", "tokenizer: token 7");
    const char *bad2[1] = {tmp_path("t_ext_odd")};
    o.models = bad2;
    o.n_models = 1;
    expect_failure(&o, "t_out_ext_odd", XLE_ERR_ARG, "t_ext_odd", "tokenizer: token 3");
}

static void test_bad_options(void) {
    gcase c;
    CHECK(find_case("ties_f32", &c));
    xle_merge_opts o = c.o;
    o.densities = NULL;
    o.density = 0;
    expect_failure(&o, "opt_density", XLE_ERR_ARG, NULL, "density");
    o.density = 1.5;
    expect_failure(&o, "opt_density2", XLE_ERR_ARG, NULL, "density");
    /* per-model densities and per-layer lists are checked the same way */
    o = c.o;
    double dens[3] = {0.5, 0, 0.5};
    o.densities = dens;
    expect_failure(&o, "opt_densities", XLE_ERR_ARG, NULL, "densities: entry 2");
    o = c.o;
    double bad_list[2] = {0.5, 1.25}, nan_list[2] = {1, NAN};
    xle_merge_gradient grads[3] = {{NULL, 0}, {bad_list, 2}, {NULL, 0}};
    o.density_gradients = grads;
    expect_failure(&o, "opt_dgrad", XLE_ERR_ARG, NULL, "densities: entry 2: per-layer value 2");
    o = c.o;
    grads[1] = (xle_merge_gradient){nan_list, 2};
    o.weight_gradients = grads;
    expect_failure(&o, "opt_wgrad", XLE_ERR_ARG, NULL, "weights: entry 2: per-layer value 2");
    /* a normalized linear merge whose per-layer weights sum to 0 at some layer */
    CHECK(find_case("linear_grad", &c));
    o = c.o;
    double zero_at_end[2] = {1, 0};
    xle_merge_gradient both_zero[2] = {{zero_at_end, 2}, {zero_at_end, 2}};
    o.weight_gradients = both_zero;
    expect_failure(&o, "opt_wgrad_sum", XLE_ERR_ARG, NULL, "sum to 0 at model.layers.3.");
    CHECK(find_case("ties_f32", &c));
    o = c.o;
    o.base = NULL;
    expect_failure(&o, "opt_nobase", XLE_ERR_ARG, NULL, "base");
    o = c.o;
    o.lambda = NAN;
    expect_failure(&o, "opt_lambda", XLE_ERR_ARG, NULL, "lambda");
    o = c.o;
    float zero_sum[3] = {1, -1, 0};
    o.method = XLE_MERGE_LINEAR;
    o.weights = zero_sum;
    o.normalize = 1;
    expect_failure(&o, "opt_wsum", XLE_ERR_ARG, NULL, "weights");
    o = c.o;
    o.n_models = 0;
    expect_failure(&o, "opt_nomodels", XLE_ERR_ARG, NULL, "models");
    /* an existing output is never touched */
    o = c.o;
    mkdir(tmp_path("opt_exists"), 0755);
    FILE *f = fopen(tmp_path("opt_exists/keep.txt"), "w");
    fputs("keep", f);
    fclose(f);
    xle_error err = {0};
    CHECK(xle_merge(&o, tmp_path("opt_exists"), NULL, &err) == XLE_ERR_ARG);
    CHECK(strstr(err.msg, "already exists"));
    CHECK(xle_path_exists(tmp_path("opt_exists/keep.txt")));
    /* an empty folder may receive the output */
    mkdir(tmp_path("opt_empty"), 0755);
    CHECK_OK(xle_merge(&o, tmp_path("opt_empty"), NULL, &err), &err);
    CHECK(xle_path_exists(tmp_path("opt_empty/model.safetensors")));
    /* names */
    xle_merge_method m;
    CHECK(xle_merge_method_parse("dare_ties", &m) && m == XLE_MERGE_DARE_TIES);
    CHECK(xle_merge_method_parse("task-arithmetic", &m) && m == XLE_MERGE_TASK_ARITHMETIC);
    CHECK(!xle_merge_method_parse("slerp", &m));
    CHECK(xle_merge_method_normalizes(XLE_MERGE_TIES) && !xle_merge_method_normalizes(XLE_MERGE_DARE_TIES));
}

/* TIES keeps max(1, floor(density · N)) of N entries, exactly for the decimal density: the
 * issue's two counts (an f32 density gave 19,039 and 52,533,658), the rule's edges, and one
 * merge whose 27,200-entry embedding (vocab 3400 x dim 8) keeps 19,040 entries at 0.7. */
static void test_ties_keep_count(void) {
    CHECK(xle_merge_keep_count(0.7, 27200) == 19040);
    CHECK(xle_merge_keep_count(0.2, (int64_t)128256 * 2048) == 52533657);
    CHECK(xle_merge_keep_count(0.1, 30) == 3);           /* 0.1 · 30 = 3 exactly */
    CHECK(xle_merge_keep_count(0.3, 10) == 3);
    CHECK(xle_merge_keep_count(0.29, 100) == 29);
    CHECK(xle_merge_keep_count(0.55, 20) == 11);
    CHECK(xle_merge_keep_count(1.0, 77) == 77);
    CHECK(xle_merge_keep_count(1e-9, 77) == 1);           /* at least one */
    CHECK(xle_merge_keep_count(0.123456789012345, 1000000000000000) == 123456789012345);
    CHECK(xle_merge_keep_count(0.25, 7) == 1);            /* 1.75 */

    rnd_spec s = spec_like_fixture();
    s.vocab = 3400;
    s.layers = 1;
    CHECK(write_random_hf(tmp_path("keep_base"), &s, -1));
    s.seed = 5;
    CHECK(write_random_hf(tmp_path("keep_m"), &s, -1));
    char *models[1] = {strdup(tmp_path("keep_m"))};
    char *base = strdup(tmp_path("keep_base"));
    xle_merge_opts o;
    xle_merge_opts_default(&o);
    o.method = XLE_MERGE_TIES;
    o.base = base;
    o.models = (const char *const *)models;
    o.n_models = 1;
    o.density = 0.7;
    xle_error err = {0};
    CHECK_OK(xle_merge(&o, tmp_path("keep_out/"), NULL, &err), &err); /* a trailing slash too */
    st_file got, b;
    char gp[300], bp[300];
    snprintf(gp, sizeof gp, "%s", tmp_path("keep_out/model.safetensors"));
    snprintf(bp, sizeof bp, "%s", tmp_path("keep_base/model.safetensors"));
    CHECK(st_read(gp, &got) && st_read(bp, &b));
    const xle_st_entry *ge = NULL, *be = NULL;
    for (int i = 0; got.st && i < got.st->n; i++)
        if (!strcmp(got.st->entries[i].name, "model.embed_tokens.weight")) ge = &got.st->entries[i];
    for (int i = 0; b.st && i < b.st->n; i++)
        if (!strcmp(b.st->entries[i].name, "model.embed_tokens.weight")) be = &b.st->entries[i];
    CHECK(ge && be && st_numel(ge) == 27200);
    int64_t changed = 0;
    for (int64_t i = 0; ge && be && i < st_numel(ge); i++) changed += st_value(ge, i) != st_value(be, i);
    CHECK_MSG(changed == 19040, "TIES at density 0.7 kept %lld of 27200 entries, want 19040", (long long)changed);
    st_close(&got);
    st_close(&b);
    /* the output may not go inside an input folder */
    char inside[300];
    snprintf(inside, sizeof inside, "%s", tmp_path("keep_m/merged"));
    xle_error e2 = {0};
    CHECK(xle_merge(&o, inside, NULL, &e2) == XLE_ERR_ARG);
    CHECK_MSG(strstr(e2.msg, "inside the input folder"), "%s", e2.msg);
    CHECK(!xle_path_exists(inside));
    mkdir(tmp_path("keep_base/sub"), 0755);
    snprintf(inside, sizeof inside, "%s", tmp_path("keep_base/sub/../sub/merged/"));
    CHECK(xle_merge(&o, inside, NULL, &e2) == XLE_ERR_ARG);
    CHECK(xle_merge(&o, tmp_path("keep_m"), NULL, &e2) == XLE_ERR_ARG);

    /* a mergekit recipe's density is the same double as the flag's: 0.7 keeps 19,040 again */
    char recipe[300];
    snprintf(recipe, sizeof recipe, "%s", tmp_path("keep.yml"));
    FILE *f = fopen(recipe, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "merge_method: ties\nbase_model: %s\nmodels:\n  - model: %s\n    parameters: {weight: 1, "
                   "density: 0.7}\n", base, models[0]);
        fclose(f);
    }
    xle_merge_opts from_recipe;
    xle_merge_opts_default(&from_recipe);
    xle_merge_config *cfg = NULL;
    xle_error e3 = {0};
    CHECK_OK(xle_merge_config_load(recipe, &from_recipe, &cfg, NULL, 0, &e3), &e3);
    CHECK_MSG(from_recipe.density == 0.7, "recipe density %.17g, want 0.7 exactly", from_recipe.density);
    CHECK(xle_merge_keep_count(from_recipe.density, 27200) == 19040);
    xle_merge_config_free(cfg);
    free(models[0]);
    free(base);
}

static int stop_at_once(void *user, int64_t done, int64_t total) {
    (void)user; (void)done; (void)total;
    return 1;
}

static void test_nonfinite_and_interrupt(void) {
    rnd_spec s = spec_like_fixture();
    CHECK(write_random_hf(tmp_path("nf_base"), &s, -1));
    s.seed = 9;
    s.nan_at = 5;
    CHECK(write_random_hf(tmp_path("nf_nan"), &s, -1));
    const char *models[1] = {tmp_path("nf_nan")};
    xle_merge_opts o;
    xle_merge_opts_default(&o);
    o.base = tmp_path("nf_base");
    o.models = models;
    o.n_models = 1;
    expect_failure(&o, "nf_out", XLE_ERR_NUMERIC, "nf_nan", "model.layers.0.self_attn.q_proj.weight");
    o.method = XLE_MERGE_DARE_TIES;
    o.density = 0.99;
    expect_failure(&o, "nf_out2", XLE_ERR_NUMERIC, "nf_nan", "q_proj");
    gcase c;
    CHECK(find_case("ties_bf16", &c));
    c.o.progress = stop_at_once;
    expect_failure(&c.o, "interrupted", XLE_ERR_INTERRUPTED, NULL, "interrupted");
}

/* The DARE mask keeps a density fraction, is a pure function of its inputs, and differs
 * between models and tensors. */
static void test_dare_mask(void) {
    uint64_t s0 = xle_merge_dare_stream(42, 0, xle_merge_name_hash("model.norm.weight"));
    uint64_t s1 = xle_merge_dare_stream(42, 1, xle_merge_name_hash("model.norm.weight"));
    uint64_t s2 = xle_merge_dare_stream(42, 0, xle_merge_name_hash("lm_head.weight"));
    uint64_t s3 = xle_merge_dare_stream(43, 0, xle_merge_name_hash("model.norm.weight"));
    const int n = 200000;
    int kept = 0, same01 = 0, same02 = 0, same03 = 0;
    for (int i = 0; i < n; i++) {
        int k0 = xle_merge_dare_keep(s0, i, 0.3f);
        kept += k0;
        same01 += k0 == xle_merge_dare_keep(s1, i, 0.3f);
        same02 += k0 == xle_merge_dare_keep(s2, i, 0.3f);
        same03 += k0 == xle_merge_dare_keep(s3, i, 0.3f);
        if (k0 != xle_merge_dare_keep(s0, i, 0.3f)) CHECK(!"mask not deterministic");
    }
    CHECK_NEAR((double)kept / n, 0.3, 0.005);
    /* independent masks agree on 0.3² + 0.7² = 58% of entries */
    CHECK_NEAR((double)same01 / n, 0.58, 0.01);
    CHECK_NEAR((double)same02 / n, 0.58, 0.01);
    CHECK_NEAR((double)same03 / n, 0.58, 0.01);
    CHECK(xle_merge_dare_keep(s0, 7, 1.0f));
    CHECK(xle_merge_name_hash("") == 0xCBF29CE484222325ull);
    CHECK(xle_merge_name_hash("a") == 0xAF63DC4C8601EC8Cull); /* FNV-1a 64 test vector */
}

/* The radix selection picks the k-th largest exactly. */
static void test_hist_select(void) {
    uint64_t *h = calloc(65536, sizeof *h);
    h[10] = 5;
    h[300] = 2;
    h[65535] = 1;
    uint32_t b;
    uint64_t above;
    xle_merge_hist_select(h, 1, &b, &above);
    CHECK(b == 65535 && above == 0);
    xle_merge_hist_select(h, 2, &b, &above);
    CHECK(b == 300 && above == 1);
    xle_merge_hist_select(h, 3, &b, &above);
    CHECK(b == 300 && above == 1);
    xle_merge_hist_select(h, 4, &b, &above);
    CHECK(b == 10 && above == 3);
    xle_merge_hist_select(h, 8, &b, &above);
    CHECK(b == 10 && above == 3);
    free(h);
    /* the RoPE row maps are inverse permutations within each head */
    for (int64_t r = 0; r < 24; r++) {
        CHECK(xle_merge_canonical_row(xle_merge_interleaved_row(r, 8), 8) == r);
        CHECK(xle_merge_interleaved_row(r, 8) / 8 == r / 8);
    }
    CHECK(xle_merge_interleaved_row(1, 8) == 2 && xle_merge_interleaved_row(4, 8) == 1);
}

/* ---- other families ---------------------------------------------------------------------- */

/* Logits of a model at every position of a fixed 6-token sequence (V * 6 floats, caller frees). */
static float *logits_of(const char *dir, xle_arch want_arch, int *vocab) {
    xle_error err = {0};
    xle_model *m = NULL;
    CHECK_OK(xle_model_load(dir, &m, &err), &err);
    if (!m) return NULL;
    CHECK_MSG(xle_model_config(m)->arch == want_arch, "%s: loads as another architecture", dir);
    int V = xle_model_config(m)->vocab_size, starts[2] = {0, 6};
    if (vocab) *vocab = V;
    int32_t ids[6] = {1, 5, 9, 3, 17, 22};
    xle_batch b = {.n_seqs = 1, .tokens = ids, .seq_start = starts};
    float *out = malloc((size_t)6 * (size_t)V * sizeof *out);
    CHECK_OK(xle_forward(m, &b, NULL, out, &err), &err);
    xle_model_free(m);
    return out;
}

/* GPT-2, GPT-J and Gemma merged by name (their goldens ran in test_golden): the outputs load as
 * their family and give finite logits; averaging a model with itself (these and the BLOOM family
 * fixture) gives back its logits bit for bit (the layouts went through unchanged); mismatched families, a missing tensor, an extra
 * tensor or another shape fail naming the file and the tensor, before any output exists. */
static void test_families(void) {
    static const struct { const char *name; xle_arch arch; } outs[] = {
        {"ties_gpt2", XLE_ARCH_GPT2}, {"ties_gpt2_ext", XLE_ARCH_GPT2}, {"ties_gptj_ext", XLE_ARCH_GPTJ},
        {"dare_ties_gemma", XLE_ARCH_GEMMA}};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        char dir[128];
        snprintf(dir, sizeof dir, "golden_%s", outs[i].name);
        float *l = logits_of(tmp_path(dir), outs[i].arch, NULL);
        int V = strstr(outs[i].name, "_ext") ? 30 : 24, finite = 1;
        for (int k = 0; l && k < 6 * V; k++) finite &= isfinite(l[k]);
        CHECK_MSG(l && finite, "%s: logits not finite", outs[i].name);
        free(l);
    }
    /* BLOOM (fused per-head query_key_value, embedding LayerNorm) needs no merge code of its own */
    static const struct { const char *model; xle_arch arch; int vocab; } selfs[] = {
        {"gpt2_a", XLE_ARCH_GPT2, 24}, {"gptj_b", XLE_ARCH_GPTJ, 24}, {"gemma_a", XLE_ARCH_GEMMA, 24},
        {"../../families/bloom/hf_f32", XLE_ARCH_BLOOM, 0}};
    for (size_t i = 0; i < sizeof selfs / sizeof selfs[0]; i++) {
        char in[600], out[96];
        snprintf(in, sizeof in, FIX "/models/%s", selfs[i].model);
        snprintf(out, sizeof out, "self_%zu", i);
        const char *ms[2] = {in, in};
        xle_merge_opts o;
        xle_merge_opts_default(&o);
        o.method = XLE_MERGE_LINEAR;
        o.models = ms;
        o.n_models = 2;
        xle_error err = {0};
        int V = 0;
        CHECK_OK(xle_merge(&o, tmp_path(out), NULL, &err), &err);
        float *a = logits_of(in, selfs[i].arch, NULL), *b = logits_of(tmp_path(out), selfs[i].arch, &V);
        CHECK_MSG(a && b && (selfs[i].vocab == 0 || V == selfs[i].vocab) &&
                  memcmp(a, b, (size_t)6 * (size_t)V * sizeof *a) == 0, "%s: (m + m) / 2 changed the logits",
                  selfs[i].model);
        free(a);
        free(b);
    }
    gcase c;
    CHECK(find_case("ties_gpt2", &c));
    xle_merge_opts o = c.o;
    char other[600];
    snprintf(other, sizeof other, FIX "/models/gemma_a");
    const char *mixed[2] = {c.model_ptrs[0], other};
    o.models = mixed;
    expect_failure(&o, "fam_mixed", XLE_ERR_ARG, "gemma_a", "architecture: Gemma does not match");
    /* a copy of gpt2_a without one tensor, with one more, with one reshaped */
    xle_error err = {0};
    st_file src;
    CHECK(st_read(FIX "/models/gpt2_a/model.safetensors", &src));
    static const char *const variants[] = {"fam_missing", "fam_extra", "fam_shape"};
    static const char *const fields[] = {"transformer.h.1.mlp.c_fc.bias: missing here",
                                         "extra.weight: present here but missing",
                                         "transformer.h.0.attn.c_attn.weight: shape [96, 8] does not match [8, 24]"};
    for (int v = 0; v < 3; v++) {
        char dir[96], path[700], cfg_path[700];
        snprintf(dir, sizeof dir, "%s_in", variants[v]);
        mkdir(tmp_path(dir), 0755);
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", tmp_path(dir));
        char *cfg = read_text(FIX "/models/gpt2_a/config.json");
        FILE *f = fopen(cfg_path, "w");
        if (f && cfg) fputs(cfg, f);
        if (f) fclose(f);
        free(cfg);
        xle_st_tensor ts[64];
        int n = 0;
        for (int k = 0; k < src.st->n && n < 63; k++) {
            const xle_st_entry *e = &src.st->entries[k];
            if (v == 0 && !strcmp(e->name, "transformer.h.1.mlp.c_fc.bias")) continue;
            ts[n] = (xle_st_tensor){e->name, e->dtype, e->ndim, {0}, e->data};
            memcpy(ts[n].shape, e->shape, sizeof e->shape);
            if (v == 2 && !strcmp(e->name, "transformer.h.0.attn.c_attn.weight")) { /* stored [out, in] */
                ts[n].shape[0] = e->shape[1];
                ts[n].shape[1] = e->shape[0];
            }
            n++;
        }
        if (v == 1) ts[n++] = (xle_st_tensor){"extra.weight", "F32", 1, {2}, src.st->entries[0].data};
        snprintf(path, sizeof path, "%s/model.safetensors", tmp_path(dir));
        CHECK_OK(xle_safetensors_write(path, ts, (size_t)n, NULL, NULL, &err), &err);
        o = c.o;
        const char *ms[2] = {tmp_path(dir), c.model_ptrs[1]};
        o.models = ms;
        snprintf(path, sizeof path, "%s_out", variants[v]);
        xle_model *probe = NULL;
        if (xle_model_load(tmp_path(dir), &probe, &err) != XLE_OK) { /* the loader may refuse it first */
            CHECK_MSG(strstr(err.msg, dir) != NULL, "%s: loader message does not name the file: %s", variants[v], err.msg);
            fprintf(stderr, "     %s: refused by the loader: %s\n", variants[v], err.msg);
            continue;
        }
        xle_model_free(probe);
        expect_failure(&o, path, XLE_ERR_ARG, dir, fields[v]);
    }
    st_close(&src);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/xle-test-merge-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    if (!load_cases()) fprintf(stderr, "cannot read %s/cases.json\n", FIX);
    RUN(test_hist_select);
    RUN(test_dare_mask);
    RUN(test_golden);
    RUN(test_ties_tie_break_pass);
    RUN(test_chunks_and_threads);
    RUN(test_extended_vocab_files);
    RUN(test_mixed_input_formats);
    RUN(test_gguf_base_and_output);
    RUN(test_mismatches);
    RUN(test_tokenizer_mismatch);
    RUN(test_bad_options);
    RUN(test_nonfinite_and_interrupt);
    RUN(test_ties_keep_count);
    RUN(test_families);
    json_decref(g_cases);
    rm_rf(g_tmp);
    return check_summary();
}
