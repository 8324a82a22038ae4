/*
 * main.c: the xledit command-line tool's entry point: dispatches to one cmd_<name> per
 * subcommand (src/cli/cmd_*.c). Library errors come back as values and are printed here, as
 * one line on stderr, with a non-zero exit code.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
    const char *name;
    xle_cmd_fn fn;
    const char *summary;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "the main job: edit the built-in model, ELFI/ELFO tables, HTML report"},
    {"info", cmd_info, "describe a model: architecture, sizes, dtypes, tokenizer"},
    {"logits", cmd_logits, "print the logits of a prompt (JSON)"},
    {"generate", cmd_generate, "continue a prompt (greedy or sampled) with the KV cache"},
    {"score", cmd_score, "log-probability of a continuation given a prompt"},
    {"tokenize", cmd_tokenize, "show the tokens of a text: ids, pieces, byte offsets"},
    {"stats", cmd_stats, "key statistics E[k k^T] of chosen layers over a corpus (cached)"},
    {"edit", cmd_edit, "edit facts with ROME, MEMIT, FT-L or FT-M; write the model and/or a patch"},
    {"patch", cmd_patch, "apply, revert or describe an edit patch"},
    {"convert", cmd_convert, "write a model again (llama2.c to HF folder; copies tensors byte for byte)"},
    {"import", cmd_import, "convert a published editing dataset to canonical cases (JSONL)"},
    {"validate", cmd_validate, "check a cases file; count usable cases per language"},
    {"eval", cmd_eval, "edit and evaluate cases across languages (ELFI/ELFO matrix), resumable"},
    {"report", cmd_report, "tables and an HTML report of an evaluation run"},
    {"trace", cmd_trace, "causal tracing: where each language keeps a fact (per layer and token)"},
    {"merge", cmd_merge, "merge models: linear, task arithmetic, TIES, DARE-TIES (streamed)"},
    {"train-tokenizer", cmd_train_tokenizer, "learn a byte-fallback BPE tokenizer.json from text"},
    {"train", cmd_train, "train a small Llama-family model from scratch (HF folder)"},
    {"facts-check", cmd_facts_check, "greedy recall of facts per language (JSONL facts)"},
    {"world", cmd_world, "built-in fact world: training corpus, facts list, evaluation cases"},
    {"bench", cmd_bench, "prompt and generation speed on a model file (llama-bench's tests)"},
};

static void print_usage(FILE *out) {
    fprintf(out, "usage: xledit <command> [options]   (xledit <command> --help for details)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nMODEL is a Hugging Face folder (config.json + *.safetensors or pytorch_model*.bin),\n"
                 "a .gguf file or a llama2.c .bin checkpoint.\n");
}

int main(int argc, char **argv) {
    cli_threads_wait_policy(argv);
    /* by line, also into a pipe or a file: `xledit demo | tee log` shows each line as it comes
     * and keeps what was printed when the run is stopped */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("xledit %s\n", xle_version());
        return 0;
    }
    cli_threads_default();
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "xledit: unknown command '%s' (try xledit --help)\n", argv[1]);
    return 2;
}
