/*
 * fuzz_tokenizer.c: one tokenizer file format, chosen when the target is built
 * (XLE_FUZZ_TOKENIZER): "json" (tokenizer.json), "spm" (SentencePiece tokenizer.model),
 * "tiktoken" (rank files), "llama2c" (tokenizer.bin), each through its own loader, and "any"
 * through xle_tokenizer_load, which picks the loader by content. A tokenizer that loads encodes
 * a multilingual sentence and the input's first bytes and decodes every id.
 * Seeds: the tokenizers of models/xledit-mini and /work/shared/data/external (cut to a few
 * hundred entries where large; docs/fuzzing.md).
 */
#include "fuzz_common.h"
#include "tokenizer/tokenizer_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *kind = XLE_FUZZ_TOKENIZER;
    xle_error err = {0};
    xle_tokenizer *tok = NULL;
    xle_status st;
    if (!strcmp(kind, "json") || !strcmp(kind, "any")) {
        const char *path = fuzz_write(fuzz_dir(), !strcmp(kind, "json") ? "tokenizer.json" : "tok", data, size);
        st = !strcmp(kind, "json") ? xle_tokenizer_load_json(path, &tok, &err) : xle_tokenizer_load(path, &tok, &err);
    } else if (!strcmp(kind, "spm")) {
        st = xle_tokenizer_load_spm_model("fuzz.model", data, size, &tok, &err);
    } else if (!strcmp(kind, "tiktoken")) {
        st = xle_tokenizer_load_tiktoken("fuzz.tiktoken", (const char *)data, size, &tok, &err);
    } else {
        /* the vocabulary size comes from the checkpoint: the first two bytes choose one */
        int vocab = size >= 2 ? (data[0] | data[1] << 8) % 40000 : 0;
        st = xle_tokenizer_load_llama2c_data("tokenizer.bin", data, size, vocab, &tok, &err);
    }
    if (st == XLE_OK) {
        fuzz_tokenize(tok, data, size);
        xle_tokenizer_free(tok);
    }
    return 0;
}
