/*
 * cmd_world.c: the built-in fact world (data/world, docs/world.md):
 *   xledit world info   --data DIR
 *   xledit world corpus --data DIR --out FILE [--seed S] [--epochs-copies N]
 *   xledit world facts  --data DIR --out FILE
 *   xledit world cases  --data DIR --out FILE [--n 600] [--seed S]
 * The library does the work (xle_world_*); this file parses options and prints counts.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void world_usage(FILE *out) {
    fprintf(out,
            "usage: xledit world info   --data DIR\n"
            "       xledit world corpus --data DIR --out FILE [--seed S] [--epochs-copies N]\n"
            "       xledit world facts  --data DIR --out FILE\n"
            "       xledit world cases  --data DIR --out FILE [--n 600] [--seed S]\n\n"
            "The built-in multilingual fact world (DIR is data/world in the source tree):\n"
            "  info    counts of entities, relations, facts and templates\n"
            "  corpus  training text: every fact in every language with every training template,\n"
            "          plus a line of names per entity, one per line, shuffled by the seed (1);\n"
            "          N shuffled copies with --epochs-copies N\n"
            "  facts   JSONL of every (prompt, object) the trained model should know\n"
            "          (input of xledit facts-check)\n"
            "  cases   N counterfactual evaluation cases in the canonical case format (seed 1)\n"
            "Outputs are written atomically. Details: docs/world.md.\n");
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return 0;
    *out = v;
    return 1;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

static int print_counts(const xle_world *w) {
    xle_world_counts c;
    xle_world_get_counts(w, &c);
    printf("languages: %d (", c.n_langs);
    for (int l = 0; l < c.n_langs; l++) printf("%s%s", l ? " " : "", c.langs[l]);
    printf(")\nentities: %d (%d with facts)\nrelations: %d\nfacts: %d\ntwo-hop chains: %d\n"
           "templates: %d training, %d held-out (all relations and languages)\n",
           c.n_entities, c.n_subjects, c.n_relations, c.n_facts, c.n_two_hop, c.n_train_templates,
           c.n_heldout_templates);
    return 0;
}

int cmd_world(int argc, char **argv) {
    const char *cmd = "world";
    if (argc < 2) {
        world_usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        world_usage(stdout);
        return 0;
    }
    int is_info = !strcmp(sub, "info"), is_corpus = !strcmp(sub, "corpus"),
        is_facts = !strcmp(sub, "facts"), is_cases = !strcmp(sub, "cases");
    if (!is_info && !is_corpus && !is_facts && !is_cases)
        return cli_usage_error(cmd, "unknown subcommand '%s' (info, corpus, facts, cases)", sub);
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                          {"out", required_argument, 0, 'o'},
                                          {"seed", required_argument, 0, 's'},
                                          {"epochs-copies", required_argument, 0, 'c'},
                                          {"n", required_argument, 0, 'n'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *data = NULL, *out = NULL;
    uint64_t seed = 1;
    int copies = 1, n_cases = 600, c, copies_given = 0, n_given = 0, seed_given = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
        if (c == 'd') data = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 's') {
            if (!parse_u64(optarg, &seed))
                return cli_usage_error(cmd, "--seed: expected a non-negative integer, got '%s'", optarg);
            seed_given = 1;
        } else if (c == 'c') {
            if (!parse_int(optarg, 1, 1000, &copies))
                return cli_usage_error(cmd, "--epochs-copies: expected 1..1000, got '%s'", optarg);
            copies_given = 1;
        } else if (c == 'n') {
            if (!parse_int(optarg, 1, 1000000, &n_cases))
                return cli_usage_error(cmd, "--n: expected a positive number of cases, got '%s'", optarg);
            n_given = 1;
        } else if (c == 'h') {
            world_usage(stdout);
            return 0;
        } else if (optopt) {
            return cli_usage_error(cmd, "option '%s' needs a value", argv[optind]);
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", argv[optind]);
        }
    }
    if (optind < argc - 1) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
    if (!data) return cli_usage_error(cmd, "--data DIR is required");
    if (!is_info && !out) return cli_usage_error(cmd, "--out FILE is required");
    if (copies_given && !is_corpus) return cli_usage_error(cmd, "--epochs-copies is for 'world corpus'");
    if (n_given && !is_cases) return cli_usage_error(cmd, "--n is for 'world cases'");
    if (seed_given && !is_corpus && !is_cases)
        return cli_usage_error(cmd, "--seed is for 'world corpus' and 'world cases'");

    xle_error err = {0};
    xle_world *w = NULL;
    if (xle_world_load(data, &w, &err) != XLE_OK) return cli_report(cmd, &err);
    int rc = 0;
    if (is_info) {
        rc = print_counts(w);
    } else if (is_corpus) {
        xle_world_corpus_stats st;
        if (xle_world_write_corpus(w, out, seed, copies, &st, &err) != XLE_OK) {
            rc = cli_report(cmd, &err);
        } else {
            xle_world_counts cn;
            xle_world_get_counts(w, &cn);
            fprintf(stderr, "wrote %s: %ld lines (%d cop%s of %ld fact sentences + %ld name lines)\n",
                    out, st.n_lines, copies, copies == 1 ? "y" : "ies", st.n_sentences, st.n_name_lines);
            fprintf(stderr, "sentences per language:");
            for (int l = 0; l < cn.n_langs; l++) fprintf(stderr, " %s %ld", cn.langs[l], st.n_sentences_lang[l]);
            fprintf(stderr, "\n");
        }
    } else if (is_facts) {
        long n = 0;
        if (xle_world_write_facts(w, out, &n, &err) != XLE_OK) rc = cli_report(cmd, &err);
        else fprintf(stderr, "wrote %s: %ld facts (fact x language x training template)\n", out, n);
    } else {
        xle_cases *cs = NULL;
        if (xle_world_make_cases(w, n_cases, seed, &cs, &err) != XLE_OK ||
            xle_cases_write_jsonl(cs, out, &err) != XLE_OK) {
            rc = cli_report(cmd, &err);
        } else {
            char langs[XLE_WORLD_MAX_LANGS][XLE_LANG_MAX];
            int nl = xle_cases_lang_list(cs, langs, XLE_WORLD_MAX_LANGS);
            fprintf(stderr, "wrote %s: %d cases in %d languages\n", out, cs->n, nl);
        }
        xle_cases_free(cs);
    }
    xle_world_free(w);
    return rc;
}
