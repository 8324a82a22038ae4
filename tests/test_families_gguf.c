/*
 * test_families_gguf.c: GGUF files of the families beyond Llama (docs/families.md) as llama.cpp
 * defines them — gpt2, gemma, gemma2, bloom — against their Hugging Face twins. The twins are
 * tests/fixtures/families/<family>/gguf_{f32,f16,q8_0}.gguf (BLOOM: no F16), which
 * tests/reference/make_gguf_family_fixtures.py writes with llama.cpp's gguf-py from the hf_f32
 * folders by convert_hf_to_gguf.py's rules (GPT-2: Conv1D weights transposed, q/k/v fused in
 * attn_qkv, the tied head written as output.weight; Gemma: norms stored as 1 + w, no head;
 * BLOOM: query_key_value's per-head rows reordered into attn_qkv's q | k | v).
 *
 * Per family: the F32 twin loads with the HF model's configuration and its logits at every
 * position of the four fixture sequences are within 1e-5 of the HF folder's (Gemma-2: of the HF
 * folder with query_pre_attn_scalar = head_dim, the scale llama.cpp uses, since GGUF carries no
 * such key; the fixture's own 24 gives other logits, also checked); the F16 and Q8_0 twins within
 * the rounding their weights carry; the tokenizer from the GGUF metadata (GPT-2 byte-level BPE,
 * Gemma "llama" SentencePiece) gives the HF tokenizer's ids on a few strings; an unedited save
 * writes every tensor byte for byte and an edited one (the MLP output projection, one row of the
 * fused GPT-2 q/k/v, a Gemma norm) reloads to the same logits bit for bit. Bad metadata (a
 * missing epsilon, a negative soft-cap, a fused q/k/v of the wrong size) and architectures
 * llama.cpp gives no tensor layout (gptj) or xledit does not know are one error line naming the
 * file and the key.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "family_fixture.h"
#include "formats/formats_internal.h"
#include "formats/gguf.h"
#include "xledit.h"

#define FIX FAMILY_FIX_DIR
#define TOL_F32 1e-5

static family_fix g_fix;   /* the family under test: manifest (sequences, tokenizer vector) */
static const char *g_family;
static json_t *g_manifest;
static char g_tmp[128];

static int n_seqs(void) { return fix_n_seqs(&g_fix); }

static xle_model *load(const char *path) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(path, &m, &err), &err);
    return m;
}

static const char *twin(const char *kind, char *buf, size_t cap) {
    snprintf(buf, cap, FIX "%s/gguf_%s.gguf", g_family, kind);
    return buf;
}

/* The logits of sequence s (caller frees). */
static float *logits_of(xle_model *m, int s, int *n) {
    int32_t *ids = fix_seq_ids(&g_fix, s, n);
    const int V = xle_model_config(m)->vocab_size;
    int starts[2] = {0, *n};
    xle_batch b = {.n_seqs = 1, .tokens = ids, .seq_start = starts};
    float *out = malloc((size_t)*n * (size_t)V * sizeof *out);
    xle_error err = {0};
    CHECK_OK(xle_forward(m, &b, NULL, out, &err), &err);
    free(ids);
    return out;
}

/* Max |a - b| over every position of every sequence. */
static double logits_diff(xle_model *a, xle_model *b) {
    double worst = 0;
    const int V = xle_model_config(a)->vocab_size;
    for (int s = 0; s < n_seqs(); s++) {
        int n;
        float *la = logits_of(a, s, &n), *lb = logits_of(b, s, &n);
        double d = max_abs_diff(la, lb, (size_t)n * (size_t)V);
        if (!(d <= worst)) worst = d;
        free(la);
        free(lb);
    }
    return worst;
}

/* The HF twin: the fixture folder, except for Gemma-2 a copy whose config.json says
 * query_pre_attn_scalar = head_dim (llama.cpp's scale; GGUF has no key for it). */
static const char *hf_twin(char *buf, size_t cap) {
    if (strcmp(g_family, "gemma2") != 0) {
        snprintf(buf, cap, FIX "%s/hf_f32", g_family);
        return buf;
    }
    json_error_t jerr;
    json_t *cfg = json_load_file(FIX "gemma2/hf_f32/config.json", 0, &jerr);
    CHECK(cfg != NULL);
    if (!cfg) return NULL;
    json_object_set(cfg, "query_pre_attn_scalar", json_object_get(cfg, "head_dim"));
    snprintf(buf, cap, "%s/gemma2_hf", g_tmp);
    mkdir(buf, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", buf);
    CHECK(json_dump_file(cfg, path, JSON_INDENT(2)) == 0);
    json_decref(cfg);
    static const char *const files[] = {"model.safetensors", "tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        char src[512];
        snprintf(src, sizeof src, FIX "gemma2/hf_f32/%s", files[i]);
        snprintf(path, sizeof path, "%s/%s", buf, files[i]);
        unlink(path);
        CHECK(symlink(src, path) == 0);
    }
    return buf;
}

static void rm_hf_twin(void) {
    if (strcmp(g_family, "gemma2") != 0) return;
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json"};
    char path[256];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/gemma2_hf/%s", g_tmp, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/gemma2_hf", g_tmp);
    rmdir(path);
}

/* ---- configuration and logits ---------------------------------------------------------- */

static void test_logits(void) {
    char hp[256], gp[256];
    xle_model *hf = load(hf_twin(hp, sizeof hp)), *g = load(twin("f32", gp, sizeof gp));
    if (hf && g) {
        const xle_config *a = xle_model_config(hf), *b = xle_model_config(g);
        CHECK(a->arch == b->arch && a->dim == b->dim && a->ffn_dim == b->ffn_dim &&
              a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
              a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
              a->vocab_size == b->vocab_size);
        /* BLOOM's converter writes context_length = n_embed when config.json has no seq_length
         * (ALiBi has no position table: nothing reads it); the folder's default is 2048. */
        CHECK(a->max_seq_len == b->max_seq_len || a->arch == XLE_ARCH_BLOOM);
        CHECK(a->norm_eps == b->norm_eps && a->rope_interleaved == b->rope_interleaved);
        CHECK(a->attn_softcap == b->attn_softcap && a->final_softcap == b->final_softcap);
        CHECK_MSG(a->sliding_window == b->sliding_window, "%s: sliding_window %d vs %d", g_family,
                  a->sliding_window, b->sliding_window);
        /* GPT-2's and BLOOM's converters write the tied head out as output.weight; Gemma's has
         * none. */
        CHECK(b->tied_embeddings == (strcmp(g_family, "gpt2") != 0 && strcmp(g_family, "bloom") != 0));
        double d = logits_diff(hf, g);
        CHECK_MSG(d <= TOL_F32, "%s: F32 twin: max |logit - HF| = %g", g_family, d);
        fprintf(stderr, "     %s: F32 GGUF vs HF: max |logit diff| %.3g\n", g_family, d);
        /* The stored types: F16 and Q8_0 weights round (and Q8_0 products quantize the
         * activations too), so their logits move by that much relative to the largest logit;
         * a q/k/v row read from the wrong place would move them by the whole scale. */
        static const char *const kinds[] = {"f16", "q8_0"};
        const double scale = json_real_value(json_object_get(g_manifest, "max_abs_logit"));
        const double tol[] = {2e-3 * scale, 4e-2 * scale};
        for (int k = 0; k < 2; k++) {
            if (access(twin(kinds[k], gp, sizeof gp), F_OK) != 0) continue; /* BLOOM: no F16 twin */
            xle_model *q = load(gp);
            if (!q) continue;
            double dq = logits_diff(hf, q);
            CHECK_MSG(dq <= tol[k] && dq > 0, "%s: %s twin: max |logit - HF| = %g", g_family, kinds[k], dq);
            fprintf(stderr, "     %s: %s GGUF vs HF: max |logit diff| %.3g\n", g_family, kinds[k], dq);
            xle_model_free(q);
        }
    }
    if (hf && g && strcmp(g_family, "gemma2") == 0) {
        /* The fixture's own query_pre_attn_scalar (24, not head_dim 16) is not what GGUF says. */
        xle_model *orig = load(FIX "gemma2/hf_f32");
        if (orig) CHECK(logits_diff(orig, g) > 1e-3);
        xle_model_free(orig);
    }
    xle_model_free(hf);
    xle_model_free(g);
    rm_hf_twin();
}

/* ---- the tokenizer from GGUF metadata -------------------------------------------------- */

static void test_tokenizer(void) {
    char hp[256], gp[256];
    snprintf(hp, sizeof hp, FIX "%s/hf_f32", g_family);
    xle_model *hf = load(hp), *g = load(twin("f32", gp, sizeof gp));
    xle_tokenizer *th = hf ? xle_model_tokenizer(hf) : NULL, *tg = g ? xle_model_tokenizer(g) : NULL;
    CHECK(th && tg);
    /* Gemma: SentencePiece (GGUF "llama") merges any two pieces whose concatenation is in the
     * vocabulary; the fixture's tokenizer.json, written by hand, lists merges for BPE and lacks
     * ("▁", "on"), which a conversion from a SentencePiece model would list. So " on" parts ways
     * (checked below) and the manifest's text, which has it, is compared for GPT-2 only. */
    const int spm = strcmp(g_family, "gemma") == 0 || strcmp(g_family, "gemma2") == 0;
    const char *texts[] = {json_string_value(json_object_get(json_object_get(g_manifest, "tokenizer"), "text")),
                           "the cat sat", "hello world, 42!", "mat is", "  two  spaces", "caf\xc3\xa9 \xe2\x82\xac",
                           "the mat sat at the cat"};
    for (size_t i = spm ? 1 : 0; th && tg && i < sizeof texts / sizeof texts[0]; i++) {
        xle_tokens a = {0}, b = {0};
        xle_error err = {0};
        CHECK_OK(xle_tokenize(th, texts[i], strlen(texts[i]), 0, 0, &a, &err), &err);
        CHECK_OK(xle_tokenize(tg, texts[i], strlen(texts[i]), 0, 0, &b, &err), &err);
        int same = a.n == b.n && (a.n == 0 || memcmp(a.ids, b.ids, (size_t)a.n * sizeof *a.ids) == 0);
        CHECK_MSG(same, "%s: '%s': GGUF tokenizer gives %d ids, HF %d (or other ids)", g_family,
                  texts[i], b.n, a.n);
        if (i == 0) { /* and the reference script's ids */
            json_t *want = json_object_get(json_object_get(g_manifest, "tokenizer"), "ids");
            CHECK((size_t)b.n == json_array_size(want));
            for (int k = 0; k < b.n && k < (int)json_array_size(want); k++)
                CHECK(b.ids[k] == json_integer_value(json_array_get(want, (size_t)k)));
        }
        xle_tokens_free(&a);
        xle_tokens_free(&b);
    }
    if (spm && th && tg) {
        xle_tokens a = {0}, b = {0};
        xle_error err = {0};
        CHECK_OK(xle_tokenize(th, " on", 3, 0, 0, &a, &err), &err);
        CHECK_OK(xle_tokenize(tg, " on", 3, 0, 0, &b, &err), &err);
        CHECK_MSG(a.n == 2 && b.n == 1, "%s: ' on': HF %d ids (want ▁ on), GGUF %d (want ▁on)", g_family, a.n, b.n);
        xle_tokens_free(&a);
        xle_tokens_free(&b);
    }
    xle_model_free(hf);
    xle_model_free(g);
}

/* ---- saving ------------------------------------------------------------------------------ */

/* Every tensor of two GGUF files: same names, dims, types and bytes, in the same order. */
static int same_gguf_tensors(const char *a, const char *b) {
    xle_gguf *ga = NULL, *gb = NULL;
    xle_error err = {0};
    int same = xle_gguf_open(a, &ga, &err) == XLE_OK && xle_gguf_open(b, &gb, &err) == XLE_OK &&
               ga->n_tensors == gb->n_tensors;
    for (uint64_t i = 0; same && i < ga->n_tensors; i++) {
        const xle_gguf_tensor_info *x = &ga->tensors[i], *y = &gb->tensors[i];
        same = x->name.len == y->name.len && memcmp(x->name.ptr, y->name.ptr, x->name.len) == 0 &&
               x->ggml_type == y->ggml_type && x->nbytes == y->nbytes &&
               memcmp(x->ne, y->ne, sizeof x->ne) == 0 && memcmp(x->data, y->data, x->nbytes) == 0;
    }
    xle_gguf_close(ga);
    xle_gguf_close(gb);
    return same;
}

static void test_save(const char *kind) {
    char src[256], out[256];
    xle_model *m = load(twin(kind, src, sizeof src));
    if (!m) return;
    snprintf(out, sizeof out, "%s/%s_%s.gguf", g_tmp, g_family, kind);
    xle_error err = {0};
    CHECK_OK(xle_model_save(m, out, &err), &err);
    CHECK_MSG(same_gguf_tensors(src, out), "%s %s: an unedited save changed a tensor", g_family, kind);
    unlink(out);

    /* Edits as ROME writes them (w_down), and in the tensors the loader split or converted. */
    xle_weights *w = xle_model_weights(m);
    const xle_config *c = xle_model_config(m);
    CHECK_OK(xle_model_make_writable_f32(m, &w->layers[1].w_down, &err), &err);
    ((float *)w->layers[1].w_down.data)[3 * c->ffn_dim + 5] += 0.25f;
    if (c->arch == XLE_ARCH_GPT2 || c->arch == XLE_ARCH_BLOOM) {
        CHECK_OK(xle_model_make_writable_f32(m, &w->layers[0].wk, &err), &err);
        ((float *)w->layers[0].wk.data)[2 * c->dim + 1] -= 0.5f;
    } else {
        ((float *)w->layers[0].ffn_norm.data)[4] += 0.125f; /* the loader's f32 copy of w */
    }
    int n;
    float *want = logits_of(m, 1, &n);
    CHECK_OK(xle_model_save(m, out, &err), &err);
    xle_model *r = load(out);
    if (r) {
        float *got = logits_of(r, 1, &n);
        const size_t cnt = (size_t)n * (size_t)c->vocab_size;
        /* Q8_0 sources are stored back as the model's quant_save says: compare loosely there. */
        double d = max_abs_diff(got, want, cnt);
        if (strcmp(kind, "f32") == 0)
            CHECK_MSG(memcmp(got, want, cnt * sizeof *got) == 0, "%s %s: the saved edit reloads to "
                      "other logits (max diff %g)", g_family, kind, d);
        else
            CHECK_MSG(d <= 5e-2, "%s %s: the saved edit reloads to other logits (max diff %g)",
                      g_family, kind, d);
        free(got);
        xle_model_free(r);
    }
    free(want);
    unlink(out);
    xle_model_free(m);
}

static void test_save_f32(void) { test_save("f32"); }
static void test_save_q8_0(void) { test_save("q8_0"); }

/* ---- bad metadata ------------------------------------------------------------------------- */

typedef enum { EDIT_NONE, EDIT_REMOVE, EDIT_STRING, EDIT_F32 } kv_edit;

/* Copies a fixture with one KV changed (and tensor `drop` resized to one row less, if named),
 * loads it and checks the one-line error names the file and `want`. */
static void bad_gguf(const char *family, kv_edit how, const char *key, const char *sval, float fval,
                     const char *shrink, const char *want) {
    char src[256], out[256];
    snprintf(src, sizeof src, FIX "%s/gguf_f32.gguf", family);
    snprintf(out, sizeof out, "%s/bad.gguf", g_tmp);
    xle_gguf *g = NULL;
    xle_gguf_writer *w = NULL;
    xle_error err = {0};
    CHECK_OK(xle_gguf_open(src, &g, &err), &err);
    CHECK_OK(xle_gguf_writer_new(&w, &err), &err);
    if (!g || !w) goto done;
    CHECK_OK(xle_gguf_writer_copy_kvs(w, g, &err), &err);
    if (how == EDIT_REMOVE) xle_gguf_writer_remove_kv(w, key);
    if (how == EDIT_STRING) CHECK_OK(xle_gguf_writer_set_string(w, key, sval, &err), &err);
    if (how == EDIT_F32) CHECK_OK(xle_gguf_writer_set_f32(w, key, fval, &err), &err);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const xle_gguf_tensor_info *ti = &g->tensors[i];
        int64_t ne[4] = {ti->ne[0], ti->ne[1], ti->ne[2], ti->ne[3]};
        if (shrink && xle_gguf_str_eq(ti->name, shrink)) ne[ti->n_dims - 1] -= 1;
        CHECK_OK(xle_gguf_writer_add_tensor(w, ti->name.ptr, (size_t)ti->name.len, ti->n_dims, ne,
                                            ti->ggml_type, ti->data, &err), &err);
    }
    CHECK_OK(xle_gguf_writer_write(w, out, &err), &err);
    xle_model *m = NULL;
    xle_error lerr = {0};
    xle_status st = xle_model_load(out, &m, &lerr);
    CHECK_MSG(st != XLE_OK && m == NULL, "%s: %s: loaded", family, want);
    CHECK_MSG(strstr(lerr.msg, out) && strstr(lerr.msg, want) && !strchr(lerr.msg, '\n'),
              "%s: message '%s' should name %s and %s", family, lerr.msg, out, want);
    xle_model_free(m);
done:
    xle_gguf_writer_free(w);
    xle_gguf_close(g);
    unlink(out);
}

static void test_bad_metadata(void) {
    bad_gguf("gpt2", EDIT_REMOVE, "gpt2.attention.layer_norm_epsilon", NULL, 0, NULL,
             "gpt2.attention.layer_norm_epsilon: missing");
    bad_gguf("gpt2", EDIT_REMOVE, "gpt2.context_length", NULL, 0, NULL, "gpt2.context_length: missing");
    bad_gguf("gpt2", EDIT_NONE, NULL, NULL, 0, "blk.1.attn_qkv.weight", "blk.1.attn_qkv.weight: shape");
    bad_gguf("gpt2", EDIT_NONE, NULL, NULL, 0, "blk.0.attn_qkv.bias", "blk.0.attn_qkv.bias: shape");
    bad_gguf("gpt2", EDIT_NONE, NULL, NULL, 0, "position_embd.weight", "position_embd.weight: shape");
    bad_gguf("gemma", EDIT_REMOVE, "gemma.attention.layer_norm_rms_epsilon", NULL, 0, NULL,
             "gemma.attention.layer_norm_rms_epsilon: missing");
    bad_gguf("gemma2", EDIT_F32, "gemma2.attn_logit_softcapping", NULL, -2.0f, NULL,
             "gemma2.attn_logit_softcapping: negative");
    bad_gguf("gemma2", EDIT_STRING, "gemma2.final_logit_softcapping", "thirty", 0, NULL,
             "gemma2.final_logit_softcapping: not a number");
    bad_gguf("gemma2", EDIT_NONE, NULL, NULL, 0, "blk.0.post_ffw_norm.weight", "blk.0.post_ffw_norm.weight: shape");
    bad_gguf("gpt2", EDIT_STRING, "general.architecture", "gptj", 0, NULL, "'gptj': llama.cpp defines no GPT-J");
    bad_gguf("bloom", EDIT_REMOVE, "bloom.attention.layer_norm_epsilon", NULL, 0, NULL,
             "bloom.attention.layer_norm_epsilon: missing");
    bad_gguf("bloom", EDIT_NONE, NULL, NULL, 0, "token_embd_norm.bias", "token_embd_norm.bias: shape");
    bad_gguf("bloom", EDIT_NONE, NULL, NULL, 0, "blk.1.attn_qkv.weight", "blk.1.attn_qkv.weight: shape");
    bad_gguf("gemma", EDIT_STRING, "general.architecture", "falcon", 0, NULL,
             "general.architecture: 'falcon' is not supported");
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/xle_test_families_gguf_%d", (int)getpid());
    mkdir(g_tmp, 0755);
    static const char *const families[] = {"gpt2", "gemma", "gemma2", "bloom"};
    for (int i = 0; i < 4; i++) {
        if (!family_fix_load(&g_fix, families[i], "test_families_gguf")) return 1;
        g_family = g_fix.name;
        g_manifest = g_fix.manifest;
        RUN(test_logits);
        RUN(test_tokenizer);
        RUN(test_save_f32);
        RUN(test_save_q8_0);
        family_fix_free(&g_fix);
    }
    RUN(test_bad_metadata);
    rmdir(g_tmp);
    return check_summary();
}
