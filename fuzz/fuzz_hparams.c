/*
 * fuzz_hparams.c: the JSON settings files: editing hyperparameters (EasyEdit key names,
 * xle_edit_hparams_load_json, as in a model's edit-hparams/ folder) and training
 * configurations (xle_train_hparams_load_json, then the validator), the same input as both.
 * Seeds: the JSON files of models/xledit-mini/edit-hparams, its train_config.json, tests/fixtures/edit/hparams_*.json.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write(fuzz_dir(), "hparams.json", data, size);
    xle_error err = {0};
    for (int m = XLE_EDIT_ROME; m <= XLE_EDIT_FT_M; m++) {
        xle_edit_hparams hp;
        xle_edit_hparams_default(&hp, (xle_edit_method)m, 4);
        xle_edit_hparams_load_json(&hp, path, &err);
    }
    xle_train_hparams th;
    xle_train_hparams_default(&th);
    if (xle_train_hparams_load_json(&th, path, &err) == XLE_OK) xle_train_hparams_validate(&th, path, &err);
    return 0;
}
