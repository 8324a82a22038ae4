/*
 * test_corrupt.c: bad model files never crash the loaders (run it under ASan/UBSan) and fail
 * with one line naming the file and the field. Every corrupt file is made here, in a temporary
 * folder, from a good fixture (tests/fixtures/models, stories260K.bin): truncation at every
 * length through the headers and metadata and at steps through the tensor data; bad magic,
 * versions, counts, lengths, types, offsets, dims, dtypes; duplicate and missing tensors and
 * keys; config.json that is not JSON, lacks keys, has zero/negative/NaN/absurd values, heads
 * that do not divide, sizes that contradict the tensors; index.json naming a missing shard or a
 * file outside the folder; llama2.c headers with impossible dimensions; and a seeded byte fuzz
 * of the GGUF and safetensors headers (loading and, when a load succeeds, one forward pass).
 */
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_files.h"
#include "xledit.h"

#define FIX XLE_SOURCE_DIR "/tests/fixtures/models/"
#define STORIES XLE_SHARED_DIR "/data/external/stories260k/stories260K.bin"

static char g_tmp[256];
static int g_case;     /* numbers the temporary files */
static int g_refused;  /* corrupt files checked for a clean refusal */
static int g_poked;    /* fuzzed files loaded (or refused) without a crash */

/* ---- files ----------------------------------------------------------------------------------- */

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void tmp_path(char *out, size_t cap, const char *suffix) {
    snprintf(out, cap, "%s/case%d%s", g_tmp, g_case++, suffix);
}

/* ---- the expectation ------------------------------------------------------------------------- */

/* Loading `path` must fail with one line that contains `file` (a part of the path) and
 * `field` (NULL: any). Returns 1 when it did. */
static int expect_fail_(const char *path, const char *file, const char *field, const char *what,
                        int line) {
    xle_model *m = NULL;
    xle_error err = {0};
    xle_status st = xle_model_load(path, &m, &err);
    g_refused++;
    if (st == XLE_OK) {
        fprintf(stderr, "%s:%d: %s: loaded although corrupt\n", __FILE__, line, what);
        check_g.current_failures++;
        xle_model_free(m);
        return 0;
    }
    int ok = err.status == st && err.msg[0] && !strchr(err.msg, '\n') &&
             (!file || strstr(err.msg, file)) && (!field || strstr(err.msg, field));
    if (!ok) {
        fprintf(stderr, "%s:%d: %s: message \"%s\" should name \"%s\" and \"%s\"\n", __FILE__,
                line, what, err.msg, file ? file : "", field ? field : "");
        check_g.current_failures++;
    }
    if (m) {
        fprintf(stderr, "%s:%d: %s: failed load left *out set\n", __FILE__, line, what);
        check_g.current_failures++;
    }
    return ok;
}
#define EXPECT_FAIL(path, file, field, what) expect_fail_(path, file, field, what, __LINE__)

/* Loads path if it can; if it loads, runs one forward pass. Either way must not crash. */
static void load_and_poke(const char *path) {
    g_poked++;
    xle_model *m = NULL;
    xle_error err = {0};
    if (xle_model_load(path, &m, &err) != XLE_OK) {
        CHECK(err.msg[0] && !strchr(err.msg, '\n'));
        return;
    }
    int32_t ids[3] = {1, 2, 3};
    int start[2] = {0, 3};
    xle_batch b = {1, ids, start};
    xle_forward_opts o = {0};
    float *logits = malloc(3 * (size_t)xle_model_config(m)->vocab_size * sizeof(float));
    if (logits && xle_model_config(m)->vocab_size > 3) (void)xle_forward(m, &b, &o, logits, &err);
    free(logits);
    xle_model_free(m);
}

/* ---- a GGUF walker (independent of src/formats: only the layout of the fixtures) ------------- */

enum { MAXN = 64 };
typedef struct gguf_map {
    int n_kv, n_t;
    char key[MAXN][80];
    size_t key_pos[MAXN];    /* the key's u64 length */
    size_t type_pos[MAXN];   /* the value type */
    size_t val_pos[MAXN];    /* the value */
    uint32_t type[MAXN];
    char name[MAXN][80];
    size_t name_pos[MAXN], ndims_pos[MAXN], ne_pos[MAXN], ttype_pos[MAXN], off_pos[MAXN];
    uint64_t t_off[MAXN], t_bytes[MAXN];
    size_t data_start, data_end; /* data_end: end of the last tensor's bytes */
} gguf_map;

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static size_t scalar_size(uint32_t t) {
    static const size_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < 13 ? sz[t] : 0;
}

static int gguf_walk(const uint8_t *b, size_t n, gguf_map *g) {
    memset(g, 0, sizeof *g);
    if (n < 24 || memcmp(b, "GGUF", 4)) return 0;
    uint64_t nt = rd64(b + 8), nkv = rd64(b + 16);
    if (nt > MAXN || nkv > MAXN) return 0;
    size_t p = 24;
    for (uint64_t i = 0; i < nkv; i++) {
        g->key_pos[i] = p;
        uint64_t kl = rd64(b + p);
        snprintf(g->key[i], sizeof g->key[i], "%.*s", (int)kl, (const char *)b + p + 8);
        p += 8 + kl;
        g->type_pos[i] = p;
        g->type[i] = rd32(b + p);
        p += 4;
        g->val_pos[i] = p;
        if (g->type[i] == 8) p += 8 + rd64(b + p);
        else if (g->type[i] == 9) {
            uint32_t at = rd32(b + p);
            uint64_t cnt = rd64(b + p + 4);
            p += 12;
            for (uint64_t k = 0; k < cnt; k++) p += at == 8 ? 8 + rd64(b + p) : scalar_size(at);
        } else p += scalar_size(g->type[i]);
    }
    g->n_kv = (int)nkv;
    uint64_t end = 0;
    for (uint64_t i = 0; i < nt; i++) {
        g->name_pos[i] = p;
        uint64_t nl = rd64(b + p);
        snprintf(g->name[i], sizeof g->name[i], "%.*s", (int)nl, (const char *)b + p + 8);
        p += 8 + nl;
        g->ndims_pos[i] = p;
        uint32_t nd = rd32(b + p);
        p += 4;
        g->ne_pos[i] = p;
        uint64_t numel = 1;
        for (uint32_t k = 0; k < nd; k++) numel *= rd64(b + p + 8 * k);
        uint64_t ne0 = rd64(b + p);
        p += 8 * nd;
        g->ttype_pos[i] = p;
        uint32_t tt = rd32(b + p);
        p += 4;
        g->off_pos[i] = p;
        g->t_off[i] = rd64(b + p);
        p += 8;
        g->t_bytes[i] = tt == 0 ? numel * 4 : tt == 8 ? numel / 32 * 34 : numel * 2;
        (void)ne0;
        if (g->t_off[i] + g->t_bytes[i] > end) end = g->t_off[i] + g->t_bytes[i];
    }
    g->n_t = (int)nt;
    g->data_start = (p + 31) / 32 * 32;
    g->data_end = g->data_start + end;
    return g->data_end <= n;
}

static int kv_index(const gguf_map *g, const char *key) {
    for (int i = 0; i < g->n_kv; i++)
        if (!strcmp(g->key[i], key)) return i;
    return -1;
}

static int tensor_index(const gguf_map *g, const char *name) {
    for (int i = 0; i < g->n_t; i++)
        if (!strcmp(g->name[i], name)) return i;
    return -1;
}

/* A mutated copy of a good file: */
typedef struct mutant {
    uint8_t *b;
    size_t n;
    char path[512];
} mutant;

static int mutant_new(mutant *m, const uint8_t *src, size_t n, const char *suffix) {
    m->b = malloc(n ? n : 1);
    if (!m->b) return 0;
    memcpy(m->b, src, n);
    m->n = n;
    tmp_path(m->path, sizeof m->path, suffix);
    return 1;
}

static void mutant_write(mutant *m) { CHECK(write_file(m->path, m->b, m->n)); }

static void mutant_free(mutant *m) {
    unlink(m->path);
    free(m->b);
}

/* ---- GGUF -------------------------------------------------------------------------------------- */

/* Every length through header + metadata + the first tensor bytes, then steps through the
 * data, must fail; `file` must be named. Lengths after the last tensor's bytes (its padding)
 * are allowed to load. */
static void truncation_sweep(const char *good, size_t header_end, size_t data_end, const char *suffix,
                             const char *file) {
    size_t n = 0;
    uint8_t *b = test_read_file(good, &n);
    CHECK(b != NULL);
    if (!b) return;
    char path[512];
    tmp_path(path, sizeof path, suffix);
    CHECK(write_file(path, b, n));
    int bad = 0, tried = 0;
    /* descending, so each step is one truncate() of the same file */
    for (size_t len = data_end; len-- > 0;) {
        int dense = len < header_end + 64 || len + 64 > data_end;
        if (!dense && len % 53) continue;
        if (truncate(path, (off_t)len) != 0) {
            CHECK(0);
            break;
        }
        xle_model *m = NULL;
        xle_error err = {0};
        tried++;
        g_refused++;
        if (xle_model_load(path, &m, &err) == XLE_OK) {
            if (bad++ < 3) fprintf(stderr, "  %s truncated to %zu bytes loaded\n", suffix, len);
            xle_model_free(m);
        } else if (!strstr(err.msg, file) || strchr(err.msg, '\n')) {
            if (bad++ < 3) fprintf(stderr, "  %s truncated to %zu: \"%s\"\n", suffix, len, err.msg);
        }
    }
    fprintf(stderr, "  %s: %d truncations tried\n", suffix, tried);
    CHECK(bad == 0);
    unlink(path);
    free(b);
}

static void test_gguf_truncated(void) {
    static const char *const files[] = {"llama_gqa/llama_gqa_f32.gguf", "llama_gqa/llama_gqa_q8_0.gguf",
                                        "qwen2_bias/qwen2_bias_f32.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char good[512];
        snprintf(good, sizeof good, FIX "%s", files[i]);
        size_t n = 0;
        uint8_t *b = test_read_file(good, &n);
        gguf_map g;
        CHECK(b && gguf_walk(b, n, &g));
        if (b) truncation_sweep(good, g.data_start, g.data_end, ".gguf", "case");
        free(b);
    }
}

/* Applies fn to a copy of the good GGUF and expects the load to fail naming field. */
typedef void (*gguf_fn)(uint8_t *b, const gguf_map *g, void *arg);

static void gguf_case(const char *rel, gguf_fn fn, void *arg, const char *field, const char *what) {
    char good[512];
    snprintf(good, sizeof good, FIX "%s", rel);
    size_t n = 0;
    uint8_t *b = test_read_file(good, &n);
    gguf_map g;
    CHECK(b && gguf_walk(b, n, &g));
    mutant m;
    if (b && mutant_new(&m, b, n, ".gguf")) {
        fn(m.b, &g, arg);
        mutant_write(&m);
        EXPECT_FAIL(m.path, "case", field, what);
        mutant_free(&m);
    }
    free(b);
}

typedef struct at_u64 { size_t off; uint64_t v; } at_u64;
static void set_u64_at(uint8_t *b, const gguf_map *g, void *a) { (void)g; wr64(b + ((at_u64 *)a)->off, ((at_u64 *)a)->v); }
static void set_u32_at(uint8_t *b, const gguf_map *g, void *a) { (void)g; wr32(b + ((at_u64 *)a)->off, (uint32_t)((at_u64 *)a)->v); }

typedef struct kv_set { const char *key; uint32_t v; int set_type; } kv_set;
static void set_kv_u32(uint8_t *b, const gguf_map *g, void *a) {
    kv_set *k = a;
    int i = kv_index(g, k->key);
    CHECK(i >= 0);
    if (i < 0) return;
    if (k->set_type) wr32(b + g->type_pos[i], k->v);
    else wr32(b + g->val_pos[i], k->v);
}

typedef struct rename { const char *from, *to; } rename_t;
static void rename_tensor(uint8_t *b, const gguf_map *g, void *a) {
    rename_t *r = a;
    int i = tensor_index(g, r->from);
    CHECK(i >= 0 && strlen(r->from) == strlen(r->to));
    if (i >= 0) memcpy(b + g->name_pos[i] + 8, r->to, strlen(r->to));
}

static void set_string_value(uint8_t *b, const gguf_map *g, void *a) {
    rename_t *r = a; /* from = key, to = new value of the same length */
    int i = kv_index(g, r->from);
    CHECK(i >= 0 && rd64(b + g->val_pos[i]) == strlen(r->to));
    if (i >= 0) memcpy(b + g->val_pos[i] + 8, r->to, strlen(r->to));
}

typedef struct tensor_field { const char *name; int which; uint64_t v; } tensor_field;
enum { TF_NDIMS, TF_NE0, TF_NE1, TF_TYPE, TF_OFFSET, TF_SWAP };
static void set_tensor_field(uint8_t *b, const gguf_map *g, void *a) {
    tensor_field *t = a;
    int i = tensor_index(g, t->name);
    CHECK(i >= 0);
    if (i < 0) return;
    switch (t->which) {
    case TF_NDIMS: wr32(b + g->ndims_pos[i], (uint32_t)t->v); break;
    case TF_NE0: wr64(b + g->ne_pos[i], t->v); break;
    case TF_NE1: wr64(b + g->ne_pos[i] + 8, t->v); break;
    case TF_TYPE: wr32(b + g->ttype_pos[i], (uint32_t)t->v); break;
    case TF_OFFSET: wr64(b + g->off_pos[i], t->v); break;
    case TF_SWAP: { /* same bytes, transposed shape */
        uint64_t ne0 = rd64(b + g->ne_pos[i]), ne1 = rd64(b + g->ne_pos[i] + 8);
        wr64(b + g->ne_pos[i], ne1);
        wr64(b + g->ne_pos[i] + 8, ne0);
        break;
    }
    }
}

static void duplicate_key(uint8_t *b, const gguf_map *g, void *a) {
    (void)a;
    /* two keys of the same length: the second takes the first's name */
    for (int i = 0; i < g->n_kv; i++)
        for (int j = i + 1; j < g->n_kv; j++)
            if (strlen(g->key[i]) == strlen(g->key[j])) {
                memcpy(b + g->key_pos[j] + 8, g->key[i], strlen(g->key[i]));
                return;
            }
    CHECK(0);
}

static void test_gguf_header_fields(void) {
    const char *f32 = "llama_gqa/llama_gqa_f32.gguf";
    at_u64 a;
    a = (at_u64){0, 0x47554747}; /* "GGUG" */
    gguf_case(f32, set_u32_at, &a, NULL, "bad magic"); /* not GGUF: read as llama2.c, fails on size */
    a = (at_u64){4, 1};
    gguf_case(f32, set_u32_at, &a, "version", "version 1");
    a = (at_u64){4, 4};
    gguf_case(f32, set_u32_at, &a, "version", "version 4");
    a = (at_u64){8, (uint64_t)1 << 40};
    gguf_case(f32, set_u64_at, &a, "n_tensors", "huge n_tensors");
    a = (at_u64){8, (uint64_t)-1};
    gguf_case(f32, set_u64_at, &a, "n_tensors", "negative n_tensors");
    a = (at_u64){16, (uint64_t)1 << 40};
    gguf_case(f32, set_u64_at, &a, "n_kv", "huge n_kv");
    a = (at_u64){24, (uint64_t)1 << 62};
    gguf_case(f32, set_u64_at, &a, "kv 0 key", "huge key length");
    a = (at_u64){24, 0};
    gguf_case(f32, set_u64_at, &a, "kv 0 key", "empty key");
    gguf_case(f32, duplicate_key, NULL, "duplicate key", "duplicate key");
}

static void test_gguf_metadata(void) {
    const char *f32 = "llama_gqa/llama_gqa_f32.gguf";
    struct { kv_set k; const char *field; } cases[] = {
        {{"llama.block_count", 99, 1}, "llama.block_count"},              /* invalid value type */
        {{"llama.embedding_length", 6, 1}, "llama.embedding_length"},      /* f32, not an integer */
        {{"llama.embedding_length", 64, 0}, "token_embd.weight"},          /* contradicts tensors */
        {{"llama.embedding_length", 0, 0}, "embedding_length"},
        {{"llama.attention.head_count", 0, 0}, "attention.head_count"},
        {{"llama.attention.head_count", 3, 0}, "head_count_kv"},           /* 2 does not divide 3 */
        {{"llama.attention.head_count_kv", 3, 0}, "head_count_kv"},
        {{"llama.attention.head_count_kv", 0, 0}, "head_count_kv"},
        {{"llama.block_count", 3, 0}, "blk.2."},                           /* tensors missing */
        {{"llama.block_count", 100000, 0}, "block_count"},
        {{"llama.block_count", 0xffffffffu, 0}, "block_count"},
        {{"llama.context_length", 0, 0}, "context_length"},
        {{"llama.feed_forward_length", 65, 0}, "ffn_gate.weight"},
        {{"llama.rope.dimension_count", 4, 0}, "rope.dimension_count"},    /* partial RoPE */
        {{"llama.attention.layer_norm_rms_epsilon", 0x7fc00000u, 0}, "layer_norm_rms_epsilon"},
        {{"llama.attention.layer_norm_rms_epsilon", 0xbf800000u, 0}, "layer_norm_rms_epsilon"},
        {{"llama.rope.freq_base", 0x7f800000u, 0}, "rope.freq_base"},      /* inf */
        {{"llama.rope.freq_base", 0xc0000000u, 0}, "rope.freq_base"},      /* -2 */
        {{"general.architecture", 7, 1}, "general.architecture"},          /* bool, not a string */
        {{"llama.vocab_size", 299, 0}, "vocab_size"},                      /* token_embd has 300 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        gguf_case(f32, set_kv_u32, &cases[i].k, cases[i].field, cases[i].k.key);
    rename_t arch = {"general.architecture", "qwen3"};
    gguf_case(f32, set_string_value, &arch, "general.architecture", "unsupported architecture");
}

/* Every value type on every key: no crash, and a failure names the file. */
static void type_fuzz(const char *good) {
    size_t n = 0;
    uint8_t *b = test_read_file(good, &n);
    gguf_map g;
    CHECK(b && gguf_walk(b, n, &g));
    for (int i = 0; b && i < g.n_kv; i++)
        for (uint32_t t = 0; t <= 13; t++) {
            mutant m;
            if (!mutant_new(&m, b, n, ".gguf")) continue;
            wr32(m.b + g.type_pos[i], t);
            mutant_write(&m);
            load_and_poke(m.path);
            mutant_free(&m);
        }
    free(b);
}

static void test_gguf_type_fuzz(void) {
    type_fuzz(FIX "qwen2_bias/qwen2_bias_f32.gguf");
    type_fuzz(XLE_SHARED_DIR "/data/external/stories260k/stories260K.gguf"); /* tokenizer KVs */
}

static void test_gguf_tensor_infos(void) {
    const char *f32 = "llama_gqa/llama_gqa_f32.gguf", *q8 = "llama_gqa/llama_gqa_q8_0.gguf";
    struct { const char *file; tensor_field t; const char *field; } cases[] = {
        {f32, {"blk.0.attn_q.weight", TF_NDIMS, 5}, "n_dims"},
        {f32, {"blk.0.attn_q.weight", TF_NDIMS, 0}, "blk.0.attn_q.weight"},
        {f32, {"blk.0.attn_q.weight", TF_NE0, (uint64_t)-1}, "ne[0]"},
        {f32, {"blk.0.attn_q.weight", TF_NE0, (uint64_t)1 << 40}, "blk.0.attn_q.weight"},
        {f32, {"blk.0.attn_q.weight", TF_NE1, (uint64_t)1 << 62}, "blk.0.attn_q.weight"},
        {f32, {"output.weight", TF_NE0, (uint64_t)1 << 62}, "output.weight"}, /* bytes overflow */
        {f32, {"output.weight", TF_NE1, (uint64_t)1 << 61}, "output.weight"},
        {f32, {"blk.0.attn_q.weight", TF_NE0, 16}, "offset"},                /* sizes no longer add up */
        {f32, {"blk.0.ffn_gate.weight", TF_SWAP, 0}, "does not match the GGUF metadata"},
        {q8, {"blk.0.attn_q.weight", TF_NE0, 33}, "Q8_0 block"},
        {f32, {"blk.0.attn_q.weight", TF_TYPE, 99}, "unknown ggml type"},
        {f32, {"blk.0.attn_q.weight", TF_TYPE, 26}, "I32"},                    /* same size, unsupported */
        {f32, {"blk.0.attn_q.weight", TF_TYPE, 2}, "offset"},                   /* Q4_0: sizes no longer add up */
        {f32, {"blk.0.attn_q.weight", TF_TYPE, 12}, "blk.0.attn_q.weight"},     /* Q4_K: ne[0] 32 not a multiple of 256 */
        {f32, {"blk.0.attn_q.weight", TF_OFFSET, 1}, "offset"},
        {f32, {"output.weight", TF_OFFSET, (uint64_t)1 << 63}, "offset"},
        {f32, {"token_embd.weight", TF_OFFSET, 32}, "offset"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        gguf_case(cases[i].file, set_tensor_field, &cases[i].t, cases[i].field, cases[i].t.name);
    rename_t dup = {"blk.0.attn_k.weight", "blk.0.attn_q.weight"};
    gguf_case(f32, rename_tensor, &dup, "duplicate tensor name", "duplicate tensor");
    rename_t miss = {"blk.1.ffn_up.weight", "blk.1.ffn_uq.weight"};
    gguf_case(f32, rename_tensor, &miss, "blk.1.ffn_up.weight", "missing tensor");
    rename_t bias = {"blk.0.attn_q.bias", "blk.0.attn_q.biaz"};
    gguf_case("qwen2_bias/qwen2_bias_f32.gguf", rename_tensor, &bias, "blk.0.attn_q.bias", "missing bias");
    rename_t emb = {"token_embd.weight", "token_embe.weight"};
    gguf_case(f32, rename_tensor, &emb, "token_embd.weight", "missing embedding");
}

/* Hand-built GGUF headers for what the fixtures do not contain. */
typedef struct buf { uint8_t b[4096]; size_t n; } buf;
static void put(buf *x, const void *p, size_t n) { memcpy(x->b + x->n, p, n); x->n += n; }
static void put32(buf *x, uint32_t v) { put(x, &v, 4); }
static void put64(buf *x, uint64_t v) { put(x, &v, 8); }
static void putstr(buf *x, const char *s) { put64(x, strlen(s)); put(x, s, strlen(s)); }
static void gguf_head(buf *x, uint64_t nt, uint64_t nkv) { x->n = 0; put(x, "GGUF", 4); put32(x, 3); put64(x, nt); put64(x, nkv); }

static void expect_fail_bytes(const buf *x, const char *field, const char *what) {
    char path[512];
    tmp_path(path, sizeof path, ".gguf");
    CHECK(write_file(path, x->b, x->n));
    EXPECT_FAIL(path, "case", field, what);
    unlink(path);
}

static void test_gguf_handmade(void) {
    buf x;
    gguf_head(&x, 0, 1); putstr(&x, "general.alignment"); put32(&x, 0); x.b[x.n++] = 64; /* u8 */
    expect_fail_bytes(&x, "general.alignment", "alignment of type u8");
    gguf_head(&x, 0, 1); putstr(&x, "general.alignment"); put32(&x, 4); put32(&x, 24);
    expect_fail_bytes(&x, "general.alignment", "alignment not a power of two");
    gguf_head(&x, 0, 1); putstr(&x, "general.alignment"); put32(&x, 4); put32(&x, 0);
    expect_fail_bytes(&x, "general.alignment", "alignment 0");
    gguf_head(&x, 0, 1); putstr(&x, "a.nested"); put32(&x, 9); put32(&x, 9); put64(&x, 1);
    expect_fail_bytes(&x, "nested", "nested array");
    gguf_head(&x, 0, 1); putstr(&x, "a.strings"); put32(&x, 9); put32(&x, 8); put64(&x, (uint64_t)1 << 60);
    expect_fail_bytes(&x, "a.strings", "huge string array");
    gguf_head(&x, 0, 1); putstr(&x, "a.u32s"); put32(&x, 9); put32(&x, 4); put64(&x, (uint64_t)1 << 62);
    expect_fail_bytes(&x, "a.u32s", "huge u32 array");
    gguf_head(&x, 0, 1); putstr(&x, "a.flag"); put32(&x, 7); x.b[x.n++] = 2;
    expect_fail_bytes(&x, "a.flag", "bool 2");
    gguf_head(&x, 0, 1); putstr(&x, "a.str"); put32(&x, 8); put64(&x, 1000); put(&x, "abc", 3);
    expect_fail_bytes(&x, "a.str", "string past the end");
    /* well formed, but no model in it (a vocab-only file) */
    gguf_head(&x, 0, 1); putstr(&x, "general.architecture"); put32(&x, 8); putstr(&x, "llama");
    expect_fail_bytes(&x, "embedding_length", "vocab-only file");
    /* tensor data offset past the end */
    gguf_head(&x, 1, 0); putstr(&x, "t"); put32(&x, 1); put64(&x, 8); put32(&x, 0); put64(&x, 0);
    while (x.n % 32) x.b[x.n++] = 0;
    expect_fail_bytes(&x, "t: offset", "data past the end");
    /* an empty file */
    x.n = 0;
    expect_fail_bytes(&x, "empty", "empty file");
}

/* NaN in a weight: the load succeeds (values are not scanned), the forward pass reports it. */
static void test_nan_weight(void) {
    char good[512];
    snprintf(good, sizeof good, FIX "llama_gqa/llama_gqa_f32.gguf");
    size_t n = 0;
    uint8_t *b = test_read_file(good, &n);
    gguf_map g;
    CHECK(b && gguf_walk(b, n, &g));
    mutant m;
    if (b && mutant_new(&m, b, n, ".gguf")) {
        int i = tensor_index(&g, "token_embd.weight");
        float nan = NAN;
        memcpy(m.b + g.data_start + g.t_off[i] + 5 * 32 * 4, &nan, 4); /* row of token 5 */
        mutant_write(&m);
        xle_model *model = NULL;
        xle_error err = {0};
        CHECK_OK(xle_model_load(m.path, &model, &err), &err);
        if (model) {
            int32_t ids[2] = {1, 5};
            int start[2] = {0, 2};
            xle_batch bt = {1, ids, start};
            xle_forward_opts o = {0};
            float logits[2 * 300];
            CHECK(xle_forward(model, &bt, &o, logits, &err) == XLE_ERR_NUMERIC);
            CHECK(strstr(err.msg, "non-finite") != NULL);
            xle_model_free(model);
        }
        mutant_free(&m);
    }
    free(b);
}

/* ---- Hugging Face folders ---------------------------------------------------------------------- */

/* A new folder in the temporary dir with the fixture's safetensors (copied) and a config. */
static void hf_folder(char *dir, size_t cap, const char *fixture) {
    snprintf(dir, cap, "%s/hf%d", g_tmp, g_case++);
    CHECK(mkdir(dir, 0755) == 0);
    char src[600], dst[600];
    const char *files[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                           "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(src, sizeof src, FIX "%s/%s", fixture, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
        size_t n = 0;
        uint8_t *b = test_read_file(src, &n);
        if (b) CHECK(write_file(dst, b, n));
        free(b);
    }
}

static void rm_rf(const char *path) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    CHECK(system(cmd) == 0);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    CHECK(write_file(p, text, strlen(text)));
}

/* config.json of the llama fixture with one key set to a JSON value (NULL value: removed). */
static void config_case(const char *key, const char *json_value, const char *field, const char *what) {
    char dir[512];
    hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(p, 0, &je);
    CHECK(cfg != NULL);
    if (!cfg) return;
    if (json_value) {
        json_t *v = json_loads(json_value, JSON_DECODE_ANY, &je);
        CHECK_MSG(v != NULL, "%s", json_value);
        json_object_set_new(cfg, key, v);
    } else {
        json_object_del(cfg, key);
    }
    CHECK(json_dump_file(cfg, p, JSON_INDENT(2)) == 0);
    json_decref(cfg);
    EXPECT_FAIL(dir, "config.json", field, what);
    rm_rf(dir);
}

static void test_hf_config(void) {
    struct { const char *key, *value, *field; } cases[] = {
        {"hidden_size", NULL, "hidden_size: missing"},
        {"hidden_size", "64", "model.embed_tokens.weight"}, /* tensors are 32 wide */
        {"hidden_size", "0", "hidden_size"},
        {"hidden_size", "-32", "hidden_size"},
        {"hidden_size", "1099511627776", "hidden_size"},
        {"hidden_size", "32.5", "hidden_size"},
        {"hidden_size", "\"32\"", "hidden_size"},
        {"intermediate_size", "-64", "intermediate_size"},
        {"intermediate_size", "128", "mlp.gate_proj.weight"},
        {"num_hidden_layers", "0", "num_hidden_layers"},
        {"num_hidden_layers", "3", "model.layers.2."},
        {"num_hidden_layers", "1000000", "num_hidden_layers"},
        {"num_attention_heads", "3", "num_key_value_heads"},
        {"num_attention_heads", "0", "num_attention_heads"},
        {"num_attention_heads", NULL, "num_attention_heads: missing"},
        {"num_key_value_heads", "3", "num_key_value_heads"},
        {"num_key_value_heads", "-2", "num_key_value_heads"},
        {"head_dim", "7", "head_dim"},
        {"head_dim", "0", "head_dim"},
        {"vocab_size", "299", "model.embed_tokens.weight"},
        {"vocab_size", NULL, "vocab_size: missing"},
        {"rms_norm_eps", "0", "rms_norm_eps"},
        {"rms_norm_eps", "-1e-5", "rms_norm_eps"},
        {"rms_norm_eps", "\"small\"", "rms_norm_eps"},
        {"rope_theta", "0", "rope_theta"},
        {"rope_theta", "-10000.0", "rope_theta"},
        {"rope_theta", "1e300", "rope_theta"}, /* inf as a float */
        {"max_position_embeddings", "0", "max_position_embeddings"},
        {"model_type", "\"gpt_neox\"", "model_type"},
        {"model_type", "\"gpt2\"", "n_embd: missing"}, /* read as GPT-2, whose sizes are named otherwise */
        {"model_type", NULL, "model_type"},
        {"model_type", "7", "model_type"},
        {"hidden_act", "\"gelu\"", "hidden_act"},
        {"mlp_bias", "true", "mlp_bias"},
        {"tie_word_embeddings", "\"yes\"", "tie_word_embeddings"},
        {"tie_word_embeddings", "true", NULL}, /* lm_head.weight exists but must not be used?
                                                  no: it loads; see test below */
        {"rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling.rope_type"},
        {"rope_scaling", "{\"rope_type\": \"llama3\", \"low_freq_factor\": 1.0}", "rope_scaling.factor"},
        {"rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, "
                         "\"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 64}", "rope_scaling"},
        {"rope_scaling", "{\"rope_type\": \"linear\", \"factor\": -2.0}", "rope_scaling.factor"},
        {"rope_scaling", "[1, 2]", "rope_scaling"},
        {"bos_token_id", "-5", "bos_token_id"},
        {"attention_bias", "true", "self_attn.q_proj.bias"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!cases[i].field) continue;
        config_case(cases[i].key, cases[i].value, cases[i].field, cases[i].key);
    }
    /* untied config without lm_head.weight */
    char dir[512];
    hf_folder(dir, sizeof dir, "qwen2_bias/hf_f32");
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_error_t je;
    json_t *cfg = json_load_file(p, 0, &je);
    json_object_set_new(cfg, "tie_word_embeddings", json_false());
    json_dump_file(cfg, p, JSON_INDENT(2));
    json_decref(cfg);
    EXPECT_FAIL(dir, "model.safetensors", "lm_head.weight: missing", "untied without lm_head");
    rm_rf(dir);
}

static void test_hf_config_text(void) {
    struct { const char *text, *field; } cases[] = {
        {"{\"model_type\": \"llama\", ", "invalid JSON"},
        {"", "invalid JSON"},
        {"[1, 2, 3]", "top level"},
        {"{\"model_type\": \"llama\", \"hidden_size\": NaN}", "invalid JSON"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 32, \"hidden_size\": 64}", "invalid JSON"},
        {"{\"model_type\": \"llama\", \"rms_norm_eps\": 1e999}", "invalid JSON"},
        {"\xff\xfe{}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[512];
        hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
        write_text(dir, "config.json", cases[i].text);
        EXPECT_FAIL(dir, "config.json", cases[i].field, cases[i].text);
        rm_rf(dir);
    }
    /* no config.json, no weights, not a model folder at all */
    char dir[512];
    hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    EXPECT_FAIL(dir, "config.json", NULL, "no config.json");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    write_text(dir, "config.json", "{}");
    EXPECT_FAIL(dir, "config.json", "model_type", "empty config");
    rm_rf(dir);
    hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    unlink(p);
    EXPECT_FAIL(dir, "model.safetensors", "missing", "no weights");
    rm_rf(dir);
}

/* model.safetensors of the llama fixture with its header JSON changed by fn (data kept). */
typedef void (*header_fn)(json_t *hdr, void *arg);

static void safetensors_case(header_fn fn, void *arg, const char *raw_header, const char *field,
                             const char *what) {
    char dir[512];
    hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t n = 0;
    uint8_t *b = test_read_file(p, &n);
    CHECK(b != NULL);
    if (!b) return;
    uint64_t hl = rd64(b);
    char *text = NULL;
    if (raw_header) {
        text = strdup(raw_header);
    } else {
        json_error_t je;
        json_t *hdr = json_loadb((const char *)b + 8, (size_t)hl, 0, &je);
        CHECK(hdr != NULL);
        fn(hdr, arg);
        text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(hdr);
    }
    size_t tl = strlen(text);
    uint8_t *out = malloc(8 + tl + (n - 8 - hl));
    wr64(out, tl);
    memcpy(out + 8, text, tl);
    memcpy(out + 8 + tl, b + 8 + hl, n - 8 - hl);
    CHECK(write_file(p, out, 8 + tl + (n - 8 - hl)));
    EXPECT_FAIL(dir, "model.safetensors", field, what);
    free(out);
    free(text);
    free(b);
    rm_rf(dir);
}

typedef struct entry_set { const char *tensor, *key, *json; } entry_set;
static void set_entry_field(json_t *hdr, void *a) {
    entry_set *e = a;
    json_t *t = json_object_get(hdr, e->tensor);
    CHECK(t != NULL);
    json_error_t je;
    if (t) json_object_set_new(t, e->key, json_loads(e->json, JSON_DECODE_ANY, &je));
}
static void rename_entry(json_t *hdr, void *a) {
    rename_t *r = a;
    json_t *t = json_object_get(hdr, r->from);
    CHECK(t != NULL);
    json_incref(t);
    json_object_del(hdr, r->from);
    json_object_set_new(hdr, r->to, t);
}
static void set_metadata(json_t *hdr, void *a) {
    json_error_t je;
    json_object_set_new(hdr, "__metadata__", json_loads((const char *)a, JSON_DECODE_ANY, &je));
}

static void test_safetensors(void) {
    /* lm_head.weight is the first tensor: data [0, 38400) */
    const char *lm = "lm_head.weight", *q = "model.layers.0.self_attn.q_proj.weight";
    entry_set cases[] = {
        {lm, "dtype", "\"I32\""},
        {lm, "dtype", "\"Q9\""},
        {lm, "dtype", "7"},
        {lm, "shape", "[300, 33]"},
        {lm, "shape", "[1099511627776, 1099511627776]"},
        {lm, "shape", "[1, 1, 1, 1, 1, 1, 1, 1, 1]"},
        {lm, "shape", "[300, -32]"},
        {lm, "shape", "\"300x32\""},
        {lm, "shape", "[32, 300]"},                 /* right size, wrong shape for the config */
        {lm, "data_offsets", "[0, 38396]"},
        {lm, "data_offsets", "[4, 38404]"},          /* hole at 0, overlap after */
        {lm, "data_offsets", "[-4, 38396]"},
        {lm, "data_offsets", "[38400, 0]"},
        {lm, "data_offsets", "[0]"},
        {q, "data_offsets", "[0, 4096]"},            /* overlaps lm_head */
        {q, "data_offsets", "[99999999, 100003995]"},
    };
    const char *fields[] = {"dtype I32 is not supported", "dtype", "dtype", "data_offsets",
                            "shape", "shape", "shape", "shape", "lm_head.weight: shape",
                            "data_offsets", "data_offsets", "data_offsets", "data_offsets",
                            "data_offsets", "data_offsets", "data_offsets"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        safetensors_case(set_entry_field, &cases[i], NULL, fields[i], cases[i].json);
    rename_t miss = {"model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weighx"};
    safetensors_case(rename_entry, &miss, NULL, "model.layers.1.mlp.up_proj.weight: missing", "missing tensor");
    safetensors_case(set_metadata, "{\"format\": 7}", NULL, "__metadata__", "metadata not strings");
    safetensors_case(set_metadata, "[]", NULL, "__metadata__", "metadata not an object");
    safetensors_case(NULL, NULL, "[]", "header", "header not an object");
    safetensors_case(NULL, NULL, " {}", "header", "header not starting with {");
    safetensors_case(NULL, NULL, "{\"a\": ", "invalid JSON", "header not JSON");
    safetensors_case(NULL, NULL, "{\"lm_head.weight\": {\"dtype\": \"F32\", \"shape\": [300, 32], "
                                 "\"data_offsets\": [0, 38400]}, \"lm_head.weight\": {}}",
                     "invalid JSON", "duplicate tensor name");
    safetensors_case(NULL, NULL, "{}", "not covered", "data not covered");

    /* header length field itself */
    char dir[512];
    hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    size_t n = 0;
    uint8_t *b = test_read_file(p, &n);
    uint64_t lens[] = {(uint64_t)1 << 40, (uint64_t)-1, n - 7, 0, 1};
    for (size_t i = 0; b && i < sizeof lens / sizeof lens[0]; i++) {
        wr64(b, lens[i]);
        CHECK(write_file(p, b, n));
        EXPECT_FAIL(dir, "model.safetensors", "header", "header length");
    }
    free(b);
    rm_rf(dir);
}

static void test_safetensors_truncated(void) {
    char good[512];
    snprintf(good, sizeof good, FIX "llama_gqa/hf_f32/model.safetensors");
    size_t n = 0;
    uint8_t *b = test_read_file(good, &n);
    CHECK(b != NULL);
    if (!b) return;
    uint64_t hl = rd64(b);
    char dir[512];
    hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    int bad = 0, tried = 0;
    for (size_t len = n; len-- > 0;) {
        int dense = len < 8 + hl + 64 || len + 64 > n;
        if (!dense && len % 53) continue;
        CHECK(truncate(p, (off_t)len) == 0);
        xle_model *m = NULL;
        xle_error err = {0};
        tried++;
        g_refused++;
        if (xle_model_load(dir, &m, &err) == XLE_OK) {
            bad++;
            xle_model_free(m);
        } else if (!strstr(err.msg, "model.safetensors") || strchr(err.msg, '\n')) {
            if (bad++ < 3) fprintf(stderr, "  truncated to %zu: \"%s\"\n", len, err.msg);
        }
    }
    fprintf(stderr, "  model.safetensors: %d truncations tried\n", tried);
    CHECK(bad == 0);
    rm_rf(dir);
    free(b);
}

static void index_case(void (*fn)(const char *dir), const char *file, const char *field, const char *what) {
    char dir[512];
    hf_folder(dir, sizeof dir, "llama_gqa/hf_bf16_sharded");
    fn(dir);
    EXPECT_FAIL(dir, file, field, what);
    rm_rf(dir);
}

static void idx_missing_shard(const char *dir) {
    char p[700];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    CHECK(unlink(p) == 0);
}
static void idx_edit(const char *dir, const char *tensor, const char *shard_json) {
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    json_error_t je;
    json_t *idx = json_load_file(p, 0, &je);
    json_t *wm = json_object_get(idx, "weight_map");
    CHECK(wm != NULL);
    json_object_set_new(wm, tensor, json_loads(shard_json, JSON_DECODE_ANY, &je));
    CHECK(json_dump_file(idx, p, JSON_INDENT(2)) == 0);
    json_decref(idx);
}
static void idx_outside(const char *dir) { idx_edit(dir, "model.norm.weight", "\"../model.safetensors\""); }
static void idx_wrong_shard(const char *dir) { idx_edit(dir, "model.norm.weight", "\"model-00001-of-00002.safetensors\""); }
static void idx_not_string(const char *dir) { idx_edit(dir, "model.norm.weight", "5"); }
static void idx_absent_file(const char *dir) { idx_edit(dir, "model.norm.weight", "\"model-00003-of-00003.safetensors\""); }
static void idx_bad_json(const char *dir) { write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {"); }
static void idx_no_map(const char *dir) { write_text(dir, "model.safetensors.index.json", "{\"metadata\": {}}"); }
static void idx_empty_map(const char *dir) { write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {}}"); }
static void idx_duplicate(const char *dir) {
    /* shard 2 gets a second model.embed_tokens.weight (the index still names shard 1) */
    char p[700];
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
    size_t n = 0;
    uint8_t *b = test_read_file(p, &n);
    CHECK(b != NULL);
    if (!b) return;
    uint64_t hl = rd64(b), data = n - 8 - hl, extra = 300 * 32 * 2;
    json_error_t je;
    json_t *hdr = json_loadb((const char *)b + 8, (size_t)hl, 0, &je);
    CHECK(hdr != NULL);
    json_object_set_new(hdr, "model.embed_tokens.weight",
                        json_pack("{s:s, s:[i,i], s:[I,I]}", "dtype", "BF16", "shape", 300, 32,
                                  "data_offsets", (json_int_t)data, (json_int_t)(data + extra)));
    char *text = json_dumps(hdr, JSON_COMPACT);
    json_decref(hdr);
    size_t tl = strlen(text), total = 8 + tl + data + extra;
    uint8_t *out = calloc(1, total);
    wr64(out, tl);
    memcpy(out + 8, text, tl);
    memcpy(out + 8 + tl, b + 8 + hl, data);
    CHECK(write_file(p, out, total));
    free(out);
    free(text);
    free(b);
}

static void test_hf_index(void) {
    index_case(idx_missing_shard, "model-00002-of-00002.safetensors", "missing", "missing shard");
    index_case(idx_absent_file, "model-00003-of-00003.safetensors", "missing", "index names an absent file");
    index_case(idx_outside, "model.safetensors.index.json", "weight_map", "shard outside the folder");
    index_case(idx_wrong_shard, "model.safetensors.index.json", "model.norm.weight", "tensor in another shard");
    index_case(idx_not_string, "model.safetensors.index.json", "model.norm.weight", "shard not a string");
    index_case(idx_bad_json, "model.safetensors.index.json", "invalid JSON", "index not JSON");
    index_case(idx_no_map, "model.safetensors.index.json", "weight_map", "no weight_map");
    index_case(idx_empty_map, "model.safetensors.index.json", "weight_map", "empty weight_map");
    index_case(idx_duplicate, "model-0000", "also in", "tensor in two shards");
}

/* ---- llama2.c ----------------------------------------------------------------------------------- */

static void test_llama2c(void) {
    size_t n = 0;
    uint8_t *b = test_read_file(STORIES, &n);
    CHECK(b && n == 1056540);
    if (!b) return;
    /* truncated or extended */
    size_t lens[] = {1, 4, 27, 28, 100, 4096, n / 2, n - 4, n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char p[512];
        tmp_path(p, sizeof p, ".bin");
        CHECK(write_file(p, b, lens[i]));
        EXPECT_FAIL(p, "case", lens[i] < 28 ? "header" : "size", "truncated checkpoint");
        unlink(p);
    }
    {
        char p[512];
        tmp_path(p, sizeof p, ".bin");
        uint8_t *big = calloc(1, n + 4);
        memcpy(big, b, n);
        CHECK(write_file(p, big, n + 4));
        EXPECT_FAIL(p, "case", "size", "4 extra bytes");
        unlink(p);
        free(big);
    }
    /* header fields: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len */
    struct { int field; int32_t v; const char *msg; } cases[] = {
        {0, 0, "dim"}, {0, -64, "dim"}, {0, 128, "size"}, {0, 1 << 30, "dim"},
        {1, 0, "hidden_dim"}, {1, -1, "hidden_dim"}, {1, 1 << 20, "size"},
        {2, 0, "n_layers"}, {2, 1 << 20, "n_layers"}, {2, 4096, "size"},
        {3, 0, "n_heads"}, {3, 7, "n_heads"}, {3, 3, "n_heads"}, {3, 64, "head_size"},
        {4, 0, "n_kv_heads"}, {4, 3, "n_kv_heads"}, {4, 16, "n_kv_heads"},
        {5, 0, "vocab_size"}, {5, INT32_MIN, "vocab_size"}, {5, -512, "size"}, {5, 1 << 24, "size"},
        {6, 0, "seq_len"}, {6, -1, "seq_len"}, {6, 513, "size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mutant m;
        if (!mutant_new(&m, b, n, ".bin")) continue;
        memcpy(m.b + 4 * cases[i].field, &cases[i].v, 4);
        mutant_write(&m);
        char what[64];
        snprintf(what, sizeof what, "header field %d = %d", cases[i].field, cases[i].v);
        EXPECT_FAIL(m.path, "case", cases[i].msg, what);
        mutant_free(&m);
    }
    /* not a model at all: a text file */
    char p[512];
    tmp_path(p, sizeof p, ".txt");
    const char *text = "Once upon a time there was a file that was not a model.\n";
    CHECK(write_file(p, text, strlen(text)));
    EXPECT_FAIL(p, "case", NULL, "text file");
    unlink(p);
    free(b);
    EXPECT_FAIL("/nonexistent/model.gguf", "/nonexistent/model.gguf", NULL, "absent path");
}

/* ---- seeded byte fuzz of the headers ----------------------------------------------------------- */

static void fuzz_file(const char *good, size_t region, int iterations, uint64_t seed, int is_dir_model,
                      const char *name_in_dir) {
    size_t n = 0;
    uint8_t *b = test_read_file(good, &n);
    CHECK(b != NULL);
    if (!b) return;
    if (region > n) region = n;
    xle_rng rng;
    xle_rng_seed(&rng, seed);
    char dir[512], p[700];
    if (is_dir_model) {
        hf_folder(dir, sizeof dir, "llama_gqa/hf_f32");
        snprintf(p, sizeof p, "%s/%s", dir, name_in_dir);
    } else {
        tmp_path(p, sizeof p, ".gguf");
    }
    uint8_t *m = malloc(n);
    for (int it = 0; m && it < iterations; it++) {
        memcpy(m, b, n);
        int flips = 1 + (int)(xle_rng_next(&rng) % 4);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(xle_rng_next(&rng) % region);
            uint64_t r = xle_rng_next(&rng);
            m[at] = (r & 1) ? (uint8_t)(r >> 8) : (uint8_t)(m[at] ^ (1u << ((r >> 8) % 8)));
        }
        CHECK(write_file(p, m, n));
        load_and_poke(is_dir_model ? dir : p);
    }
    free(m);
    free(b);
    if (is_dir_model) rm_rf(dir);
    else unlink(p);
}

static void test_fuzz(void) {
    char good[512];
    snprintf(good, sizeof good, FIX "llama_gqa/llama_gqa_q8_0.gguf");
    size_t n = 0;
    uint8_t *b = test_read_file(good, &n);
    gguf_map g;
    CHECK(b && gguf_walk(b, n, &g));
    if (b) fuzz_file(good, g.data_start, 300, 1, 0, NULL);
    free(b);
    snprintf(good, sizeof good, FIX "qwen2_bias/qwen2_bias_f32.gguf");
    b = test_read_file(good, &n);
    CHECK(b && gguf_walk(b, n, &g));
    if (b) fuzz_file(good, g.data_start, 300, 2, 0, NULL);
    free(b);
    snprintf(good, sizeof good, XLE_SHARED_DIR "/data/external/stories260k/stories260K.gguf");
    b = test_read_file(good, &n);
    CHECK(b && gguf_walk(b, n, &g));
    if (b) fuzz_file(good, g.data_start, 200, 4, 0, NULL);
    free(b);
    snprintf(good, sizeof good, FIX "llama_gqa/hf_f32/model.safetensors");
    b = test_read_file(good, &n);
    if (b) fuzz_file(good, 8 + rd64(b), 300, 3, 1, "model.safetensors");
    free(b);
}

int main(void) {
    const char *tmpdir = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/xle_corrupt_XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_gguf_truncated);
    RUN(test_gguf_header_fields);
    RUN(test_gguf_metadata);
    RUN(test_gguf_type_fuzz);
    RUN(test_gguf_tensor_infos);
    RUN(test_gguf_handmade);
    RUN(test_nan_weight);
    RUN(test_hf_config);
    RUN(test_hf_config_text);
    RUN(test_safetensors);
    RUN(test_safetensors_truncated);
    RUN(test_hf_index);
    RUN(test_llama2c);
    RUN(test_fuzz);
    rm_rf(g_tmp);
    fprintf(stderr, "%d corrupt files refused cleanly, %d fuzzed files loaded or refused without a crash\n",
            g_refused, g_poked);
    return check_summary();
}
