/*
 * load_and_score.c: the smallest program on libxledit. Loads a model (a Hugging Face folder, a
 * GGUF file or a llama2.c checkpoint), scores a target after a prompt (the sum of its tokens'
 * log-probabilities) and prints the model's greedy continuation of the prompt.
 *
 *   cc load_and_score.c $(pkg-config --cflags --libs xledit) -o load_and_score
 *   ./load_and_score models/xledit-mini "The capital of France is" "Paris"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xledit.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL PROMPT TARGET\n", argv[0]);
        return 2;
    }
    printf("libxledit %s (header %s)\n", xle_version(), XLE_VERSION_STRING);
    xle_error err = {0};
    xle_model *model = NULL;
    int32_t *prompt = NULL, *target = NULL, *greedy = NULL;
    char *text = NULL;
    int n_prompt = 0, n_target = 0, n_greedy = 0, rc = 1;
    if (xle_model_load(argv[1], &model, &err) != XLE_OK) goto done;
    xle_tokenizer *tok = xle_model_tokenizer(model);
    if (!tok) {
        xle_fail(&err, XLE_ERR_ARG, "%s: the model has no tokenizer", argv[1]);
        goto done;
    }
    /* The target as the model reads it after the prompt (with the space between them). */
    if (xle_tokenize_continuation(tok, argv[2], argv[3], &prompt, &n_prompt, &target, &n_target,
                                  &err) != XLE_OK)
        goto done;
    double logprob = 0;
    if (xle_score(model, prompt, n_prompt, target, n_target, &logprob, NULL, &err) != XLE_OK) goto done;
    printf("log p(%s | %s) = %.4f over %d token(s)\n", argv[3], argv[2], logprob, n_target);

    const int n_new = 8;
    greedy = malloc((size_t)(n_prompt + n_new) * sizeof *greedy);
    if (!greedy) {
        xle_fail(&err, XLE_ERR_NOMEM, "out of memory");
        goto done;
    }
    memcpy(greedy, prompt, (size_t)n_prompt * sizeof *greedy);
    xle_sampler sampler = {.temperature = 0, .stop_at_eos = 1};
    if (xle_generate(model, prompt, n_prompt, n_new, &sampler, greedy + n_prompt, &n_greedy, &err) != XLE_OK)
        goto done;
    text = xle_detokenize(tok, greedy, n_prompt + n_greedy, 1);
    printf("greedy: %s\n", text ? text : "?");
    rc = 0;
done:
    if (rc) fprintf(stderr, "load_and_score: %s\n", err.msg);
    free(text);
    free(greedy);
    free(prompt);
    free(target);
    xle_model_free(model);
    return rc;
}
