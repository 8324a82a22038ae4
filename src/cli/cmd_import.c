/*
 * cmd_import.c: the subcommands that make and check evaluation cases:
 *   xledit import --format NAME FILE... --out OUT.jsonl [--langs en,de,...]
 *   xledit validate FILE.jsonl [--json]
 * The work is done by the library (xle_cases_import, xle_cases_validate); this file parses
 * options and prints.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"

static void import_usage(FILE *out) {
    fprintf(out,
            "usage: xledit import --format NAME FILE... --out OUT.jsonl [--langs en,de,...]\n\n"
            "Converts a published knowledge-editing dataset to the canonical case format\n"
            "(docs/case-format.md), written atomically to OUT.jsonl. Files of a language-keyed\n"
            "dataset (bmike53, mzsre, bizsre) are merged into multilingual cases by record index;\n"
            "their shared \"en\" halves must agree. --langs keeps only the listed languages (cases\n"
            "left with none are dropped).\n\nformats:");
    for (const char *const *f = xle_import_formats(); *f; f++) fprintf(out, " %s", *f);
    fprintf(out, "\n(what each reads and how fields map: docs/datasets.md)\n");
}

/* Splits "en,de" into a malloc'd array of pointers into a malloc'd copy; returns 0 on error. */
static int split_langs(const char *s, char **copy, const char ***langs, int *n) {
    *copy = malloc(strlen(s) + 1);
    *langs = malloc((strlen(s) / 2 + 2) * sizeof **langs);
    if (!*copy || !*langs) return 0;
    strcpy(*copy, s);
    *n = 0;
    for (char *tok = *copy, *next; tok; tok = next) {
        next = strchr(tok, ',');
        if (next) *next++ = 0;
        if (!tok[0] || strlen(tok) >= XLE_LANG_MAX) return 0;
        (*langs)[(*n)++] = tok;
    }
    return *n > 0;
}

int cmd_import(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                          {"out", required_argument, 0, 'o'},
                                          {"langs", required_argument, 0, 'l'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *format = NULL, *out = NULL, *langs_arg = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f') format = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'l') langs_arg = optarg;
        else if (c == 'h') {
            import_usage(stdout);
            return 0;
        } else if (optopt) return cli_usage_error("import", "option '%s' needs a value", argv[optind - 1]);
        else return cli_usage_error("import", "unknown option '%s'", argv[optind - 1]);
    }
    if (!format) return cli_usage_error("import", "--format is required");
    if (!out) return cli_usage_error("import", "--out is required");
    if (optind >= argc) return cli_usage_error("import", "expected at least one input FILE");
    char *copy = NULL;
    const char **langs = NULL;
    int n_langs = 0, rc = 0;
    if (langs_arg && !split_langs(langs_arg, &copy, &langs, &n_langs)) {
        free(copy);
        free(langs);
        return cli_usage_error("import", "--langs: expected comma-separated language codes, got '%s'", langs_arg);
    }
    xle_error err = {0};
    xle_cases *cs = NULL;
    if (xle_cases_import(format, (const char *const *)(argv + optind), argc - optind, &cs, &err) ||
        (langs && xle_cases_keep_langs(cs, langs, n_langs, &err)) ||
        xle_cases_write_jsonl(cs, out, &err)) {
        rc = err.status == XLE_ERR_ARG ? (fprintf(stderr, "xledit import: %s\n", err.msg), 2)
                                       : cli_report("import", &err);
    } else {
        char codes[64][XLE_LANG_MAX];
        int nl = xle_cases_lang_list(cs, codes, 64);
        fprintf(stderr, "wrote %d cases to %s; languages:", cs->n, out);
        for (int i = 0; i < nl && i < 64; i++) {
            int n = 0;
            for (int k = 0; k < cs->n; k++) n += xle_case_lang_find(&cs->cases[k], codes[i]) != NULL;
            fprintf(stderr, " %s %d", codes[i], n);
        }
        fprintf(stderr, "\n");
    }
    xle_cases_free(cs);
    free(copy);
    free(langs);
    return rc;
}

static void validate_usage(FILE *out) {
    fprintf(out,
            "usage: xledit validate FILE.jsonl [--json]\n\n"
            "Checks FILE against the canonical case format (a malformed line is an error naming\n"
            "the line and field) and counts, per language, the cases a subject-locating editor\n"
            "(ROME, MEMIT) can use and why the others cannot. Of the cases whose subject is not a\n"
            "literal substring of the prompt, '+caseless' are found by caseless matching (NFKD,\n"
            "case folding, lumped punctuation, folded whitespace) and '+stem' more by word-prefix\n"
            "matching (docs/case-format.md). usable = exact matches only.\n");
}

static void print_json(const char *path, const xle_validation *v) {
    json_t *jp = json_string(path); /* NULL when the path is not UTF-8 */
    char *quoted = jp ? json_dumps(jp, JSON_ENCODE_ANY) : NULL;
    printf("{\"file\": %s, \"cases\": %d, \"langs\": [", quoted ? quoted : "null", v->n_cases);
    free(quoted);
    json_decref(jp);
    for (int i = 0; i < v->n_langs; i++) {
        const xle_lang_counts *l = &v->langs[i];
        printf("%s{\"lang\": \"%s\", \"cases\": %d, \"usable\": %d, \"prompt_missing\": %d, "
               "\"subject_empty\": %d, \"target_empty\": %d, \"subject_not_in_prompt\": %d, "
               "\"recovered_caseless\": %d, \"recovered_stem\": %d}",
               i ? ", " : "", l->lang, l->n_cases, l->n_problem[XLE_CASE_USABLE],
               l->n_problem[XLE_CASE_NO_PROMPT], l->n_problem[XLE_CASE_NO_SUBJECT],
               l->n_problem[XLE_CASE_NO_TARGET], l->n_problem[XLE_CASE_SUBJECT_NOT_IN_PROMPT],
               l->n_caseless, l->n_stem);
    }
    printf("]}\n");
}

static void print_table(const char *path, const xle_validation *v) {
    printf("%s: %d cases\n", path, v->n_cases);
    printf("%-6s %6s %7s %8s %8s %8s %9s %10s %6s %13s\n", "lang", "cases", "usable", "no_prompt",
           "no_subj", "no_target", "subj_miss", "+caseless", "+stem", "usable_loose");
    for (int i = 0; i < v->n_langs; i++) {
        const xle_lang_counts *l = &v->langs[i];
        int u = l->n_problem[XLE_CASE_USABLE];
        printf("%-6s %6d %7d %8d %8d %8d %9d %10d %6d %13d\n", l->lang, l->n_cases, u,
               l->n_problem[XLE_CASE_NO_PROMPT], l->n_problem[XLE_CASE_NO_SUBJECT],
               l->n_problem[XLE_CASE_NO_TARGET], l->n_problem[XLE_CASE_SUBJECT_NOT_IN_PROMPT],
               l->n_caseless, l->n_stem, u + l->n_caseless + l->n_stem);
    }
}

int cmd_validate(int argc, char **argv) {
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') json = 1;
        else if (c == 'h') {
            validate_usage(stdout);
            return 0;
        } else return cli_usage_error("validate", "unknown option '%s'", argv[optind - 1]);
    }
    if (optind != argc - 1) return cli_usage_error("validate", "expected one FILE.jsonl argument");
    const char *path = argv[optind];
    xle_error err = {0};
    xle_cases *cs = NULL;
    xle_validation *v = NULL;
    if (xle_cases_load(path, &cs, &err) || xle_cases_validate(cs, &v, &err)) {
        xle_cases_free(cs);
        return cli_report("validate", &err);
    }
    if (json) print_json(path, v);
    else print_table(path, v);
    xle_validation_free(v);
    xle_cases_free(cs);
    return 0;
}
