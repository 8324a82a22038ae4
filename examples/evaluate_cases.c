/*
 * evaluate_cases.c: a cross-lingual evaluation through the library. Edits the first N cases of
 * a case file (docs/case-format.md) with ROME in every edit language, evaluates each edited
 * model in every language (ELFI/ELFO), writes the run folder, and prints its text report.
 *
 *   cc evaluate_cases.c $(pkg-config --cflags --libs xledit) -o evaluate_cases
 *   xledit world cases --data data/world --out cases.jsonl --n 2
 *   ./evaluate_cases models/xledit-mini cases.jsonl run/ 1 hi
 */
#include <stdio.h>
#include <stdlib.h>

#include <xledit.h>

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s MODEL CASES.jsonl RUN_DIR N_CASES [EDIT_LANG]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    xle_error err = {0};
    xle_model *model = NULL;
    xle_report *report = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = 1;
    if (xle_model_load(model_path, &model, &err) != XLE_OK) goto done;
    xle_edit_hparams hp;
    if (xle_edit_hparams_for_model_path(&hp, XLE_EDIT_ROME, model, model_path, NULL, &err) != XLE_OK)
        goto done;
    hp.mom2_adjustment = 0; /* no key statistics needed */
    xle_eval_opts o = {0};
    o.data_path = argv[2];
    o.run_dir = argv[3];
    o.hparams = &hp;
    o.n_methods = 1;
    o.max_cases = atoi(argv[4]);
    const char *edit_lang = argc == 6 ? argv[5] : "en";
    o.edit_langs = &edit_lang;
    o.n_edit_langs = 1;
    o.context_templates = "none";
    o.subject_match = XLE_MATCH_EXACT;
    xle_eval_summary sum = {0};
    if (xle_eval_run(model, &o, &sum, &err) != XLE_OK) goto done;
    printf("%d case(s), %lld unit(s) run, %lld skipped, %lld failed\n", sum.n_cases,
           (long long)sum.n_done, (long long)sum.n_skipped, (long long)sum.n_failed);
    if (xle_report_load(o.run_dir, &report, &err) != XLE_OK) goto done;
    if (xle_report_render(report, XLE_REPORT_TEXT, &text, &len, &err) != XLE_OK) goto done;
    fwrite(text, 1, len, stdout);
    rc = 0;
done:
    if (rc) fprintf(stderr, "evaluate_cases: %s\n", err.msg);
    free(text);
    xle_report_free(report);
    xle_model_free(model);
    return rc;
}
