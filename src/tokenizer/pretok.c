/*
 * pretok.c: pre-tokenizer regexes of byte-level BPE, compiled with PCRE2 (UTF + UCP, so \p{L},
 * \p{N}, \s follow Unicode; invalid UTF-8 never matches and ends up in the pieces between
 * matches). The sets per llama.cpp pre-tokenizer name are llama.cpp's (c392e509, llama-vocab.cpp)
 * (the contractions spelled '[sS] rather than (?i:'s): under UCP, (?i) would also fold 'ſ').
 * Characters whose NFC form differs (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are
 * written as \x{...} so that no editor's normalization can change the character classes.
 * Each regex splits every piece of the previous one into its matches and the text between them;
 * a regex sees only its piece (lookaheads and $ stop at the piece's end).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

#define MAX_REGEXES 8

struct xle_pretok {
    pcre2_code *re[MAX_REGEXES];
    int n;
};

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define LLAMA3_RE \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE \
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define BLOOM_RE " ?[^(\\s|.,!?…。，、।۔،)]+"

typedef struct pretok_family {
    const char *names; /* '|'-separated llama.cpp names */
    const char *regexes[MAX_REGEXES];
} pretok_family;

static const pretok_family families[] = {
    {"llama3|llama-v3|llama-bpe|falcon3|dbrx|smaug-bpe|chatglm-bpe", {LLAMA3_RE}},
    {"qwen2|deepseek-r1-qwen|megrez|stablelm2", {QWEN2_RE}},
    {"gpt-2|gpt2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|jina-v2-code|roberta-bpe|mpt|olmo|jais",
     {GPT2_RE}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", {"\\p{N}", GPT2_RE}},
    {"falcon", {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]"}},
    {"deepseek-llm",
     {"[\\r\\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\\x{1F7D}ᾀ-ᾴᾶ-ᾼ\\x{1FBE}ῂ-ῄῆ-ῌῐ-\\x{1FD3}ῖ-\\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
    {"deepseek-coder", {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
    {"deepseek-v3",
     {"\\p{N}{1,3}", "[一-龥぀-ゟ゠-ヿ]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"poro-chat|bloom|gpt3-finnish", {BLOOM_RE}},
    {"viking", {BLOOM_RE, "\\p{N}"}},
    {"tekken",
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"chameleon",
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", GPT2_RE}},
    {"default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

static int name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

void xle_pretok_free(xle_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->re[i]);
    free(p);
}

xle_status xle_pretok_from_regexes(const char *const *regexes, int n, xle_pretok **out,
                                   const char *where, xle_error *err) {
    *out = NULL;
    if (n <= 0 || n > MAX_REGEXES)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %d pre-tokenizer regexes (1..%d supported)", where, n, MAX_REGEXES);
    xle_pretok *p = calloc(1, sizeof *p);
    if (!p) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", where);
    for (int i = 0; i < n; i++) {
        int code;
        PCRE2_SIZE at;
        p->re[i] = pcre2_compile((PCRE2_SPTR)regexes[i], PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                                 &code, &at, NULL);
        if (!p->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            xle_pretok_free(p);
            return xle_fail(err, XLE_ERR_FORMAT, "%s: regex %d: %s at offset %zu", where, i, (const char *)msg, (size_t)at);
        }
        p->n = i + 1;
        /* JIT is an optimisation only: without it pcre2_match interprets */
        (void)pcre2_jit_compile(p->re[i], PCRE2_JIT_COMPLETE);
    }
    *out = p;
    return XLE_OK;
}

xle_status xle_pretok_from_name(const char *name, xle_pretok **out, const char *where,
                                xle_error *err) {
    *out = NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        if (!name_in(families[f].names, name)) continue;
        int n = 0;
        while (n < MAX_REGEXES && families[f].regexes[n]) n++;
        return xle_pretok_from_regexes(families[f].regexes, n, out, where, err);
    }
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not known", where, name);
}

typedef struct split_ctx {
    const xle_pretok *p;
    pcre2_match_data *md[MAX_REGEXES];
    const char *text;
    xle_piece_fn emit;
    void *user;
} split_ctx;

static size_t utf8_step(const char *s, size_t left) {
    uint8_t c = (uint8_t)s[0];
    size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
    return n < left ? n : left;
}

/* Splits text[start, end) with regex k and hands each piece to regex k + 1 (or emit). */
static int split_level(split_ctx *c, int k, size_t start, size_t end) {
    if (start == end) return 0;
    if (k == c->p->n) return c->emit(c->user, start, end);
    const char *subject = c->text + start;
    size_t len = end - start, prev = 0, at = 0;
    while (at < len) {
        int rc = pcre2_match(c->p->re[k], (PCRE2_SPTR)subject, len, at, 0, c->md[k], NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return -2;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md[k]);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* an empty match splits nothing: step over one character */
            at = ms + utf8_step(subject + ms, len - ms);
            continue;
        }
        int r = split_level(c, k + 1, start + prev, start + ms);
        if (r == 0) r = split_level(c, k + 1, start + ms, start + me);
        if (r) return r;
        prev = at = me;
    }
    return split_level(c, k + 1, start + prev, end);
}

int xle_pretok_split(const xle_pretok *p, const char *text, size_t len, xle_piece_fn emit,
                     void *user) {
    if (!p || p->n == 0) return len ? emit(user, 0, len) : 0;
    split_ctx c = {p, {0}, text, emit, user};
    int rc = 0;
    for (int i = 0; i < p->n; i++)
        if (!(c.md[i] = pcre2_match_data_create_from_pattern(p->re[i], NULL))) rc = -1;
    if (rc == 0) rc = split_level(&c, 0, 0, len);
    for (int i = 0; i < p->n; i++) pcre2_match_data_free(c.md[i]);
    return rc;
}
