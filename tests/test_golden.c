/*
 * test_golden.c: every fixture model under tests/fixtures/models (written by
 * tests/reference/make_model_fixtures.py: Llama with GQA, Mistral with a sliding window shorter
 * than the sequences, Qwen2 with q/k/v biases and tied embeddings, Llama-3 RoPE scaling with an
 * explicit head_dim; as HF folders in F32/BF16/F16, one sharded, and as GGUF F32/F16/BF16/Q8_0)
 * loaded with xle_model_load must give the logits of the script's float64 PyTorch
 * re-implementation of transformers' forward pass at every position of three sequences.
 *
 * Tolerance (TOL_REL): max |logit - golden| <= 1e-4 x max |golden logit| of that sequence, for
 * every dtype: the script computes each golden from exactly the values stored in the file
 * (bf16/f16 rounded, Q8_0 dequantized as f16(d)·q), so what is left is float32 arithmetic.
 *
 * Also: greedy generation (KV cache) equals the script's greedy ids; generation with the KV
 * cache equals full recomputation for every family; xle_model_save round trips (HF -> HF,
 * sharded too, and GGUF -> GGUF, Q8_0 too) give bitwise identical logits, copy untouched
 * tensors byte for byte (an unedited GGUF comes back byte-identical), store an edited tensor as
 * F32 and never change the source files.
 */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_files.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "xledit.h"

#define FIX XLE_SOURCE_DIR "/tests/fixtures/models/"
#define TOL_REL 1e-5

static json_t *g_manifest;
static int g_V;
static int g_n_seqs;
static int32_t g_seqs[8][64];
static int g_seq_len[8];
static char g_tmp[256];
/* The long sequence and the positions whose logits its golden keeps. */
static int32_t g_long[128];
static int g_long_len;
static int g_long_pos[64];
static int g_n_long_pos;

/* ---- helpers -------------------------------------------------------------------------------- */

static int files_equal(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    void *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void fixture_path(const char *rel, char *out, size_t cap) { snprintf(out, cap, "%s%s", FIX, rel); }

static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static int jint(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

static xle_model *load(const char *path) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(path, &m, &err), &err);
    return m;
}

/* Logits at every position of sequence s. */
static int run_seq(xle_model *m, int s, float *out) {
    int start[2] = {0, g_seq_len[s]};
    xle_batch b = {1, g_seqs[s], start};
    xle_forward_opts o = {0};
    xle_error err = {0};
    xle_status st = xle_forward(m, &b, &o, out, &err);
    CHECK_OK(st, &err);
    return st == XLE_OK;
}

/* Logits of all sequences, back to back (as the golden files are laid out). */
static float *run_all(xle_model *m) {
    size_t total = 0;
    for (int s = 0; s < g_n_seqs; s++) total += (size_t)g_seq_len[s] * (size_t)g_V;
    float *out = malloc(total * sizeof(float));
    size_t off = 0;
    for (int s = 0; out && s < g_n_seqs; s++) {
        if (!run_seq(m, s, out + off)) {
            free(out);
            return NULL;
        }
        off += (size_t)g_seq_len[s] * (size_t)g_V;
    }
    return out;
}

static void rm_rf(const char *path) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

/* ---- goldens -------------------------------------------------------------------------------- */

static void check_config(const xle_model *m, json_t *fam, json_t *entry) {
    const xle_config *c = xle_model_config(m);
    const char *arch = jstr(fam, "arch");
    xle_arch want_arch = strcmp(arch, "qwen2") == 0 ? XLE_ARCH_QWEN2
                         : strcmp(arch, "mistral") == 0 && strcmp(jstr(entry, "format"), "hf") == 0
                             ? XLE_ARCH_MISTRAL
                             : XLE_ARCH_LLAMA; /* a Mistral GGUF says "llama" */
    const char *path = jstr(entry, "path");
    CHECK_MSG(c->arch == want_arch, "%s: arch %d", path, c->arch);
    CHECK_MSG(c->dim == jint(fam, "dim") && c->ffn_dim == jint(fam, "ffn_dim") &&
                  c->n_layers == jint(fam, "n_layers") && c->n_heads == jint(fam, "n_heads") &&
                  c->n_kv_heads == jint(fam, "n_kv_heads") && c->head_dim == jint(fam, "head_dim") &&
                  c->vocab_size == g_V,
              "%s: sizes", path);
    CHECK_MSG(c->tied_embeddings == json_is_true(json_object_get(fam, "tied")), "%s: tied", path);
    CHECK_MSG(c->sliding_window == jint(fam, "sliding_window"), "%s: sliding_window %d", path,
              c->sliding_window);
    CHECK_MSG(c->rope_interleaved == json_is_true(json_object_get(entry, "rope_interleaved")),
              "%s: rope_interleaved %d", path, c->rope_interleaved);
    CHECK_NEAR(c->rope_theta, json_real_value(json_object_get(fam, "rope_theta")), 1e-3);
    CHECK_NEAR(c->norm_eps, json_real_value(json_object_get(fam, "norm_eps")), 1e-12);
    int llama3 = strcmp(jstr(fam, "rope_scaling"), "llama3") == 0;
    int linear = strcmp(jstr(fam, "rope_scaling"), "linear") == 0;
    CHECK_MSG((c->rope_scaling == XLE_ROPE_LINEAR) == linear, "%s: rope_scaling linear", path);
    if (strcmp(jstr(entry, "format"), "hf") == 0)
        CHECK_MSG((c->rope_scaling == XLE_ROPE_LLAMA3) == llama3, "%s: rope_scaling", path);
    else
        CHECK_MSG((xle_model_weights((xle_model *)m)->rope_freqs.data != NULL) == llama3,
                  "%s: rope_freqs.weight", path);
    const char *dt = jstr(entry, "dtype");
    xle_dtype want_dt = strcmp(dt, "BF16") == 0 ? XLE_BF16 : strcmp(dt, "F16") == 0 ? XLE_F16
                        : strcmp(dt, "F64") == 0 ? XLE_F64 : strcmp(dt, "Q8_0") == 0 ? XLE_Q8_0 : XLE_F32;
    CHECK_MSG(xle_model_weight_dtype(m) == want_dt, "%s: weight dtype %s", path,
              xle_dtype_name(xle_model_weight_dtype(m)));
}

/* The 96-token sequence (the engine switches to other kernels from 64 rows/queries on): its
 * logits at g_long_pos against <golden>_long.bin; returns max |diff| / max |golden logit|. */
static double check_long(xle_model *m, const char *gpath) {
    char lpath[600];
    snprintf(lpath, sizeof lpath, "%.*s_long.bin", (int)(strlen(gpath) - 4), gpath);
    size_t gsize = 0;
    float *golden = test_read_file(lpath, &gsize);
    size_t n = (size_t)g_n_long_pos * (size_t)g_V;
    float *got = malloc(n * sizeof(float));
    double rel = INFINITY;
    CHECK_MSG(golden && gsize == n * sizeof(float), "%s", lpath);
    if (golden && got && gsize == n * sizeof(float)) {
        int start[2] = {0, g_long_len};
        xle_batch b = {1, g_long, start};
        xle_forward_opts o = {.logit_rows = g_long_pos, .n_logit_rows = g_n_long_pos};
        xle_error err = {0};
        CHECK_OK(xle_forward(m, &b, &o, got, &err), &err);
        double scale = 0, diff = 0;
        for (size_t k = 0; k < n; k++) {
            scale = fmax(scale, fabs(golden[k]));
            double dk = fabs((double)got[k] - golden[k]);
            if (!(dk <= diff)) diff = dk;
        }
        rel = diff / scale;
    }
    free(golden);
    free(got);
    return rel;
}

static void test_goldens(void) {
    json_t *models = json_object_get(g_manifest, "models");
    CHECK(json_array_size(models) >= 17);
    size_t i;
    json_t *e;
    json_array_foreach(models, i, e) {
        char path[512], gpath[512];
        fixture_path(jstr(e, "path"), path, sizeof path);
        fixture_path(jstr(e, "golden"), gpath, sizeof gpath);
        xle_model *m = load(path);
        if (!m) continue;
        check_config(m, json_object_get(json_object_get(g_manifest, "families"), jstr(e, "family")), e);
        size_t gsize = 0;
        float *golden = test_read_file(gpath, &gsize);
        float *got = run_all(m);
        size_t off = 0;
        double worst = 0;
        for (int s = 0; golden && got && s < g_n_seqs; s++) {
            size_t n = (size_t)g_seq_len[s] * (size_t)g_V;
            CHECK(gsize >= (off + n) * sizeof(float));
            if (gsize < (off + n) * sizeof(float)) break;
            double scale = 0, diff = 0;
            for (size_t k = 0; k < n; k++) {
                scale = fmax(scale, fabs(golden[off + k]));
                double dk = fabs((double)got[off + k] - golden[off + k]);
                if (!(dk <= diff)) diff = dk; /* NaN sticks */
            }
            double rel = diff / scale;
            CHECK_MSG(rel <= TOL_REL, "%s: sequence %d: max |diff| %.3g = %.3g of max |logit| %.3g",
                      jstr(e, "path"), s, diff, rel, scale);
            if (!(rel <= worst)) worst = rel;
            off += n;
        }
        CHECK(golden && got && gsize == off * sizeof(float));
        double worst_long = check_long(m, gpath);
        CHECK_MSG(worst_long <= TOL_REL, "%s: long sequence: max |diff| / max |logit| %.3g",
                  jstr(e, "path"), worst_long);
        fprintf(stderr, "  %-44s %-5s max |diff| / max |logit| = %.2e (96 tokens: %.2e)\n",
                jstr(e, "path"), jstr(e, "dtype"), worst, worst_long);
        free(golden);
        free(got);
        xle_model_free(m);
    }
}

/* ---- generation ------------------------------------------------------------------------------ */

/* Files that store the weights exactly as drawn (F32, or F64 holding the same values). */
static int is_f32_model(json_t *e) {
    return strcmp(jstr(e, "dtype"), "F32") == 0 || strcmp(jstr(e, "dtype"), "F64") == 0;
}

static void test_greedy_matches_reference(void) {
    json_t *greedy = json_object_get(g_manifest, "greedy");
    size_t i;
    json_t *e;
    int checked = 0;
    json_array_foreach(json_object_get(g_manifest, "models"), i, e) {
        if (!is_f32_model(e)) continue;
        json_t *gr = json_object_get(greedy, jstr(e, "family"));
        json_t *prompt = json_object_get(gr, "prompt"), *ids = json_object_get(gr, "ids");
        int np = (int)json_array_size(prompt), nw = (int)json_array_size(ids);
        int32_t p[64], got[64];
        for (int k = 0; k < np; k++) p[k] = (int32_t)json_integer_value(json_array_get(prompt, (size_t)k));
        char path[512];
        fixture_path(jstr(e, "path"), path, sizeof path);
        xle_model *m = load(path);
        if (!m) continue;
        int n_got = 0;
        xle_sampler s = {0};
        xle_error err = {0};
        CHECK_OK(xle_generate(m, p, np, nw, &s, got, &n_got, &err), &err);
        int same = n_got == nw;
        for (int k = 0; same && k < nw; k++) same = got[k] == json_integer_value(json_array_get(ids, (size_t)k));
        CHECK_MSG(same, "%s: greedy ids differ from the reference", jstr(e, "path"));
        checked++;
        xle_model_free(m);
    }
    CHECK(checked == 10);
}

/* Each step of a KV-cache generation equals a full recomputation of the sequence so far. */
static void test_cache_equals_full(void) {
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(g_manifest, "models"), i, e) {
        if (!is_f32_model(e)) continue;
        char path[512];
        fixture_path(jstr(e, "path"), path, sizeof path);
        xle_model *m = load(path);
        if (!m) continue;
        enum { N_PROMPT = 5, N_NEW = 16 };
        int32_t ids[N_PROMPT + N_NEW];
        memcpy(ids, g_seqs[1], N_PROMPT * sizeof(int32_t));
        int n_got = 0;
        xle_sampler s = {0};
        xle_error err = {0};
        CHECK_OK(xle_generate(m, ids, N_PROMPT, N_NEW, &s, ids + N_PROMPT, &n_got, &err), &err);
        CHECK(n_got == N_NEW);
        xle_kv_cache *kc = NULL;
        CHECK_OK(xle_kv_cache_new(m, N_PROMPT + N_NEW, &kc, &err), &err);
        float *full = malloc((size_t)(N_PROMPT + N_NEW) * (size_t)g_V * sizeof(float));
        float *step = malloc((size_t)g_V * sizeof(float));
        double worst = 0;
        for (int t = 0; kc && full && step && t < N_PROMPT + N_NEW; t++) {
            int one[2] = {0, 1}, row = 0;
            xle_batch b = {1, ids + t, one};
            xle_forward_opts o = {.cache = kc, .logit_rows = &row, .n_logit_rows = 1};
            CHECK_OK(xle_forward(m, &b, &o, step, &err), &err);
            int start[2] = {0, t + 1};
            xle_batch fb = {1, ids, start};
            xle_forward_opts fo = {.logit_rows = &t, .n_logit_rows = 1};
            CHECK_OK(xle_forward(m, &fb, &fo, full, &err), &err);
            double ma, mr;
            check_max_diff(step, full, (size_t)g_V, &ma, &mr);
            if (ma > worst) worst = ma;
            /* the generated id is the argmax of the full recomputation */
            if (t >= N_PROMPT - 1 && t + 1 < N_PROMPT + N_NEW) {
                int best = 0;
                for (int v = 1; v < g_V; v++)
                    if (full[v] > full[best]) best = v;
                CHECK_MSG(best == ids[t + 1], "%s: step %d", jstr(e, "path"), t);
            }
        }
        CHECK_MSG(worst < 1e-4, "%s: cache vs full: max |diff| %g", jstr(e, "path"), worst);
        fprintf(stderr, "  %-40s KV cache vs full recomputation: max |diff| %.2e\n", jstr(e, "path"), worst);
        free(full);
        free(step);
        xle_kv_cache_free(kc);
        xle_model_free(m);
    }
}

/* ---- save round trips ------------------------------------------------------------------------ */

static int logits_equal(xle_model *a, xle_model *b) {
    float *x = run_all(a), *y = run_all(b);
    size_t n = 0;
    for (int s = 0; s < g_n_seqs; s++) n += (size_t)g_seq_len[s] * (size_t)g_V;
    int same = x && y && memcmp(x, y, n * sizeof(float)) == 0;
    free(x);
    free(y);
    return same;
}

/* Every tensor of every .safetensors in dir a has an identical twin (dtype, shape, bytes) in
 * dir b, except `changed` which must differ; returns the number of tensors compared. */
static int compare_hf_dirs(const char *a, const char *b, const char *const *shards, int n_shards,
                           const char *changed) {
    int compared = 0, saw_changed = 0;
    for (int k = 0; k < n_shards; k++) {
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/%s", a, shards[k]);
        snprintf(pb, sizeof pb, "%s/%s", b, shards[k]);
        size_t na = 0, nb = 0;
        uint8_t *x = test_read_file(pa, &na), *y = test_read_file(pb, &nb);
        xle_safetensors *sa = NULL, *sb = NULL;
        xle_error err = {0};
        CHECK(x && y);
        if (x && y) {
            CHECK_OK(xle_safetensors_parse(pa, x, na, &sa, &err), &err);
            CHECK_OK(xle_safetensors_parse(pb, y, nb, &sb, &err), &err);
        }
        for (int i = 0; sa && sb && i < sa->n; i++) {
            const xle_st_entry *ea = &sa->entries[i], *eb = xle_safetensors_find(sb, ea->name);
            CHECK_MSG(eb != NULL, "%s: %s missing after save", pb, ea->name);
            if (!eb) continue;
            int same_shape = ea->ndim == eb->ndim && memcmp(ea->shape, eb->shape, sizeof ea->shape) == 0;
            CHECK_MSG(same_shape, "%s: %s: shape changed", pb, ea->name);
            int same = strcmp(ea->dtype, eb->dtype) == 0 && ea->end - ea->begin == eb->end - eb->begin &&
                       memcmp(ea->data, eb->data, ea->end - ea->begin) == 0;
            if (changed && strcmp(ea->name, changed) == 0) {
                saw_changed = 1;
                CHECK_MSG(!same && strcmp(eb->dtype, "F32") == 0, "%s: %s: edit not saved as F32", pb, ea->name);
            } else {
                CHECK_MSG(same, "%s: %s: not copied byte for byte", pb, ea->name);
            }
            compared++;
        }
        if (sa && sb) CHECK(sa->n == sb->n);
        xle_safetensors_free(sa);
        xle_safetensors_free(sb);
        free(x);
        free(y);
    }
    if (changed) CHECK_MSG(saw_changed, "%s not found", changed);
    return compared;
}

/* Adds 0.5 to every element of layer 1's down projection (made writable first). */
static void edit_down_proj(xle_model *m) {
    xle_error err = {0};
    xle_tensor *t = &xle_model_weights(m)->layers[1].w_down;
    CHECK_OK(xle_model_make_writable_f32(m, t, &err), &err);
    float *p = t->data;
    for (int64_t i = 0; i < xle_tensor_numel(t); i++) p[i] += 0.5f;
}

static void check_hf_roundtrip(const char *rel, const char *const *shards, int n_shards) {
    char src[512], out[600], out2[600];
    fixture_path(rel, src, sizeof src);
    snprintf(out, sizeof out, "%s/rt_hf", g_tmp);
    snprintf(out2, sizeof out2, "%s/rt_hf_edit", g_tmp);
    /* snapshot of the source files */
    size_t n_before[4] = {0};
    void *before[4] = {0};
    for (int k = 0; k < n_shards; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", src, shards[k]);
        before[k] = test_read_file(p, &n_before[k]);
    }
    xle_model *m = load(src);
    if (!m) return;
    xle_error err = {0};
    CHECK_OK(xle_model_save(m, out, &err), &err);
    xle_model *r = load(out);
    if (r) {
        CHECK_MSG(logits_equal(m, r), "%s: logits changed by save + load", rel);
        CHECK(compare_hf_dirs(src, out, shards, n_shards, NULL) > 0);
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/config.json", src);
        snprintf(b, sizeof b, "%s/config.json", out);
        CHECK_MSG(files_equal(a, b), "%s: config.json not carried over", rel);
        if (n_shards > 1) {
            snprintf(b, sizeof b, "%s/model.safetensors.index.json", out);
            json_error_t je;
            json_t *idx = json_load_file(b, 0, &je);
            CHECK_MSG(idx && json_object_size(json_object_get(idx, "weight_map")) > 0, "%s: index", b);
            json_decref(idx);
        }
    }
    /* an edit: saved as F32, the rest byte for byte, logits as in memory */
    edit_down_proj(m);
    /* an edited tensor of a quantized source is stored F16 by default; F32 keeps it exact */
    xle_model_set_quant_save(m, XLE_QSAVE_F32);
    CHECK_OK(xle_model_save(m, out2, &err), &err);
    xle_model *r2 = load(out2);
    if (r2) {
        CHECK_MSG(logits_equal(m, r2), "%s: edited logits changed by save + load", rel);
        CHECK(!r || !logits_equal(r, r2));
        compare_hf_dirs(src, out2, shards, n_shards, "model.layers.1.mlp.down_proj.weight");
    }
    /* the source files are untouched */
    for (int k = 0; k < n_shards; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", src, shards[k]);
        size_t n = 0;
        void *now = test_read_file(p, &n);
        CHECK_MSG(now && before[k] && n == n_before[k] && memcmp(now, before[k], n) == 0,
                  "%s changed", p);
        free(now);
        free(before[k]);
    }
    xle_model_free(r);
    xle_model_free(r2);
    xle_model_free(m);
    rm_rf(out);
    rm_rf(out2);
}

static void test_save_hf(void) {
    static const char *const single[] = {"model.safetensors"};
    static const char *const sharded[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    check_hf_roundtrip("llama_gqa/hf_f32", single, 1);
    check_hf_roundtrip("llama_gqa/hf_bf16_sharded", sharded, 2);
    check_hf_roundtrip("qwen2_bias/hf_f32", single, 1);
    check_hf_roundtrip("llama3_scaled/hf_f32", single, 1);
    check_hf_roundtrip("llama_bias_linear/hf_f64", single, 1);
}

static void check_gguf_roundtrip(const char *rel, const char *edited_name) {
    char src[512], out[600], out2[600];
    fixture_path(rel, src, sizeof src);
    snprintf(out, sizeof out, "%s/rt.gguf", g_tmp);
    snprintf(out2, sizeof out2, "%s/rt_edit.gguf", g_tmp);
    size_t n_before = 0;
    void *before = test_read_file(src, &n_before);
    xle_model *m = load(src);
    if (!m) {
        free(before);
        return;
    }
    xle_error err = {0};
    CHECK_OK(xle_model_save(m, out, &err), &err);
    /* nothing changed: the same KVs, tensor infos, alignment and data, so the same bytes */
    CHECK_MSG(files_equal(src, out), "%s: an unedited save is not byte-identical", rel);
    xle_model *r = load(out);
    if (r) CHECK_MSG(logits_equal(m, r), "%s: logits changed by save + load", rel);

    edit_down_proj(m);
    /* an edited tensor of a quantized source is stored F16 by default; F32 keeps it exact */
    xle_model_set_quant_save(m, XLE_QSAVE_F32);
    CHECK_OK(xle_model_save(m, out2, &err), &err);
    xle_model *r2 = load(out2);
    if (r2) CHECK_MSG(logits_equal(m, r2), "%s: edited logits changed by save + load", rel);
    /* tensor by tensor: only the edited one differs, and it is F32 now */
    size_t na = 0, nb = 0;
    uint8_t *x = test_read_file(src, &na), *y = test_read_file(out2, &nb);
    xle_gguf *ga = NULL, *gb = NULL;
    if (x && y) {
        CHECK_OK(xle_gguf_parse_memory(src, x, na, &ga, &err), &err);
        CHECK_OK(xle_gguf_parse_memory(out2, y, nb, &gb, &err), &err);
    }
    int saw = 0;
    for (uint64_t i = 0; ga && gb && i < ga->n_tensors; i++) {
        const xle_gguf_tensor_info *ta = &ga->tensors[i], *tb = &gb->tensors[i];
        CHECK(ta->name.len == tb->name.len && memcmp(ta->name.ptr, tb->name.ptr, ta->name.len) == 0);
        CHECK(memcmp(ta->ne, tb->ne, sizeof ta->ne) == 0);
        if (xle_gguf_str_eq(ta->name, edited_name)) {
            saw = 1;
            CHECK(tb->ggml_type == XLE_GGML_F32);
        } else {
            CHECK_MSG(ta->ggml_type == tb->ggml_type && ta->nbytes == tb->nbytes &&
                          memcmp(ta->data, tb->data, ta->nbytes) == 0,
                      "%s: tensor %llu not copied byte for byte", rel, (unsigned long long)i);
        }
    }
    CHECK(saw);
    if (ga && gb) {
        CHECK(ga->n_kv == gb->n_kv);
        for (uint64_t i = 0; i < ga->n_kv && i < gb->n_kv; i++)
            CHECK(ga->kvs[i].key.len == gb->kvs[i].key.len && ga->kvs[i].type == gb->kvs[i].type);
    }
    void *xb = NULL, *yb = NULL;
    size_t sz;
    if (ga) xle_gguf_detach_mapping(ga, &xb, &sz);
    if (gb) xle_gguf_detach_mapping(gb, &yb, &sz);
    xle_gguf_close(ga);
    xle_gguf_close(gb);
    free(x);
    free(y);
    size_t n_now = 0;
    void *now = test_read_file(src, &n_now);
    CHECK_MSG(now && before && n_now == n_before && memcmp(now, before, n_now) == 0, "%s changed", src);
    free(now);
    free(before);
    xle_model_free(r);
    xle_model_free(r2);
    xle_model_free(m);
    unlink(out);
    unlink(out2);
}

static void test_save_gguf(void) {
    check_gguf_roundtrip("llama_gqa/llama_gqa_f32.gguf", "blk.1.ffn_down.weight");
    check_gguf_roundtrip("llama_gqa/llama_gqa_q8_0.gguf", "blk.1.ffn_down.weight");
    check_gguf_roundtrip("llama_gqa/llama_gqa_bf16.gguf", "blk.1.ffn_down.weight");
    check_gguf_roundtrip("qwen2_bias/qwen2_bias_q8_0.gguf", "blk.1.ffn_down.weight");
    check_gguf_roundtrip("llama3_scaled/llama3_scaled_f32.gguf", "blk.1.ffn_down.weight");
    check_gguf_roundtrip("llama_bias_linear/llama_bias_linear_f32.gguf", "blk.1.ffn_down.weight");
}

/* Tied embeddings are one tensor: making lm_head writable moves tok_embd too, so an edit
 * shows in the logits, survives a save (as F32 model.embed_tokens.weight) and reloads. */
static void test_tied_edit(void) {
    static const char *const rels[] = {"qwen2_bias/hf_f32", "llama3_scaled/llama3_scaled_f32.gguf"};
    for (size_t k = 0; k < sizeof rels / sizeof rels[0]; k++) {
        char src[512], out[600];
        fixture_path(rels[k], src, sizeof src);
        snprintf(out, sizeof out, "%s/tied%zu%s", g_tmp, k, strstr(rels[k], ".gguf") ? ".gguf" : "");
        xle_model *m = load(src);
        if (!m) continue;
        float *before = run_all(m);
        xle_weights *w = xle_model_weights(m);
        xle_error err = {0};
        CHECK_OK(xle_model_make_writable_f32(m, &w->lm_head, &err), &err);
        CHECK(w->tok_embd.data == w->lm_head.data && w->tok_embd.dtype == XLE_F32);
        float *row = (float *)w->lm_head.data + 7 * xle_model_config(m)->dim;
        for (int i = 0; i < xle_model_config(m)->dim; i++) row[i] *= 2.0f;
        float *after = run_all(m);
        /* logit 7 changes at every position of every sequence */
        CHECK(before && after && before[7] != after[7]);
        CHECK_OK(xle_model_save(m, out, &err), &err);
        xle_model *r = load(out);
        if (r) CHECK_MSG(logits_equal(m, r), "%s: tied edit lost by save + load", rels[k]);
        free(before);
        free(after);
        xle_model_free(r);
        xle_model_free(m);
        rm_rf(out);
    }
}

/* HF and GGUF versions of one family agree with each other (both came from one weight set). */
static void test_formats_agree(void) {
    static const char *const pairs[][2] = {
        {"llama_gqa/hf_f32", "llama_gqa/llama_gqa_f32.gguf"},
        {"mistral_window/hf_f32", "mistral_window/mistral_window_f32.gguf"},
        {"qwen2_bias/hf_f32", "qwen2_bias/qwen2_bias_f32.gguf"},
        {"llama3_scaled/hf_f32", "llama3_scaled/llama3_scaled_f32.gguf"},
        {"llama_gqa/hf_bf16", "llama_gqa/hf_bf16_sharded"},
        {"llama_bias_linear/hf_f64", "llama_bias_linear/llama_bias_linear_f32.gguf"},
    };
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        char a[512], b[512];
        fixture_path(pairs[k][0], a, sizeof a);
        fixture_path(pairs[k][1], b, sizeof b);
        xle_model *x = load(a), *y = load(b);
        float *lx = x ? run_all(x) : NULL, *ly = y ? run_all(y) : NULL;
        size_t n = 0;
        for (int s = 0; s < g_n_seqs; s++) n += (size_t)g_seq_len[s] * (size_t)g_V;
        if (lx && ly) {
            double ma, mr, scale = 0;
            check_max_diff(lx, ly, n, &ma, &mr);
            for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ly[i]));
            CHECK_MSG(ma <= TOL_REL * scale, "%s vs %s: max |diff| %g", pairs[k][0], pairs[k][1], ma);
        }
        free(lx);
        free(ly);
        xle_model_free(x);
        xle_model_free(y);
    }
}

/* `xledit logits --all-positions --json` on a fixture: the output parses with jansson and its
 * numbers are the golden logits. */
static void test_cli_logits_json(void) {
    json_t *e = json_array_get(json_object_get(g_manifest, "models"), 0); /* llama_gqa/hf_f32 */
    char path[512], gpath[512], cmd[1400], ids[400];
    fixture_path(jstr(e, "path"), path, sizeof path);
    fixture_path(jstr(e, "golden"), gpath, sizeof gpath);
    const int s = 1; /* the second sequence; the golden file holds sequence 0 first */
    size_t k = 0;
    for (int i = 0; i < g_seq_len[s]; i++)
        k += (size_t)snprintf(ids + k, sizeof ids - k, "%s%d", i ? "," : "", g_seqs[s][i]);
    snprintf(cmd, sizeof cmd, "'%s' logits '%s' --ids %s --all-positions --json", XLE_BINARY, path, ids);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return;
    json_error_t je;
    json_t *root = json_loadf(p, 0, &je);
    CHECK_MSG(pclose(p) == 0, "%s", cmd);
    CHECK_MSG(root != NULL, "logits output is not JSON: %s", je.text);
    size_t gsize = 0;
    float *golden = test_read_file(gpath, &gsize);
    json_t *rows = json_object_get(root, "logits");
    CHECK(json_integer_value(json_object_get(root, "vocab_size")) == g_V);
    CHECK((int)json_array_size(rows) == g_seq_len[s]);
    size_t off = (size_t)g_seq_len[0] * (size_t)g_V;
    double worst = 0, scale = 0;
    for (int t = 0; golden && t < g_seq_len[s] && t < (int)json_array_size(rows); t++) {
        json_t *row = json_array_get(rows, (size_t)t);
        CHECK((int)json_array_size(row) == g_V);
        for (int v = 0; v < g_V && v < (int)json_array_size(row); v++) {
            double want = golden[off + (size_t)t * (size_t)g_V + (size_t)v];
            worst = fmax(worst, fabs(json_number_value(json_array_get(row, (size_t)v)) - want));
            scale = fmax(scale, fabs(want));
        }
    }
    CHECK_MSG(golden && worst <= TOL_REL * scale, "CLI logits: max |diff| %g", worst);
    free(golden);
    json_decref(root);
}

static int setup(void) {
    json_error_t je;
    g_manifest = json_load_file(FIX "manifest.json", 0, &je);
    if (!g_manifest) {
        fprintf(stderr, "manifest.json: %s\n", je.text);
        return 0;
    }
    g_V = jint(g_manifest, "vocab_size");
    CHECK_NEAR(json_real_value(json_object_get(g_manifest, "tolerance_rel")), TOL_REL, 1e-12);
    json_t *seqs = json_object_get(g_manifest, "sequences");
    g_n_seqs = (int)json_array_size(seqs);
    if (g_n_seqs < 1 || g_n_seqs > 8) return 0;
    for (int s = 0; s < g_n_seqs; s++) {
        json_t *a = json_array_get(seqs, (size_t)s);
        g_seq_len[s] = (int)json_array_size(a);
        if (g_seq_len[s] < 1 || g_seq_len[s] > 64) return 0;
        for (int k = 0; k < g_seq_len[s]; k++) g_seqs[s][k] = (int32_t)json_integer_value(json_array_get(a, (size_t)k));
    }
    json_t *ls = json_object_get(g_manifest, "long_sequence"), *lp = json_object_get(g_manifest, "long_positions");
    g_long_len = (int)json_array_size(ls);
    g_n_long_pos = (int)json_array_size(lp);
    if (g_long_len < 64 || g_long_len > 128 || g_n_long_pos < 1 || g_n_long_pos > 64) return 0;
    for (int k = 0; k < g_long_len; k++) g_long[k] = (int32_t)json_integer_value(json_array_get(ls, (size_t)k));
    for (int k = 0; k < g_n_long_pos; k++) g_long_pos[k] = (int)json_integer_value(json_array_get(lp, (size_t)k));
    const char *tmpdir = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/xle_golden_XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 0;
    }
    return 1;
}

int main(void) {
    if (!setup()) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    RUN(test_goldens);
    RUN(test_formats_agree);
    RUN(test_greedy_matches_reference);
    RUN(test_cache_equals_full);
    RUN(test_save_hf);
    RUN(test_save_gguf);
    RUN(test_tied_edit);
    RUN(test_cli_logits_json);
    rm_rf(g_tmp);
    json_decref(g_manifest);
    return check_summary();
}
