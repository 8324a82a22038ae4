/*
 * test_eval_sequential.c: sequential (lifelong) evaluation on the built-in model
 * (models/xledit-mini, its world cases), ROME and AlphaEdit, a few edits with short
 * optimisations. Golden-free properties:
 *  - the model's weights are bitwise the original afterwards; one line per checkpoint;
 *  - checkpoint 1 is the single-edit evaluation: its metrics in every test language are the
 *    very numbers an ordinary run (xle_eval_run) gives for the first case's unit;
 *  - a run interrupted between checkpoints and resumed writes sequential.jsonl byte for byte
 *    as an uninterrupted one; a finished run is not overwritten, other arguments (and IKE,
 *    which changes no weights) are refused;
 *  - the report draws one line per test language in each chart (HTML) and prints the tables;
 *  - every line has the edits so far as its case count, held-out agreements in [0, 1] and a
 *    finite perplexity of the fixed text.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_files.h"
#include "model/model_internal.h"

#define MODEL XLE_SOURCE_DIR "/models/xledit-mini"
#define CASES XLE_SOURCE_DIR "/data/world/cases.jsonl"
#define FLUENCY XLE_SOURCE_DIR "/data/world/fluency.txt"

static char tmpdir[256], stats_dir[400];
static xle_edit_hparams hps[2];
static const char *edit_langs[] = {"en"};
static const char *test_langs[] = {"en", "hi"};
static const int checkpoints[] = {1, 2, 3};
#define N_CHECKPOINTS 3
#define HELD_OUT 1
#define N_CASES 4

static xle_eval_opts opts(const char *run_dir) {
    xle_eval_opts o = {0};
    o.data_path = CASES;
    o.run_dir = run_dir;
    o.hparams = hps;
    o.n_methods = 2;
    o.edit_langs = edit_langs;
    o.n_edit_langs = 1;
    o.test_langs = test_langs;
    o.n_test_langs = 2;
    o.max_cases = N_CASES;
    o.stats_dir = stats_dir;
    o.context_templates = "none";
    return o;
}

static const xle_sequential_opts seq_opts = {checkpoints, N_CHECKPOINTS, HELD_OUT, FLUENCY};

static int stop_after;
static int stop_at(void *user, int64_t done, int64_t total) {
    (void)user, (void)total;
    return done >= stop_after;
}

static uint64_t down_hash(xle_model *m) {
    uint64_t h = 1469598103934665603ull;
    const xle_config *c = xle_model_config(m);
    float *row = malloc((size_t)c->ffn_dim * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        const xle_tensor *t = &xle_model_weights(m)->layers[l].w_down;
        for (int r = 0; r < c->dim; r++) {
            xle_tensor_row_to_f32(t, (int64_t)r * c->ffn_dim, c->ffn_dim, row);
            const unsigned char *p = (const unsigned char *)row;
            for (size_t i = 0; i < (size_t)c->ffn_dim * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ull;
        }
    }
    free(row);
    return h;
}

static json_t *read_lines(const char *path) {
    json_t *a = json_array();
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) json_array_append_new(a, json_loads(line, 0, NULL));
    free(line);
    if (f) fclose(f);
    return a;
}

static void test_sequential(void) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(MODEL, &m, &err), &err);
    if (!m) return;
    /* statistics of layer 0 over the fixed text (what AlphaEdit's P needs; small but full rank
     * is not required: P only selects directions) */
    const int layers[1] = {0};
    const char *files[1] = {FLUENCY};
    snprintf(stats_dir, sizeof stats_dir, "%s/stats", tmpdir);
    xle_stats_opts so = {layers, 1, files, 1, 0, 0, stats_dir, NULL, NULL};
    CHECK_OK(xle_stats_build(m, xle_model_tokenizer(m), &so, &err), &err);
    const xle_edit_method methods[2] = {XLE_EDIT_ROME, XLE_EDIT_ALPHAEDIT};
    for (int i = 0; i < 2; i++) {
        xle_edit_hparams_for_model(&hps[i], methods[i], xle_model_config(m));
        hps[i].layers[0] = 0, hps[i].n_layers = 1;
        hps[i].v_lr = 2.0f;
        hps[i].v_num_grad_steps = 8;
        hps[i].nullspace_threshold = 5;
    }
    const uint64_t before = down_hash(m);

    /* A: the whole run */
    char dir_a[500], dir_b[500], dir_single[500], path[600];
    snprintf(dir_a, sizeof dir_a, "%s/seq-a", tmpdir);
    xle_eval_opts o = opts(dir_a);
    xle_eval_summary sum;
    CHECK_OK(xle_eval_sequential(m, &o, &seq_opts, &sum, &err), &err);
    CHECK(down_hash(m) == before);
    CHECK(sum.n_done == 2 * N_CHECKPOINTS && sum.n_resumed == 0 && sum.n_failed == 0);
    snprintf(path, sizeof path, "%s/sequential.jsonl", dir_a);
    json_t *lines = read_lines(path);
    CHECK(json_array_size(lines) == 2 * N_CHECKPOINTS);
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *l = json_array_get(lines, i);
        CHECK(json_integer_value(json_object_get(l, "edits")) == checkpoints[i % N_CHECKPOINTS]);
        CHECK(!strcmp(json_string_value(json_object_get(l, "method")), i < N_CHECKPOINTS ? "rome" : "alphaedit"));
        const double ppl = json_number_value(json_object_get(l, "perplexity"));
        CHECK(isfinite(ppl) && ppl > 1);
        json_t *held = json_object_get(l, "held_out_agreement");
        for (int t = 0; t < 2; t++) {
            double a = json_number_value(json_object_get(held, test_langs[t]));
            CHECK(a >= 0 && a <= 1);
        }
        CHECK(json_integer_value(json_object_get(json_object_get(json_object_get(l, "tests"), "en"), "cases")) ==
              checkpoints[i % N_CHECKPOINTS]);
    }

    /* checkpoint 1 == the single-edit evaluation of the first case */
    snprintf(dir_single, sizeof dir_single, "%s/single", tmpdir);
    xle_eval_opts os = opts(dir_single);
    os.max_cases = 1;
    CHECK_OK(xle_eval_run(m, &os, &sum, &err), &err);
    snprintf(path, sizeof path, "%s/results.jsonl", dir_single);
    json_t *units = read_lines(path);
    CHECK(json_array_size(units) == 2);
    for (int mi = 0; mi < 2 && json_array_size(units) == 2; mi++) {
        json_t *unit_tests = json_object_get(json_array_get(units, (size_t)mi), "tests");
        json_t *seq_tests = json_object_get(json_array_get(lines, (size_t)(mi * N_CHECKPOINTS)), "tests");
        for (int t = 0; t < 2; t++) {
            json_t *um = json_object_get(json_object_get(unit_tests, test_langs[t]), "metrics");
            json_t *sm = json_object_get(seq_tests, test_langs[t]);
            for (int k = 0; k < XLE_METRIC_COUNT; k++) {
                const char *name = xle_metric_name((xle_metric)k);
                json_t *a = json_object_get(um, name), *b = json_object_get(sm, name);
                CHECK_MSG((json_is_null(a) && json_is_null(b)) || (json_is_number(a) && json_is_number(b) &&
                                                                    json_number_value(a) == json_number_value(b)),
                          "%s %s %s: sequential checkpoint 1 differs from the single edit", mi ? "alphaedit" : "rome",
                          test_langs[t], name);
            }
        }
    }
    json_decref(units);

    /* B: interrupted between checkpoints, then resumed: the same bytes */
    snprintf(dir_b, sizeof dir_b, "%s/seq-b", tmpdir);
    xle_eval_opts ob = opts(dir_b);
    ob.progress = stop_at;
    for (int k = 0; k < 3; k++) {
        stop_after = k == 0 ? 2 : k == 1 ? N_CHECKPOINTS + 2 : 1 << 30;
        xle_status st = xle_eval_sequential(m, &ob, &seq_opts, &sum, &err);
        CHECK(k < 2 ? st == XLE_ERR_INTERRUPTED : st == XLE_OK);
        CHECK(down_hash(m) == before);
        ob.resume = 1;
    }
    size_t na = 0, nb = 0;
    snprintf(path, sizeof path, "%s/sequential.jsonl", dir_a);
    char *a = test_read_file(path, &na);
    snprintf(path, sizeof path, "%s/sequential.jsonl", dir_b);
    char *b = test_read_file(path, &nb);
    CHECK_MSG(a && b && na > 0 && na == nb && !memcmp(a, b, na), "the resumed run's sequential.jsonl differs");
    free(a), free(b);

    /* the report: one curve per test language in every chart, the numbers in the text */
    xle_report *rep = NULL;
    CHECK_OK(xle_report_load(dir_a, &rep, &err), &err);
    char *html = NULL, *text = NULL;
    size_t len = 0;
    if (rep) {
        CHECK_OK(xle_report_render(rep, XLE_REPORT_HTML, &html, &len, &err), &err);
        CHECK_OK(xle_report_render(rep, XLE_REPORT_TEXT, &text, &len, &err), &err);
    }
    int polylines = 0;
    for (const char *p = html; p && (p = strstr(p, "<polyline")); p++) polylines++;
    /* per method: 6 charts x 2 test languages + the perplexity */
    CHECK_MSG(polylines == 2 * (6 * 2 + 1), "%d polylines in the sequential report", polylines);
    CHECK(text && strstr(text, "alphaedit, edits in en: Reliability (token accuracy)"));
    free(html), free(text);
    xle_report_free(rep);

    /* a finished run is kept; other arguments are refused on resume */
    CHECK(xle_eval_sequential(m, &o, &seq_opts, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "--resume"));
    o.resume = 1;
    xle_sequential_opts other = seq_opts;
    other.n_checkpoints = 2;
    CHECK(xle_eval_sequential(m, &o, &other, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "checkpoints"));
    const char *all_langs[] = {"all"};
    o.edit_langs = all_langs;
    CHECK(xle_eval_sequential(m, &o, &seq_opts, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "one language at a time"));
    /* IKE changes no weights: it has no sequence of edits to keep */
    xle_edit_hparams ike;
    xle_edit_hparams_for_model(&ike, XLE_EDIT_IKE, xle_model_config(m));
    char dir_ike[400];
    snprintf(dir_ike, sizeof dir_ike, "%s/ike", tmpdir);
    o.edit_langs = edit_langs, o.hparams = &ike, o.n_methods = 1, o.resume = 0, o.run_dir = dir_ike;
    CHECK(xle_eval_sequential(m, &o, &seq_opts, &sum, &err) == XLE_ERR_ARG && strstr(err.msg, "ike changes no weights"));
    json_decref(lines);
    xle_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xle_eval_seq_%ld", (long)getpid());
    mkdir(tmpdir, 0777);
    RUN(test_sequential);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
