/*
 * test_builtin.c: the shipped model (models/xledit-mini) on its own world (data/world):
 *   - it knows its facts: greedy recall of the object >= 95% in each of the eight languages
 *     (every 3rd fact, one training template per fact in turn; every 16th under the
 *     sanitizers; scripts/make_builtin_model.sh checks every fact and template);
 *   - ROME on it (at the layer the model's edit-hparams/rome.json names) changes the edited
 *     fact in the edit language (at least 2 of 4 edits: the measured rate, see below) and
 *     leaves at least 90% of other facts (other subjects, all languages) unchanged.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "xledit.h"

#define MODEL XLE_SOURCE_DIR "/models/xledit-mini"
#define WORLD XLE_SOURCE_DIR "/data/world"
#define CASES XLE_SOURCE_DIR "/data/world/cases.jsonl"

typedef struct fact_line {
    char lang[8];
    char *subject_id, *prompt, *object;
} fact_line;

/* Every (fact, language) once, with its training templates in turn (template = running
 * (fact, language) index mod 3). */
static fact_line *load_facts(int *n_out) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/xle_builtin_facts_%ld.jsonl", (long)getpid());
    xle_world *w = NULL;
    xle_error err = {0};
    CHECK_OK(xle_world_load(WORLD, &w, &err), &err);
    long n = 0;
    if (w) CHECK_OK(xle_world_write_facts(w, path, &n, &err), &err);
    xle_world_free(w);
    FILE *f = fopen(path, "r");
    fact_line *all = calloc((size_t)(n > 0 ? n : 1), sizeof *all);
    int count = 0, group = -1;
    char prev_key[512] = "";
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        if (!o) continue;
        const char *lang = json_string_value(json_object_get(o, "lang"));
        const char *sid = json_string_value(json_object_get(o, "subject_id"));
        const char *rel = json_string_value(json_object_get(o, "relation"));
        int tpl = (int)json_integer_value(json_object_get(o, "template"));
        char key[512];
        snprintf(key, sizeof key, "%s|%s|%s", sid ? sid : "", rel ? rel : "", lang ? lang : "");
        if (strcmp(key, prev_key) != 0) {
            snprintf(prev_key, sizeof prev_key, "%s", key);
            group++;
        }
        if (tpl == group % 3 && lang && sid) {
            fact_line *fl = &all[count++];
            snprintf(fl->lang, sizeof fl->lang, "%s", lang);
            fl->subject_id = strdup(sid);
            fl->prompt = strdup(json_string_value(json_object_get(o, "prompt")));
            fl->object = strdup(json_string_value(json_object_get(o, "object")));
        }
        json_decref(o);
    }
    if (f) fclose(f);
    remove(path);
    *n_out = count;
    return all;
}

static void free_facts(fact_line *f, int n) {
    for (int i = 0; i < n; i++) free(f[i].subject_id), free(f[i].prompt), free(f[i].object);
    free(f);
}

static const char *const LANGS[] = {"en", "de", "fr", "it", "es", "hi", "ta", "kn"};

static void test_knows_its_facts(void) {
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(MODEL, &m, &err), &err);
    if (!m) return;
    int n = 0;
    fact_line *facts = load_facts(&n);
    CHECK(n > 3000);
    int known[8] = {0}, total[8] = {0};
#ifdef XLE_SANITIZED
    const int stride = 16; /* every 16th fact of each language: the sanitized build is slower */
#else
    const int stride = 3; /* 406 per language; `make_builtin_model.sh` checks all 3,654 */
#endif
    int seen[8] = {0};
    for (int i = 0; i < n; i++) {
        int li = -1;
        for (int k = 0; k < 8; k++)
            if (!strcmp(facts[i].lang, LANGS[k])) li = k;
        if (li < 0 || seen[li]++ % stride != 0) continue;
        int ok = 0;
        CHECK_OK(xle_fact_recalled(m, xle_model_tokenizer(m), facts[i].prompt, facts[i].object, &ok, &err), &err);
        known[li] += ok;
        total[li]++;
    }
    for (int k = 0; k < 8; k++) {
        double recall = total[k] ? (double)known[k] / total[k] : 0;
        fprintf(stderr, "%s: %d/%d facts recalled (%.1f%%)\n", LANGS[k], known[k], total[k], 100 * recall);
        CHECK_MSG(total[k] > 3654 / 3 / stride - 2 && recall >= 0.95, "%s: recall %.3f below 0.95", LANGS[k], recall);
    }
    free_facts(facts, n);
    xle_model_free(m);
}

static void test_rome_changes_one_fact(void) {
    xle_model *m = NULL;
    xle_cases *cs = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(MODEL, &m, &err), &err);
    CHECK_OK(xle_cases_load(CASES, &cs, &err), &err);
    if (!m || !cs) return;
    xle_tokenizer *tok = xle_model_tokenizer(m);
    int n = 0;
    fact_line *facts = load_facts(&n);
#ifdef XLE_SANITIZED
    enum { N_EDITS = 4, N_OTHER = 100 }; /* the sanitized build is ~10x slower */
#else
    enum { N_EDITS = 4, N_OTHER = 400 };
#endif
    int *before = malloc((size_t)N_OTHER * sizeof *before);
    int edited_ok = 0, unchanged_total = 0, other_total = 0;
    for (int e = 0; e < N_EDITS; e++) {
        const xle_case *c = &cs->cases[e * 37 % cs->n];
        const xle_case_lang *en = xle_case_lang_find(c, "en");
        if (!en) continue;
        /* other facts: a fixed spread over all languages, subjects other than the edited one */
        int picked[N_OTHER], n_picked = 0;
        for (int i = e; i < n && n_picked < N_OTHER; i += n / N_OTHER + 1)
            if (strcmp(facts[i].object, en->target_new) != 0 && !strstr(facts[i].prompt, en->subject))
                picked[n_picked++] = i;
        for (int k = 0; k < n_picked; k++)
            CHECK_OK(xle_fact_recalled(m, tok, facts[picked[k]].prompt, facts[picked[k]].object, &before[k], &err), &err);
        xle_edit_hparams hp; /* the defaults, then the model's own edit-hparams/rome.json */
        xle_edit_hparams_for_model(&hp, XLE_EDIT_ROME, xle_model_config(m));
        CHECK_OK(xle_edit_hparams_load_json(&hp, MODEL "/edit-hparams/rome.json", &err), &err);
        xle_context_templates *ct = NULL;
        xle_edit_request_tok rt = {0};
        xle_edit_result res = {0};
        xle_edit_request req = {en->prompt, en->subject, en->target_new};
        CHECK_OK(xle_context_templates_sample(m, tok, &hp, &ct, &err), &err);
        CHECK_OK(xle_edit_request_tokenize(tok, &req, ct, &rt, &err), &err);
        CHECK_OK(xle_edit_run(m, &hp, &rt, 1, NULL, &res, &err), &err);
        CHECK_OK(xle_edit_apply(m, &res, +1, &err), &err);
        int ok = 0;
        CHECK_OK(xle_fact_recalled(m, tok, en->prompt, en->target_new, &ok, &err), &err);
        edited_ok += ok;
        int unchanged = 0;
        for (int k = 0; k < n_picked; k++) {
            int now = 0;
            CHECK_OK(xle_fact_recalled(m, tok, facts[picked[k]].prompt, facts[picked[k]].object, &now, &err), &err);
            unchanged += now == before[k];
        }
        fprintf(stderr, "ROME '%s' -> '%s': %s; other facts unchanged %d/%d\n", en->prompt,
                en->target_new, ok ? "edited" : "NOT edited", unchanged, n_picked);
        unchanged_total += unchanged;
        other_total += n_picked;
        /* back to the shipped weights for the next edit */
        xle_model_free(m);
        m = NULL;
        CHECK_OK(xle_model_load(MODEL, &m, &err), &err);
        tok = m ? xle_model_tokenizer(m) : NULL;
        xle_edit_request_tok_free(&rt);
        xle_edit_result_free(&res);
        xle_context_templates_free(ct);
        if (!m) break;
    }
    /* Measured: with the reference's 25 v* steps, 2 of these 4 edits take (France, Nigeria);
     * Stockholm and Rabat keep their old answer (v* loss 0.7 / 0.2 even at 50 steps, the rank-one
     * update does not carry it to the bare prompt). docs/demo.md, "ROME on the built-in model". */
    CHECK_MSG(edited_ok >= N_EDITS / 2, "only %d of %d edits took", edited_ok, N_EDITS);
    CHECK_MSG(unchanged_total >= 0.9 * other_total, "other facts unchanged: %d of %d", unchanged_total, other_total);
    free(before);
    free_facts(facts, n);
    xle_cases_free(cs);
    xle_model_free(m);
}

int main(void) {
    RUN(test_knows_its_facts);
    RUN(test_rome_changes_one_fact);
    return check_summary();
}
