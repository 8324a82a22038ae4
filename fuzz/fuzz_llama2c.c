/*
 * fuzz_llama2c.c: a llama2.c checkpoint (model.bin) and the tokenizer.bin beside it (the
 * input's two parts, split on FUZZ_SEP) through xle_model_load, then one scoring pass.
 * Seeds: stories260K.bin with its tokenizer (/work/shared/data/external/stories260k).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"model.bin", "tokenizer.bin"};
    const char *dir = fuzz_dir();
    fuzz_write_parts(dir, data, size, names, 2);
    char path[512];
    snprintf(path, sizeof path, "%s/model.bin", dir);
    xle_error err = {0};
    xle_model *m = NULL;
    if (xle_model_load(path, &m, &err) == XLE_OK) {
        fuzz_forward(m);
        xle_model_free(m);
    }
    return 0;
}
