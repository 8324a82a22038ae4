/*
 * tokenizer_internal.h: what the files of src/tokenizer/ share: the vocabulary (pieces, decoded
 * bytes, scores, token types), the hash maps used for lookups, the two model algorithms
 * (SentencePiece-style BPE by score, byte-level BPE by merge rank), the pre-tokenizer regex
 * sets, and the builder API the loaders (and a vocabulary trainer) use to make a tokenizer from
 * an in-memory vocabulary.
 *
 * Building a tokenizer from memory (what every loader does):
 *
 *     xle_tok_builder *b;
 *     xle_tok_builder_new(XLE_TOK_SPM, "mytrainer", &b, err);
 *     b->spm_rank_merges = 1;   // merges by rank as Hugging Face's BPE (else by piece score)
 *     xle_tok_builder_add(b, "<unk>", 5, 0.0f, XLE_TOKTYPE_UNKNOWN, err);  // id 0, ...
 *     xle_tok_builder_add(b, "<0x00>", 6, 0.0f, XLE_TOKTYPE_BYTE, err);    // byte fallback
 *     ... xle_tok_builder_add_merge(b, "▁", 3, "t", 1, err) ...            // rank = call order
 *     (byte-level BPE: pieces and merges in GPT-2's alphabet, "Ġ" for a space)
 *     b->bos_id = 1; b->eos_id = 2; b->add_bos = 1;
 *     xle_tokenizer *tok;
 *     xle_tok_builder_finish(b, &tok, err);   // consumes b in all cases
 */
#ifndef XLE_TOKENIZER_INTERNAL_H
#define XLE_TOKENIZER_INTERNAL_H

#include <stdint.h>

#include "xledit.h"

/* ---- token types (GGUF tokenizer.ggml.token_type numbering) ---------------------------- */

enum xle_toktype {
    XLE_TOKTYPE_NORMAL = 1,
    XLE_TOKTYPE_UNKNOWN = 2,
    XLE_TOKTYPE_CONTROL = 3,      /* BOS, EOS, chat markers: matched in text only with parse_special */
    XLE_TOKTYPE_USER_DEFINED = 4, /* added tokens matched in text always */
    XLE_TOKTYPE_UNUSED = 5,
    XLE_TOKTYPE_BYTE = 6          /* SentencePiece byte fallback "<0xNN>" */
};

typedef enum xle_tok_kind {
    XLE_TOK_SPM = 0, /* merges by piece score, "▁" for spaces, <0xNN> byte fallback */
    XLE_TOK_BPE = 1  /* byte-level: regex pre-tokenizer, merges by rank over bytes */
} xle_tok_kind;

/* Where SentencePiece's dummy "▁" goes (HF legacy Prepend normalizer and llama.cpp: at the
 * start of the text and after every added token; Metaspace prepend_scheme "first": only at
 * the start of the text). */
typedef enum xle_spm_prefix {
    XLE_SPM_PREFIX_NONE = 0,
    XLE_SPM_PREFIX_EVERY_SEGMENT,
    XLE_SPM_PREFIX_FIRST
} xle_spm_prefix;

typedef enum xle_tok_norm {
    XLE_NORM_NONE = 0,
    XLE_NORM_NFC /* Qwen2 */
} xle_tok_norm;

/* ---- hash maps ------------------------------------------------------------------------- */

/* Byte string -> int32 (open addressing; keys point into memory owned elsewhere). A slot keeps
 * 32 bits of the key's hash so that most mismatches cost no key comparison. */
typedef struct xle_strmap_slot {
    uint32_t hash;      /* high bits of the hash */
    uint32_t index;     /* 0 = empty, else entry + 1 */
} xle_strmap_slot;

typedef struct xle_strmap_entry {
    const char *key;
    uint32_t len;
    int32_t val;
} xle_strmap_entry;

typedef struct xle_strmap {
    xle_strmap_slot *slots;
    xle_strmap_entry *entries;
    uint32_t n, cap;    /* entries, slot count (power of two) */
    uint32_t ecap;
} xle_strmap;

int xle_strmap_init(xle_strmap *m, uint32_t expected);
void xle_strmap_free(xle_strmap *m);
/* Inserts key -> val unless the key exists; returns 1 inserted, 0 existed (*old = its value),
 * -1 out of memory. The key's bytes must outlive the map. */
int xle_strmap_put(xle_strmap *m, const char *key, uint32_t len, int32_t val, int32_t *old);
/* The value or -1. */
int32_t xle_strmap_get(const xle_strmap *m, const char *key, uint32_t len);

/* (left id, right id) -> (rank, merged id) for BPE merges; one 16-byte slot per entry so that
 * a lookup touches one cache line. */
typedef struct xle_pair_slot {
    uint64_t key;       /* ((uint64)left << 32 | right) + 1; 0 = empty */
    int32_t rank, merged;
} xle_pair_slot;

typedef struct xle_pairmap {
    xle_pair_slot *slots;
    uint32_t n, cap;
} xle_pairmap;

int xle_pairmap_init(xle_pairmap *m, uint32_t expected);
void xle_pairmap_free(xle_pairmap *m);
/* Returns 1 inserted, 0 already present (kept: the first merge listed has the best rank), -1 OOM. */
int xle_pairmap_put(xle_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged);
/* 1 and fills rank/merged if present, else 0. */
int xle_pairmap_get(const xle_pairmap *m, int32_t left, int32_t right, int32_t *rank,
                    int32_t *merged);

uint64_t xle_tok_hash(const char *s, size_t n);

/* ---- pre-tokenizer regexes (pretok.c) ---------------------------------------------------- */

/* A sequence of PCRE2 regexes (UTF + UCP) applied one after the other: each splits every piece
 * the previous one produced into its matches and the text between them (llama.cpp's
 * unicode_regex_split; HF Split "Isolated"). */
typedef struct xle_pretok xle_pretok;

/* The regex set of a llama.cpp pre-tokenizer name ("llama3", "qwen2", "gpt-2", "default", ...);
 * XLE_ERR_UNSUPPORTED for a name it does not know. where names the file and field for errors. */
xle_status xle_pretok_from_name(const char *name, xle_pretok **out, const char *where,
                                xle_error *err);
/* From explicit regexes (tokenizer.json Split patterns). */
xle_status xle_pretok_from_regexes(const char *const *regexes, int n, xle_pretok **out,
                                   const char *where, xle_error *err);
void xle_pretok_free(xle_pretok *p);
/* Splits text[0..len) into pieces; calls emit(user, start, end) for each, in order, covering
 * the text exactly. Returns non-zero if emit did or on a regex failure. */
typedef int (*xle_piece_fn)(void *user, size_t start, size_t end);
int xle_pretok_split(const xle_pretok *p, const char *text, size_t len, xle_piece_fn emit,
                     void *user);

/* ---- the tokenizer --------------------------------------------------------------------- */

typedef struct xle_tok_entry {
    uint32_t piece;      /* offset in strings: the piece as the files spell it ("▁the", "Ġthe") */
    uint32_t piece_len;
    uint32_t bytes;      /* offset in strings: the text it decodes to (" the", "\n" for <0x0A>) */
    uint32_t bytes_len;
    float score;
    uint8_t type;        /* enum xle_toktype */
    uint8_t added;       /* matched in the raw text before the model runs */
    uint8_t special;     /* added: matched only with parse_special; dropped by skip_special */
    uint8_t lstrip, rstrip; /* added token eats the whitespace left / right of it */
} xle_tok_entry;

/* An added token matched in the raw text before the model runs. */
typedef struct xle_added_token {
    int32_t id;
    uint32_t len;        /* of the token's text (its decoded bytes) */
    uint8_t first;       /* its first byte */
    uint8_t special, lstrip, rstrip;
} xle_added_token;

struct xle_tokenizer {
    xle_tok_kind kind;
    char *source;            /* file (or builder name) for error messages */
    int n_vocab;
    xle_tok_entry *entries;
    char *strings;           /* arena of pieces and bytes, NUL after each */
    size_t strings_len;

    xle_strmap piece_to_id;  /* SPM: pieces that take part in merges (normal, user-defined) */
    xle_strmap bytes_to_id;  /* BPE: decoded bytes of normal tokens */
    xle_pairmap merges;      /* merge rules by ids (byte-level; SPM with spm_rank_merges) */
    int rank_by_token;       /* BPE: tiktoken ranks: every pair of tokens whose concatenation is a
                                token is listed in merges at load, rank = that token's id */
    int ignore_merges;       /* BPE: a pre-token that is itself a token is emitted whole */
    int32_t byte_token[256]; /* SPM: <0xNN> ids; BPE: the id of each single byte (-1: none) */

    xle_pretok *pretok;      /* BPE */
    xle_tok_norm norm;
    xle_spm_prefix spm_prefix;
    int spm_escape_spaces;   /* SPM: ' ' -> "▁" */
    int spm_remove_extra_ws; /* SPM: collapse whitespace runs, strip both ends (SentencePiece default) */
    int spm_rank_merges;     /* SPM: merge only listed pairs, by rank (tokenizer.json BPE), not by score */
    int spm_word_split;      /* SPM: no piece holds a non-"▁" character followed by "▁", so merges
                                never cross the start of a "▁" run: encode word by word */

    xle_added_token *added;  /* sorted by first byte, then longest first */
    int n_added;
    int32_t added_first[257]; /* added[added_first[b] .. added_first[b+1]) start with byte b */

    int32_t bos_id, eos_id, unk_id, eot_id, pad_id;
    int add_bos, add_eos;
};

/* ---- builder ---------------------------------------------------------------------------- */

typedef struct xle_tok_builder {
    xle_tok_kind kind;
    char *source;
    xle_tok_entry *entries;
    int n, cap;
    char *strings;
    size_t strings_len, strings_cap;
    /* merge rules by text: offsets into strings */
    uint32_t *merge_l, *merge_r, *merge_llen, *merge_rlen;
    int n_merges, merges_cap;
    int merges_are_bytes;     /* merge sides given as raw bytes (else in the GPT-2 alphabet) */
    /* settings copied into the tokenizer */
    int rank_by_token, ignore_merges;
    xle_pretok *pretok;       /* taken over */
    xle_tok_norm norm;
    xle_spm_prefix spm_prefix;
    int spm_escape_spaces, spm_remove_extra_ws;
    int spm_rank_merges;      /* SPM kind: Hugging Face BPE semantics (listed merges by rank) */
    int32_t bos_id, eos_id, unk_id, eot_id, pad_id;
    int add_bos, add_eos;
} xle_tok_builder;

/* source names the file in error messages. Defaults: no BOS/EOS/UNK (-1), add_bos 0, SPM
 * prefix EVERY_SEGMENT with escaped spaces, no normalization, no pre-tokenizer. */
xle_status xle_tok_builder_new(xle_tok_kind kind, const char *source, xle_tok_builder **out,
                               xle_error *err);
void xle_tok_builder_free(xle_tok_builder *b);
/* Adds the next id. For SPM the piece is as SentencePiece spells it ("▁the", "<0x41>"); for BPE
 * a normal token is in GPT-2's byte-to-unicode alphabet ("Ġthe"), an added one is literal text.
 * The decoded bytes are derived from the piece and type. */
xle_status xle_tok_builder_add(xle_tok_builder *b, const char *piece, size_t len, float score,
                               int type, xle_error *err);
/* Adds the next id from its raw bytes (tiktoken); the piece is spelled in GPT-2's alphabet. */
xle_status xle_tok_builder_add_raw(xle_tok_builder *b, const char *bytes, size_t len,
                                   int type, xle_error *err);
/* Marks id as an added token (matched in text before the model): special ones only with
 * parse_special. */
xle_status xle_tok_builder_set_added(xle_tok_builder *b, int32_t id, int special, int lstrip,
                                     int rstrip, xle_error *err);
/* One merge rule "left right", rank = order of the calls. Sides are pieces as added: SentencePiece
 * spelling for SPM (used with spm_rank_merges), GPT-2's alphabet for byte-level BPE (raw bytes
 * when merges_are_bytes). A rule whose sides or result are not tokens is ignored. */
xle_status xle_tok_builder_add_merge(xle_tok_builder *b, const char *left, size_t llen,
                                     const char *right, size_t rlen, xle_error *err);
/* Builds the lookup tables and checks ids; consumes b (also on failure). */
xle_status xle_tok_builder_finish(xle_tok_builder *b, xle_tokenizer **out, xle_error *err);

/* ---- GPT-2 byte <-> unicode alphabet (vocab.c) ----------------------------------------- */

/* Decodes a piece spelled in GPT-2's alphabet into bytes (dst has room for len bytes); returns
 * the byte count, or -1 if a character is outside the alphabet. */
long xle_gpt2_decode(const char *piece, size_t len, char *dst);
/* Encodes bytes into the alphabet (dst has room for 2 * len bytes); returns the length. */
size_t xle_gpt2_encode(const char *bytes, size_t len, char *dst);

/* ---- loaders (one file each) ------------------------------------------------------------- */

xle_status xle_tokenizer_load_json(const char *path, xle_tokenizer **out, xle_error *err);
xle_status xle_tokenizer_load_tiktoken(const char *path, const char *data, size_t size,
                                       xle_tokenizer **out, xle_error *err);
/* A tiktoken file of a named family ("llama3", "qwen2") whatever its size: specials follow the
 * ranks at the family's offsets. */
xle_status xle_tokenizer_load_tiktoken_family(const char *path, const char *family,
                                              xle_tokenizer **out, xle_error *err);
xle_status xle_tokenizer_load_spm_model(const char *path, const uint8_t *data, size_t size,
                                        xle_tokenizer **out, xle_error *err);
/* llama2.c tokenizer.bin from memory; vocab_size <= 0: all records up to the end. */
xle_status xle_tokenizer_load_llama2c_data(const char *path, const uint8_t *data, size_t size,
                                           int vocab_size, xle_tokenizer **out, xle_error *err);
/* Reads a whole file into a new buffer (NUL-terminated; caller frees). */
xle_status xle_tok_read_file(const char *path, char **data, size_t *size, xle_error *err);

/* ---- model algorithms ------------------------------------------------------------------- */

/* A growing token list with offsets (in the caller's coordinates). */
typedef struct xle_tok_out {
    int32_t *ids, *offsets, *lengths;
    int n, cap;
} xle_tok_out;

int xle_tok_out_push(xle_tok_out *o, int32_t id, size_t start, size_t end);

/* Per-call word cache (cache.c): word bytes -> its tokens and their lengths in the text. */
typedef struct xle_tok_cache {
    xle_strmap map;
    int32_t *ids, *lens;
    size_t n, cap;
    size_t *runs;             /* per word: first, count */
    size_t n_runs, runs_cap;
} xle_tok_cache;

int xle_tok_cache_init(xle_tok_cache *c);
void xle_tok_cache_free(xle_tok_cache *c);
/* The cached token count for key (and *ids, *lens), or -1. */
int xle_tok_cache_get(const xle_tok_cache *c, const char *key, size_t len, const int32_t **ids,
                      const int32_t **lens);
/* Remembers a word's tokens (key must outlive the cache); 0 ok, -1 out of memory. */
int xle_tok_cache_put(xle_tok_cache *c, const char *key, size_t len, const int32_t *ids,
                      const int32_t *lens, int count);

/* Encodes one text segment without added tokens: text is the normalized bytes, orig[i] the
 * input offset of normalized byte i (orig[len] = end of the segment in the input). Tokens get
 * input offsets [orig[a], orig[b]). Return 0 ok, -1 out of memory. */
int xle_spm_encode(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *orig,
                   xle_tok_out *out);
int xle_bpe_encode(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *orig,
                   xle_tok_out *out);

/* NFC of text with an offset map (normalize.c): *out (len *out_len) and *orig (out_len + 1
 * entries) are new allocations; orig maps into base + [0, len). Returns 0 or -1 (OOM). */
int xle_tok_nfc(const char *text, size_t len, int32_t base, char **out, size_t *out_len,
                int32_t **orig);

#endif
