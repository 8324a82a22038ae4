/*
 * fuzz_import.c: one importer of a published editing dataset, chosen when the target is built
 * (XLE_FUZZ_IMPORT: bmike53, mzsre, bizsre, zsre, counterfact, counterfact-edit, knowedit),
 * through xle_cases_import on the input as its one file, then the validator.
 * Seeds: the first records of each dataset in /work/shared/data/external (docs/fuzzing.md).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir();
    /* the language-keyed formats take the language from the file name */
    const char *path = fuzz_write(dir, "en.json", data, size);
    const char *paths[1] = {path};
    xle_error err = {0};
    xle_cases *cs = NULL;
    if (xle_cases_import(XLE_FUZZ_IMPORT, paths, 1, &cs, &err) == XLE_OK) {
        xle_validation *v = NULL;
        if (xle_cases_validate(cs, &v, &err) == XLE_OK) xle_validation_free(v);
        xle_cases_free(cs);
    }
    return 0;
}
