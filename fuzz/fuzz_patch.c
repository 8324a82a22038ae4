/*
 * fuzz_patch.c: an edit patch (a safetensors file with deltas, original bytes and value
 * hashes; src/edit/patch.c) through xle_patch_load, then applied to and reverted from the
 * small model scripts/fuzz.sh trains (XLE_FUZZ_MODEL), loaded afresh for every input so that runs repeat.
 * Seeds: patches `xledit edit` writes for that model (scripts/fuzz.sh makes them).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write(fuzz_dir(), "edit.xlpatch", data, size);
    xle_error err = {0};
    xle_patch *p = NULL;
    if (xle_patch_load(path, &p, &err) != XLE_OK) return 0;
    (void)xle_patch_info(p);
    xle_model *m = NULL;
    if (xle_model_load(fuzz_model_path(), &m, &err) == XLE_OK) {
        if (xle_patch_apply(m, p, &err) == XLE_OK) xle_patch_revert(m, p, &err);
        xle_model_free(m);
    }
    xle_patch_free(p);
    return 0;
}
