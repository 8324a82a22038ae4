/*
 * cmd_tokenize.c: `xledit tokenize MODEL --text "..."`: the ids, pieces and input byte ranges
 * of a text. MODEL is a model (folder, .gguf, llama2.c .bin) or a bare tokenizer file
 * (tokenizer.json, tokenizer.bin, tokenizer.model, *.tiktoken, vocabulary-only .gguf).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char usage[] =
    "usage: xledit tokenize MODEL --text \"...\" [--json] [--no-bos] [--parse-special]\n\n"
    "Prints the tokens of the text: id, input byte offset and length, and the piece.\n"
    "MODEL is a model (folder, .gguf, llama2.c .bin) or a tokenizer file (tokenizer.json,\n"
    "tokenizer.bin, tokenizer.model, *.tiktoken). BOS is added as the tokenizer's files say\n"
    "unless --no-bos. --parse-special matches special tokens such as <s> or <|im_start|>\n"
    "written in the text. --json prints {\"ids\": [...], \"tokens\": [{\"id\", \"piece\",\n"
    "\"offset\", \"length\"}, ...]}.\n";

/* Writes s as a JSON string; bytes that are not valid UTF-8 become U+FFFD. */
static void print_json_string(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    putchar('"');
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') printf("\\%c", c), p++;
        else if (c < 0x20) printf("\\u%04x", c), p++;
        else if (c < 0x80) putchar((int)c), p++;
        else {
            int n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
            int ok = n > 0;
            for (int i = 1; ok && i < n; i++) ok = (p[i] & 0xc0) == 0x80;
            if (ok) {
                fwrite(p, 1, (size_t)n, stdout);
                p += n;
            } else {
                fputs("\xef\xbf\xbd", stdout);
                p++;
            }
        }
    }
    putchar('"');
}

/* A piece for the plain listing: control characters escaped so that one token is one line. */
static void print_plain_piece(const char *s) {
    for (; *s; s++) {
        if (*s == '\n') fputs("\\n", stdout);
        else if (*s == '\t') fputs("\\t", stdout);
        else if (*s == '\r') fputs("\\r", stdout);
        else if ((unsigned char)*s < 0x20) printf("\\x%02x", (unsigned char)*s);
        else putchar(*s);
    }
}

/* The tokenizer of MODEL: a tokenizer file or folder directly, otherwise the model's own
 * (kept alive in *model). Returns 0 or the exit code. */
static int open_tokenizer(const char *path, xle_tokenizer **tok, xle_model **model) {
    xle_error err = {0};
    *tok = NULL;
    *model = NULL;
    xle_status st = xle_tokenizer_load(path, tok, &err);
    if (st == XLE_OK) return 0;
    if (st != XLE_ERR_UNSUPPORTED && st != XLE_ERR_NOT_FOUND) return cli_report("tokenize", &err);
    /* not a tokenizer by itself: a model whose loader finds its tokenizer */
    xle_error merr = {0};
    if (xle_model_load(path, model, &merr) != XLE_OK) {
        if (st == XLE_ERR_NOT_FOUND) return cli_report("tokenize", &merr);
        /* neither: say both, the file may be a damaged tokenizer or a damaged model */
        fprintf(stderr, "xledit tokenize: %s; as a model: %s\n", err.msg, merr.msg);
        return 1;
    }
    *tok = xle_model_tokenizer(*model);
    if (!*tok) {
        fprintf(stderr, "xledit tokenize: %s: the model has no tokenizer file\n", path);
        xle_model_free(*model);
        *model = NULL;
        return 1;
    }
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option opts[] = {
        {"text", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
        {"no-bos", no_argument, 0, 'b'},     {"parse-special", no_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
    const char *text = NULL;
    int json = 0, no_bos = 0, parse_special = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': text = optarg; break;
        case 'j': json = 1; break;
        case 'b': no_bos = 1; break;
        case 's': parse_special = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: return cli_usage_error("tokenize", "unknown option or missing value '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error("tokenize", "expected one MODEL argument");
    if (!text) return cli_usage_error("tokenize", "--text is required");
    xle_tokenizer *tok;
    xle_model *model;
    int rc = open_tokenizer(argv[optind], &tok, &model);
    if (rc) return rc;
    xle_tokens t = {0};
    xle_error err = {0};
    if (xle_tokenize(tok, text, strlen(text), no_bos ? 0 : -1, parse_special, &t, &err) != XLE_OK) {
        rc = cli_report("tokenize", &err);
    } else if (json) {
        printf("{\"ids\": [");
        for (int i = 0; i < t.n; i++) printf(i ? ", %d" : "%d", t.ids[i]);
        printf("], \"tokens\": [");
        for (int i = 0; i < t.n; i++) {
            printf(i ? ",\n  {\"id\": %d, \"piece\": " : "\n  {\"id\": %d, \"piece\": ", t.ids[i]);
            print_json_string(xle_tokenizer_piece(tok, t.ids[i]));
            printf(", \"offset\": %d, \"length\": %d}", t.offsets[i], t.lengths[i]);
        }
        printf("]}\n");
    } else {
        for (int i = 0; i < t.n; i++) {
            printf("%d\t%d\t%d\t", t.ids[i], t.offsets[i], t.lengths[i]);
            print_plain_piece(xle_tokenizer_piece(tok, t.ids[i]));
            putchar('\n');
        }
    }
    xle_tokens_free(&t);
    if (model) xle_model_free(model);
    else xle_tokenizer_free(tok);
    return rc;
}
