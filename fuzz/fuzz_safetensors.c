/*
 * fuzz_safetensors.c: a .safetensors image through the header parser (length, JSON, dtypes,
 * shapes, offsets covering the buffer exactly), straight from memory as the model loader and
 * the patch reader call it. Seeds: the fixtures' model.safetensors files.
 */
#include "formats/safetensors.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    xle_error err = {0};
    xle_safetensors *st = NULL;
    if (xle_safetensors_parse("fuzz.safetensors", data, size, &st, &err) == XLE_OK) {
        for (int i = 0; i < st->n; i++) (void)xle_safetensors_find(st, st->entries[i].name);
        xle_safetensors_free(st);
    }
    return 0;
}
