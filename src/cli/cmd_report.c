/*
 * cmd_report.c: `xledit report RUN_DIR`: the tables of an evaluation run (text, Markdown, CSV,
 * JSON) and a self-contained HTML page with heatmaps. The work is done by xle_report_load and
 * xle_report_render (src/report/); files are written atomically.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/outpath.h"

static const char report_usage[] =
    "usage: xledit report RUN_DIR [--format text|md|csv|json|html|all|easyedit] [--out DIR]\n\n"
    "Aggregates an evaluation run (xledit eval): for every method and metric, a table with\n"
    "edit languages as rows and test languages as columns (means over units x100), the ELFI /\n"
    "ELFO / all-languages summary, the unedited baseline and the units not edited. Without\n"
    "--out the chosen format (default text) goes to standard output; with --out DIR it is\n"
    "written to DIR/report.EXT (all: every format). The HTML page is self-contained (inline CSS,\n"
    "SVG heatmaps, a per-case view of failures; no script, nothing fetched).\n"
    "--format easyedit (not part of all): EasyEdit's metrics records (pre/post rewrite_acc,\n"
    "rephrase_acc, locality, portability), one list per method, edit and test language\n"
    "(DIR/report.easyedit.json with --out).\n";

static int parse_format(const char *s, int *f) {
    static const char *const names[XLE_REPORT_FORMAT_COUNT] = {"text", "md", "csv", "json", "html"};
    for (int i = 0; i < XLE_REPORT_FORMAT_COUNT; i++)
        if (!strcmp(s, names[i])) {
            *f = i;
            return 0;
        }
    if (!strcmp(s, "easyedit")) {
        *f = -3;
        return 0;
    }
    if (!strcmp(s, "all")) {
        *f = -1;
        return 0;
    }
    return 1;
}

/* Writes data to DIR/report.EXT through a temporary file, fsync and rename. */
static int write_file(const char *dir, const char *ext, const char *data, size_t len) {
    char path[4096];
    snprintf(path, sizeof path, "%s/report.%s", dir, ext);
    xle_error err = {0};
    return xle_atomic_write(path, data, len, &err) == XLE_OK ? 0 : cli_report("report", &err);
}
/* --format easyedit: to standard output, or DIR/report.easyedit.json. */
static int easyedit(const char *run_dir, const char *out) {
    xle_error err = {0};
    char *text = NULL;
    size_t len = 0;
    if (xle_report_render_easyedit(run_dir, &text, &len, &err) != XLE_OK) return cli_report("report", &err);
    int rc = 0;
    if (out && mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "xledit report: %s: cannot create: %s\n", out, strerror(errno));
        rc = 1;
    } else if (out) {
        rc = write_file(out, "easyedit.json", text, len);
        if (!rc) printf("wrote %s/report.easyedit.json\n", out);
    } else if (fwrite(text, 1, len, stdout) != len) {
        rc = 1;
    }
    free(text);
    return rc;
}

int cmd_report(int argc, char **argv) {
    static const struct option opts[] = {{"format", required_argument, 0, 'f'},
                                          {"out", required_argument, 0, 'o'},
                                          {"help", no_argument, 0, 'h'},
                                          {0, 0, 0, 0}};
    const char *out = NULL;
    int format = -2, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'f') {
            if (parse_format(optarg, &format))
                return cli_usage_error("report", "--format: expected text, md, csv, json, html, all or easyedit, got '%s'", optarg);
        } else if (c == 'o') {
            out = optarg;
        } else if (c == 'h') {
            fputs(report_usage, stdout);
            return 0;
        } else if (optopt) {
            return cli_usage_error("report", "option '%s' needs a value", argv[optind - 1]);
        } else {
            return cli_usage_error("report", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return cli_usage_error("report", "expected one RUN_DIR argument");
    if (format == -1 && !out) return cli_usage_error("report", "--format all needs --out DIR");
    if (format == -2) format = out ? -1 : XLE_REPORT_TEXT;
    xle_error err = {0};
    if (format == -3) return easyedit(argv[optind], out);
    xle_report *r = NULL;
    if (xle_report_load(argv[optind], &r, &err) != XLE_OK) return cli_report("report", &err);
    if (out && mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "xledit report: %s: cannot create: %s\n", out, strerror(errno));
        xle_report_free(r);
        return 1;
    }
    int rc = 0;
    for (int f = 0; f < XLE_REPORT_FORMAT_COUNT && !rc; f++) {
        if (format >= 0 && f != format) continue;
        char *text = NULL;
        size_t len = 0;
        if (xle_report_render(r, (xle_report_format)f, &text, &len, &err) != XLE_OK) {
            rc = cli_report("report", &err);
            break;
        }
        if (out) rc = write_file(out, xle_report_format_ext((xle_report_format)f), text, len);
        else if (fwrite(text, 1, len, stdout) != len) rc = 1;
        free(text);
    }
    if (out && !rc) fprintf(stderr, "wrote %s/report.*\n", out);
    xle_report_free(r);
    return rc;
}
