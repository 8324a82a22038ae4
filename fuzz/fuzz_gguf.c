/*
 * fuzz_gguf.c: a .gguf file through the real loaders: the model (header, metadata, tensor
 * table, the config read from llama.* keys, then one scoring pass when it loads) and the
 * tokenizer stored in its tokenizer.ggml.* metadata (SentencePiece and byte-level BPE vocabularies).
 * Seeds: the .gguf files of tests/fixtures/models, the llama.cpp vocabulary files (docs/fuzzing.md).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write(fuzz_dir(), "model.gguf", data, size);
    xle_error err = {0};
    xle_model *m = NULL;
    if (xle_model_load(path, &m, &err) == XLE_OK) {
        fuzz_forward(m);
        xle_model_free(m);
    }
    xle_tokenizer *tok = NULL; /* a vocabulary-only file has no tensors: its tokenizer alone */
    if (xle_tokenizer_load(path, &tok, &err) == XLE_OK) {
        fuzz_tokenize(tok, data, size);
        xle_tokenizer_free(tok);
    }
    return 0;
}
