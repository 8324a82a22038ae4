/*
 * test_hparams_file.c: EasyEdit's hyper-parameter files as published (tests/fixtures/easyedit/,
 * copied from zjunlp/EasyEdit): each Llama-family YAML gives the same hyper-parameters as its
 * JSON twin (written by tests/reference/easyedit_hparams_json.py with PyYAML the way EasyEdit
 * reads them), with the values the file states; the bookkeeping keys are listed in the note;
 * GPT-J and Qwen-1 files read their keys but their module names are refused; AlphaEdit's load for
 * --method alphaedit (nullspace_threshold and L2 applied, P_loc noted) and are refused for MEMIT;
 * an unknown key, a YAML syntax error, a repeated key and a method mismatch are errors naming the
 * file and key, and leave the hyper-parameters as they were.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "xledit.h"

#define FIX XLE_SOURCE_DIR "/tests/fixtures/easyedit"

static int same_hparams(const xle_edit_hparams *a, const xle_edit_hparams *b) {
    if (a->method != b->method || a->n_layers != b->n_layers || a->n_ctx_lengths != b->n_ctx_lengths) return 0;
    for (int i = 0; i < a->n_layers; i++)
        if (a->layers[i] != b->layers[i]) return 0;
    for (int i = 0; i < a->n_ctx_lengths; i++)
        if (a->ctx_lengths[i] != b->ctx_lengths[i] || a->ctx_counts[i] != b->ctx_counts[i]) return 0;
    return a->v_num_grad_steps == b->v_num_grad_steps && a->v_lr == b->v_lr &&
           a->v_weight_decay == b->v_weight_decay && a->clamp_norm_factor == b->clamp_norm_factor &&
           a->kl_factor == b->kl_factor && a->mom2_adjustment == b->mom2_adjustment && a->rrome == b->rrome &&
           a->mom2_update_weight == b->mom2_update_weight && a->ft_steps == b->ft_steps &&
           a->ft_lr == b->ft_lr && a->ft_norm_constraint == b->ft_norm_constraint && a->seed == b->seed &&
           a->ike_k == b->ike_k && a->nullspace_threshold == b->nullspace_threshold &&
           a->alphaedit_l2 == b->alphaedit_l2;
}

/* Loads FIX/hparams/<dir>/<model>.yaml and FIX/json/<dir>/<model>.json over the defaults of a
 * 32-layer model after filling the fields with other values, so that a key read from one and
 * not the other shows. */
static void load_pair(const char *dir, const char *model, xle_edit_method m, xle_edit_hparams *y) {
    char yp[512], jp[512], note_y[512], note_j[512];
    snprintf(yp, sizeof yp, FIX "/hparams/%s/%s.yaml", dir, model);
    snprintf(jp, sizeof jp, FIX "/json/%s/%s.json", dir, model);
    xle_edit_hparams j;
    xle_edit_hparams_default(y, m, 32);
    y->layers[0] = 30, y->v_lr = 9, y->v_weight_decay = 9, y->clamp_norm_factor = 9, y->kl_factor = 9;
    y->ctx_lengths[0] = 99, y->mom2_update_weight = 9, y->ft_lr = 9, y->ft_steps = 99, y->ft_norm_constraint = 9;
    y->mom2_adjustment = !y->mom2_adjustment;
    y->nullspace_threshold = 9, y->alphaedit_l2 = 9;
    j = *y;
    xle_error err = {0};
    CHECK_OK(xle_edit_hparams_load_file(y, yp, NULL, note_y, sizeof note_y, &err), &err);
    CHECK_OK(xle_edit_hparams_load_file(&j, jp, NULL, note_j, sizeof note_j, &err), &err);
    CHECK_MSG(same_hparams(y, &j), "%s/%s: the YAML and the JSON differ", dir, model);
    CHECK_MSG(!strcmp(note_y, note_j), "%s/%s: notes differ: '%s' / '%s'", dir, model, note_y, note_j);
    CHECK_MSG(strstr(note_y, "model_name") && strstr(note_y, "device"), "%s/%s: note '%s'", dir, model, note_y);
}

static void test_rome_files(void) {
    static const char *const models[] = {"llama-7b", "mistral-7b", "qwen2.5-7b"};
    for (int i = 0; i < 3; i++) {
        xle_edit_hparams hp;
        load_pair("ROME", models[i], XLE_EDIT_ROME, &hp);
        CHECK(hp.n_layers == 1 && hp.layers[0] == 5);
        CHECK(hp.v_num_grad_steps == 25 && hp.v_lr == 0.5f && hp.v_weight_decay == 1e-3f);
        CHECK(hp.clamp_norm_factor == 4 && hp.kl_factor == 0.0625f && hp.mom2_adjustment == 0);
        /* [[5, 10], [10, 10]]: 10 samples of each length over 5 seed words, 2 per seed */
        CHECK(hp.n_ctx_lengths == 2 && hp.ctx_lengths[0] == 5 && hp.ctx_counts[0] == 2 &&
              hp.ctx_lengths[1] == 10 && hp.ctx_counts[1] == 2);
    }
}

static void test_memit_files(void) {
    static const char *const models[] = {"llama-7b", "mistral-7b", "qwen2.5-7b"};
    for (int i = 0; i < 3; i++) {
        xle_edit_hparams hp;
        load_pair("MEMIT", models[i], XLE_EDIT_MEMIT, &hp);
        CHECK(hp.n_layers == 5 && hp.layers[0] == 4 && hp.layers[4] == 8);
        CHECK(hp.mom2_adjustment == 1 && hp.mom2_update_weight == 15000 && hp.v_lr == 0.5f);
    }
}

static void test_ft_files(void) {
    xle_edit_hparams hp;
    load_pair("FT", "llama-7b", XLE_EDIT_FT_L, &hp);
    CHECK(hp.layers[0] == 21 && hp.ft_steps == 25 && hp.ft_lr == 5e-4f && hp.ft_norm_constraint == 0);
    load_pair("FT", "mistral-7b", XLE_EDIT_FT_L, &hp);
    CHECK(hp.ft_norm_constraint == 5e-5f);
    load_pair("FT", "qwen2.5-7b", XLE_EDIT_FT_L, &hp);
    CHECK(hp.layers[0] == 27 && hp.ft_norm_constraint == 0);
    /* FT files say prompt_last: FT-L, not FT-M */
    xle_edit_hparams_default(&hp, XLE_EDIT_FT_M, 32);
    xle_error err = {0};
    CHECK(xle_edit_hparams_load_file(&hp, FIX "/hparams/FT/llama-7b.yaml", NULL, NULL, 0, &err) != XLE_OK);
    CHECK_MSG(strstr(err.msg, "objective_optimization") && strstr(err.msg, "FT-L"), "%s", err.msg);
}

/* EasyEdit's AlphaEdit file for a Llama-family model (Qwen2.5) is read whole for --method alphaedit:
 * MEMIT's keys, the null-space threshold and the ridge term L2; P_loc (EasyEdit's cache of the
 * projection) is noted as not used. */
static void test_alphaedit_files(void) {
    xle_edit_hparams hp;
    load_pair("AlphaEdit", "qwen2.5-7b", XLE_EDIT_ALPHAEDIT, &hp);
    CHECK(hp.method == XLE_EDIT_ALPHAEDIT && hp.n_layers == 5 && hp.layers[0] == 4 && hp.layers[4] == 8);
    CHECK(hp.nullspace_threshold == 2e-2 && hp.alphaedit_l2 == 1);
    CHECK(hp.clamp_norm_factor == 4 && hp.v_lr == 0.5f && hp.v_weight_decay == 1e-3f);
    CHECK(hp.mom2_adjustment == 1 && hp.mom2_update_weight == 15000);
    char note[512];
    xle_error err = {0};
    xle_edit_hparams_default(&hp, XLE_EDIT_ALPHAEDIT, 32);
    CHECK_OK(xle_edit_hparams_load_file(&hp, FIX "/hparams/AlphaEdit/qwen2.5-7b.yaml", NULL, note, sizeof note, &err),
             &err);
    CHECK_MSG(strstr(note, "P_loc") != NULL, "note '%s'", note);
}

/* Expects the file to be refused with a message holding every one of the words. */
static void expect_refused(const char *path, xle_edit_method m, const char *w1, const char *w2) {
    xle_edit_hparams hp, before;
    xle_edit_hparams_default(&hp, m, 32);
    before = hp;
    xle_error err = {0};
    CHECK_MSG(xle_edit_hparams_load_file(&hp, path, NULL, NULL, 0, &err) != XLE_OK, "%s loaded", path);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, w1) && (!w2 || strstr(err.msg, w2)), "%s: '%s'", path, err.msg);
    CHECK_MSG(same_hparams(&hp, &before), "%s: the refused file changed the hyper-parameters", path);
}

static void test_other_families(void) {
    static const char *const dirs[] = {"ROME", "MEMIT", "FT"};
    static const xle_edit_method ms[] = {XLE_EDIT_ROME, XLE_EDIT_MEMIT, XLE_EDIT_FT_L};
    char path[512];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, FIX "/hparams/%s/gpt-j-6B.yaml", dirs[i]);
        expect_refused(path, ms[i], "rewrite_module_tmp", "GPT-J");
        snprintf(path, sizeof path, FIX "/hparams/%s/qwen-7b.yaml", dirs[i]);
        expect_refused(path, ms[i], "rewrite_module_tmp", "Qwen-1");
    }
    expect_refused(FIX "/hparams/AlphaEdit/qwen2.5-7b.yaml", XLE_EDIT_MEMIT, "alg_name", "AlphaEdit");
    expect_refused(FIX "/hparams/AlphaEdit/gpt-j-6B.yaml", XLE_EDIT_ALPHAEDIT, "rewrite_module_tmp", "GPT-J");
    expect_refused(FIX "/hparams/MEMIT/llama-7b.yaml", XLE_EDIT_ALPHAEDIT, "alg_name", "MEMIT");
    expect_refused(FIX "/hparams/ROME/llama-7b.yaml", XLE_EDIT_MEMIT, "alg_name", "ROME");
}

/* Writes TEXT to a fresh temporary file with the given suffix; returns its path (static). */
static const char *temp_file(const char *suffix, const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/xle_hparams_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* GPT-J's keys are all known: without its module lines its ROME file loads. */
static void test_gptj_keys_read(void) {
    FILE *in = fopen(FIX "/hparams/ROME/gpt-j-6B.yaml", "r");
    CHECK(in != NULL);
    if (!in) return;
    char text[8192] = "", line[512];
    while (fgets(line, sizeof line, in))
        if (!strstr(line, "_module")) strncat(text, line, sizeof text - strlen(text) - 1);
    fclose(in);
    const char *p = temp_file(".yaml", text);
    xle_edit_hparams hp;
    xle_edit_hparams_default(&hp, XLE_EDIT_ROME, 32);
    xle_error err = {0};
    CHECK_OK(xle_edit_hparams_load_file(&hp, p, NULL, NULL, 0, &err), &err);
    CHECK(hp.v_num_grad_steps == 20 && hp.v_weight_decay == 0.5f && hp.layers[0] == 5);
    unlink(p);
}

static void test_bad_files(void) {
    struct { const char *suffix, *text, *w1, *w2; } cases[] = {
        {".yaml", "layers: [5]\nv_lr: 0.5\nwarmup: 3\n", "warmup", "unknown"},
        {".json", "{\"layers\": [5], \"warmup\": 3}", "warmup", "unknown"},
        {".yaml", "layers: [5\nv_lr: 0.5\n", "line", NULL},
        {".yaml", "v_lr: 0.5\nv_lr: 0.25\n", "line 2", "twice"},
        {".yaml", "v_lr: fast\n", "v_lr", "number"},
        {".yaml", "layers: [-1]\n", "layers[0]", NULL},
        {".yaml", "- 1\n- 2\n", "mapping", NULL},
        {".yaml", "fact_token: last\n", "fact_token", "subject_last"},
        {".yaml", "base: &b 1\nv_lr: *b\n", "anchors", NULL},
        {".yaml", "v_lr: 0.5\n---\nv_lr: 1\n", "second", NULL},
        {".yaml", "layer_module_tmp: model.h.{}\n", "layer_module_tmp", "model.layers.{}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = temp_file(cases[i].suffix, cases[i].text);
        CHECK(p != NULL);
        if (!p) continue;
        char path[64];
        snprintf(path, sizeof path, "%s", p);
        expect_refused(path, XLE_EDIT_ROME, cases[i].w1, cases[i].w2);
        unlink(path);
    }
    /* EasyEdit turns strings that read as numbers into floats; so does xledit */
    const char *p = temp_file(".yaml", "v_lr: '5e-1'\nv_weight_decay: 1e-3\nseed: 7\n");
    xle_edit_hparams hp;
    xle_edit_hparams_default(&hp, XLE_EDIT_ROME, 32);
    xle_error err = {0};
    CHECK_OK(xle_edit_hparams_load_file(&hp, p, NULL, NULL, 0, &err), &err);
    CHECK(hp.v_lr == 0.5f && hp.v_weight_decay == 1e-3f && hp.seed == 7);
    unlink(p);
}

int main(void) {
    RUN(test_rome_files);
    RUN(test_memit_files);
    RUN(test_ft_files);
    RUN(test_alphaedit_files);
    RUN(test_other_families);
    RUN(test_gptj_keys_read);
    RUN(test_bad_files);
    return check_summary();
}
