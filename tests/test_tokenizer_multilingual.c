/*
 * test_tokenizer_multilingual.c: 411 sentences in en, de, fr, it, es, hi, ta, kn
 * (tests/fixtures/tokenizer/sentences_*.txt) against the ids SentencePiece itself gives with
 * the real Llama-2 tokenizer.model (tests/reference/make_tokenizer_fixtures.py). The same
 * vocabulary is loaded three ways: the SentencePiece .model protobuf, llama2.c's tokenizer.bin
 * and llama.cpp's GGUF; each must give those ids, offsets that tile the sentence, and decode
 * (whole and streaming) back to it. Prints the pass count per language and loader. Also 347
 * edge cases and seeded random strings (tests/fixtures/tokenizer/llama2_edge_ids.json) with
 * SentencePiece's ids and decoding.
 */
#include <jansson.h>

#include "check.h"
#include "tok_util.h"

#define FIXTURES XLE_SOURCE_DIR "/tests/fixtures/tokenizer/"
#define N_LANGS 8
static const char *const langs[N_LANGS] = {"en", "de", "fr", "it", "es", "hi", "ta", "kn"};

/* The sentences of one language: lines of a file read into buf. */
typedef struct sentences {
    char *buf;
    char *line[128];
    int n;
} sentences;

static int load_sentences(const char *lang, sentences *s) {
    char path[1024];
    snprintf(path, sizeof path, FIXTURES "sentences_%s.txt", lang);
    s->buf = tok_read_file(path, NULL);
    s->n = 0;
    if (!s->buf) return 0;
    for (char *p = s->buf; *p && s->n < 128;) {
        char *nl = strchr(p, '\n');
        s->line[s->n++] = p;
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    return 1;
}

/* Streams ids through the incremental decoder with a buffer of cap bytes; returns the text. */
static char *stream_decode(const xle_tokenizer *tok, const int32_t *ids, int n, size_t cap_piece) {
    xle_detok_stream *s = xle_detok_stream_new(tok);
    size_t cap = 16, len = 0;
    char *out = malloc(cap), piece[64];
    if (!s || !out) {
        xle_detok_stream_free(s);
        free(out);
        return NULL;
    }
    for (int i = 0;; i++) {
        size_t k = i < n ? xle_detok_stream_push(s, ids[i], piece, cap_piece)
                         : xle_detok_stream_flush(s, piece, cap_piece);
        if (i >= n && k == 0) break;
        /* whole UTF-8 characters only */
        if (k > 0) {
            unsigned char last = (unsigned char)piece[k - 1], first = (unsigned char)piece[0];
            CHECK(last < 0x80 || (last & 0xc0) == 0x80);
            CHECK((first & 0xc0) != 0x80);
        }
        if (len + k + 1 > cap) {
            cap = 2 * (len + k + 1);
            out = realloc(out, cap);
        }
        memcpy(out + len, piece, k);
        len += k;
    }
    out[len] = 0;
    xle_detok_stream_free(s);
    return out;
}

static void run_loader(const char *label, const xle_tokenizer *tok) {
    size_t size;
    char *tsv = tok_read_file(FIXTURES "llama2_multilingual_ids.tsv", &size);
    CHECK(tsv != NULL);
    if (!tsv) return;
    sentences sents[N_LANGS];
    for (int l = 0; l < N_LANGS; l++) CHECK(load_sentences(langs[l], &sents[l]));
    int passed[N_LANGS] = {0}, total[N_LANGS] = {0};
    for (char *line = tsv; *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char lang[8];
        int index, consumed;
        if (sscanf(line, "%7[a-z]\t%d\t%n", lang, &index, &consumed) == 2) {
            int l = 0;
            while (l < N_LANGS && strcmp(langs[l], lang)) l++;
            CHECK(l < N_LANGS && index >= 1 && index <= sents[l].n);
            if (l < N_LANGS && index >= 1 && index <= sents[l].n) {
                int32_t want[512];
                int nw = 0;
                for (char *p = line + consumed; *p && nw < 512;) {
                    char *e;
                    long v = strtol(p, &e, 10);
                    if (e == p) break;
                    want[nw++] = (int32_t)v;
                    p = e;
                }
                const char *text = sents[l].line[index - 1];
                size_t len = strlen(text);
                xle_tokens t;
                xle_error err = {0};
                total[l]++;
                CHECK_OK(xle_tokenize(tok, text, len, 0, 0, &t, &err), &err);
                int same = t.n == nw;
                for (int i = 0; same && i < nw; i++) same = t.ids[i] == want[i];
                char *dec = xle_detokenize(tok, t.ids, t.n, 1);
                char *streamed = stream_decode(tok, t.ids, t.n, 64);
                char *narrow = stream_decode(tok, t.ids, t.n, 6); /* text queues up in the stream */
                int ok = same && tok_offsets_tile(&t, len) && dec && !strcmp(dec, text) && streamed &&
                         !strcmp(streamed, text) && narrow && !strcmp(narrow, text);
                free(narrow);
                if (ok) passed[l]++;
                else CHECK_MSG(0, "%s %s:%d '%s': ids %s, offsets %s, decode '%s', streamed '%s'", label, lang, index, text,
                               same ? "equal" : "differ", tok_offsets_tile(&t, len) ? "tile" : "broken",
                               dec ? dec : "", streamed ? streamed : "");
                free(dec);
                free(streamed);
                xle_tokens_free(&t);
            }
        }
        if (!nl) break;
        line = nl + 1;
    }
    printf("%-16s", label);
    int all = 0;
    for (int l = 0; l < N_LANGS; l++) {
        printf(" %s %d/%d", langs[l], passed[l], total[l]);
        CHECK(total[l] >= 50 && passed[l] == total[l]);
        all += total[l];
        free(sents[l].buf);
    }
    printf("  (%d sentences)\n", all);
    free(tsv);
}

/* SentencePiece's ids and decoding for edge cases and random strings. */
static void run_edge_cases(const char *label, const xle_tokenizer *tok) {
    json_error_t jerr;
    json_t *root = json_load_file(FIXTURES "llama2_edge_ids.json", 0, &jerr);
    CHECK_MSG(json_is_array(root), "llama2_edge_ids.json: %s", jerr.text);
    int passed = 0, total = 0;
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *c = json_array_get(root, i), *ids = json_object_get(c, "ids");
        const char *text = json_string_value(json_object_get(c, "text"));
        const char *decoded = json_string_value(json_object_get(c, "decoded"));
        size_t len = json_string_length(json_object_get(c, "text"));
        if (!text || !decoded || !json_is_array(ids)) continue;
        total++;
        xle_tokens t;
        xle_error err = {0};
        CHECK_OK(xle_tokenize(tok, text, len, 0, 0, &t, &err), &err);
        int same = (size_t)t.n == json_array_size(ids);
        for (int k = 0; same && k < t.n; k++) same = t.ids[k] == json_integer_value(json_array_get(ids, (size_t)k));
        char *dec = xle_detokenize(tok, t.ids, t.n, 1);
        int ok = same && tok_offsets_tile(&t, len) && dec && !strcmp(dec, decoded);
        if (ok) passed++;
        else CHECK_MSG(0, "%s edge case %zu '%s': ids %s, offsets %s, decode '%s' (want '%s')", label, i, text,
                       same ? "equal" : "differ", tok_offsets_tile(&t, len) ? "tile" : "broken", dec ? dec : "", decoded);
        free(dec);
        xle_tokens_free(&t);
    }
    printf("%-16s edge cases %d/%d\n", label, passed, total);
    CHECK(total >= 300 && passed == total);
    json_decref(root);
}

static void test_sentencepiece_model(void) {
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(XLE_SHARED_DIR "/data/external/llama2-tokenizer/tokenizer.model", &tok, &err), &err);
    if (!tok) return;
    CHECK(xle_tokenizer_vocab_size(tok) == 32000);
    CHECK(xle_tokenizer_bos_id(tok) == 1 && xle_tokenizer_eos_id(tok) == 2 && xle_tokenizer_adds_bos(tok));
    run_loader("tokenizer.model", tok);
    run_edge_cases("tokenizer.model", tok);
    xle_tokenizer_free(tok);
}

static void test_llama2c_bin(void) {
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(XLE_SHARED_DIR "/data/external/llama2-tokenizer/tokenizer.bin", &tok, &err), &err);
    if (!tok) return;
    CHECK(xle_tokenizer_vocab_size(tok) == 32000);
    run_loader("tokenizer.bin", tok);
    run_edge_cases("tokenizer.bin", tok);
    xle_tokenizer_free(tok);
}

static void test_gguf_llama_spm(void) {
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(XLE_SHARED_DIR "/data/external/llamacpp-vocab/ggml-vocab-llama-spm.gguf", &tok, &err),
             &err);
    if (!tok) return;
    run_loader("llama-spm.gguf", tok);
    run_edge_cases("llama-spm.gguf", tok);
    xle_tokenizer_free(tok);
}

/* BOS as the files say, explicit, or never; decode skips it only when asked. */
static void test_bos_rules(void) {
    xle_tokenizer *tok = NULL;
    xle_error err = {0};
    CHECK_OK(xle_tokenizer_load(XLE_SHARED_DIR "/data/external/llama2-tokenizer/tokenizer.model", &tok, &err), &err);
    if (!tok) return;
    const char text[] = "Hello";
    xle_tokens a, b, c;
    CHECK_OK(xle_tokenize(tok, text, 5, -1, 0, &a, &err), &err);
    CHECK_OK(xle_tokenize(tok, text, 5, 0, 0, &b, &err), &err);
    CHECK_OK(xle_tokenize(tok, text, 5, 1, 0, &c, &err), &err);
    CHECK(a.n == b.n + 1 && a.ids[0] == 1 && a.lengths[0] == 0 && c.n == a.n);
    char *with = xle_detokenize(tok, a.ids, a.n, 0), *without = xle_detokenize(tok, a.ids, a.n, 1);
    CHECK(with && !strcmp(with, "<s>Hello"));
    CHECK(without && !strcmp(without, "Hello"));
    free(with), free(without);
    /* "<s>" in the text is plain text unless parse_special */
    const char sp[] = "<s>Hi";
    xle_tokens d, e;
    CHECK_OK(xle_tokenize(tok, sp, strlen(sp), 0, 0, &d, &err), &err);
    CHECK_OK(xle_tokenize(tok, sp, strlen(sp), 0, 1, &e, &err), &err);
    int has_bos = 0;
    for (int i = 0; i < d.n; i++) has_bos |= d.ids[i] == 1;
    CHECK(!has_bos);
    CHECK(e.n >= 2 && e.ids[0] == 1 && e.offsets[0] == 0 && e.lengths[0] == 3);
    CHECK(tok_offsets_tile(&d, strlen(sp)) && tok_offsets_tile(&e, strlen(sp)));
    xle_tokens_free(&a), xle_tokens_free(&b), xle_tokens_free(&c), xle_tokens_free(&d), xle_tokens_free(&e);
    xle_tokenizer_free(tok);
}

int main(void) {
    RUN(test_sentencepiece_model);
    RUN(test_llama2c_bin);
    RUN(test_gguf_llama_spm);
    RUN(test_bos_rules);
    return check_summary();
}
