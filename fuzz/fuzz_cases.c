/*
 * fuzz_cases.c: a case file (canonical JSONL, docs/case-format.md) through xle_cases_load, then
 * the validator (subject matching at every level, the per-language report) and the writer.
 * Seeds: data/world/cases.jsonl and tests/fixtures/merge/cases.json, cut to a few cases.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir();
    const char *path = fuzz_write(dir, "cases.jsonl", data, size);
    xle_error err = {0};
    xle_cases *cs = NULL;
    if (xle_cases_load(path, &cs, &err) == XLE_OK) {
        xle_validation *v = NULL;
        if (xle_cases_validate(cs, &v, &err) == XLE_OK) xle_validation_free(v);
        char out[512];
        snprintf(out, sizeof out, "%s/again.jsonl", dir);
        xle_cases_write_jsonl(cs, out, &err);
        xle_cases_free(cs);
    }
    return 0;
}
