/*
 * fuzz_run_dir.c: an evaluation run folder: run.json, results.jsonl, pre.jsonl and
 * templates-rome.txt, the input's parts in that order, read by xle_report_load and rendered in
 * every format (the report reader), by xle_jsonl_each (the resume reader of src/eval/run_files.c)
 * and by xle_context_templates_load (a run's saved templates).
 * Seeds: a run of `xledit demo` on the built-in model (fuzz/seeds/run_dir) and scripts/fuzz.sh's.
 */
#include "eval/run_files.h"
#include "fuzz_common.h"

static xle_status count_line(void *user, json_t *line, size_t line_no, xle_error *err) {
    (void)line, (void)line_no, (void)err;
    ++*(size_t *)user;
    return XLE_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"run.json", "results.jsonl", "pre.jsonl", "templates-rome.txt"};
    const char *dir = fuzz_dir();
    fuzz_write_parts(dir, data, size, names, 4);
    xle_error err = {0};
    xle_report *r = NULL;
    if (xle_report_load(dir, &r, &err) == XLE_OK) {
        for (int f = 0; f < XLE_REPORT_FORMAT_COUNT; f++) {
            char *text = NULL;
            size_t len = 0;
            if (xle_report_render(r, (xle_report_format)f, &text, &len, &err) == XLE_OK) free(text);
        }
        xle_report_free(r);
    }
    char path[512];
    size_t n = 0;
    snprintf(path, sizeof path, "%s/results.jsonl", dir);
    xle_jsonl_each(path, count_line, &n, &err);
    snprintf(path, sizeof path, "%s/templates-rome.txt", dir);
    xle_context_templates *ct = NULL;
    if (xle_context_templates_load(path, &ct, &err) == XLE_OK) xle_context_templates_free(ct);
    return 0;
}
