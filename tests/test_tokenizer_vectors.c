/*
 * test_tokenizer_vectors.c: llama.cpp's tokenizer test vectors (shared/data/external/
 * llamacpp-vocab, made by llama.cpp c392e509 with add_special=false, parse_special=false) for
 * every GGUF vocabulary there, for Llama-3 (llama-bpe) with Meta's tiktoken file and for Qwen2
 * with qwen.tiktoken, and multilingual_ids.json (llama.cpp and llama2.c run.c ids for 13
 * sentences). Every vector must give the listed ids, offsets that tile the input, and decode
 * back to the input. Prints the pass count per vocabulary. Also 347 edge cases and random
 * strings with ids from an independent Python implementation of tiktoken's algorithm
 * (tests/reference/make_bytelevel_fixtures.py, `regex` module) for Llama-3 and Qwen2.
 */
#include <jansson.h>

#include "check.h"
#include "tok_util.h"

#define VOCAB_DIR XLE_SHARED_DIR "/data/external/llamacpp-vocab/"

/* One vocabulary's .inp/.out pair against tok; returns the number of failing cases. */
static int run_vectors(const char *name, const xle_tokenizer *tok, int check_roundtrip) {
    char path[1024];
    snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf.inp", name);
    size_t ilen, olen;
    char *inp = tok_read_file(path, &ilen);
    snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf.out", name);
    char *outp = tok_read_file(path, &olen);
    CHECK_MSG(inp && outp, "%s: cannot read the .inp/.out files", name);
    if (!inp || !outp) {
        free(inp), free(outp);
        return 1;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int total = 0, passed = 0, offsets_ok = 0, roundtrip_ok = 0;
    char *ip = inp, *op = outp;
    for (;;) {
        char *end = strstr(ip, sep);
        char *oend = strchr(op, '\n');
        if (!end || !oend) break;
        size_t len = (size_t)(end - ip);
        int want[512], nw = 0;
        for (char *q = op; q < oend && nw < 512;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) break;
            want[nw++] = (int)v;
            q = e;
        }
        xle_tokens t;
        xle_error err = {0};
        total++;
        if (xle_tokenize(tok, ip, len, 0, 0, &t, &err) != XLE_OK) {
            CHECK_MSG(0, "%s case %d: %s", name, total, err.msg);
        } else {
            int same = t.n == nw;
            for (int i = 0; same && i < nw; i++) same = t.ids[i] == want[i];
            if (same) passed++;
            else {
                fprintf(stderr, "%s case %d '%.*s': got", name, total, (int)len, ip);
                for (int i = 0; i < t.n; i++) fprintf(stderr, " %d", t.ids[i]);
                fprintf(stderr, "\n   want");
                for (int i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
                fprintf(stderr, "\n");
            }
            if (tok_offsets_tile(&t, len)) offsets_ok++;
            else CHECK_MSG(0, "%s case %d: offsets do not tile the input", name, total);
            char *dec = xle_detokenize(tok, t.ids, t.n, 0);
            int rt = dec && strlen(dec) == len && memcmp(dec, ip, len) == 0;
            if (rt) roundtrip_ok++;
            else if (check_roundtrip) CHECK_MSG(0, "%s case %d: decode gives '%s'", name, total, dec ? dec : "(null)");
            free(dec);
            xle_tokens_free(&t);
        }
        ip = end + strlen(sep);
        op = oend + 1;
    }
    printf("vocab %-15s %2d/%2d ids equal, %2d/%2d offsets tile, %2d/%2d decode to the input\n", name, passed,
           total, offsets_ok, total, roundtrip_ok, total);
    CHECK_MSG(total >= 40 && passed == total, "%s: %d of %d vectors pass", name, passed, total);
    free(inp);
    free(outp);
    return total - passed;
}

static void test_gguf_vocabs(void) {
    /* the vocabularies that come with test vectors */
    static const char *const names[] = {"llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "starcoder",
                                        "refact", "deepseek-coder", "deepseek-llm"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf", names[i]);
        xle_tokenizer *tok = NULL;
        xle_error err = {0};
        CHECK_OK(xle_tokenizer_load(path, &tok, &err), &err);
        if (!tok) continue;
        run_vectors(names[i], tok, 1);
        xle_tokenizer_free(tok);
    }
}

static void test_vocabs_without_vectors_load(void) {
    static const char *const names[] = {"baichuan", "gpt-neox"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, VOCAB_DIR "ggml-vocab-%s.gguf", names[i]);
        xle_tokenizer *tok = NULL;
        xle_error err = {0};
        CHECK_OK(xle_tokenizer_load(path, &tok, &err), &err);
        if (!tok) continue;
        const char text[] = "Hello world, 123!";
        xle_tokens t;
        CHECK_OK(xle_tokenize(tok, text, strlen(text), 0, 0, &t, &err), &err);
        CHECK(tok_offsets_tile(&t, strlen(text)));
        char *dec = xle_detokenize(tok, t.ids, t.n, 1);
        CHECK_MSG(dec && !strcmp(dec, text), "%s: decode gives '%s'", names[i], dec ? dec : "");
        free(dec);
        xle_tokens_free(&t);
        xle_tokenizer_free(tok);
    }
}

static void test_llama3_tiktoken(void) {
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(XLE_SHARED_DIR "/data/external/llama3-tokenizer/tokenizer.model", &tok, &err), &err);
    if (!tok) return;
    CHECK(xle_tokenizer_vocab_size(tok) == 128256);
    CHECK(xle_tokenizer_bos_id(tok) == 128000 && xle_tokenizer_adds_bos(tok));
    run_vectors("llama-bpe", tok, 1);
    xle_tokenizer_free(tok);
}

static void test_qwen2_tiktoken(void) {
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(XLE_SHARED_DIR "/data/external/qwen-tiktoken/qwen.tiktoken", &tok, &err), &err);
    if (!tok) return;
    CHECK(xle_tokenizer_vocab_size(tok) == 151646);
    CHECK(xle_tokenizer_bos_id(tok) == -1 && !xle_tokenizer_adds_bos(tok));
    CHECK(xle_tokenizer_eos_id(tok) == 151643);
    /* NFC may change a vector's text, so decoding need not give the input back */
    run_vectors("qwen2", tok, 0);
    xle_tokenizer_free(tok);
}

static void test_multilingual_ids(void) {
    json_error_t jerr;
    json_t *root = json_load_file(VOCAB_DIR "multilingual_ids.json", 0, &jerr);
    CHECK_MSG(root && json_is_array(root), "multilingual_ids.json: %s", jerr.text);
    if (!root) return;
    static const char *const keys[] = {"llama-spm", "gpt-2", "phi-3", "runc_llama2"};
    xle_tokenizer *toks[4] = {0};
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(VOCAB_DIR "ggml-vocab-llama-spm.gguf", &toks[0], &err), &err);
    CHECK_OK(xle_tokenizer_load(VOCAB_DIR "ggml-vocab-gpt-2.gguf", &toks[1], &err), &err);
    CHECK_OK(xle_tokenizer_load(VOCAB_DIR "ggml-vocab-phi-3.gguf", &toks[2], &err), &err);
    CHECK_OK(xle_tokenizer_load_llama2c(XLE_SHARED_DIR "/data/external/llama2-tokenizer/tokenizer.bin", 32000,
                                        &toks[3], &err), &err);
    int passed[4] = {0}, total[4] = {0};
    size_t n = json_array_size(root);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(root, i);
        const char *text = json_string_value(json_object_get(e, "text"));
        if (!text) continue;
        for (int k = 0; k < 4; k++) {
            json_t *ids = json_object_get(e, keys[k]);
            if (!toks[k] || !json_is_array(ids)) continue;
            total[k]++;
            xle_tokens t;
            if (xle_tokenize(toks[k], text, strlen(text), 0, 0, &t, &err) != XLE_OK) {
                CHECK_MSG(0, "%s: %s", keys[k], err.msg);
                continue;
            }
            int same = (size_t)t.n == json_array_size(ids);
            for (int j = 0; same && j < t.n; j++) same = t.ids[j] == json_integer_value(json_array_get(ids, (size_t)j));
            if (same) passed[k]++;
            else CHECK_MSG(0, "%s: sentence %zu '%s' differs", keys[k], i, text);
            CHECK_MSG(tok_offsets_tile(&t, strlen(text)), "%s: sentence %zu: offsets", keys[k], i);
            char *dec = xle_detokenize(toks[k], t.ids, t.n, 0);
            CHECK_MSG(dec && !strcmp(dec, text), "%s: sentence %zu: decode gives '%s'", keys[k], i, dec ? dec : "");
            free(dec);
            xle_tokens_free(&t);
        }
    }
    for (int k = 0; k < 4; k++) {
        printf("multilingual_ids %-12s %2d/%2d\n", keys[k], passed[k], total[k]);
        CHECK(total[k] == 13 && passed[k] == total[k]);
        xle_tokenizer_free(toks[k]);
    }
    json_decref(root);
}

static void test_bytelevel_reference(void) {
    json_error_t jerr;
    json_t *root = json_load_file(XLE_SOURCE_DIR "/tests/fixtures/tokenizer/bytelevel_ids.json", 0, &jerr);
    CHECK_MSG(json_is_array(root), "bytelevel_ids.json: %s", jerr.text);
    if (!root) return;
    static const char *const keys[2] = {"llama3", "qwen2"};
    static const char *const paths[2] = {XLE_SHARED_DIR "/data/external/llama3-tokenizer/tokenizer.model",
                                         XLE_SHARED_DIR "/data/external/qwen-tiktoken/qwen.tiktoken"};
    for (int k = 0; k < 2; k++) {
        xle_tokenizer *tok = NULL;
        xle_error err = {0};
        CHECK_OK(xle_tokenizer_load(paths[k], &tok, &err), &err);
        if (!tok) continue;
        int passed = 0, total = 0;
        for (size_t i = 0; i < json_array_size(root); i++) {
            json_t *c = json_array_get(root, i), *ids = json_object_get(c, keys[k]);
            const char *text = json_string_value(json_object_get(c, "text"));
            size_t len = json_string_length(json_object_get(c, "text"));
            if (!text || !json_is_array(ids)) continue;
            total++;
            xle_tokens t;
            CHECK_OK(xle_tokenize(tok, text, len, 0, 0, &t, &err), &err);
            int same = (size_t)t.n == json_array_size(ids);
            for (int j = 0; same && j < t.n; j++) same = t.ids[j] == json_integer_value(json_array_get(ids, (size_t)j));
            char *dec = xle_detokenize(tok, t.ids, t.n, 0);
            /* NFC may change Qwen2's text; Llama-3 decodes to the input byte for byte */
            int dec_ok = k == 1 || (dec && strlen(dec) == len && !memcmp(dec, text, len));
            if (same && dec_ok && tok_offsets_tile(&t, len)) passed++;
            else CHECK_MSG(0, "%s case %zu '%s': ids %s, decode %s, offsets %s", keys[k], i, text, same ? "equal" : "differ",
                           dec_ok ? "ok" : "differs", tok_offsets_tile(&t, len) ? "tile" : "broken");
            free(dec);
            xle_tokens_free(&t);
        }
        printf("byte-level reference %-7s %d/%d\n", keys[k], passed, total);
        CHECK(total >= 300 && passed == total);
        xle_tokenizer_free(tok);
    }
    json_decref(root);
}

int main(void) {
    RUN(test_gguf_vocabs);
    RUN(test_vocabs_without_vectors_load);
    RUN(test_llama3_tiktoken);
    RUN(test_qwen2_tiktoken);
    RUN(test_multilingual_ids);
    RUN(test_bytelevel_reference);
    return check_summary();
}
