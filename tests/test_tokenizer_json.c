/*
 * test_tokenizer_json.c: Hugging Face tokenizer.json layouts built here from vocabularies whose
 * ids are known good, then loaded and compared id for id with the original path:
 *  - Llama-2 layout, legacy (normalizer Prepend + Replace) and Metaspace (prepend_scheme
 *    "first"), from llama.cpp's llama-spm GGUF, with merges made the way transformers'
 *    LlamaConverter makes them from SentencePiece scores;
 *  - GPT-2 layout (ByteLevel pre-tokenizer with its regex) from the gpt-2 GGUF's tokens and merges;
 *  - Llama-3 layout (Split regex + ByteLevel without regex, ignore_merges) from Meta's tiktoken
 *    ranks, with merges recovered the way transformers' TikTokenConverter does.
 * Texts: llama.cpp's vectors of the family and the 411 multilingual sentences.
 */
#include <jansson.h>
#include <unistd.h>

#include "check.h"
#include "tok_util.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer_internal.h"

#define VOCAB_DIR XLE_SHARED_DIR "/data/external/llamacpp-vocab/"
#define FIXTURES XLE_SOURCE_DIR "/tests/fixtures/tokenizer/"

static char tmpdir[] = "/tmp/xle_tokjson_XXXXXX";

/* ---- texts ---------------------------------------------------------------------------- */

typedef struct texts {
    char *bufs[16];
    int n_bufs;
    const char *s[1024];
    size_t len[1024];
    int n;
} texts;

static void add_vectors(texts *t, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf.inp", name);
    char *buf = tok_read_file(path, NULL);
    CHECK(buf != NULL);
    if (!buf) return;
    t->bufs[t->n_bufs++] = buf;
    static const char sep[] = "\n__ggml_vocab_test__\n";
    for (char *p = buf, *e; (e = strstr(p, sep)) && t->n < 1024; p = e + strlen(sep)) {
        t->s[t->n] = p;
        t->len[t->n++] = (size_t)(e - p);
    }
}

static void add_sentences(texts *t) {
    static const char *const langs[] = {"en", "de", "fr", "it", "es", "hi", "ta", "kn"};
    for (int l = 0; l < 8; l++) {
        char path[1024];
        snprintf(path, sizeof path, FIXTURES "sentences_%s.txt", langs[l]);
        char *buf = tok_read_file(path, NULL);
        CHECK(buf != NULL);
        if (!buf) continue;
        t->bufs[t->n_bufs++] = buf;
        for (char *p = buf, *nl; *p && t->n < 1024; p = nl + 1) {
            nl = strchr(p, '\n');
            if (!nl) nl = p + strlen(p);
            t->s[t->n] = p;
            t->len[t->n++] = (size_t)(nl - p);
            if (!*nl) break;
        }
    }
}

static void free_texts(texts *t) {
    for (int i = 0; i < t->n_bufs; i++) free(t->bufs[i]);
}

/* Every text gives the same ids and offsets with a and b; returns how many did. */
static int compare(const char *label, const xle_tokenizer *a, const xle_tokenizer *b, const texts *t) {
    int same_n = 0;
    for (int i = 0; i < t->n; i++) {
        xle_tokens x, y;
        xle_error err = {0};
        CHECK_OK(xle_tokenize(a, t->s[i], t->len[i], -1, 0, &x, &err), &err);
        CHECK_OK(xle_tokenize(b, t->s[i], t->len[i], -1, 0, &y, &err), &err);
        int same = x.n == y.n;
        for (int k = 0; same && k < x.n; k++)
            same = x.ids[k] == y.ids[k] && x.offsets[k] == y.offsets[k] && x.lengths[k] == y.lengths[k];
        if (same) same_n++;
        else CHECK_MSG(0, "%s: text %d '%.*s' differs", label, i, (int)t->len[i], t->s[i]);
        xle_tokens_free(&x);
        xle_tokens_free(&y);
    }
    printf("%-28s %d/%d texts give the same ids and offsets\n", label, same_n, t->n);
    return same_n;
}

/* ---- json writers ------------------------------------------------------------------------ */

static json_t *added_token(int id, const char *content, int special) {
    return json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", id, "content", content, "single_word", 0,
                     "lstrip", 0, "rstrip", 0, "normalized", !special, "special", special);
}

static json_t *template_with(const char *name, int id) {
    return json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}", "type",
                     "TemplateProcessing", "single", "SpecialToken", "id", name, "type_id", 0, "Sequence", "id", "A",
                     "type_id", 0, "special_tokens", name, "id", name, "ids", id, "tokens", name);
}

static const char *write_json(json_t *root, const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    CHECK(json_dump_file(root, path, JSON_COMPACT) == 0);
    json_decref(root);
    return path;
}

typedef struct id_pair {
    int32_t l, r;
    int32_t order; /* merged token's position in score order */
} id_pair;

static int pair_cmp(const void *a, const void *b) {
    const id_pair *x = a, *y = b;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

typedef struct scored_id {
    float score;
    int32_t id;
} scored_id;

static int by_score_desc(const void *a, const void *b) {
    const scored_id *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* transformers' SentencePieceExtractor: every split of a piece into two pieces is a merge, the
 * merges ordered by the merged piece's score (descending, stable), then by the parts' ids. */
static json_t *spm_merges(const xle_tokenizer *tok) {
    int n = tok->n_vocab;
    xle_strmap all;
    CHECK(xle_strmap_init(&all, (uint32_t)n) == 0);
    for (int i = 0; i < n; i++) xle_strmap_put(&all, tok->strings + tok->entries[i].piece, tok->entries[i].piece_len, i, NULL);
    scored_id *order = malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = (scored_id){tok->entries[i].score, i};
    qsort(order, (size_t)n, sizeof *order, by_score_desc);
    size_t cap = 1 << 16, np = 0;
    id_pair *pairs = malloc(cap * sizeof *pairs);
    for (int o = 0; o < n; o++) {
        const xle_tok_entry *e = &tok->entries[order[o].id];
        const char *p = tok->strings + e->piece;
        for (uint32_t k = 1; k < e->piece_len; k++) {
            if (((uint8_t)p[k] & 0xc0) == 0x80) continue; /* split only between characters */
            int32_t l = xle_strmap_get(&all, p, k), r = xle_strmap_get(&all, p + k, e->piece_len - k);
            if (l < 0 || r < 0) continue;
            if (np == cap) pairs = realloc(pairs, (cap *= 2) * sizeof *pairs);
            pairs[np++] = (id_pair){l, r, o};
        }
    }
    qsort(pairs, np, sizeof *pairs, pair_cmp);
    json_t *merges = json_array();
    for (size_t i = 0; i < np; i++)
        json_array_append_new(merges, json_pack("[s,s]", tok->strings + tok->entries[pairs[i].l].piece,
                                                tok->strings + tok->entries[pairs[i].r].piece));
    free(pairs);
    free(order);
    xle_strmap_free(&all);
    return merges;
}

static json_t *vocab_object(const xle_tokenizer *tok, int n) {
    json_t *v = json_object();
    for (int i = 0; i < n; i++) json_object_set_new(v, tok->strings + tok->entries[i].piece, json_integer(i));
    return v;
}

/* The Llama-2 layout; metaspace 0: legacy normalizer, 1: Metaspace pre-tokenizer. */
static const char *write_llama2_json(const xle_tokenizer *tok, int metaspace, const char *name) {
    json_t *added = json_array();
    json_array_append_new(added, added_token(0, "<unk>", 1));
    json_array_append_new(added, added_token(1, "<s>", 1));
    json_array_append_new(added, added_token(2, "</s>", 1));
    json_t *normalizer = metaspace ? json_null()
        : json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}", "type", "Sequence", "normalizers", "type", "Prepend",
                    "prepend", "\xe2\x96\x81", "type", "Replace", "pattern", "String", " ", "content", "\xe2\x96\x81");
    json_t *pretok = !metaspace ? json_null()
        : json_pack("{s:s, s:s, s:s, s:b}", "type", "Metaspace", "replacement", "\xe2\x96\x81", "prepend_scheme", "first",
                    "split", 0);
    json_t *model = json_pack("{s:s, s:n, s:s, s:n, s:n, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout", "unk_token",
                              "<unk>", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", 1, "byte_fallback",
                              1, "ignore_merges", 0, "vocab", vocab_object(tok, tok->n_vocab), "merges", spm_merges(tok));
    json_t *decoder = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s}, {s:s}, {s:s}, {s:s, s:s, s:i, s:i}]}", "type", "Sequence",
                                "decoders", "type", "Replace", "pattern", "String", "\xe2\x96\x81", "content", " ", "type",
                                "ByteFallback", "type", "Fuse", "type", "Strip", "content", " ", "start", 1, "stop", 0);
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:o, s:o, s:o, s:o, s:o}", "version", "1.0", "truncation", "padding",
                             "added_tokens", added, "normalizer", normalizer, "pre_tokenizer", pretok, "post_processor",
                             template_with("<s>", 1), "decoder", decoder, "model", model);
    return write_json(root, name);
}

static void test_llama2_layouts(void) {
    xle_tokenizer *gguf = NULL, *legacy = NULL, *meta = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(VOCAB_DIR "ggml-vocab-llama-spm.gguf", &gguf, &err), &err);
    if (!gguf) return;
    const char *p = write_llama2_json(gguf, 0, "llama2-legacy.json");
    CHECK_OK(xle_tokenizer_load(p, &legacy, &err), &err);
    p = write_llama2_json(gguf, 1, "llama2-metaspace.json");
    CHECK_OK(xle_tokenizer_load(p, &meta, &err), &err);
    texts t = {0};
    add_vectors(&t, "llama-spm");
    add_sentences(&t);
    if (legacy) {
        CHECK(xle_tokenizer_bos_id(legacy) == 1 && xle_tokenizer_eos_id(legacy) == 2 && xle_tokenizer_adds_bos(legacy));
        CHECK(compare("llama2 json (legacy)", gguf, legacy, &t) == t.n);
    }
    if (meta) CHECK(compare("llama2 json (Metaspace)", gguf, meta, &t) == t.n);
    /* after a special token the legacy normalizer prepends "▁" again, Metaspace "first" does not */
    if (legacy && meta) {
        const char s[] = "<s>Hello";
        xle_tokens a, b;
        CHECK_OK(xle_tokenize(legacy, s, strlen(s), 0, 1, &a, &err), &err);
        CHECK_OK(xle_tokenize(meta, s, strlen(s), 0, 1, &b, &err), &err);
        CHECK(a.n >= 2 && a.ids[0] == 1 && !strcmp(xle_tokenizer_piece(legacy, a.ids[1]), "\xe2\x96\x81Hello"));
        CHECK(b.n >= 2 && b.ids[0] == 1 && strncmp(xle_tokenizer_piece(meta, b.ids[1]), "\xe2\x96\x81", 3) != 0);
        CHECK(tok_offsets_tile(&a, strlen(s)) && tok_offsets_tile(&b, strlen(s)));
        xle_tokens_free(&a);
        xle_tokens_free(&b);
    }
    free_texts(&t);
    xle_tokenizer_free(gguf);
    xle_tokenizer_free(legacy);
    xle_tokenizer_free(meta);
}

/* GPT-2 layout from the gpt-2 GGUF's own tokens and merges. */
static void test_gpt2_layout(void) {
    xle_gguf *g = NULL;
    xle_tokenizer *gguf = NULL, *js = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(VOCAB_DIR "ggml-vocab-gpt-2.gguf", &gguf, &err), &err);
    CHECK_OK(xle_gguf_open(VOCAB_DIR "ggml-vocab-gpt-2.gguf", &g, &err), &err);
    if (!gguf || !g) {
        xle_tokenizer_free(gguf);
        xle_gguf_close(g);
        return;
    }
    const xle_gguf_kv *mk = xle_gguf_find(g, "tokenizer.ggml.merges");
    json_t *merges = json_array();
    for (uint64_t i = 0; mk && i < mk->arr_count; i++)
        json_array_append_new(merges, json_stringn(mk->arr_strs[i].ptr, mk->arr_strs[i].len));
    json_t *model = json_pack("{s:s, s:o, s:o}", "type", "BPE", "vocab", vocab_object(gguf, 50256), "merges", merges);
    json_t *added = json_array();
    json_array_append_new(added, added_token(50256, "<|endoftext|>", 1));
    json_t *root = json_pack("{s:o, s:n, s:{s:s, s:b, s:b, s:b}, s:{s:s}, s:o}", "added_tokens", added, "normalizer",
                             "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 1,
                             "decoder", "type", "ByteLevel", "model", model);
    CHECK_OK(xle_tokenizer_load(write_json(root, "gpt2.json"), &js, &err), &err);
    if (js) {
        CHECK(xle_tokenizer_vocab_size(js) == 50257 && !xle_tokenizer_adds_bos(js));
        texts t = {0};
        add_vectors(&t, "gpt-2");
        add_sentences(&t);
        CHECK(compare("gpt-2 json (ByteLevel)", gguf, js, &t) == t.n);
        free_texts(&t);
    }
    xle_gguf_close(g);
    xle_tokenizer_free(gguf);
    xle_tokenizer_free(js);
}

/* transformers' TikTokenConverter: every split of a token into two tokens whose ranks are both
 * lower is a merge, merges ordered by the merged token's rank, then by the parts' ranks. */
static json_t *tiktoken_merges(const xle_tokenizer *tok, int n_ranks) {
    size_t cap = 1 << 18, np = 0;
    id_pair *pairs = malloc(cap * sizeof *pairs);
    for (int id = 0; id < n_ranks; id++) {
        const xle_tok_entry *e = &tok->entries[id];
        const char *s = tok->strings + e->bytes;
        for (uint32_t k = 1; k < e->bytes_len; k++) {
            int32_t l = xle_strmap_get(&tok->bytes_to_id, s, k), r = xle_strmap_get(&tok->bytes_to_id, s + k, e->bytes_len - k);
            if (l < 0 || r < 0 || l >= id || r >= id) continue;
            if (np == cap) pairs = realloc(pairs, (cap *= 2) * sizeof *pairs);
            pairs[np++] = (id_pair){l, r, id};
        }
    }
    qsort(pairs, np, sizeof *pairs, pair_cmp);
    json_t *merges = json_array();
    for (size_t i = 0; i < np; i++)
        json_array_append_new(merges, json_pack("[s,s]", tok->strings + tok->entries[pairs[i].l].piece,
                                                tok->strings + tok->entries[pairs[i].r].piece));
    free(pairs);
    return merges;
}

static void test_llama3_layout(void) {
    xle_tokenizer *tk = NULL, *js = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(XLE_SHARED_DIR "/data/external/llama3-tokenizer/tokenizer.model", &tk, &err), &err);
    if (!tk) return;
    const int n_ranks = 128000;
    json_t *added = json_array();
    for (int i = n_ranks; i < tk->n_vocab; i++) json_array_append_new(added, added_token(i, xle_tokenizer_piece(tk, i), 1));
    static const char re[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    json_t *pretok = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]}", "type", "Sequence",
                               "pretokenizers", "type", "Split", "pattern", "Regex", re, "behavior", "Isolated", "invert", 0,
                               "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0);
    json_t *model = json_pack("{s:s, s:b, s:b, s:o, s:o}", "type", "BPE", "ignore_merges", 1, "byte_fallback", 0, "vocab",
                              vocab_object(tk, n_ranks), "merges", tiktoken_merges(tk, n_ranks));
    json_t *post = json_pack("{s:s, s:[{s:s, s:b}, o]}", "type", "Sequence", "processors", "type", "ByteLevel",
                             "trim_offsets", 0, template_with("<|begin_of_text|>", 128000));
    json_t *root = json_pack("{s:o, s:n, s:o, s:o, s:{s:s}, s:o}", "added_tokens", added, "normalizer", "pre_tokenizer",
                             pretok, "post_processor", post, "decoder", "type", "ByteLevel", "model", model);
    CHECK_OK(xle_tokenizer_load(write_json(root, "llama3.json"), &js, &err), &err);
    if (js) {
        CHECK(xle_tokenizer_vocab_size(js) == 128256 && xle_tokenizer_bos_id(js) == 128000 && xle_tokenizer_adds_bos(js));
        texts t = {0};
        add_vectors(&t, "llama-bpe");
        add_sentences(&t);
        CHECK(compare("llama-3 json (Split regex)", tk, js, &t) == t.n);
        free_texts(&t);
        /* specials are matched only with parse_special */
        const char s[] = "<|begin_of_text|>Hi<|eot_id|>";
        xle_tokens a, b;
        CHECK_OK(xle_tokenize(js, s, strlen(s), 0, 1, &a, &err), &err);
        CHECK_OK(xle_tokenize(js, s, strlen(s), 0, 0, &b, &err), &err);
        CHECK(a.n == 3 && a.ids[0] == 128000 && a.ids[2] == 128009);
        CHECK(b.n > 3 && tok_offsets_tile(&a, strlen(s)) && tok_offsets_tile(&b, strlen(s)));
        xle_tokens_free(&a);
        xle_tokens_free(&b);
    }
    xle_tokenizer_free(tk);
    xle_tokenizer_free(js);
}

/* An in-memory byte-fallback vocabulary, as a trainer would build one: merges by rank. */
static void test_builder_api(void) {
    xle_tok_builder *b;
    xle_error err = {0};
    CHECK_OK(xle_tok_builder_new(XLE_TOK_SPM, "trainer", &b, &err), &err);
    b->spm_rank_merges = 1;
    CHECK_OK(xle_tok_builder_add(b, "<unk>", 5, 0, XLE_TOKTYPE_UNKNOWN, &err), &err);
    CHECK_OK(xle_tok_builder_add(b, "<s>", 3, 0, XLE_TOKTYPE_CONTROL, &err), &err);
    CHECK_OK(xle_tok_builder_add(b, "</s>", 4, 0, XLE_TOKTYPE_CONTROL, &err), &err);
    for (int v = 0; v < 256; v++) {
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", v);
        CHECK_OK(xle_tok_builder_add(b, p, 6, 0, XLE_TOKTYPE_BYTE, &err), &err);
    }
    static const char *const pieces[] = {"\xe2\x96\x81", "a", "b", "c", "ab", "bc", "abc", "\xe2\x96\x81" "ab"};
    for (int i = 0; i < 8; i++) CHECK_OK(xle_tok_builder_add(b, pieces[i], strlen(pieces[i]), 0, 1, &err), &err);
    /* ranks: a+b, b+c, ▁+ab; there is no rule giving "abc" from "ab" + "c" */
    CHECK_OK(xle_tok_builder_add_merge(b, "a", 1, "b", 1, &err), &err);
    CHECK_OK(xle_tok_builder_add_merge(b, "b", 1, "c", 1, &err), &err);
    CHECK_OK(xle_tok_builder_add_merge(b, "\xe2\x96\x81", 3, "ab", 2, &err), &err);
    b->bos_id = 1, b->eos_id = 2, b->unk_id = 0, b->add_bos = 1;
    xle_tokenizer *tok = NULL;
    CHECK_OK(xle_tok_builder_finish(b, &tok, &err), &err);
    if (!tok) return;
    const char text[] = "abc é";
    xle_tokens t;
    CHECK_OK(xle_tokenize(tok, text, strlen(text), -1, 0, &t, &err), &err);
    /* <s> ▁ab c ▁ <0xC3> <0xA9>: "ab" merges first (rank 0), "abc" is never made */
    int32_t want[] = {1, 259 + 7, 259 + 3, 259 + 0, 3 + 0xC3, 3 + 0xA9};
    CHECK(t.n == 6);
    for (int i = 0; i < t.n && i < 6; i++) CHECK_MSG(t.ids[i] == want[i], "token %d: %d, want %d", i, t.ids[i], want[i]);
    CHECK(tok_offsets_tile(&t, strlen(text)));
    char *dec = xle_detokenize(tok, t.ids, t.n, 1);
    CHECK(dec && !strcmp(dec, text));
    free(dec);
    xle_tokens_free(&t);
    xle_tokenizer_free(tok);
}

/* A piece that continues into a "▁" run ("a▁b") turns off word-by-word encoding: the merges
 * must still reach it. Llama-2's vocabulary has no such piece and is encoded word by word. */
static void test_word_split_guard(void) {
    xle_tok_builder *b;
    xle_error err = {0};
    CHECK_OK(xle_tok_builder_new(XLE_TOK_SPM, "crossing", &b, &err), &err);
    static const char *const pieces[] = {"<unk>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a",
                                         "\xe2\x96\x81" "a" "\xe2\x96\x81", "\xe2\x96\x81" "a" "\xe2\x96\x81" "b"};
    for (int i = 0; i < 7; i++)
        CHECK_OK(xle_tok_builder_add(b, pieces[i], strlen(pieces[i]), (float)-i, i ? XLE_TOKTYPE_NORMAL : XLE_TOKTYPE_UNKNOWN, &err), &err);
    b->unk_id = 0;
    xle_tokenizer *tok = NULL;
    CHECK_OK(xle_tok_builder_finish(b, &tok, &err), &err);
    if (!tok) return;
    CHECK(!tok->spm_word_split);
    xle_tokens t;
    CHECK_OK(xle_tokenize(tok, "a b", 3, 0, 0, &t, &err), &err);
    CHECK(t.n == 1 && t.ids[0] == 6 && t.offsets[0] == 0 && t.lengths[0] == 3);
    xle_tokens_free(&t);
    xle_tokenizer_free(tok);
    CHECK_OK(xle_tokenizer_load(VOCAB_DIR "ggml-vocab-llama-spm.gguf", &tok, &err), &err);
    if (tok) CHECK(tok->spm_word_split);
    xle_tokenizer_free(tok);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_llama2_layouts);
    RUN(test_gpt2_layout);
    RUN(test_llama3_layout);
    RUN(test_builder_api);
    RUN(test_word_split_guard);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
