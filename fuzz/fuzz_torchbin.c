/*
 * fuzz_torchbin.c: a torch.save archive (`pytorch_model.bin`) through xle_torchbin_parse, straight
 * from memory as the HF loader calls it on its mapping: the zip central directory (zip64 too),
 * local headers, data.pkl through the restricted unpickler (opcodes, memo, the allowed globals,
 * persistent ids, tensor rebuilds), storage members and tensor ranges. Seeds: the fixtures'
 * pytorch_model*.bin files and the refused pickles of tests/fixtures/torchbin.
 */
#include "formats/torchbin.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    xle_error err = {0};
    xle_safetensors *st = NULL;
    if (xle_torchbin_parse("fuzz.bin", data, size, &st, &err) == XLE_OK) {
        for (int i = 0; i < st->n; i++) (void)xle_safetensors_find(st, st->entries[i].name);
        xle_safetensors_free(st);
    }
    return 0;
}
