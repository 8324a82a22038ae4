/*
 * edit_and_save.c: one ROME edit through the library, then the edited model saved and read
 * back. ROME here uses u = k (no key statistics, so it runs on any model at once); with
 * statistics from `xledit stats` it would load them with xle_stats_load.
 *
 *   cc edit_and_save.c $(pkg-config --cflags --libs xledit) -o edit_and_save
 *   ./edit_and_save models/xledit-mini /tmp/edited "The capital of France is" France Rome
 */
#include <stdio.h>
#include <stdlib.h>

#include <xledit.h>

/* log p(target | prompt) under model. */
static xle_status score(xle_model *model, const char *prompt, const char *target, double *out,
                        xle_error *err) {
    int32_t *p = NULL, *t = NULL;
    int np = 0, nt = 0;
    xle_status st = xle_tokenize_continuation(xle_model_tokenizer(model), prompt, target, &p, &np,
                                              &t, &nt, err);
    if (st == XLE_OK) st = xle_score(model, p, np, t, nt, out, NULL, err);
    free(p);
    free(t);
    return st;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL OUT PROMPT SUBJECT TARGET\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *out = argv[2];
    xle_edit_request req = {argv[3], argv[4], argv[5]};
    xle_error err = {0};
    xle_model *model = NULL, *edited = NULL;
    xle_context_templates *ct = NULL;
    xle_edit_request_tok rt = {0};
    xle_edit_result result = {0};
    int rc = 1;
    if (xle_model_load(model_path, &model, &err) != XLE_OK) goto done;
    if (!xle_model_tokenizer(model)) {
        xle_fail(&err, XLE_ERR_ARG, "%s: the model has no tokenizer", model_path);
        goto done;
    }
    /* The model's own hyperparameters (its folder's edit-hparams/rome.json when it has one). */
    xle_edit_hparams hp;
    if (xle_edit_hparams_for_model_path(&hp, XLE_EDIT_ROME, model, model_path, NULL, &err) != XLE_OK)
        goto done;
    hp.mom2_adjustment = 0;
    if (xle_context_templates_none(&ct, &err) != XLE_OK) goto done;
    if (xle_edit_request_tokenize(xle_model_tokenizer(model), &req, ct, &rt, &err) != XLE_OK) goto done;
    double before = 0, after = 0, reread = 0;
    if (score(model, req.prompt, req.target, &before, &err) != XLE_OK) goto done;
    xle_layer_stats *no_stats[XLE_EDIT_MAX_LAYERS] = {0};
    if (xle_edit_run(model, &hp, &rt, 1, no_stats, &result, &err) != XLE_OK) goto done;
    if (xle_edit_apply(model, &result, +1, &err) != XLE_OK) goto done;
    if (score(model, req.prompt, req.target, &after, &err) != XLE_OK) goto done;
    if (xle_model_save(model, out, &err) != XLE_OK) goto done;
    if (xle_model_load(out, &edited, &err) != XLE_OK) goto done;
    if (score(edited, req.prompt, req.target, &reread, &err) != XLE_OK) goto done;
    printf("ROME at layer %d: log p(%s) %.4f -> %.4f; saved to %s, read back: %.4f\n",
           hp.layers[0], req.target, before, after, out, reread);
    rc = after > before && reread == after ? 0 : 1;
    if (rc) xle_fail(&err, XLE_ERR_NUMERIC, "the edit did not raise the target, or the saved model differs");
done:
    if (rc) fprintf(stderr, "edit_and_save: %s\n", err.msg);
    xle_edit_result_free(&result);
    xle_edit_request_tok_free(&rt);
    xle_context_templates_free(ct);
    xle_model_free(edited);
    xle_model_free(model);
    return rc;
}
