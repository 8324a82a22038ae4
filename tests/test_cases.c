/*
 * test_cases.c: the canonical case format in memory and on disk: builders, JSONL round trip,
 * atomic writing, strict loading (each malformed line gives one line naming file, line and
 * field), language filtering, and the subject matcher and validator on hand-made cases whose
 * answers are worked out by hand in the comments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>

#include "check.h"
#include "test_files.h"
#include "xledit.h"

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xle_test_cases_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(text, 1, len, f);
    fclose(f);
}

static int str_eq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static int cases_equal(const xle_cases *a, const xle_cases *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        const xle_case *x = &a->cases[i], *y = &b->cases[i];
        if (!str_eq(x->id, y->id) || !str_eq(x->source, y->source) ||
            !str_eq(x->relation, y->relation) || x->n_langs != y->n_langs)
            return 0;
        for (int j = 0; j < x->n_langs; j++) {
            const xle_case_lang *p = &x->langs[j], *q = &y->langs[j];
            if (strcmp(p->lang, q->lang) || !str_eq(p->prompt, q->prompt) ||
                !str_eq(p->subject, q->subject) || !str_eq(p->target_new, q->target_new) ||
                !str_eq(p->target_true, q->target_true) || p->n_rephrases != q->n_rephrases ||
                p->n_locality != q->n_locality || p->n_portability != q->n_portability)
                return 0;
            for (int k = 0; k < p->n_rephrases; k++)
                if (!str_eq(p->rephrases[k], q->rephrases[k])) return 0;
            for (int k = 0; k < p->n_locality; k++)
                if (!str_eq(p->locality[k].prompt, q->locality[k].prompt) ||
                    !str_eq(p->locality[k].answer, q->locality[k].answer))
                    return 0;
            for (int k = 0; k < p->n_portability; k++)
                if (!str_eq(p->portability[k].prompt, q->portability[k].prompt) ||
                    !str_eq(p->portability[k].answer, q->portability[k].answer))
                    return 0;
        }
    }
    return 1;
}

/* The example of docs/case-format.md, built with the builders, plus a second case. */
static xle_cases *example_set(void) {
    xle_cases *cs;
    xle_error err = {0};
    xle_case *c;
    xle_case_lang *l;
    CHECK_OK(xle_cases_new(&cs, &err), &err);
    CHECK_OK(xle_cases_add(cs, "bmike53-cf-000123", "bmike53-counterfact", "P17", &c, &err), &err);
    CHECK_OK(xle_case_add_lang(c, "en", "The Eiffel Tower is located in", "The Eiffel Tower", "Rome",
                               "Paris", &l, &err), &err);
    CHECK_OK(xle_case_lang_add_rephrase(l, "Where is the Eiffel Tower? It is in", &err), &err);
    CHECK_OK(xle_case_lang_add_locality(l, "The Colosseum is located in", "Rome", &err), &err);
    CHECK_OK(xle_case_lang_add_portability(l, "The Eiffel Tower is in a city whose country is", "Italy", &err), &err);
    CHECK_OK(xle_case_add_lang(c, "de", "Der Eiffelturm steht in", "Der Eiffelturm", "Rom", NULL, &l, &err), &err);
    CHECK_OK(xle_cases_add(cs, "x-2", "test", NULL, &c, &err), &err);
    /* Quotes, backslashes, newlines and non-ASCII text must survive the round trip. */
    CHECK_OK(xle_case_add_lang(c, "hi", "\"क्या\"\\ \n", "", "दिल्ली", NULL, &l, &err), &err);
    return cs;
}

static void test_builders_and_round_trip(void) {
    xle_cases *cs = example_set(), *back = NULL;
    xle_error err = {0};
    char path[512];
    tmp_path(path, sizeof path, "rt.jsonl");
    CHECK_OK(xle_cases_write_jsonl(cs, path, &err), &err);
    CHECK_OK(xle_cases_load(path, &back, &err), &err);
    CHECK(back && cases_equal(cs, back));
    if (back) {
        const xle_case_lang *de = xle_case_lang_find(&back->cases[0], "de");
        CHECK(de && de->target_true == NULL && de->n_rephrases == 0);
        CHECK(xle_case_lang_find(&back->cases[0], "fr") == NULL);
        CHECK(str_eq(back->cases[0].relation, "P17") && back->cases[1].relation == NULL);
    }
    /* Writing what was read gives the same bytes. */
    char path2[512];
    tmp_path(path2, sizeof path2, "rt2.jsonl");
    CHECK_OK(xle_cases_write_jsonl(back, path2, &err), &err);
    size_t n1, n2;
    char *a = test_read_file(path, &n1), *b = test_read_file(path2, &n2);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    /* One line per case, and the first line holds the documented field order. */
    int lines = 0;
    for (size_t i = 0; a && i < n1; i++) lines += a[i] == '\n';
    CHECK(lines == 2);
    CHECK(a && strncmp(a, "{\"id\":\"bmike53-cf-000123\",\"source\":\"bmike53-counterfact\",\"relation\":\"P17\","
                          "\"langs\":{\"en\":{\"prompt\":\"The Eiffel Tower is located in\"", 100) == 0);
    free(a);
    free(b);
    xle_cases_free(back);
    xle_cases_free(cs);
}

static void test_builder_errors(void) {
    xle_cases *cs;
    xle_error err = {0};
    xle_case *c;
    CHECK_OK(xle_cases_new(&cs, &err), &err);
    CHECK_OK(xle_cases_add(cs, "a", "s", NULL, &c, &err), &err);
    CHECK(xle_case_add_lang(c, "en", "p", "s", "t", NULL, NULL, &err) == XLE_OK);
    CHECK(xle_case_add_lang(c, "en", "p", "s", "t", NULL, NULL, &err) == XLE_ERR_ARG); /* twice */
    CHECK(xle_case_add_lang(c, "e n", "p", "s", "t", NULL, NULL, &err) == XLE_ERR_ARG);
    CHECK(xle_case_add_lang(c, "abcdefghijklmnop", "p", "s", "t", NULL, NULL, &err) == XLE_ERR_ARG);
    CHECK(xle_case_add_lang(c, "fr", NULL, "s", "t", NULL, NULL, &err) == XLE_ERR_ARG);
    /* A duplicate id is refused at write time, and nothing is written. */
    CHECK_OK(xle_cases_add(cs, "a", "s", NULL, &c, &err), &err);
    CHECK_OK(xle_case_add_lang(c, "en", "p", "s", "t", NULL, NULL, &err), &err);
    char path[512];
    tmp_path(path, sizeof path, "dup.jsonl");
    write_file(path, "old\n", 4);
    CHECK(xle_cases_write_jsonl(cs, path, &err) == XLE_ERR_FORMAT);
    CHECK(strstr(err.msg, "id") && strstr(err.msg, "duplicates"));
    size_t n;
    char *s = test_read_file(path, &n);
    CHECK(s && n == 4 && memcmp(s, "old\n", 4) == 0);
    free(s);
    /* Invalid UTF-8 cannot be written as JSON: an error, not a broken file. */
    xle_cases *bad;
    CHECK_OK(xle_cases_new(&bad, &err), &err);
    CHECK_OK(xle_cases_add(bad, "b", "s", NULL, &c, &err), &err);
    CHECK_OK(xle_case_add_lang(c, "en", "p\xff", "s", "t", NULL, NULL, &err), &err);
    CHECK(xle_cases_write_jsonl(bad, path, &err) != XLE_OK);
    s = test_read_file(path, &n);
    CHECK(s && n == 4);
    free(s);
    /* An unwritable place fails with an i/o error. */
    CHECK(xle_cases_write_jsonl(bad, "/nonexistent-dir/x.jsonl", &err) == XLE_ERR_IO);
    xle_cases_free(bad);
    xle_cases_free(cs);
    /* No temporary files were left behind. */
    DIR *d = opendir(tmpdir);
    int stray = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) stray++;
    if (d) closedir(d);
    CHECK(stray == 0);
}

typedef struct bad_line {
    const char *text;   /* file content */
    const char *expect; /* substring of the message after "path:" */
} bad_line;

static void test_malformed_lines(void) {
    static const char good[] =
        "{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\"}}}\n";
    const bad_line cases[] = {
        {"{\"id\": \"a\",\n", ":1: json: column"},
        {"[1,2]\n", ":1: case: expected a JSON object"},
        {"\n\n{\"source\":\"s\",\"langs\":{}}\n", ":3: id: missing"},
        {"{\"id\":5,\"source\":\"s\",\"langs\":{}}\n", ":1: id: expected a string, got an integer"},
        {"{\"id\":\"\",\"source\":\"s\",\"langs\":{}}\n", ":1: id: empty"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{},\"extra\":1}\n", ":1: extra: unknown field"},
        {"{\"id\":\"a\",\"source\":\"s\"}\n", ":1: langs: missing"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{}}\n", ":1: langs: expected a non-empty object"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":[]}\n", ":1: langs: expected a non-empty object"},
        {"{\"id\":\"a\",\"source\":\"s\",\"relation\":3,\"langs\":{}}\n", ":1: relation: expected a string or null"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":\"x\"}}\n", ":1: langs.en: expected an object"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"e n\":{}}}\n", ":1: langs: invalid language code"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"subject\":\"s\",\"target_new\":\"t\"}}}\n",
         ":1: langs.en.prompt: missing"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":1,\"subject\":\"s\",\"target_new\":\"t\"}}}\n",
         ":1: langs.en.prompt: expected a string, got an integer"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":[\"t\"]}}}\n",
         ":1: langs.en.target_new: expected a string, got an array"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\",\"target_true\":1}}}\n",
         ":1: langs.en.target_true: expected a string or null"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\",\"rephrase\":[]}}}\n",
         ":1: langs.en.rephrase: unknown field"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\",\"rephrases\":\"r\"}}}\n",
         ":1: langs.en.rephrases: expected an array of strings"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\",\"rephrases\":[\"r\",2]}}}\n",
         ":1: langs.en.rephrases[1]: expected a string"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\",\"locality\":[\"x\"]}}}\n",
         ":1: langs.en.locality[0]: expected an object"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\",\"portability\":[{\"prompt\":\"q\"}]}}}\n",
         ":1: langs.en.portability[0].answer: missing"},
        {"{\"id\":\"a\",\"source\":\"s\",\"langs\":{\"en\":{\"prompt\":\"p\",\"subject\":\"s\",\"target_new\":\"t\",\"locality\":[{\"prompt\":\"q\",\"answer\":\"a\",\"x\":1}]}}}\n",
         ":1: langs.en.locality[0].x: unknown field"},
        {"{\"id\":\"a\",\"id\":\"b\",\"source\":\"s\",\"langs\":{}}\n", ":1: json: column"},
        {"{\"id\":\"a\xff\",\"source\":\"s\",\"langs\":{}}\n", ":1: json: column"},
    };
    char path[512];
    tmp_path(path, sizeof path, "bad.jsonl");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].text, strlen(cases[i].text));
        xle_cases *cs = NULL;
        xle_error err = {0};
        xle_status st = xle_cases_load(path, &cs, &err);
        CHECK_MSG(st == XLE_ERR_FORMAT && cs == NULL, "case %zu: status %d", i, (int)st);
        CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, cases[i].expect),
                  "case %zu: got '%s', want '%s'", i, err.msg, cases[i].expect);
        CHECK(strchr(err.msg, '\n') == NULL);
        xle_cases_free(cs);
    }
    /* A NUL byte inside a line, a duplicate id two lines apart (line numbers named). */
    char nul[sizeof good + 1];
    memcpy(nul, good, sizeof good);
    nul[5] = 0;
    write_file(path, nul, sizeof good - 1);
    xle_cases *cs = NULL;
    xle_error err = {0};
    CHECK(xle_cases_load(path, &cs, &err) == XLE_ERR_FORMAT && strstr(err.msg, ":1: json: NUL"));
    char two[2 * sizeof good + 8];
    snprintf(two, sizeof two, "%s\n%s", good, good);
    write_file(path, two, strlen(two));
    CHECK(xle_cases_load(path, &cs, &err) == XLE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, ":3: id: \"a\" duplicates line 1") != NULL, "%s", err.msg);
    /* A missing file is an i/o error naming the file. */
    CHECK(xle_cases_load("/nonexistent/cases.jsonl", &cs, &err) == XLE_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/cases.jsonl") != NULL);
    /* Blank lines and a missing final newline are fine. */
    snprintf(two, sizeof two, "\n  \n%.*s", (int)strlen(good) - 1, good);
    write_file(path, two, strlen(two));
    CHECK_OK(xle_cases_load(path, &cs, &err), &err);
    CHECK(cs && cs->n == 1);
    xle_cases_free(cs);
}

static void test_keep_langs(void) {
    xle_cases *cs = example_set();
    xle_error err = {0};
    char langs[8][XLE_LANG_MAX];
    CHECK(xle_cases_lang_list(cs, langs, 8) == 3);
    CHECK(!strcmp(langs[0], "en") && !strcmp(langs[1], "de") && !strcmp(langs[2], "hi"));
    const char *keep[] = {"de", "fr"};
    CHECK_OK(xle_cases_keep_langs(cs, keep, 2, &err), &err);
    /* Case 1 keeps only de; case 2 (hi only) is dropped. */
    CHECK(cs->n == 1 && cs->cases[0].n_langs == 1 && !strcmp(cs->cases[0].langs[0].lang, "de"));
    CHECK(xle_cases_lang_list(cs, NULL, 0) == 1);
    xle_cases_free(cs);
}

static void locate(const char *prompt, const char *subject, xle_match loosest, xle_match want,
                   const char *want_span) {
    xle_match how;
    size_t b = 0, e = 0;
    xle_error err = {0};
    CHECK_OK(xle_subject_locate(prompt, subject, loosest, &how, &b, &e, &err), &err);
    CHECK_MSG(how == want, "'%s' in '%s': level %d, want %d", subject, prompt, (int)how, (int)want);
    if (how != XLE_MATCH_NONE && want_span)
        CHECK_MSG(e - b == strlen(want_span) && memcmp(prompt + b, want_span, e - b) == 0,
                  "'%s' in '%s': span '%.*s', want '%s'", subject, prompt, (int)(e - b), prompt + b, want_span);
}

static void test_subject_locate(void) {
    /* Exact. */
    locate("Where does Spike Hughes originate from?", "Spike Hughes", XLE_MATCH_EXACT, XLE_MATCH_EXACT, "Spike Hughes");
    /* Case differs: not exact, found caseless (MzsRE es record 0). */
    locate("¿Cuándo se creó el Desafío de Eventos Combinados de la IAAF?",
           "Desafío de eventos combinados de la IAAF", XLE_MATCH_EXACT, XLE_MATCH_NONE, NULL);
    locate("¿Cuándo se creó el Desafío de Eventos Combinados de la IAAF?",
           "Desafío de eventos combinados de la IAAF", XLE_MATCH_STEM, XLE_MATCH_CASELESS,
           "Desafío de Eventos Combinados de la IAAF");
    /* Curly vs straight apostrophe (MzsRE fr record 0), and doubled spaces. */
    locate("À quand remonte la création du Défi des épreuves combinées de l\u2019IAAF ?",
           "Défi des  épreuves combinées de l'IAAF", XLE_MATCH_CASELESS, XLE_MATCH_CASELESS,
           "Défi des épreuves combinées de l\u2019IAAF");
    /* Composed é (U+00E9) in the prompt, decomposed e + U+0301 in the subject. */
    locate("Où est né Andr\xc3\xa9 ?", "Andre\xcc\x81", XLE_MATCH_CASELESS, XLE_MATCH_CASELESS, "Andr\xc3\xa9");
    /* "cafe" is not "café": caseless must not cut a character in two; stem allows it
     * (4 code points, needs 3 in common: c a f e all match the start of c a f e U+0301). */
    locate("Le café est", "cafe", XLE_MATCH_CASELESS, XLE_MATCH_NONE, NULL);
    locate("Le café est", "cafe", XLE_MATCH_STEM, XLE_MATCH_STEM, "café");
    /* Tamil case ending: சவால் (5 code points) vs சவாலை; 4 in common >= max(3, 4). */
    locate("IAAF இணைந்த நிகழ்வுகள் சவாலை எப்போது தொடங்கப்பட்டது?", "IAAF இணைந்த நிகழ்வுகள் சவால்",
           XLE_MATCH_STEM, XLE_MATCH_STEM, "IAAF இணைந்த நிகழ்வுகள் சவால");
    /* Russian genitive: Марта -> Марты (5 letters; 4 in common >= max(3, 4)). */
    locate("Дата рождения Марты Ноймарк?", "Марта Ноймарк", XLE_MATCH_STEM, XLE_MATCH_STEM, "Марты Ноймарк");
    /* Different words stay apart: Martin (6) vs Marta share 4 < max(4, 5). */
    locate("Where was Marta born?", "Martin", XLE_MATCH_STEM, XLE_MATCH_NONE, NULL);
    /* Short words (<= 3 code points) must match in full: "Abe" is not "Abu". */
    locate("Abu was born in", "Abe", XLE_MATCH_STEM, XLE_MATCH_NONE, NULL);
    /* Empty subject never matches. */
    locate("anything", "", XLE_MATCH_STEM, XLE_MATCH_NONE, NULL);
    locate("anything", "   ", XLE_MATCH_STEM, XLE_MATCH_NONE, NULL);
    /* Invalid UTF-8 does not crash and still matches bytes exactly. */
    locate("ab\xff\xfe cd", "\xff\xfe", XLE_MATCH_STEM, XLE_MATCH_EXACT, "\xff\xfe");
}

static void test_validate_counts(void) {
    xle_cases *cs;
    xle_error err = {0};
    xle_case *c;
    CHECK_OK(xle_cases_new(&cs, &err), &err);
    /* en: one of each kind; de: one usable, one caseless-recovered, one stem-recovered. */
    const char *en[][3] = {{"Paris is in", "Paris", "Italy"},
                           {"", "Paris", "Italy"},
                           {"Paris is in", " ", "Italy"},
                           {"Paris is in", "Paris", ""},
                           {"Rome is in", "Paris", "Italy"}};
    const char *de[][3] = {{"Paris liegt in", "Paris", "Italien"},
                           {"PARIS liegt in", "Paris", "Italien"},
                           {"Дата рождения Марты?", "Марта", "1900"}};
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "c%d", i);
        CHECK_OK(xle_cases_add(cs, id, "t", NULL, &c, &err), &err);
        CHECK_OK(xle_case_add_lang(c, "en", en[i][0], en[i][1], en[i][2], NULL, NULL, &err), &err);
        if (i < 3) CHECK_OK(xle_case_add_lang(c, "de", de[i][0], de[i][1], de[i][2], NULL, NULL, &err), &err);
    }
    xle_validation *v = NULL;
    CHECK_OK(xle_cases_validate(cs, &v, &err), &err);
    CHECK(v && v->n_cases == 5 && v->n_langs == 2);
    if (v && v->n_langs == 2) {
        const xle_lang_counts *e = &v->langs[0], *d = &v->langs[1];
        CHECK(!strcmp(e->lang, "en") && e->n_cases == 5);
        CHECK(e->n_problem[XLE_CASE_USABLE] == 1 && e->n_problem[XLE_CASE_NO_PROMPT] == 1 &&
              e->n_problem[XLE_CASE_NO_SUBJECT] == 1 && e->n_problem[XLE_CASE_NO_TARGET] == 1 &&
              e->n_problem[XLE_CASE_SUBJECT_NOT_IN_PROMPT] == 1 && e->n_caseless == 0 && e->n_stem == 0);
        CHECK(!strcmp(d->lang, "de") && d->n_cases == 3 && d->n_problem[XLE_CASE_USABLE] == 1 &&
              d->n_problem[XLE_CASE_SUBJECT_NOT_IN_PROMPT] == 2 && d->n_caseless == 1 && d->n_stem == 1);
    }
    xle_case_problem p;
    xle_match how;
    CHECK_OK(xle_case_lang_check(&cs->cases[1].langs[1], XLE_MATCH_CASELESS, &p, &how, &err), &err);
    CHECK(p == XLE_CASE_USABLE && how == XLE_MATCH_CASELESS);
    CHECK_OK(xle_case_lang_check(&cs->cases[1].langs[1], XLE_MATCH_EXACT, &p, &how, &err), &err);
    CHECK(p == XLE_CASE_SUBJECT_NOT_IN_PROMPT && how == XLE_MATCH_NONE);
    CHECK(!strcmp(xle_case_problem_name(XLE_CASE_NO_TARGET), "target empty"));
    xle_validation_free(v);
    xle_cases_free(cs);
}

int main(void) {
    make_tmpdir();
    RUN(test_builders_and_round_trip);
    RUN(test_builder_errors);
    RUN(test_malformed_lines);
    RUN(test_keep_langs);
    RUN(test_subject_locate);
    RUN(test_validate_counts);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
