/*
 * load_llama2c.c: llama2.c's tokenizer.bin (formats-detail.md 1.5): int32 max_token_length,
 * then per token {f32 score, int32 len, len bytes}, the count coming from the checkpoint.
 * Pieces spell SentencePiece's "▁" as " ", BOS/EOS as "\n<s>\n" / "\n</s>\n", and ids 3..258
 * are the byte tokens "<0x00>".."<0xFF>". Encoding is SentencePiece BPE by score.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static int32_t rd_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Reads the records of data[0..size); vocab_size <= 0: as many as the file holds. */
static xle_status parse(const char *path, const uint8_t *data, size_t size, int vocab_size,
                        xle_tok_builder *b, xle_error *err) {
    if (size < 4) return xle_fail(err, XLE_ERR_FORMAT, "%s: max_token_length: file is truncated", path);
    int32_t max_len = rd_i32(data);
    if (max_len <= 0 || max_len > 1 << 20)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: max_token_length: %d is not a plausible length", path, max_len);
    size_t off = 4;
    char *piece = malloc(3 * (size_t)max_len + 1);
    if (!piece) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    xle_status st = XLE_OK;
    for (int i = 0; st == XLE_OK && (vocab_size > 0 ? i < vocab_size : off < size); i++) {
        if (size - off < 8) {
            st = vocab_size > 0
                ? xle_fail(err, XLE_ERR_FORMAT, "%s: token %d: file is truncated (%d of %d tokens read)", path, i, i, vocab_size)
                : xle_fail(err, XLE_ERR_FORMAT, "%s: token %d: file is truncated", path, i);
            break;
        }
        float score;
        memcpy(&score, data + off, 4);
        int32_t len = rd_i32(data + off + 4);
        off += 8;
        if (len < 0 || len > max_len || (size_t)len > size - off) {
            st = xle_fail(err, XLE_ERR_FORMAT, "%s: token %d: length %d is negative, above max_token_length %d or past the end",
                          path, i, len, max_len);
            break;
        }
        const char *s = (const char *)data + off;
        off += (size_t)len;
        int type = XLE_TOKTYPE_NORMAL;
        size_t n = 0;
        if (len == 5 && memcmp(s, "<unk>", 5) == 0) type = XLE_TOKTYPE_UNKNOWN;
        if ((len == 5 && memcmp(s, "\n<s>\n", 5) == 0) || (len == 6 && memcmp(s, "\n</s>\n", 6) == 0)) {
            type = XLE_TOKTYPE_CONTROL;
            s++, len -= 2; /* "<s>", "</s>" as SentencePiece spells them */
        }
        if (len == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') type = XLE_TOKTYPE_BYTE;
        for (int32_t k = 0; k < len; k++) {
            if (s[k] == ' ' && type == XLE_TOKTYPE_NORMAL) {
                memcpy(piece + n, "\xe2\x96\x81", 3);
                n += 3;
            } else piece[n++] = s[k];
        }
        st = xle_tok_builder_add(b, piece, n, score, type, err);
    }
    free(piece);
    /* like run.c, bytes after vocab_size records are ignored */
    return st;
}

xle_status xle_tokenizer_load_llama2c_data(const char *path, const uint8_t *data, size_t size,
                                           int vocab_size, xle_tokenizer **out, xle_error *err) {
    xle_tok_builder *b;
    xle_status st = xle_tok_builder_new(XLE_TOK_SPM, path, &b, err);
    if (st != XLE_OK) return st;
    st = parse(path, data, size, vocab_size, b, err);
    if (st != XLE_OK) {
        xle_tok_builder_free(b);
        return st;
    }
    /* llama2.c's run.c: BOS 1, EOS 2 always (the ids SentencePiece's Llama models use) */
    b->unk_id = b->n > 0 ? 0 : -1;
    b->bos_id = b->n > 1 ? 1 : -1;
    b->eos_id = b->n > 2 ? 2 : -1;
    b->add_bos = 1;
    return xle_tok_builder_finish(b, out, err);
}

xle_status xle_tokenizer_load_llama2c(const char *path, int vocab_size, xle_tokenizer **out,
                                      xle_error *err) {
    *out = NULL;
    if (vocab_size <= 0)
        return xle_fail(err, XLE_ERR_ARG, "%s: vocab_size: %d (the checkpoint must say how many tokens)", path, vocab_size);
    char *data;
    size_t size;
    xle_status st = xle_tok_read_file(path, &data, &size, err);
    if (st != XLE_OK) return st;
    st = xle_tokenizer_load_llama2c_data(path, (const uint8_t *)data, size, vocab_size, out, err);
    free(data);
    return st;
}
