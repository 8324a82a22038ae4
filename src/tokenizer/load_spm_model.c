/*
 * load_spm_model.c: SentencePiece's tokenizer.model (a ModelProto protobuf, sentencepiece_model.proto):
 *   1 pieces (repeated): {1 piece string, 2 score float, 3 type enum (1 normal .. 6 byte)}
 *   2 trainer_spec: 3 model_type (1 unigram, 2 bpe), 24 treat_whitespace_as_suffix,
 *     35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
 *   3 normalizer_spec: 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
 *     4 remove_extra_whitespaces, 5 escape_whitespaces
 * Only BPE models with the identity normalizer (Llama-2, Mistral and their derivatives) are
 * supported; unigram models and NFKC charsmaps are refused as unsupported.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct pb {
    const uint8_t *p, *end;
} pb;

/* Reads a varint; returns 0 on truncation or overlong encoding. */
static int pb_varint(pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return 0;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 1;
        }
    }
    return 0;
}

/* Reads a field key and, for length-delimited fields, the payload bounds. */
typedef struct pb_field {
    uint32_t num, wire;
    uint64_t value;          /* varint / fixed values */
    const uint8_t *data;     /* wire 2 payload */
    size_t len;
} pb_field;

static int pb_next(pb *r, pb_field *f) {
    uint64_t key;
    if (!pb_varint(r, &key)) return 0;
    f->num = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    switch (f->wire) {
    case 0: return pb_varint(r, &f->value);
    case 1:
        if (r->end - r->p < 8) return 0;
        memcpy(&f->value, r->p, 8);
        r->p += 8;
        return 1;
    case 5: {
        if (r->end - r->p < 4) return 0;
        uint32_t v;
        memcpy(&v, r->p, 4);
        f->value = v;
        r->p += 4;
        return 1;
    }
    case 2: {
        uint64_t len;
        if (!pb_varint(r, &len) || len > (uint64_t)(r->end - r->p)) return 0;
        f->data = r->p;
        f->len = (size_t)len;
        r->p += len;
        return 1;
    }
    default: return 0;
    }
}

typedef struct spm_spec {
    int64_t model_type, unk_id, bos_id, eos_id, pad_id;
    int byte_fallback, suffix;
    char name[64];
    size_t charsmap_len;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
} spm_spec;

static xle_status parse_piece(const char *path, int index, const uint8_t *data, size_t len,
                              xle_tok_builder *b, xle_error *err) {
    pb r = {data, data + len};
    pb_field f;
    const char *piece = NULL;
    size_t plen = 0;
    float score = 0.0f;
    int64_t type = XLE_TOKTYPE_NORMAL;
    while (r.p < r.end) {
        if (!pb_next(&r, &f))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: pieces[%d]: truncated or malformed protobuf", path, index);
        if (f.num == 1 && f.wire == 2) piece = (const char *)f.data, plen = f.len;
        else if (f.num == 2 && f.wire == 5) {
            uint32_t v = (uint32_t)f.value;
            memcpy(&score, &v, 4);
        } else if (f.num == 3 && f.wire == 0) type = (int64_t)f.value;
        else if (f.num <= 3)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: pieces[%d]: field %u has wire type %u", path, index, f.num, f.wire);
    }
    if (!piece) return xle_fail(err, XLE_ERR_FORMAT, "%s: pieces[%d].piece: missing", path, index);
    if (type < 1 || type > 6)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: pieces[%d].type: %lld (expected 1..6)", path, index, (long long)type);
    return xle_tok_builder_add(b, piece, plen, score, (int)type, err);
}

static xle_status parse_trainer(const char *path, const uint8_t *data, size_t len, spm_spec *s, xle_error *err) {
    pb r = {data, data + len};
    pb_field f;
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) return xle_fail(err, XLE_ERR_FORMAT, "%s: trainer_spec: truncated or malformed protobuf", path);
        if (f.wire != 0) continue;
        int64_t v = (int64_t)f.value; /* int32 fields: negative values are sign-extended varints */
        switch (f.num) {
        case 3: s->model_type = v; break;
        case 24: s->suffix = v != 0; break;
        case 35: s->byte_fallback = v != 0; break;
        case 40: s->unk_id = v; break;
        case 41: s->bos_id = v; break;
        case 42: s->eos_id = v; break;
        case 43: s->pad_id = v; break;
        default: break;
        }
    }
    return XLE_OK;
}

static xle_status parse_normalizer(const char *path, const uint8_t *data, size_t len, spm_spec *s, xle_error *err) {
    pb r = {data, data + len};
    pb_field f;
    while (r.p < r.end) {
        if (!pb_next(&r, &f)) return xle_fail(err, XLE_ERR_FORMAT, "%s: normalizer_spec: truncated or malformed protobuf", path);
        if (f.num == 1 && f.wire == 2) {
            size_t n = f.len < sizeof s->name - 1 ? f.len : sizeof s->name - 1;
            memcpy(s->name, f.data, n);
            s->name[n] = 0;
        } else if (f.num == 2 && f.wire == 2) s->charsmap_len = f.len;
        else if (f.num == 3 && f.wire == 0) s->add_dummy_prefix = f.value != 0;
        else if (f.num == 4 && f.wire == 0) s->remove_extra_ws = f.value != 0;
        else if (f.num == 5 && f.wire == 0) s->escape_ws = f.value != 0;
    }
    return XLE_OK;
}

static int32_t id_or_none(int64_t v, int n) { return v >= 0 && v < n ? (int32_t)v : -1; }

xle_status xle_tokenizer_load_spm_model(const char *path, const uint8_t *data, size_t size,
                                        xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    /* proto defaults */
    spm_spec s = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1,
                  .add_dummy_prefix = 1, .remove_extra_ws = 1, .escape_ws = 1};
    xle_tok_builder *b;
    xle_status st = xle_tok_builder_new(XLE_TOK_SPM, path, &b, err);
    if (st != XLE_OK) return st;
    /* the specs first: how pieces decode depends on escape_whitespaces */
    int have_normalizer = 0;
    for (int pass = 0; pass < 2 && st == XLE_OK; pass++) {
        pb r = {data, data + size};
        pb_field f;
        while (r.p < r.end && st == XLE_OK) {
            if (!pb_next(&r, &f)) {
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: truncated or malformed protobuf at byte %zu", path,
                              (size_t)(r.p - data));
                break;
            }
            if (f.wire != 2) continue;
            if (pass == 1 && f.num == 1) st = parse_piece(path, b->n, f.data, f.len, b, err);
            else if (pass == 0 && f.num == 2) st = parse_trainer(path, f.data, f.len, &s, err);
            else if (pass == 0 && f.num == 3) st = parse_normalizer(path, f.data, f.len, &s, err), have_normalizer = 1;
        }
        b->spm_escape_spaces = s.escape_ws;
    }
    if (st == XLE_OK && b->n == 0) st = xle_fail(err, XLE_ERR_FORMAT, "%s: pieces: none", path);
    if (st == XLE_OK && s.model_type != 2)
        st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: trainer_spec.model_type: %s models are not supported (only BPE)", path,
                      s.model_type == 1 ? "unigram" : s.model_type == 3 ? "word" : s.model_type == 4 ? "char" : "unknown");
    if (st == XLE_OK && s.suffix)
        st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: trainer_spec.treat_whitespace_as_suffix: not supported", path);
    if (st == XLE_OK && have_normalizer && strcmp(s.name, "identity") != 0 && s.charsmap_len > 0)
        st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: normalizer_spec.name: '%s' (only the identity normalizer is supported)",
                      path, s.name);
    if (st != XLE_OK) {
        xle_tok_builder_free(b);
        return st;
    }
    b->unk_id = id_or_none(s.unk_id, b->n);
    b->bos_id = id_or_none(s.bos_id, b->n);
    b->eos_id = id_or_none(s.eos_id, b->n);
    b->pad_id = id_or_none(s.pad_id, b->n);
    b->add_bos = b->bos_id >= 0; /* what Llama's tokenizers do with SentencePiece */
    b->spm_prefix = s.add_dummy_prefix ? XLE_SPM_PREFIX_EVERY_SEGMENT : XLE_SPM_PREFIX_NONE;
    b->spm_escape_spaces = s.escape_ws;
    b->spm_remove_extra_ws = s.remove_extra_ws;
    return xle_tok_builder_finish(b, out, err);
}
