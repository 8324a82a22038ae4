/* TEMPORARY: loaders and byte-level BPE still to come. */
#include "tokenizer/tokenizer_internal.h"
xle_status xle_tokenizer_load_json(const char *path, xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: tokenizer.json is not supported yet", path);
}
xle_status xle_tokenizer_load_tiktoken(const char *path, const char *data, size_t size, xle_tokenizer **out, xle_error *err) {
    (void)data, (void)size;
    *out = NULL;
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: tiktoken files are not supported yet", path);
}
xle_status xle_tokenizer_load_spm_model(const char *path, const uint8_t *data, size_t size, xle_tokenizer **out, xle_error *err) {
    (void)data, (void)size;
    *out = NULL;
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: SentencePiece .model files are not supported yet", path);
}
xle_status xle_pretok_from_name(const char *name, xle_pretok **out, const char *where, xle_error *err) {
    (void)name;
    *out = NULL;
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: byte-level BPE is not supported yet", where);
}
void xle_pretok_free(xle_pretok *p) { (void)p; }
int xle_bpe_encode(const xle_tokenizer *tok, const char *text, size_t len, const int32_t *orig, xle_tok_out *out) {
    (void)tok, (void)text, (void)len, (void)orig, (void)out;
    return -1;
}
int xle_tok_nfc(const char *text, size_t len, int32_t base, char **out, size_t *out_len, int32_t **orig) {
    (void)text, (void)len, (void)base, (void)out, (void)out_len, (void)orig;
    return -1;
}
