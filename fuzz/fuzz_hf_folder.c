/*
 * fuzz_hf_folder.c: a Hugging Face model folder through xle_model_load: config.json,
 * model.safetensors, tokenizer.json, tokenizer_config.json and generation_config.json, the
 * input's parts in that order (split on FUZZ_SEP; missing parts are missing files). A model
 * that loads runs one scoring pass and its tokenizer encodes and decodes.
 * Seeds: the fixtures' HF folders and models/xledit-mini's JSON files.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"config.json", "model.safetensors", "tokenizer.json",
                                        "tokenizer_config.json", "generation_config.json"};
    const char *dir = fuzz_dir();
    fuzz_write_parts(dir, data, size, names, 5);
    xle_error err = {0};
    xle_model *m = NULL;
    if (xle_model_load(dir, &m, &err) == XLE_OK) {
        fuzz_forward(m);
        xle_tokenizer *tok = xle_model_tokenizer(m);
        if (tok) fuzz_tokenize(tok, data, size < 64 ? size : 64);
        xle_model_free(m);
    }
    return 0;
}
