/*
 * test_import.c: every importer on all of its files in shared/data/external (record counts and
 * measured properties as their SOURCE.md states them, fields spot-checked against the raw
 * files), the three layouts with no file there (zsRE MEND, ROME CounterFact, KnowEdit) on
 * records copied from published examples, malformed inputs, and the import/validate CLI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "xledit.h"

#define EXT XLE_SHARED_DIR "/data/external"

static char tmpdir[256];

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static int count_lang(const xle_cases *cs, const char *lang) {
    int n = 0;
    for (int i = 0; i < cs->n; i++) n += xle_case_lang_find(&cs->cases[i], lang) != NULL;
    return n;
}

static const xle_lang_counts *counts(const xle_validation *v, const char *lang) {
    for (int i = 0; v && i < v->n_langs; i++)
        if (!strcmp(v->langs[i].lang, lang)) return &v->langs[i];
    return NULL;
}

static int str_is(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static xle_cases *import_or_null(const char *format, const char *const *paths, int n) {
    xle_cases *cs = NULL;
    xle_error err = {0};
    CHECK_OK(xle_cases_import(format, paths, n, &cs, &err), &err);
    return cs;
}

/* Imported sets kept for the cross-dataset checks. */
static xle_cases *g_bm_cf, *g_cf_edit, *g_mzsre;

static const char *const bm_zsre_files[] = {
    EXT "/bmike53/zsRE/zsre_test.json",    EXT "/bmike53/zsRE/zsre_test_de.json",
    EXT "/bmike53/zsRE/zsre_test_fr.json", EXT "/bmike53/zsRE/zsre_test_it.json",
    EXT "/bmike53/zsRE/zsre_test_es.json", EXT "/bmike53/zsRE/zsre_test_hi.json",
    EXT "/bmike53/zsRE/zsre_test_ta.json"};
static const char *const bm_cf_files[] = {
    EXT "/bmike53/CounterFact/counterfact_test.json",    EXT "/bmike53/CounterFact/counterfact_test_de.json",
    EXT "/bmike53/CounterFact/counterfact_test_fr.json", EXT "/bmike53/CounterFact/counterfact_test_it.json",
    EXT "/bmike53/CounterFact/counterfact_test_es.json", EXT "/bmike53/CounterFact/counterfact_test_hi.json",
    EXT "/bmike53/CounterFact/counterfact_test_ta.json"};
static const char *const langs7[] = {"en", "de", "fr", "it", "es", "hi", "ta"};

/* SOURCE.md's "Measured properties": the share of records whose subject is a literal
 * substring of the translated src, printed to 3 decimals. */
static void check_substring_shares(const xle_cases *cs, const double *share) {
    xle_validation *v = NULL;
    xle_error err = {0};
    CHECK_OK(xle_cases_validate(cs, &v, &err), &err);
    for (int i = 1; i < 7; i++) {
        const xle_lang_counts *c = counts(v, langs7[i]);
        CHECK(c != NULL);
        if (!c) continue;
        double got = (double)c->n_problem[XLE_CASE_USABLE] / c->n_cases;
        CHECK_MSG(got > share[i - 1] - 0.0005 && got < share[i - 1] + 0.0005, "%s: %.4f vs %.3f",
                  langs7[i], got, share[i - 1]);
        /* Nothing else is missing in these files. */
        CHECK(c->n_problem[XLE_CASE_NO_PROMPT] + c->n_problem[XLE_CASE_NO_SUBJECT] +
                  c->n_problem[XLE_CASE_NO_TARGET] == 0);
    }
    xle_validation_free(v);
}

static int n_with_all(const xle_cases *cs) {
    int n = 0;
    for (int i = 0; i < cs->n; i++) n += cs->cases[i].n_langs == 7;
    return n;
}

static void test_bmike53_zsre(void) {
    xle_cases *cs = import_or_null("bmike53", bm_zsre_files, 7);
    if (!cs) return;
    /* SOURCE.md: 743 records; hi lacks 3 (275, 368, 546), ta lacks 1 (203); 739 in all 7. */
    CHECK(cs->n == 743);
    CHECK(count_lang(cs, "en") == 743 && count_lang(cs, "de") == 743 && count_lang(cs, "fr") == 743 &&
          count_lang(cs, "it") == 743 && count_lang(cs, "es") == 743);
    CHECK(count_lang(cs, "hi") == 740 && count_lang(cs, "ta") == 742);
    CHECK(!xle_case_lang_find(&cs->cases[275], "hi") && !xle_case_lang_find(&cs->cases[368], "hi") &&
          !xle_case_lang_find(&cs->cases[546], "hi") && !xle_case_lang_find(&cs->cases[203], "ta"));
    CHECK(n_with_all(cs) == 739);
    /* Record 0 against the raw file (zsre_test_de.json, first record). */
    const xle_case *c = &cs->cases[0];
    CHECK(str_is(c->id, "bmike53-zsre-000000") && str_is(c->source, "bmike53-zsre") && !c->relation);
    CHECK(!strcmp(c->langs[0].lang, "en"));
    const xle_case_lang *en = xle_case_lang_find(c, "en"), *de = xle_case_lang_find(c, "de");
    CHECK(en && str_is(en->prompt, "When was the inception of IAAF Combined Events Challenge?") &&
          str_is(en->subject, "IAAF Combined Events Challenge") && str_is(en->target_new, "2006") &&
          en->target_true == NULL && en->n_rephrases == 1 &&
          str_is(en->rephrases[0], "When was the IAAF Combined Events Challenge launched?") &&
          en->n_locality == 1 && str_is(en->locality[0].prompt, "What is the title of the last episode of SpongeBob?") &&
          str_is(en->locality[0].answer, "The String") && en->n_portability == 1 &&
          str_is(en->portability[0].answer, "Athletics"));
    CHECK(de && str_is(de->prompt, "Wann wurde die IAAF Combined Events Challenge ins Leben gerufen?") &&
          str_is(de->portability[0].answer, "Leichtathletik"));
    const xle_case_lang *ta = xle_case_lang_find(c, "ta");
    CHECK(ta && str_is(ta->subject, "IAAF இணைந்த நிகழ்வுகள் சவால்"));
    static const double share[] = {0.970, 0.943, 0.962, 0.976, 0.884, 0.814};
    check_substring_shares(cs, share);
    xle_cases_free(cs);
}

static void test_bmike53_counterfact(void) {
    xle_cases *cs = import_or_null("bmike53", bm_cf_files, 7);
    if (!cs) return;
    /* SOURCE.md: 1031 records; it lacks 769, ta lacks 225; 1029 in all 7. */
    CHECK(cs->n == 1031);
    CHECK(count_lang(cs, "en") == 1031 && count_lang(cs, "it") == 1030 && count_lang(cs, "ta") == 1030 &&
          count_lang(cs, "hi") == 1031);
    CHECK(!xle_case_lang_find(&cs->cases[769], "it") && !xle_case_lang_find(&cs->cases[225], "ta"));
    CHECK(n_with_all(cs) == 1029);
    const xle_case *c = &cs->cases[0];
    CHECK(str_is(c->id, "bmike53-cf-004482") && str_is(c->source, "bmike53-counterfact"));
    const xle_case_lang *en = xle_case_lang_find(c, "en"), *ta = xle_case_lang_find(c, "ta"),
                        *es = xle_case_lang_find(c, "es");
    CHECK(en && str_is(en->prompt, "Where does Spike Hughes originate from?") &&
          str_is(en->target_new, "Philadelphia") && str_is(en->target_true, "London") &&
          str_is(en->locality[0].prompt, "In which city was Kathryn Newton born?") &&
          str_is(en->portability[0].answer, "Cheesesteaks"));
    CHECK(ta && str_is(ta->subject, "ஸ்பைக் ஹ்யூஸ்") && str_is(ta->target_new, "பிலடெல்பியா"));
    CHECK(es && str_is(es->target_true, "Londres") && str_is(es->prompt, "¿De dónde es originario Spike Hughes?"));
    static const double share[] = {0.924, 0.893, 0.952, 0.949, 0.875, 0.826};
    check_substring_shares(cs, share);
    g_bm_cf = cs;
}

static void test_bmike53_mixed_and_disagreeing(void) {
    xle_cases *cs = NULL;
    xle_error err = {0};
    /* zsRE and CounterFact files cannot be merged (743 vs 1031 records). */
    const char *mixed[] = {bm_zsre_files[1], bm_cf_files[1]};
    CHECK(xle_cases_import("bmike53", mixed, 2, &cs, &err) == XLE_ERR_FORMAT && !cs);
    CHECK(strstr(err.msg, "records: 1031") && strstr(err.msg, "merged by record index"));
    /* Two files whose English halves differ are refused, naming record, language and file. */
    char a[512], b[512];
    tmp_path(a, sizeof a, "bm_a.json");
    tmp_path(b, sizeof b, "bm_b.json");
    write_file(a, "[{\"en\": {\"case_id\": 0, \"subject\": \"X\", \"src\": \"Who is X?\", \"alt\": \"Y\"},"
                  "  \"de\": {\"case_id\": 0, \"subject\": \"X\", \"src\": \"Wer ist X?\", \"alt\": \"Y\"}}]");
    write_file(b, "[{\"en\": {\"case_id\": 0, \"subject\": \"X\", \"src\": \"Who is Z?\", \"alt\": \"Y\"},"
                  "  \"fr\": {\"case_id\": 0, \"subject\": \"X\", \"src\": \"Qui est X?\", \"alt\": \"Y\"}}]");
    const char *two[] = {a, b};
    CHECK(xle_cases_import("bmike53", two, 2, &cs, &err) == XLE_ERR_FORMAT && !cs);
    CHECK_MSG(strstr(err.msg, "bm_b.json: record 0: en: differs from the same record in") != NULL, "%s", err.msg);
    /* Agreeing halves merge: en + de + fr, and absent fields stay empty. */
    write_file(b, "[{\"en\": {\"case_id\": 0, \"subject\": \"X\", \"src\": \"Who is X?\", \"alt\": \"Y\"},"
                  "  \"fr\": {\"case_id\": 0, \"subject\": \"X\", \"src\": \"Qui est X?\", \"alt\": \"Y\"}}]");
    CHECK_OK(xle_cases_import("bmike53", two, 2, &cs, &err), &err);
    CHECK(cs && cs->n == 1 && cs->cases[0].n_langs == 3 && cs->cases[0].langs[0].n_locality == 0 &&
          cs->cases[0].langs[0].n_rephrases == 0 && cs->cases[0].langs[0].target_true == NULL);
    xle_cases_free(cs);
}

static void test_mzsre(void) {
    static const char *const files[] = {
        EXT "/mzsre/mzsre_test_duplicate_ende.json", EXT "/mzsre/mzsre_test_duplicate_enes.json",
        EXT "/mzsre/mzsre_test_duplicate_enfr.json", EXT "/mzsre/mzsre_test_duplicate_enpt.json",
        EXT "/mzsre/mzsre_test_duplicate_enru.json", EXT "/mzsre/mzsre_test_duplicate_enth.json",
        EXT "/mzsre/mzsre_test_duplicate_enzh.json"};
    xle_cases *cs = import_or_null("mzsre", files, 7);
    if (!cs) return;
    /* SOURCE.md: 743 cases per file, en + one of de, es, fr, pt, ru, zh, th. */
    CHECK(cs->n == 743);
    const char *langs[] = {"en", "de", "es", "fr", "pt", "ru", "th", "zh"};
    for (int i = 0; i < 8; i++) CHECK_MSG(count_lang(cs, langs[i]) == 743, "%s", langs[i]);
    const xle_case *c = &cs->cases[0];
    CHECK(str_is(c->id, "mzsre-000000") && str_is(c->source, "mzsre"));
    const xle_case_lang *en = xle_case_lang_find(c, "en"), *es = xle_case_lang_find(c, "es"),
                        *ru = xle_case_lang_find(c, "ru");
    /* The "nq question: " prefix is dropped from the English locality question. */
    CHECK(en && en->n_locality == 1 &&
          str_is(en->locality[0].prompt, "what is the name of the last episode of spongebob") &&
          str_is(en->locality[0].answer, "The String") && en->n_portability == 1 &&
          str_is(en->portability[0].prompt,
                 "What type of sports event is the IAAF Combined Events Challenge, which was established in 2006?"));
    CHECK(es && str_is(es->subject, "Desafío de eventos combinados de la IAAF") &&
          str_is(es->locality[0].prompt, "como se llama el ultimo capitulo de bob esponja") &&
          str_is(es->portability[0].answer, "Atletismo"));
    CHECK(ru && str_is(ru->target_new, "2006 г."));
    /* SOURCE.md: in the Spanish half 369 of 743 subjects are not a literal substring. */
    xle_validation *v = NULL;
    xle_error err = {0};
    CHECK_OK(xle_cases_validate(cs, &v, &err), &err);
    const xle_lang_counts *ces = counts(v, "es");
    CHECK(ces && ces->n_problem[XLE_CASE_SUBJECT_NOT_IN_PROMPT] == 369 &&
          ces->n_problem[XLE_CASE_USABLE] == 743 - 369);
    /* The loose levels recover some of them, never more than were missing. */
    CHECK(ces && ces->n_caseless > 0 && ces->n_caseless + ces->n_stem <= 369);
    const xle_lang_counts *czh = counts(v, "zh"), *cen = counts(v, "en");
    CHECK(czh && czh->n_problem[XLE_CASE_USABLE] == 743 && cen && cen->n_problem[XLE_CASE_USABLE] == 743);
    xle_validation_free(v);
    g_mzsre = cs;
}

static void test_bizsre(void) {
    const char *files[] = {EXT "/bizsre/bizsre_test.json"};
    xle_cases *cs = import_or_null("bizsre", files, 1);
    if (!cs) return;
    /* SOURCE.md: 1,037 cases, en + zh; the English loc keeps zsRE's prefix (we drop it). */
    CHECK(cs->n == 1037 && count_lang(cs, "en") == 1037 && count_lang(cs, "zh") == 1037);
    const xle_case_lang *zh = xle_case_lang_find(&cs->cases[0], "zh");
    CHECK(zh && str_is(zh->subject, "IAAF综合项目挑战赛") && str_is(zh->target_new, "2006年") &&
          str_is(zh->portability[0].answer, "田径"));
    int prefixed = 0;
    for (int i = 0; i < cs->n; i++) {
        const xle_case_lang *en = xle_case_lang_find(&cs->cases[i], "en");
        prefixed += en && en->n_locality && !strncmp(en->locality[0].prompt, "nq question:", 12);
    }
    CHECK(prefixed == 0);
    /* SOURCE.md: all 743 MzsRE English cases are among these 1,037 (not in the same order). */
    if (g_mzsre) {
        int found = 0;
        for (int i = 0; i < g_mzsre->n; i++) {
            const xle_case_lang *m = xle_case_lang_find(&g_mzsre->cases[i], "en");
            for (int j = 0; m && j < cs->n; j++) {
                const xle_case_lang *b = xle_case_lang_find(&cs->cases[j], "en");
                if (b && !strcmp(m->prompt, b->prompt) && !strcmp(m->subject, b->subject) &&
                    !strcmp(m->target_new, b->target_new)) {
                    found++;
                    break;
                }
            }
        }
        CHECK_MSG(found == 743, "found %d", found);
    }
    xle_cases_free(cs);
}

static void test_counterfact_edit(void) {
    const char *files[] = {EXT "/counterfact-en/counterfact-edit.json"};
    xle_cases *cs = import_or_null("counterfact-edit", files, 1);
    if (!cs) return;
    /* SOURCE.md: 10,000 records, case_ids 0..21918, all unique (ids are checked unique). */
    CHECK(cs->n == 10000);
    CHECK(str_is(cs->cases[0].id, "counterfact-000000") && str_is(cs->cases[cs->n - 1].id, "counterfact-021918"));
    const xle_case_lang *en = &cs->cases[0].langs[0];
    CHECK(str_is(en->prompt, "The mother tongue of Danielle Darrieux is") &&
          str_is(en->subject, "Danielle Darrieux") && str_is(en->target_new, "English") &&
          str_is(en->target_true, "French") && en->n_rephrases == 1 &&
          str_is(en->rephrases[0], "Where Danielle Darrieux is from, people speak the language of") &&
          str_is(en->locality[0].prompt, "Michel Rocard is a native speaker of") &&
          str_is(en->locality[0].answer, "French"));
    /* SOURCE.md: the subject is a literal substring of prompt in all 10,000. */
    xle_validation *v = NULL;
    xle_error err = {0};
    CHECK_OK(xle_cases_validate(cs, &v, &err), &err);
    CHECK(v && v->n_langs == 1 && v->langs[0].n_problem[XLE_CASE_USABLE] == 10000);
    xle_validation_free(v);
    g_cf_edit = cs;
}

/* SOURCE.md: every one of BMIKE-53's 1031 CounterFact cases is in counterfact-edit.json; the
 * ids join ("bmike53-cf-N" <-> "counterfact-N"). */
static void test_counterfact_join(void) {
    if (!g_bm_cf || !g_cf_edit) {
        CHECK(!"imports failed");
        return;
    }
    int found = 0;
    for (int i = 0; i < g_bm_cf->n; i++) {
        char want[64];
        snprintf(want, sizeof want, "counterfact-%s", g_bm_cf->cases[i].id + strlen("bmike53-cf-"));
        int lo = 0, hi = g_cf_edit->n - 1; /* counterfact-edit ids are in increasing order */
        while (lo <= hi) {
            int mid = (lo + hi) / 2, c = strcmp(g_cf_edit->cases[mid].id, want);
            if (!c) {
                /* Same fact: the English subject and new target agree. */
                const xle_case_lang *a = &g_bm_cf->cases[i].langs[0], *b = &g_cf_edit->cases[mid].langs[0];
                found += !strcmp(a->subject, b->subject) && !strcmp(a->target_new, b->target_new);
                break;
            }
            if (c < 0) lo = mid + 1;
            else hi = mid - 1;
        }
    }
    CHECK_MSG(found == 1031, "found %d", found);
}

static void test_round_trip_real(void) {
    if (!g_bm_cf) return;
    char path[512];
    tmp_path(path, sizeof path, "bmcf.jsonl");
    xle_error err = {0};
    xle_cases *back = NULL;
    CHECK_OK(xle_cases_write_jsonl(g_bm_cf, path, &err), &err);
    CHECK_OK(xle_cases_load(path, &back, &err), &err);
    CHECK(back && back->n == g_bm_cf->n);
    int same = 1;
    for (int i = 0; back && i < back->n && same; i++) {
        const xle_case *x = &back->cases[i], *y = &g_bm_cf->cases[i];
        same = !strcmp(x->id, y->id) && x->n_langs == y->n_langs;
        for (int j = 0; same && j < x->n_langs; j++)
            same = !strcmp(x->langs[j].prompt, y->langs[j].prompt) &&
                   !strcmp(x->langs[j].subject, y->langs[j].subject) &&
                   !strcmp(x->langs[j].target_new, y->langs[j].target_new) &&
                   str_is(x->langs[j].target_true, y->langs[j].target_true) &&
                   x->langs[j].n_locality == y->langs[j].n_locality &&
                   !strcmp(x->langs[j].locality[0].answer, y->langs[j].locality[0].answer) &&
                   !strcmp(x->langs[j].portability[0].prompt, y->langs[j].portability[0].prompt);
    }
    CHECK(same);
    xle_cases_free(back);
}

/* Layouts with no file in shared/data/external, on records copied from published examples:
 * zsRE MEND (the record shown in ROME's/MEND's documentation), ROME CounterFact case 3
 * (counterfact.json, as reproduced in EasyEdit's LEME docs), KnowEdit (EasyEdit
 * examples/KnowEdit.md: WikiData_recent, Wiki counterfact, WikiBio and ZsRE records). */
static const char zsre_sample[] =
    "[{\"subject\": \"Watts Humphrey\", \"src\": \"What university did Watts Humphrey attend?\","
    " \"pred\": \"Trinity College\", \"rephrase\": \"What university did Watts Humphrey take part in?\","
    " \"alt\": \"University of Michigan\", \"answers\": [\"Illinois Institute of Technology\"],"
    " \"loc\": \"nq question: who played desmond doss father in hacksaw ridge\", \"loc_ans\": \"Hugo Weaving\","
    " \"cond\": \"Trinity College >> University of Michigan || What university did Watts Humphrey attend?\"},"
    " {\"subject\": \"IAAF Combined Events Challenge\", \"src\": \"When was the inception of IAAF Combined Events Challenge?\","
    " \"pred\": \"2011\", \"answers\": [\"1998\"], \"alt\": \"2006\","
    " \"rephrase\": \"When was the IAAF Combined Events Challenge launched?\","
    " \"loc\": \"nq question: what is the name of the last episode of spongebob\", \"loc_ans\": \"The String\","
    " \"portability\": {\"Recalled Relation\": \"(IAAF Combined Events Challenge, event type, athletics)\","
    " \"New Question\": \"What type of sports event is the IAAF Combined Events Challenge, which was established in 2006?\","
    " \"New Answer\": \"Athletics\"}}]";

static const char rome_cf_sample[] =
    "[{\"case_id\": 3, \"pararel_idx\": 6791, \"requested_rewrite\": {\"prompt\": \"{}, which is located in\","
    " \"relation_id\": \"P17\", \"target_new\": {\"str\": \"Sweden\", \"id\": \"Q34\"},"
    " \"target_true\": {\"str\": \"Spain\", \"id\": \"Q29\"}, \"subject\": \"Autonomous University of Madrid\"},"
    " \"paraphrase_prompts\": [\"and Sallie Beavers Riley. Autonomous University of Madrid is located in\","
    " \"Houston, Tex: Anson Jones Press. Autonomous University of Madrid, located in\"],"
    " \"neighborhood_prompts\": [\"Biure is located in\", \"Ripoll\\u00e8s, located in\", \"Ebro, in\","
    " \"Biure, which is located in\", \"Donostia-San Sebasti\\u00e1n, in\", \"Donostia-San Sebasti\\u00e1n is located in\","
    " \"Pamplona is located in\", \"Lugo, which is located in\", \"M\\u00e1laga is located in\", \"Biure, in\"],"
    " \"attribute_prompts\": [\"SKF is located in\", \"IKEA, located in\"]}]";

static const char knowedit_sample[] =
    "[{\"subject\": \"Leo Arons\", \"prompt\": \"The place of death of Leo Arons is\", \"target_new\": \"Berlin\","
    "  \"portability\": {\"Logical_Generalization\": [{\"prompt\": \"Is Leo Arons still alive?\","
    "     \"ground_truth\": [[\"no\"], [\"incorrect\"], [\"false\"], [\"is not alive\"], [\"is dead\"]]}],"
    "   \"Reasoning\": [{\"prompt\": \"The name of the head of government of the place of death of Leo Arons is\","
    "     \"ground_truth\": [[\"Kai Wegner\", \"Kai Peter Wegner\"]]},"
    "    {\"prompt\": \"The name of the continent which the place of death of Leo Arons is part of is\","
    "     \"ground_truth\": [[\"Europe\", \"European continent\", \"Old Continent\"]]}],"
    "   \"Subject_Aliasing\": [{\"prompt\": \"The place of death of Martin Leo Arons is\","
    "     \"ground_truth\": [[\"Berlin\", \"Berlin, Germany\", \"Berlin (Germany)\", \"DE-BE\"]]}]},"
    "  \"locality\": {\"Relation_Specificity\": [{\"prompt\": \"The name of the father of Leo Arons is\","
    "     \"ground_truth\": [[\"Albert Arons\"]]}, {\"prompt\": \"The name of the field of work of Leo Arons is\","
    "     \"ground_truth\": [[\"experimental physics\"]]}]}},"
    " {\"subject\": \"Frederic Piesch\", \"prompt\": \"The name of the position held by Frederic Piesch is\","
    "  \"target_new\": \"Archbishop of Le\\u00f3n, Mexico\", \"ground_truth\": \"mayor of Vienna\","
    "  \"portability\": {\"Subject_Aliasing\": [{\"prompt\": \"The name of the position held by Frederic of Pieschen is\","
    "     \"ground_truth\": \"Archbishop of Le\\u00f3n, Mexico\"}]},"
    "  \"locality\": {\"Relation_Specificity\": [{\"prompt\": \"The gender of Frederic Piesch is\", \"ground_truth\": \"male\"}],"
    "   \"Forgetfulness\": [{\"prompt\": \"The name of the position held by Frederic Piesch, which is not Archbishop of Le\\u00f3n, Mexico, is\","
    "     \"ground_truth\": \"mayor of Vienna\"}]}},"
    " {\"text\": \"This is a Wikipedia passage about john russell reynolds. Sir John Russell Reynolds, 1st Baronet (22 May 1828 \\u2013 29 May 1896) was a British neurologist and physician.\","
    "  \"labels\": \"He received general education from his father.\", \"concept\": \"john russell reynolds\","
    "  \"locality\": {\"Relation_Specificity\": [{\"prompt\": \"The field of work of john russell reynolds is\","
    "     \"ground_truth\": [\"medicine\"]}]}},"
    " {\"subject\": \"Epaspidoceras\", \"target_new\": \"Noctuidae\", \"prompt\": \"Which family does Epaspidoceras belong to?\","
    "  \"ground_truth\": [\"Aspidoceratidae\"], \"rephrase_prompt\": \"What family are Epaspidoceras?\","
    "  \"cond\": \"Geometridae >> Noctuidae || Which family does Epaspidoceras belong to?\","
    "  \"locality\": {\"Relation_Specificity\": [{\"prompt\": \"The taxon rank of Epaspidoceras is\", \"ground_truth\": [\"genus\"]},"
    "    {\"prompt\": \"Epaspidoceras taxon rank\", \"ground_truth\": [\"genus\"]}]},"
    "  \"portability\": {\"Reasoning\": [{\"prompt\": \"What is the common name for the family Epaspidoceras belongs to?\","
    "     \"ground_truth\": \"Owlet moths\"}]}}]";

static xle_cases *import_text(const char *format, const char *name, const char *text) {
    char path[512];
    tmp_path(path, sizeof path, name);
    write_file(path, text);
    const char *files[] = {path};
    return import_or_null(format, files, 1);
}

static void test_zsre_mend(void) {
    xle_cases *cs = import_text("zsre", "zsre.json", zsre_sample);
    if (!cs) return;
    CHECK(cs->n == 2 && str_is(cs->cases[1].id, "zsre-000001"));
    const xle_case_lang *a = &cs->cases[0].langs[0], *b = &cs->cases[1].langs[0];
    CHECK(!strcmp(a->lang, "en") && str_is(a->prompt, "What university did Watts Humphrey attend?") &&
          str_is(a->target_new, "University of Michigan") &&
          str_is(a->target_true, "Illinois Institute of Technology") && a->n_rephrases == 1 &&
          str_is(a->locality[0].prompt, "who played desmond doss father in hacksaw ridge") &&
          str_is(a->locality[0].answer, "Hugo Weaving") && a->n_portability == 0);
    CHECK(b->n_portability == 1 && str_is(b->portability[0].answer, "Athletics") && str_is(b->target_true, "1998"));
    xle_cases_free(cs);
}

static void test_counterfact_rome(void) {
    xle_cases *cs = import_text("counterfact", "cf.json", rome_cf_sample);
    if (!cs) return;
    CHECK(cs->n == 1);
    const xle_case *c = &cs->cases[0];
    const xle_case_lang *l = &c->langs[0];
    CHECK(str_is(c->id, "counterfact-000003") && str_is(c->relation, "P17") && str_is(c->source, "counterfact"));
    CHECK(str_is(l->prompt, "Autonomous University of Madrid, which is located in") &&
          str_is(l->subject, "Autonomous University of Madrid") && str_is(l->target_new, "Sweden") &&
          str_is(l->target_true, "Spain") && l->n_rephrases == 2 && l->n_locality == 10 &&
          str_is(l->locality[8].prompt, "Málaga is located in") && str_is(l->locality[8].answer, "Spain") &&
          l->n_portability == 0);
    xle_cases_free(cs);
}

static void test_knowedit(void) {
    xle_cases *cs = import_text("knowedit", "ke.json", knowedit_sample);
    if (!cs) return;
    CHECK(cs->n == 4);
    const xle_case_lang *r = &cs->cases[0].langs[0], *f = &cs->cases[1].langs[0],
                        *w = &cs->cases[2].langs[0], *z = &cs->cases[3].langs[0];
    /* recent: no ground_truth; answers are the first alias of the first list. */
    CHECK(r->target_true == NULL && r->n_portability == 4 && str_is(r->portability[0].answer, "no") &&
          str_is(r->portability[1].answer, "Kai Wegner") && str_is(r->portability[3].answer, "Berlin") &&
          r->n_locality == 2 && str_is(r->locality[1].answer, "experimental physics") && r->n_rephrases == 0);
    CHECK(str_is(f->target_new, "Archbishop of León, Mexico") && str_is(f->target_true, "mayor of Vienna") &&
          f->n_locality == 2 && str_is(f->locality[1].answer, "mayor of Vienna"));
    CHECK(str_is(w->subject, "john russell reynolds") && str_is(w->target_new, "He received general education from his father.") &&
          !strncmp(w->prompt, "This is a Wikipedia passage", 27) && w->n_locality == 1);
    CHECK(str_is(z->target_true, "Aspidoceratidae") && z->n_rephrases == 1 &&
          str_is(z->rephrases[0], "What family are Epaspidoceras?") && z->n_locality == 2 &&
          str_is(z->portability[0].answer, "Owlet moths"));
    xle_cases_free(cs);
}

typedef struct bad_input {
    const char *format;
    const char *text;
    const char *expect;
} bad_input;

static void test_malformed_inputs(void) {
    const bad_input cases[] = {
        {"mzsre", "[{\"en\": {\"subject\": \"x\"", ":1:"},                 /* truncated JSON */
        {"mzsre", "{\"en\": {}}", "top level: expected a JSON array"},
        {"mzsre", "[5]", "record 0: record: expected an object keyed by language code"},
        {"mzsre", "[{\"en\": \"x\"}]", "record 0: en: expected an object"},
        {"mzsre", "[{\"e n\": {}}]", "record 0: record: key is not a language code"},
        {"mzsre", "[{\"en\": {\"subject\": 5}}]", "record 0: en.subject: expected a string, got a number"},
        {"mzsre", "[{\"en\": {\"src\": []}}]", "record 0: en.src: expected a string, got an array"},
        {"mzsre", "[{\"en\": {\"rephrase\": [1]}}]", "record 0: en.rephrase[0]: expected a string"},
        {"mzsre", "[{\"en\": {\"portability\": 3}}]", "record 0: en.portability: expected an object"},
        {"bmike53", "[{\"de\": {}}]", "BMIKE-53 record without an \"en\" half"},
        {"bmike53", "[{\"en\": {\"old\": \"a\", \"case_id\": \"7\"}}]", "record 0: en.case_id: expected a non-negative integer"},
        {"zsre", "[{\"answers\": {\"a\": 1}}]", "record 0: answers: expected a string or a list of strings"},
        {"zsre", "[[]]", "record 0: record: expected an object"},
        {"counterfact", "[{\"case_id\": 1}]", "record 0: requested_rewrite: expected an object"},
        {"counterfact", "[{\"case_id\": 1, \"requested_rewrite\": {\"prompt\": \"no slot\", \"subject\": \"s\"}}]",
         "requested_rewrite.prompt: no \"{}\" placeholder"},
        {"counterfact", "[{\"case_id\": 1, \"requested_rewrite\": {\"prompt\": \"{} x\", \"target_new\": 4}}]",
         "requested_rewrite.target_new: expected"},
        {"counterfact", "[{\"case_id\": 1, \"requested_rewrite\": {\"prompt\": \"{} x\"}, \"neighborhood_prompts\": \"x\"}]",
         "neighborhood_prompts: expected a list of strings"},
        {"counterfact-edit", "[{\"prompt\": \"p\"}]", "record 0: case_id: expected a non-negative integer"},
        {"counterfact-edit", "[{\"case_id\": 1}, {\"case_id\": 1}]", "duplicates"},
        {"knowedit", "[{\"prompt\": \"p\", \"locality\": []}]", "record 0: locality: expected an object"},
        {"knowedit", "[{\"prompt\": \"p\", \"portability\": {\"R\": [{\"prompt\": [\"a\", \"b\"], \"ground_truth\": \"x\"}]}}]",
         "portability.R: a list of prompts needs a ground_truth list"},
        {"knowedit", "[{\"prompt\": \"p\", \"ground_truth\": [[[[[[[[[[\"deep\"]]]]]]]]]]}]", "lists nested too deep"},
        {"knowedit", "[{\"prompt\": \"p\", \"locality\": {\"R\": [{\"prompt\": 1}]}}]", "locality.R: prompt: expected a string"},
    };
    char path[512];
    tmp_path(path, sizeof path, "bad_input.json");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].text);
        const char *files[] = {path};
        xle_cases *cs = NULL;
        xle_error err = {0};
        xle_status st = xle_cases_import(cases[i].format, files, 1, &cs, &err);
        CHECK_MSG(st == XLE_ERR_FORMAT && !cs, "case %zu: status %d", i, (int)st);
        CHECK_MSG(strstr(err.msg, cases[i].expect) != NULL, "case %zu: got '%s', want '%s'", i, err.msg,
                  cases[i].expect);
        CHECK_MSG(strstr(err.msg, "bad_input.json") || strstr(err.msg, "counterfact-edit"), "case %zu: %s", i, err.msg);
        CHECK(!strchr(err.msg, '\n'));
        xle_cases_free(cs);
    }
    xle_cases *cs = NULL;
    xle_error err = {0};
    const char *missing[] = {"/nonexistent/x.json"};
    CHECK(xle_cases_import("mzsre", missing, 1, &cs, &err) == XLE_ERR_IO && strstr(err.msg, "/nonexistent/x.json"));
    CHECK(xle_cases_import("nope", missing, 1, &cs, &err) == XLE_ERR_ARG && strstr(err.msg, "unknown format"));
    CHECK(xle_cases_import("mzsre", missing, 0, &cs, &err) == XLE_ERR_ARG);
    int n = 0;
    for (const char *const *f = xle_import_formats(); *f; f++) n++;
    CHECK(n == 7);
}

/* Runs the CLI with stdout/stderr to files; returns the exit code. */
static int run_cli(const char *args, char *errbuf, size_t cap) {
    char cmd[4096], errpath[512];
    tmp_path(errpath, sizeof errpath, "stderr.txt");
    snprintf(cmd, sizeof cmd, "'%s' %s > '%s/stdout.txt' 2> '%s'", XLE_BINARY, args, tmpdir, errpath);
    int st = system(cmd);
    errbuf[0] = 0;
    FILE *f = fopen(errpath, "rb");
    if (f) {
        size_t n = fread(errbuf, 1, cap - 1, f);
        errbuf[n] = 0;
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_cli(void) {
    if (access(XLE_BINARY, X_OK) != 0) {
        CHECK_MSG(0, "%s not built", XLE_BINARY);
        return;
    }
    char e[4096], args[2048], out[512], bad[512];
    tmp_path(out, sizeof out, "cli.jsonl");
    CHECK(run_cli("import --help", e, sizeof e) == 0);
    CHECK(run_cli("validate --help", e, sizeof e) == 0);
    CHECK(run_cli("import --bogus x", e, sizeof e) == 2 && count_lines(e) == 1);
    CHECK(run_cli("validate --bogus x", e, sizeof e) == 2 && count_lines(e) == 1);
    CHECK(run_cli("import --format mzsre --out x.jsonl", e, sizeof e) == 2);   /* no FILE */
    snprintf(args, sizeof args, "import %s/bizsre/bizsre_test.json --out '%s'", EXT, out);
    CHECK(run_cli(args, e, sizeof e) == 2);                                    /* no --format */
    snprintf(args, sizeof args, "import --format nope %s/bizsre/bizsre_test.json --out '%s'", EXT, out);
    CHECK(run_cli(args, e, sizeof e) == 2 && strstr(e, "unknown format"));
    snprintf(args, sizeof args, "import --format bizsre %s/bizsre/bizsre_test.json --out '%s' --langs ,", EXT, out);
    CHECK(run_cli(args, e, sizeof e) == 2);
    /* A real import with a language filter, then validate it. */
    snprintf(args, sizeof args, "import --format bizsre %s/bizsre/bizsre_test.json --out '%s' --langs zh", EXT, out);
    CHECK_MSG(run_cli(args, e, sizeof e) == 0, "%s", e);
    xle_cases *cs = NULL;
    xle_error err = {0};
    CHECK_OK(xle_cases_load(out, &cs, &err), &err);
    CHECK(cs && cs->n == 1037 && count_lang(cs, "zh") == 1037 && count_lang(cs, "en") == 0);
    xle_cases_free(cs);
    snprintf(args, sizeof args, "validate '%s' --json", out);
    CHECK(run_cli(args, e, sizeof e) == 0);
    /* A malformed cases file: exit 1 and one line naming file, line and field. */
    tmp_path(bad, sizeof bad, "cli_bad.jsonl");
    write_file(bad, "{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":1}}}\n");
    snprintf(args, sizeof args, "validate '%s'", bad);
    CHECK(run_cli(args, e, sizeof e) == 1 && count_lines(e) == 1 && strstr(e, "cli_bad.jsonl:1: langs.en.prompt"));
    /* A failed import leaves no output file. */
    char out2[512];
    tmp_path(out2, sizeof out2, "never.jsonl");
    snprintf(args, sizeof args, "import --format mzsre '%s' --out '%s'", bad, out2);
    CHECK(run_cli(args, e, sizeof e) == 1 && count_lines(e) == 1 && access(out2, F_OK) != 0);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xle_test_import_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_bmike53_zsre);
    RUN(test_bmike53_counterfact);
    RUN(test_bmike53_mixed_and_disagreeing);
    RUN(test_mzsre);
    RUN(test_bizsre);
    RUN(test_counterfact_edit);
    RUN(test_counterfact_join);
    RUN(test_round_trip_real);
    RUN(test_zsre_mend);
    RUN(test_counterfact_rome);
    RUN(test_knowedit);
    RUN(test_malformed_inputs);
    RUN(test_cli);
    xle_cases_free(g_bm_cf);
    xle_cases_free(g_cf_edit);
    xle_cases_free(g_mzsre);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
