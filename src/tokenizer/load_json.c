/*
 * load_json.c: Hugging Face tokenizer.json (formats-detail.md 1.4) with model type "BPE":
 *  - byte-level (a ByteLevel pre-tokenizer or decoder): GPT-2, Llama-3, Qwen2. Vocabulary and
 *    merges in GPT-2's byte alphabet; Split regexes (behavior Isolated), ByteLevel's own GPT-2
 *    regex when use_regex, Digits; NFC normalizer; ignore_merges.
 *  - SentencePiece-converted (Llama-2 layout): normalizer Sequence[Prepend "▁", Replace " " ->
 *    "▁"] (the legacy form) or pre-tokenizer Metaspace (prepend_scheme first/always/never),
 *    byte_fallback with "<0xNN>" tokens; merges apply by rank (Hugging Face's BPE).
 * added_tokens are matched in the raw text first (special ones only with parse_special). BOS and
 * EOS: the post_processor's TemplateProcessing (a special token before / after $A), overridden
 * by add_bos_token / add_eos_token / bos_token / eos_token in tokenizer_config.json beside it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

/* HF's ByteLevel pre-tokenizer regex (tokenizers/src/pre_tokenizers/byte_level.rs). */
#define BYTE_LEVEL_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define MAX_SPLITS 8

typedef struct json_cfg {
    const char *path;
    int byte_level;
    int prepend, escape;           /* SPM normalization */
    xle_spm_prefix prefix;
    xle_tok_norm norm;
    char *regex[MAX_SPLITS];       /* pre-tokenizer regexes in order (owned) */
    int n_regex;
} json_cfg;

static const char *type_of(const json_t *o) { return json_string_value(json_object_get(o, "type")); }

static xle_status add_regex(json_cfg *c, const char *re, size_t len, const char *field, xle_error *err) {
    if (c->n_regex == MAX_SPLITS)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: more than %d splitting steps", c->path, field, MAX_SPLITS);
    char *s = malloc(len + 1);
    if (!s) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", c->path);
    memcpy(s, re, len);
    s[len] = 0;
    c->regex[c->n_regex++] = s;
    return XLE_OK;
}

/* tokenizers compiles Split regexes with Oniguruma, where "[" inside a character class opens a
 * nested class (BLOOM's " ?[^(\\s|[.,!?…。，、।۔،])]+"); PCRE2 reads it as a literal "[". A nested
 * class that is not negated is the union of its members, so it is written flat: the inner "["
 * and its "]" are dropped. Returns a new string (caller frees), or NULL when there is nothing to
 * flatten or a nested class is negated (PCRE2 then sees the pattern as written). */
static char *flatten_nested_classes(const char *re) {
    const size_t n = strlen(re);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t w = 0;
    int depth = 0, changed = 0;
    for (size_t i = 0; i < n; i++) {
        const char ch = re[i];
        if (ch == '\\' && i + 1 < n) {
            out[w++] = ch;
            out[w++] = re[++i];
            continue;
        }
        if (depth == 0) {
            out[w++] = ch;
            if (ch == '[') {
                depth = 1;
                if (re[i + 1] == '^') out[w++] = re[++i];
                if (re[i + 1] == ']') out[w++] = re[++i]; /* a leading "]" is a member */
            }
            continue;
        }
        if (ch == '[' && re[i + 1] == ':') { /* a POSIX class [:name:] */
            const char *end = strstr(re + i + 2, ":]");
            if (!end) break;
            const size_t len = (size_t)(end + 2 - (re + i));
            memcpy(out + w, re + i, len);
            w += len, i += len - 1;
            continue;
        }
        if (ch == '[') {
            if (re[i + 1] == '^') break; /* a negated nested class has no flat form */
            depth++, changed = 1;
            continue;
        }
        if (ch == ']') {
            if (--depth > 0) continue;
        }
        out[w++] = ch;
    }
    if (!changed || w > n || depth != 0) {
        free(out);
        return NULL;
    }
    out[w] = 0;
    return out;
}

/* A literal Split pattern as a regex: \Q...\E (with any "\E" inside spelled out). */
static xle_status add_literal(json_cfg *c, const char *lit, const char *field, xle_error *err) {
    size_t n = strlen(lit);
    char *re = malloc(6 * n + 8);
    if (!re) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", c->path);
    size_t w = 0;
    memcpy(re + w, "\\Q", 2), w += 2;
    for (size_t i = 0; i < n; i++) {
        if (lit[i] == '\\' && lit[i + 1] == 'E') {
            memcpy(re + w, "\\E\\\\\\Q", 6), w += 6; /* close, escaped backslash, reopen */
            continue;
        }
        re[w++] = lit[i];
    }
    memcpy(re + w, "\\E", 2), w += 2;
    xle_status st = add_regex(c, re, w, field, err);
    free(re);
    return st;
}

static xle_status parse_normalizer(json_cfg *c, const json_t *n, const char *field, xle_error *err) {
    if (!n || json_is_null(n)) return XLE_OK;
    const char *t = type_of(n);
    if (!json_is_object(n) || !t) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected an object with a \"type\"", c->path, field);
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.normalizers: expected an array", c->path, field);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", field, i);
            xle_status st = parse_normalizer(c, json_array_get(list, i), sub, err);
            if (st != XLE_OK) return st;
        }
        return XLE_OK;
    }
    if (!strcmp(t, "NFC")) {
        c->norm = XLE_NORM_NFC;
        return XLE_OK;
    }
    if (!strcmp(t, "Prepend")) {
        const char *p = json_string_value(json_object_get(n, "prepend"));
        if (!p || strcmp(p, "\xe2\x96\x81"))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.prepend: only \"\xe2\x96\x81\" is supported", c->path, field);
        c->prepend = 1;
        return XLE_OK;
    }
    if (!strcmp(t, "Replace")) {
        const char *from = json_string_value(json_object_get(json_object_get(n, "pattern"), "String"));
        const char *to = json_string_value(json_object_get(n, "content"));
        if (!from || !to || strcmp(from, " ") || strcmp(to, "\xe2\x96\x81"))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: only Replace \" \" -> \"\xe2\x96\x81\" is supported", c->path, field);
        c->escape = 1;
        return XLE_OK;
    }
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.type: normalizer '%s' is not supported", c->path, field, t);
}

static xle_status parse_pretok(json_cfg *c, const json_t *p, const char *field, xle_error *err) {
    if (!p || json_is_null(p)) return XLE_OK;
    const char *t = type_of(p);
    if (!json_is_object(p) || !t) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected an object with a \"type\"", c->path, field);
    char sub[256];
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(p, "pretokenizers");
        if (!json_is_array(list)) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.pretokenizers: expected an array", c->path, field);
        for (size_t i = 0; i < json_array_size(list); i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", field, i);
            xle_status st = parse_pretok(c, json_array_get(list, i), sub, err);
            if (st != XLE_OK) return st;
        }
        return XLE_OK;
    }
    if (!strcmp(t, "ByteLevel")) {
        c->byte_level = 1;
        if (json_is_true(json_object_get(p, "add_prefix_space")))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.add_prefix_space: true is not supported", c->path, field);
        const json_t *use = json_object_get(p, "use_regex");
        snprintf(sub, sizeof sub, "%s.use_regex", field);
        return (!use || json_is_true(use)) ? add_regex(c, BYTE_LEVEL_RE, strlen(BYTE_LEVEL_RE), sub, err) : XLE_OK;
    }
    if (!strcmp(t, "Split")) {
        const json_t *pat = json_object_get(p, "pattern");
        const char *behavior = json_string_value(json_object_get(p, "behavior"));
        if (json_is_true(json_object_get(p, "invert")) || (behavior && strcmp(behavior, "Isolated")))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: only behavior \"Isolated\" without invert is supported",
                            c->path, field);
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *lit = json_string_value(json_object_get(pat, "String"));
        snprintf(sub, sizeof sub, "%s.pattern", field);
        if (re) {
            char *flat = flatten_nested_classes(re);
            xle_status st = add_regex(c, flat ? flat : re, strlen(flat ? flat : re), sub, err);
            free(flat);
            return st;
        }
        if (lit) return add_literal(c, lit, sub, err);
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected {\"Regex\": ...} or {\"String\": ...}", c->path, sub);
    }
    if (!strcmp(t, "Digits")) {
        int single = json_is_true(json_object_get(p, "individual_digits"));
        const char *re = single ? "\\p{N}" : "\\p{N}+";
        return add_regex(c, re, strlen(re), field, err);
    }
    if (!strcmp(t, "Metaspace")) {
        const char *rep = json_string_value(json_object_get(p, "replacement"));
        if (rep && strcmp(rep, "\xe2\x96\x81"))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.replacement: only \"\xe2\x96\x81\" is supported", c->path, field);
        if (json_is_true(json_object_get(p, "split")))
            return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.split: true is not supported", c->path, field);
        const char *scheme = json_string_value(json_object_get(p, "prepend_scheme"));
        const json_t *aps = json_object_get(p, "add_prefix_space");
        c->escape = 1;
        if (scheme) {
            if (!strcmp(scheme, "first")) c->prefix = XLE_SPM_PREFIX_FIRST;
            else if (!strcmp(scheme, "always")) c->prefix = XLE_SPM_PREFIX_EVERY_SEGMENT;
            else if (!strcmp(scheme, "never")) c->prefix = XLE_SPM_PREFIX_NONE;
            else return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.prepend_scheme: '%s' (first, always, never)", c->path, field, scheme);
        } else {
            c->prefix = (!aps || json_is_true(aps)) ? XLE_SPM_PREFIX_EVERY_SEGMENT : XLE_SPM_PREFIX_NONE;
        }
        c->prepend = c->prefix != XLE_SPM_PREFIX_NONE;
        return XLE_OK;
    }
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s.type: pre-tokenizer '%s' is not supported", c->path, field, t);
}

/* One entry of the id table the vocabulary and the added tokens fill. */
typedef struct json_tok {
    const char *s;
    size_t len;
    int added, special, lstrip, rstrip;
} json_tok;

static xle_status fill_vocab(const char *path, const json_t *vocab, json_tok **out, int *n_out,
                             const json_t *added, xle_error *err) {
    if (!json_is_object(vocab)) return xle_fail(err, XLE_ERR_FORMAT, "%s: model.vocab: expected an object", path);
    if (added && !json_is_array(added)) return xle_fail(err, XLE_ERR_FORMAT, "%s: added_tokens: expected an array", path);
    json_int_t max_id = -1;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        if (!json_is_integer(v))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: model.vocab[\"%.40s\"]: expected an integer id", path, key);
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= INT32_MAX / 2)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: model.vocab[\"%.40s\"]: id %lld is out of range", path, key, (long long)id);
        if (id > max_id) max_id = id;
    }
    for (size_t i = 0; added && i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        const json_t *id = json_object_get(a, "id");
        if (!json_is_object(a) || !json_is_integer(id) || !json_is_string(json_object_get(a, "content")))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: added_tokens[%zu]: expected {\"id\": integer, \"content\": string, ...}", path, i);
        json_int_t k = json_integer_value(id);
        if (k < 0 || k >= INT32_MAX / 2)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: added_tokens[%zu].id: %lld is out of range", path, i, (long long)k);
        if (k > max_id) max_id = k;
    }
    if (max_id < 0) return xle_fail(err, XLE_ERR_FORMAT, "%s: model.vocab: empty", path);
    int n = (int)max_id + 1;
    json_tok *t = calloc((size_t)n, sizeof *t);
    if (!t) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    void *it = json_object_iter((json_t *)vocab);
    for (; it; it = json_object_iter_next((json_t *)vocab, it)) {
        int id = (int)json_integer_value(json_object_iter_value(it));
        if (t[id].s) {
            xle_status st = xle_fail(err, XLE_ERR_FORMAT, "%s: model.vocab: id %d is given to both \"%.40s\" and \"%.40s\"",
                                     path, id, t[id].s, json_object_iter_key(it));
            free(t);
            return st;
        }
        t[id].s = json_object_iter_key(it);
        t[id].len = json_object_iter_key_len(it);
    }
    for (size_t i = 0; added && i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i);
        int id = (int)json_integer_value(json_object_get(a, "id"));
        const char *content = json_string_value(json_object_get(a, "content"));
        size_t clen = json_string_length(json_object_get(a, "content"));
        if (t[id].s && (t[id].len != clen || memcmp(t[id].s, content, clen))) {
            xle_status st = xle_fail(err, XLE_ERR_FORMAT, "%s: added_tokens[%zu]: id %d is \"%.40s\" in model.vocab, not \"%.40s\"",
                                     path, i, id, t[id].s, content);
            free(t);
            return st;
        }
        t[id] = (json_tok){content, clen, 1, json_is_true(json_object_get(a, "special")),
                           json_is_true(json_object_get(a, "lstrip")), json_is_true(json_object_get(a, "rstrip"))};
    }
    for (int id = 0; id < n; id++)
        if (!t[id].s) {
            xle_status st = xle_fail(err, XLE_ERR_FORMAT, "%s: model.vocab: no token has id %d (ids must be 0..%d without gaps)",
                                     path, id, n - 1);
            free(t);
            return st;
        }
    *out = t;
    *n_out = n;
    return XLE_OK;
}

static xle_status add_merges(const char *path, const json_t *merges, xle_tok_builder *b, xle_error *err) {
    if (!merges) return XLE_OK;
    if (!json_is_array(merges)) return xle_fail(err, XLE_ERR_FORMAT, "%s: model.merges: expected an array", path);
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const json_t *m = json_array_get(merges, i);
        const char *l = NULL, *r = NULL;
        size_t ll = 0, rl = 0;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t n = json_string_length(m);
            const char *sp = n > 1 ? memchr(s + 1, ' ', n - 1) : NULL;
            if (sp && sp + 1 < s + n) l = s, ll = (size_t)(sp - s), r = sp + 1, rl = n - ll - 1;
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            l = json_string_value(json_array_get(m, 0)), ll = json_string_length(json_array_get(m, 0));
            r = json_string_value(json_array_get(m, 1)), rl = json_string_length(json_array_get(m, 1));
        }
        if (!l || ll == 0 || rl == 0)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: model.merges[%zu]: expected \"left right\" or [\"left\", \"right\"]", path, i);
        xle_status st = xle_tok_builder_add_merge(b, l, ll, r, rl, err);
        if (st != XLE_OK) return st;
    }
    return XLE_OK;
}

/* The special token a TemplateProcessing "single" template puts before (where 0) or after
 * (where 1) the sequence, as an id; -1 if none. */
static int32_t template_token(const json_t *pp, int where) {
    if (!pp) return -1;
    const char *t = type_of(pp);
    if (t && !strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(pp, "processors");
        for (size_t i = 0; i < json_array_size(list); i++) {
            int32_t id = template_token(json_array_get(list, i), where);
            if (id >= 0) return id;
        }
        return -1;
    }
    if (!t || strcmp(t, "TemplateProcessing")) return -1;
    const json_t *single = json_object_get(pp, "single");
    size_t n = json_array_size(single);
    if (n < 2) return -1;
    const json_t *item = json_object_get(json_array_get(single, where ? n - 1 : 0), "SpecialToken");
    const char *name = json_string_value(json_object_get(item, "id"));
    const json_t *ids = json_object_get(json_object_get(json_object_get(pp, "special_tokens"), name ? name : ""), "ids");
    return json_is_integer(json_array_get(ids, 0)) ? (int32_t)json_integer_value(json_array_get(ids, 0)) : -1;
}

/* tokenizer_config.json's bos_token / eos_token: a string or {"content": ...}. */
static const char *config_token(const json_t *cfg, const char *key) {
    const json_t *v = json_object_get(cfg, key);
    return json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "content"));
}

static int32_t find_token(const json_tok *t, int n, const char *s) {
    if (!s) return -1;
    size_t len = strlen(s);
    for (int i = n - 1; i >= 0; i--) /* added tokens sit at the end */
        if (t[i].len == len && !memcmp(t[i].s, s, len)) return i;
    return -1;
}

static int is_byte_piece(const char *s, size_t len) {
    return len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>';
}

/* BOS/EOS from the post-processor, the conventional names, and tokenizer_config.json. */
static void special_ids(const char *path, const json_t *root, const json_tok *t, int n, xle_tok_builder *b) {
    const json_t *pp = json_object_get(root, "post_processor");
    int32_t first = template_token(pp, 0), last = template_token(pp, 1);
    b->add_bos = first >= 0 && first < n;
    b->add_eos = last >= 0 && last < n && last != first;
    b->bos_id = b->add_bos ? first : -1;
    b->eos_id = b->add_eos ? last : -1;
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
    for (size_t i = 0; b->bos_id < 0 && i < 3; i++) b->bos_id = find_token(t, n, bos_names[i]);
    for (size_t i = 0; b->eos_id < 0 && i < 3; i++) b->eos_id = find_token(t, n, eos_names[i]);
    /* tokenizer_config.json beside the file overrides (transformers reads it) */
    char cfg_path[4096];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    snprintf(cfg_path, sizeof cfg_path, "%.*s/tokenizer_config.json", dir_len, slash ? path : ".");
    json_t *cfg = json_load_file(cfg_path, 0, NULL);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return;
    }
    int32_t id = find_token(t, n, config_token(cfg, "bos_token"));
    if (id >= 0) b->bos_id = id;
    id = find_token(t, n, config_token(cfg, "eos_token"));
    if (id >= 0) b->eos_id = id;
    const json_t *v = json_object_get(cfg, "add_bos_token");
    if (json_is_boolean(v)) b->add_bos = json_is_true(v);
    v = json_object_get(cfg, "add_eos_token");
    if (json_is_boolean(v)) b->add_eos = json_is_true(v);
    json_decref(cfg);
}

static xle_status build(const char *path, const json_t *root, json_cfg *c, xle_tokenizer **out, xle_error *err) {
    const json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) return xle_fail(err, XLE_ERR_FORMAT, "%s: model: missing or not an object", path);
    const char *mtype = type_of(model);
    if (mtype && strcmp(mtype, "BPE"))
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: model.type: '%s' is not supported (only BPE)", path, mtype);
    if (!mtype && !json_object_get(model, "merges"))
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: model.type: missing and no merges (not a BPE model)", path);
    const json_t *cs = json_object_get(model, "continuing_subword_prefix"), *ew = json_object_get(model, "end_of_word_suffix");
    if ((json_is_string(cs) && json_string_length(cs)) || (json_is_string(ew) && json_string_length(ew)))
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: model: continuing_subword_prefix / end_of_word_suffix are not supported", path);
    xle_status st = parse_normalizer(c, json_object_get(root, "normalizer"), "normalizer", err);
    if (st == XLE_OK) st = parse_pretok(c, json_object_get(root, "pre_tokenizer"), "pre_tokenizer", err);
    if (st != XLE_OK) return st;
    const char *dtype = type_of(json_object_get(root, "decoder"));
    if (dtype && !strcmp(dtype, "ByteLevel")) c->byte_level = 1;
    int byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    if (c->byte_level && byte_fallback)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: model.byte_fallback: not supported with a ByteLevel pre-tokenizer", path);
    if (!c->byte_level && c->n_regex)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: pre_tokenizer: Split/Digits without ByteLevel are not supported", path);

    json_tok *t = NULL;
    int n = 0;
    if ((st = fill_vocab(path, json_object_get(model, "vocab"), &t, &n, json_object_get(root, "added_tokens"), err)) != XLE_OK)
        return st;
    xle_tok_builder *b;
    if ((st = xle_tok_builder_new(c->byte_level ? XLE_TOK_BPE : XLE_TOK_SPM, path, &b, err)) != XLE_OK) {
        free(t);
        return st;
    }
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (!c->byte_level) {
        b->spm_rank_merges = 1;
        b->spm_escape_spaces = c->escape;
        /* the legacy Prepend normalizer runs on every text segment between added tokens */
        b->spm_prefix = c->prefix != XLE_SPM_PREFIX_NONE ? c->prefix
                      : c->prepend ? XLE_SPM_PREFIX_EVERY_SEGMENT : XLE_SPM_PREFIX_NONE;
    }
    b->norm = c->norm;
    b->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
    for (int id = 0; id < n && st == XLE_OK; id++) {
        int type = t[id].added ? (t[id].special ? XLE_TOKTYPE_CONTROL : XLE_TOKTYPE_USER_DEFINED) : XLE_TOKTYPE_NORMAL;
        if (unk && t[id].len == strlen(unk) && !memcmp(t[id].s, unk, t[id].len)) type = XLE_TOKTYPE_UNKNOWN;
        else if (!c->byte_level && byte_fallback && !t[id].added && is_byte_piece(t[id].s, t[id].len)) type = XLE_TOKTYPE_BYTE;
        st = xle_tok_builder_add(b, t[id].s, t[id].len, 0.0f, type, err);
        if (st == XLE_OK && t[id].added) st = xle_tok_builder_set_added(b, id, t[id].special, t[id].lstrip, t[id].rstrip, err);
    }
    if (st == XLE_OK) st = add_merges(path, json_object_get(model, "merges"), b, err);
    if (st == XLE_OK && c->byte_level && c->n_regex) {
        char where[600];
        snprintf(where, sizeof where, "%s: pre_tokenizer", path);
        st = xle_pretok_from_regexes((const char *const *)c->regex, c->n_regex, &b->pretok, where, err);
    }
    if (st == XLE_OK) {
        b->unk_id = find_token(t, n, unk);
        special_ids(path, root, t, n, b);
    }
    free(t);
    if (st != XLE_OK) {
        xle_tok_builder_free(b);
        return st;
    }
    return xle_tok_builder_finish(b, out, err);
}

xle_status xle_tokenizer_load_json(const char *path, xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) return xle_fail(err, XLE_ERR_FORMAT, "%s: bad JSON at line %d, column %d: %s", path, jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return xle_fail(err, XLE_ERR_FORMAT, "%s: expected a JSON object at the top", path);
    }
    json_cfg c = {.path = path};
    xle_status st = build(path, root, &c, out, err);
    for (int i = 0; i < c.n_regex; i++) free(c.regex[i]);
    json_decref(root);
    return st;
}
