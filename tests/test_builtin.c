/*
 * test_builtin.c: the shipped model (models/xledit-mini) on its own world (data/world):
 *   - it knows its facts: greedy recall of the object >= 95% in each of the eight languages
 *     (every 3rd fact, one training template per fact in turn; every 16th under the
 *     sanitizers; scripts/make_builtin_model.sh checks every fact and template);
 *   - ROME on it, with the model's own edit-hparams/rome.json (layer 0, C⁻¹ from the world
 *     corpus, v_lr 2), changes the edited fact in the edit language: the demo's fact, and at
 *     least 8 of a spread of 10 cases (2 of 3 under the sanitizers) over the relations; and it
 *     leaves at least 90% of other facts (other subjects, all languages) unchanged.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
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
typedef struct facts_ctx {
    fact_line *all;
    int count, cap, group;
    char prev_key[512];
} facts_ctx;

static int keep_fact(void *user, const xle_world_fact_text *ft) {
    facts_ctx *c = user;
    char key[512];
    snprintf(key, sizeof key, "%s|%s|%s", ft->subject_id, ft->relation, ft->lang);
    if (strcmp(key, c->prev_key) != 0) {
        snprintf(c->prev_key, sizeof c->prev_key, "%s", key);
        c->group++;
    }
    if (ft->template_index != c->group % 3) return 0;
    if (c->count == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4096;
        fact_line *p = realloc(c->all, (size_t)c->cap * sizeof *p);
        if (!p) return 1;
        c->all = p;
    }
    fact_line *fl = &c->all[c->count++];
    snprintf(fl->lang, sizeof fl->lang, "%s", ft->lang);
    fl->subject_id = strdup(ft->subject_id);
    fl->prompt = strdup(ft->prompt);
    fl->object = strdup(ft->object);
    return 0;
}

static fact_line *load_facts(int *n_out) {
    xle_world *w = NULL;
    xle_error err = {0};
    facts_ctx c = {.group = -1};
    CHECK_OK(xle_world_load(WORLD, &w, &err), &err);
    if (w) CHECK_OK(xle_world_facts(w, keep_fact, &c, &err), &err);
    xle_world_free(w);
    *n_out = c.count;
    return c.all;
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

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Key statistics of the layer ROME edits, as `xledit demo` makes them: the first 50,000
 * tokens of the world corpus, in a temporary directory removed afterwards. */
static xle_layer_stats *world_key_stats(xle_model *m, int layer) {
    char dir[] = "/tmp/xle_builtin_stats_XXXXXX", corpus[64];
    xle_error err = {0};
    xle_layer_stats *ls = NULL;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    xle_world *w = NULL;
    CHECK_OK(xle_world_load(WORLD, &w, &err), &err);
    if (w) CHECK_OK(xle_world_write_corpus(w, corpus, 1, 1, NULL, &err), &err);
    xle_world_free(w);
    const char *files[1] = {corpus};
    xle_stats_opts so = {&layer, 1, files, 1, 50000, 0, dir, NULL, NULL};
    CHECK_OK(xle_stats_build(m, xle_model_tokenizer(m), &so, &err), &err);
    CHECK_OK(xle_stats_load(m, dir, layer, &ls, &err), &err);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return ls;
}

/* Edits case c in English with ROME (the model's own hyperparameters), then checks whether
 * the edited prompt now answers the new object and how many of the other facts keep their
 * answer; restores the weights exactly. */
static int rome_edit_takes(xle_model *m, const xle_edit_hparams *hp, xle_layer_stats *stats,
                           const xle_case *c, const fact_line *facts, int n, int first,
                           int n_other, int *unchanged, int *n_checked) {
    xle_tokenizer *tok = xle_model_tokenizer(m);
    xle_error err = {0};
    const xle_case_lang *en = xle_case_lang_find(c, "en");
    *unchanged = *n_checked = 0;
    if (!en) return 0;
    /* other facts: a fixed spread over all languages, subjects other than the edited one */
    int *picked = malloc((size_t)n_other * sizeof *picked), *before = malloc((size_t)n_other * sizeof *before);
    int n_picked = 0;
    for (int i = first; i < n && n_picked < n_other; i += n / n_other + 1)
        if (strcmp(facts[i].object, en->target_new) != 0 && !strstr(facts[i].prompt, en->subject))
            picked[n_picked++] = i;
    for (int k = 0; k < n_picked; k++)
        CHECK_OK(xle_fact_recalled(m, tok, facts[picked[k]].prompt, facts[picked[k]].object, &before[k], &err), &err);
    xle_context_templates *ct = NULL;
    xle_edit_request_tok rt = {0};
    xle_edit_result res = {0};
    xle_edit_request req = {en->prompt, en->subject, en->target_new};
    xle_layer_stats *st[1] = {stats};
    int ok = 0;
    CHECK_OK(xle_context_templates_sample(m, tok, hp, &ct, &err), &err);
    CHECK_OK(xle_edit_request_tokenize(tok, &req, ct, &rt, &err), &err);
    CHECK_OK(xle_edit_run(m, hp, &rt, 1, st, &res, &err), &err);
    CHECK_OK(xle_edit_apply(m, &res, +1, &err), &err);
    CHECK_OK(xle_fact_recalled(m, tok, en->prompt, en->target_new, &ok, &err), &err);
    for (int k = 0; k < n_picked; k++) {
        int now = 0;
        CHECK_OK(xle_fact_recalled(m, tok, facts[picked[k]].prompt, facts[picked[k]].object, &now, &err), &err);
        *unchanged += now == before[k];
    }
    *n_checked = n_picked;
    CHECK_OK(xle_edit_apply(m, &res, -1, &err), &err);
    fprintf(stderr, "ROME '%s' -> '%s': %s; other facts unchanged %d/%d\n", en->prompt, en->target_new,
            ok ? "edited" : "NOT edited", *unchanged, n_picked);
    xle_edit_request_tok_free(&rt);
    xle_edit_result_free(&res);
    xle_context_templates_free(ct);
    free(picked);
    free(before);
    return ok;
}

static void test_rome_changes_facts(void) {
    xle_model *m = NULL;
    xle_cases *cs = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(MODEL, &m, &err), &err);
    CHECK_OK(xle_cases_load(CASES, &cs, &err), &err);
    if (!m || !cs) return;
    xle_edit_hparams hp; /* the defaults, then the model's own edit-hparams/rome.json */
    int from_folder = 0;
    CHECK_OK(xle_edit_hparams_for_model_path(&hp, XLE_EDIT_ROME, m, MODEL, &from_folder, &err), &err);
    CHECK(from_folder && hp.mom2_adjustment && hp.n_layers == 1);
    xle_layer_stats *stats = world_key_stats(m, hp.layers[0]);
    int n = 0;
    fact_line *facts = load_facts(&n);
#ifdef XLE_SANITIZED
    enum { N_SPREAD = 3, N_OTHER = 100 }; /* the sanitized build is ~10x slower */
#else
    enum { N_SPREAD = 10, N_OTHER = 200 };
#endif
    int unchanged = 0, checked = 0, unchanged_total = 0, other_total = 0;
    /* The demo's fact (the first case) must take. */
    CHECK_MSG(rome_edit_takes(m, &hp, stats, &cs->cases[0], facts, n, 0, N_OTHER, &unchanged, &checked),
              "ROME did not change '%s'", cs->cases[0].id);
    unchanged_total += unchanged;
    other_total += checked;
    /* A spread over the 600 cases (every relation): measured on 100 cases (every 6th), ROME
     * changes 88% of the edited prompts (country of a city 50%, the others 96-100%;
     * docs/demo.md, "ROME and MEMIT on the built-in model"). All 10 of these take here; the
     * bound leaves room for two borderline cases to flip on another CPU's rounding. */
    int edited = 0;
    for (int e = 0; e < N_SPREAD; e++) {
        const xle_case *c = &cs->cases[(e * cs->n) / N_SPREAD + cs->n / (2 * N_SPREAD)];
        edited += rome_edit_takes(m, &hp, stats, c, facts, n, e + 1, N_OTHER, &unchanged, &checked);
        unchanged_total += unchanged;
        other_total += checked;
    }
    fprintf(stderr, "ROME: %d of %d spread edits took; other facts unchanged %d of %d\n", edited, N_SPREAD,
            unchanged_total, other_total);
    CHECK_MSG(edited >= N_SPREAD - (N_SPREAD >= 10 ? 2 : 1), "only %d of %d edits took", edited, N_SPREAD);
    CHECK_MSG(unchanged_total >= 0.9 * other_total, "other facts unchanged: %d of %d", unchanged_total, other_total);
    xle_layer_stats_free(stats);
    free_facts(facts, n);
    xle_cases_free(cs);
    xle_model_free(m);
}

int main(void) {
    RUN(test_knows_its_facts);
    RUN(test_rome_changes_facts);
    return check_summary();
}
