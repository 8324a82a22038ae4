/*
 * fuzz_stats_cache.c: a key-statistics cache folder (src/edit/stats_cache.c): stats.json,
 * layer-0.f64 and layer-1.f64, the input's parts in that order, read by xle_stats_load for the
 * small model of tests/fixtures/edit/model (the fingerprint in a seed is that model's, so
 * mutations reach the fields behind it).
 * Seeds: caches `xledit stats` makes for that model (scripts/fuzz.sh).
 */
#include "fuzz_common.h"

static xle_model *g_model; /* the fuzzer's own, loaded once */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"stats.json", "layer-0.f64", "layer-1.f64"};
    xle_error err = {0};
    if (!g_model && xle_model_load(fuzz_model_path(), &g_model, &err) != XLE_OK)
        abort();
    const char *dir = fuzz_dir();
    fuzz_write_parts(dir, data, size, names, 3);
    for (int layer = 0; layer < 3; layer++) {
        xle_layer_stats *ls = NULL;
        if (xle_stats_load(g_model, dir, layer, &ls, &err) == XLE_OK) xle_layer_stats_free(ls);
    }
    return 0;
}
