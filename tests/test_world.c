/*
 * test_world.c: the built-in fact world (data/world, src/world). The shipped data loads and
 * has the promised shape (8 languages, >= 300 subjects with 2-4 relations, >= 8 relations,
 * 3 training and 2 held-out templates per relation and language, the template rules checked
 * here independently of the loader); the corpus is byte-identical for a seed and differs for
 * another; no held-out or two-hop prompt ever occurs in the corpus; the facts list agrees
 * with the corpus; the cases (>= 550, all 8 languages, 100% usable by the validator) agree
 * with the facts: target_true and locality answers are facts, portability answers are the
 * second hop from the NEW object looked up here in the raw fact table; the committed
 * data/world/cases.jsonl is what the generator writes; malformed data gives one clear line.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "test_files.h"
#include "world/world.h"
#include "xledit.h"

static char tmpdir[256];
static xle_world *world; /* the shipped world, loaded once */

static const char *const want_langs[] = {"en", "de", "fr", "it", "es", "hi", "ta", "kn"};

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

/* The lines of a file, sorted (for bsearch); the buffer is cut in place. */
typedef struct lines {
    char *buf;
    char **v;
    size_t n;
} lines;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int read_lines(const char *path, lines *out) {
    size_t len;
    out->buf = test_read_file(path, &len);
    if (!out->buf) return 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += out->buf[i] == '\n';
    out->v = malloc((n + 1) * sizeof *out->v);
    out->n = 0;
    for (char *p = out->buf, *nl; (nl = strchr(p, '\n')); p = nl + 1) {
        *nl = 0;
        out->v[out->n++] = p;
    }
    qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return 1;
}

static void free_lines(lines *l) {
    free(l->buf);
    free(l->v);
}

static int has_line(const lines *l, const char *s) {
    return bsearch(&s, l->v, l->n, sizeof *l->v, cmp_str) != NULL;
}

/* Whether some line starts with prefix followed by a space or the end: that prompt was seen. */
static int has_prompt(const lines *l, const char *prefix) {
    size_t lo = 0, hi = l->n, n = strlen(prefix);
    while (lo < hi) { /* first line >= prefix */
        size_t mid = (lo + hi) / 2;
        if (strcmp(l->v[mid], prefix) < 0) lo = mid + 1;
        else hi = mid;
    }
    for (size_t i = lo; i < l->n && strncmp(l->v[i], prefix, n) == 0; i++)
        if (l->v[i][n] == ' ' || l->v[i][n] == 0) return 1;
    return 0;
}

/* ---- the shipped data ---------------------------------------------------------------------- */

static void test_shipped_world_shape(void) {
    CHECK(world != NULL);
    if (!world) return;
    CHECK(world->n_langs == 8);
    for (int l = 0; l < world->n_langs && l < 8; l++) CHECK(strcmp(world->langs[l], want_langs[l]) == 0);
    CHECK(world->n_relations >= 8);
    int subjects = 0;
    for (int e = 0; e < world->n_entities; e++) {
        const world_entity *ent = &world->entities[e];
        for (int l = 0; l < world->n_langs; l++)
            CHECK_MSG(ent->names[l].m && ent->names[l].m[0], "%s has no %s name", ent->id, world->langs[l]);
        if (ent->n_facts == 0) continue;
        subjects++;
        CHECK_MSG(ent->n_facts >= 2 && ent->n_facts <= 4, "%s has %d relations", ent->id, ent->n_facts);
    }
    CHECK_MSG(subjects >= 300, "%d subjects", subjects);
    xle_world_counts c;
    xle_world_get_counts(world, &c);
    CHECK(c.n_subjects == subjects && c.n_facts == world->n_facts && c.n_langs == 8);
    CHECK(strcmp(c.langs[5], "hi") == 0);
    /* the fictional people and organisations have all four person relations between them */
    const char *rels[] = {"capital", "continent", "language", "country", "birthplace",
                          "profession", "instrument", "employer", "headquarters", "industry"};
    for (size_t i = 0; i < sizeof rels / sizeof rels[0]; i++) {
        int r = world_relation_find(world, rels[i]), n = 0;
        CHECK_MSG(r >= 0, "no relation %s", rels[i]);
        for (int f = 0; f < world->n_facts; f++) n += world->facts[f].relation == r;
        CHECK_MSG(n >= 20, "relation %s has %d facts", rels[i], n);
    }
}

/* Spot checks of true facts, straight from the data (not from rendering). */
static void test_shipped_facts_are_true(void) {
    struct { const char *s, *r, *o; } want[] = {
        {"france", "capital", "paris"},       {"japan", "capital", "tokyo"},
        {"india", "capital", "new_delhi"},    {"brazil", "capital", "brasilia"},
        {"australia", "capital", "canberra"}, {"nigeria", "capital", "abuja"},
        {"canada", "capital", "ottawa"},      {"egypt", "continent", "africa"},
        {"mumbai", "country", "india"},       {"chennai", "country", "india"},
        {"bengaluru", "country", "india"},    {"munich", "country", "germany"},
        {"austria", "language", "lang_german"}, {"brazil", "language", "lang_portuguese"},
        {"senegal", "language", "lang_french"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int s = world_entity_find(world, want[i].s), r = world_relation_find(world, want[i].r);
        int o = world_entity_find(world, want[i].o);
        CHECK_MSG(s >= 0 && r >= 0 && o >= 0 && world_object_of(world, s, r) == o, "%s %s %s",
                  want[i].s, want[i].r, want[i].o);
    }
    /* ambiguous facts are left out rather than guessed */
    CHECK(world_object_of(world, world_entity_find(world, "russia"), world_relation_find(world, "continent")) < 0);
    CHECK(world_object_of(world, world_entity_find(world, "india"), world_relation_find(world, "language")) < 0);
}

/* The template rules, checked here on the raw text. */
static void check_template_rules(const char *what, const char *text) {
    const char *s = strstr(text, "{subject}"), *o = strstr(text, "{object}");
    CHECK_MSG(s && o && s < o, "%s: \"%s\": subject must precede object", what, text);
    if (!s || !o) return;
    CHECK_MSG(!strstr(s + 1, "{subject}") && !strstr(o + 1, "{object}"), "%s: \"%s\": twice", what, text);
    CHECK_MSG(o > text && o[-1] == ' ' && (o < text + 2 || o[-2] != ' '), "%s: \"%s\": space before object", what, text);
    const char *after = o + strlen("{object}");
    CHECK_MSG(*after == 0 || *after == ' ', "%s: \"%s\": object must end a word", what, text);
}

static void test_shipped_templates(void) {
    for (int r = 0; r < world->n_relations; r++) {
        const world_relation *rel = &world->relations[r];
        for (int l = 0; l < world->n_langs; l++) {
            char what[64];
            snprintf(what, sizeof what, "%s/%s", rel->id, world->langs[l]);
            CHECK_MSG(rel->train[l].n >= 3, "%s: %d training templates", what, rel->train[l].n);
            CHECK_MSG(rel->heldout[l].n >= 2, "%s: %d held-out templates", what, rel->heldout[l].n);
            for (int i = 0; i < rel->train[l].n; i++) check_template_rules(what, rel->train[l].items[i].text);
            for (int i = 0; i < rel->heldout[l].n; i++) {
                check_template_rules(what, rel->heldout[l].items[i].text);
                for (int j = 0; j < rel->train[l].n; j++)
                    CHECK(strcmp(rel->heldout[l].items[i].text, rel->train[l].items[j].text) != 0);
            }
        }
    }
    CHECK(world->n_chains >= 5);
    for (int c = 0; c < world->n_chains; c++)
        for (int l = 0; l < world->n_langs; l++) {
            CHECK(world->chains[c].templates[l].n >= 1);
            for (int i = 0; i < world->chains[c].templates[l].n; i++)
                check_template_rules(world->chains[c].id, world->chains[c].templates[l].items[i].text);
        }
}

/* ---- corpus and facts ---------------------------------------------------------------------- */

static void test_corpus_deterministic(void) {
    char a[300], b[300], c[300], d[300];
    tmp_path(a, sizeof a, "corpus_a.txt");
    tmp_path(b, sizeof b, "corpus_b.txt");
    tmp_path(c, sizeof c, "corpus_c.txt");
    tmp_path(d, sizeof d, "corpus_d.txt");
    xle_error err = {0};
    xle_world_corpus_stats s1, s2;
    CHECK_OK(xle_world_write_corpus(world, a, 1, 1, &s1, &err), &err);
    CHECK_OK(xle_world_write_corpus(world, b, 1, 1, &s2, &err), &err);
    CHECK_OK(xle_world_write_corpus(world, c, 2, 1, NULL, &err), &err);
    CHECK_OK(xle_world_write_corpus(world, d, 1, 3, NULL, &err), &err);
    size_t na, nb, nc, nd;
    char *ta = test_read_file(a, &na), *tb = test_read_file(b, &nb), *tc = test_read_file(c, &nc), *td = test_read_file(d, &nd);
    CHECK(ta && tb && tc && td);
    if (ta && tb && tc && td) {
        CHECK(na == nb && memcmp(ta, tb, na) == 0);
        CHECK(na == nc && memcmp(ta, tc, na) != 0); /* same lines, another order */
        CHECK(nd == 3 * na);
        CHECK(memcmp(ta, td, na) == 0); /* the first copy is the seed's one shuffle */
        CHECK(memcmp(td, td + na, na) != 0);
    }
    free(ta);
    free(tb);
    free(tc);
    free(td);
    /* counts: one sentence per (fact, language, training template) plus one name line per entity */
    long want = 0;
    for (int f = 0; f < world->n_facts; f++)
        for (int l = 0; l < world->n_langs; l++) want += world->relations[world->facts[f].relation].train[l].n;
    CHECK(s1.n_sentences == want);
    CHECK(s1.n_name_lines == world->n_entities);
    CHECK(s1.n_lines == want + world->n_entities);
    lines la, lc;
    CHECK(read_lines(a, &la) && read_lines(c, &lc));
    CHECK((long)la.n == s1.n_lines && la.n == lc.n);
    for (size_t i = 0; i < la.n && i < lc.n; i++)
        if (strcmp(la.v[i], lc.v[i])) {
            CHECK_MSG(0, "seed 2 has other lines than seed 1: %s", la.v[i]);
            break;
        }
    /* 20-40k sentences for a model trained in under an hour on 2 cores */
    CHECK(s1.n_sentences >= 20000 && s1.n_sentences <= 40000);
    for (int l = 0; l < world->n_langs; l++) CHECK(s1.n_sentences_lang[l] == want / world->n_langs);
    /* every name appears in its own script in a name line */
    int missing = 0;
    for (int e = 0; e < world->n_entities; e++) {
        char needle[512];
        snprintf(needle, sizeof needle, "%s", world->entities[e].names[6].m); /* Tamil */
        int found = 0;
        for (size_t i = 0; i < la.n && !found; i++) found = strstr(la.v[i], " = ") && strstr(la.v[i], needle);
        missing += !found;
    }
    CHECK(missing == 0);
    free_lines(&la);
    free_lines(&lc);
}

static void test_heldout_never_in_corpus(void) {
    char path[300];
    tmp_path(path, sizeof path, "corpus_h.txt");
    xle_error err = {0};
    CHECK_OK(xle_world_write_corpus(world, path, 7, 1, NULL, &err), &err);
    lines corpus;
    CHECK(read_lines(path, &corpus));
    long n_checked = 0, seen = 0;
    for (int f = 0; f < world->n_facts; f++) {
        const world_fact *fa = &world->facts[f];
        const world_relation *rel = &world->relations[fa->relation];
        for (int l = 0; l < world->n_langs; l++) {
            for (int i = 0; i < rel->heldout[l].n; i++) {
                world_rendered rd;
                CHECK_OK(world_render(world, &rel->heldout[l].items[i], l, fa->subject, fa->object, NULL, &rd, &err), &err);
                seen += has_line(&corpus, rd.text);
                rd.text[rd.prompt_len] = 0;
                seen += has_prompt(&corpus, rd.text);
                n_checked++;
                free(rd.text);
            }
            for (int c = 0; c < world->n_chains; c++) {
                if (world->chains[c].first != fa->relation) continue;
                for (int i = 0; i < world->chains[c].templates[l].n; i++) {
                    world_rendered rd;
                    CHECK_OK(world_render(world, &world->chains[c].templates[l].items[i], l, fa->subject, -1, "X", &rd, &err), &err);
                    rd.text[rd.prompt_len] = 0;
                    seen += has_prompt(&corpus, rd.text);
                    n_checked++;
                    free(rd.text);
                }
            }
            /* and the training prompts are there (the check can find what it looks for) */
            world_rendered rd;
            CHECK_OK(world_render(world, &rel->train[l].items[0], l, fa->subject, fa->object, NULL, &rd, &err), &err);
            CHECK(has_line(&corpus, rd.text));
            rd.text[rd.prompt_len] = 0;
            CHECK(has_prompt(&corpus, rd.text));
            free(rd.text);
        }
    }
    CHECK(n_checked > 20000);
    CHECK_MSG(seen == 0, "%ld held-out or two-hop prompts occur in the corpus", seen);
    free_lines(&corpus);
}

/* facts.jsonl: every line is a prompt/object pair whose sentence starts a corpus line. Returns
 * the set "lang\tprompt\tobject" for the case tests. */
static void facts_set(lines *out) {
    char fpath[300], cpath[300], spath[300];
    tmp_path(fpath, sizeof fpath, "facts.jsonl");
    tmp_path(cpath, sizeof cpath, "corpus_f.txt");
    tmp_path(spath, sizeof spath, "facts_set.txt");
    xle_error err = {0};
    long n = 0;
    CHECK_OK(xle_world_write_facts(world, fpath, &n, &err), &err);
    CHECK_OK(xle_world_write_corpus(world, cpath, 1, 1, NULL, &err), &err);
    lines corpus, facts;
    CHECK(read_lines(cpath, &corpus) && read_lines(fpath, &facts));
    CHECK((long)facts.n == n);
    FILE *set = fopen(spath, "wb");
    int bad = 0;
    for (size_t i = 0; i < facts.n; i++) {
        json_error_t je;
        json_t *o = json_loads(facts.v[i], 0, &je);
        const char *lang = json_string_value(json_object_get(o, "lang"));
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        const char *object = json_string_value(json_object_get(o, "object"));
        const char *subject = json_string_value(json_object_get(o, "subject"));
        if (!lang || !prompt || !object || !subject || !strstr(prompt, subject)) {
            bad++;
            json_decref(o);
            continue;
        }
        char sentence[2048];
        snprintf(sentence, sizeof sentence, "%s %s", prompt, object);
        bad += !has_prompt(&corpus, sentence);
        fprintf(set, "%s\t%s\t%s\n", lang, prompt, object);
        json_decref(o);
    }
    fclose(set);
    CHECK_MSG(bad == 0, "%d facts lines are not corpus sentences", bad);
    free_lines(&corpus);
    free_lines(&facts);
    CHECK(read_lines(spath, out));
}

/* ---- cases --------------------------------------------------------------------------------- */

static int in_facts(const lines *facts, const char *lang, const char *prompt, const char *answer) {
    char key[2048];
    snprintf(key, sizeof key, "%s\t%s\t%s", lang, prompt, answer);
    return has_line(facts, key);
}

/* The entity of type `type` called `name` in language l (names are unique per type). */
static int entity_named(const char *type, int l, const char *name) {
    for (int e = 0; e < world->n_entities; e++)
        if (!strcmp(world->entities[e].type, type) &&
            (!strcmp(world->entities[e].names[l].m, name) ||
             (world->entities[e].names[l].f && !strcmp(world->entities[e].names[l].f, name))))
            return e;
    return -1;
}

/* The object of (subject, relation) by a scan of the raw fact table. */
static int lookup(int subject, int relation) {
    for (int f = 0; f < world->n_facts; f++)
        if (world->facts[f].subject == subject && world->facts[f].relation == relation) return world->facts[f].object;
    return -1;
}

static void test_cases(void) {
    xle_error err = {0};
    xle_cases *cs = NULL;
    CHECK_OK(xle_world_make_cases(world, 600, 1, &cs, &err), &err);
    if (!cs) return;
    CHECK(cs->n == 600);
    xle_validation *v = NULL;
    CHECK_OK(xle_cases_validate(cs, &v, &err), &err);
    CHECK(v && v->n_langs == 8);
    for (int l = 0; v && l < v->n_langs; l++) {
        CHECK(strcmp(v->langs[l].lang, want_langs[l]) == 0);
        CHECK_MSG(v->langs[l].n_problem[XLE_CASE_USABLE] == 600, "%s: %d usable", v->langs[l].lang,
                  v->langs[l].n_problem[XLE_CASE_USABLE]);
    }
    xle_validation_free(v);

    lines facts;
    facts_set(&facts);
    int bad_true = 0, bad_loc = 0, bad_port = 0, bad_reph = 0, n_port = 0, relations_seen = 0;
    char seen_rel[16][32];
    for (int i = 0; i < cs->n; i++) {
        const xle_case *c = &cs->cases[i];
        CHECK(c->relation && c->n_langs == 8);
        int r = world_relation_find(world, c->relation);
        CHECK(r >= 0);
        if (r < 0) continue;
        int known = 0;
        for (int k = 0; k < relations_seen; k++) known |= !strcmp(seen_rel[k], c->relation);
        if (!known && relations_seen < 16) snprintf(seen_rel[relations_seen++], 32, "%s", c->relation);
        const world_relation *rel = &world->relations[r];
        for (int l = 0; l < c->n_langs; l++) {
            const xle_case_lang *cl = &c->langs[l];
            CHECK(!strcmp(cl->lang, world->langs[l]));
            CHECK(strstr(cl->prompt, cl->subject) != NULL);
            CHECK(cl->target_true && strcmp(cl->target_new, cl->target_true) != 0);
            bad_true += !in_facts(&facts, cl->lang, cl->prompt, cl->target_true);
            CHECK(cl->n_rephrases == rel->heldout[l].n);
            /* the subject, from the case id "world-<relation>-<subject id>" */
            char sid[128];
            snprintf(sid, sizeof sid, "%s", c->id + strlen("world-") + strlen(c->relation) + 1);
            int subj = world_entity_find(world, sid);
            CHECK_MSG(subj >= 0 && lookup(subj, r) >= 0, "case %s: no such fact", c->id);
            if (subj < 0) continue;
            const char *sname = world->entities[subj].names[l].m; /* as in mid-sentence */
            for (int k = 0; k < cl->n_rephrases; k++) {
                bad_reph += !strstr(cl->rephrases[k], cl->subject) && !strstr(cl->rephrases[k], sname);
                bad_reph += in_facts(&facts, cl->lang, cl->rephrases[k], cl->target_true);
            }
            CHECK(cl->n_locality >= 2 && cl->n_locality <= 3);
            for (int k = 0; k < cl->n_locality; k++) {
                bad_loc += !in_facts(&facts, cl->lang, cl->locality[k].prompt, cl->locality[k].answer);
                bad_loc += strstr(cl->locality[k].prompt, sname) != NULL;
            }
            /* portability: second hop from the NEW object, looked up in the raw fact table */
            int new_obj = entity_named(rel->object_type, l, cl->target_new);
            CHECK_MSG(new_obj >= 0, "case %s: target_new %s is not a %s", c->id, cl->target_new, rel->object_type);
            if (new_obj < 0 || subj < 0) continue;
            int k = 0;
            for (int ch = 0; ch < world->n_chains; ch++) {
                if (world->chains[ch].first != r) continue;
                int ans = lookup(new_obj, world->chains[ch].second);
                if (ans < 0) continue;
                for (int t = 0; t < world->chains[ch].templates[l].n; t++, k++) {
                    if (k >= cl->n_portability) {
                        bad_port++;
                        continue;
                    }
                    bad_port += strcmp(cl->portability[k].answer, world_name_for(world, ans, l, subj)) != 0;
                    bad_port += !strstr(cl->portability[k].prompt, cl->subject) &&
                                !strstr(cl->portability[k].prompt, sname);
                }
            }
            CHECK(k == cl->n_portability && k >= 1);
            n_port += k;
        }
    }
    CHECK_MSG(bad_true == 0, "%d target_true are not facts", bad_true);
    CHECK_MSG(bad_loc == 0, "%d locality pairs are not facts", bad_loc);
    CHECK_MSG(bad_port == 0, "%d portability pairs disagree with the data", bad_port);
    CHECK_MSG(bad_reph == 0, "%d rephrases are training prompts or lack the subject", bad_reph);
    CHECK(n_port >= 600 * 8);
    CHECK(relations_seen >= 4);
    free_lines(&facts);

    /* deterministic: the same seed gives the same cases, another seed others */
    xle_cases *again = NULL, *other = NULL;
    CHECK_OK(xle_world_make_cases(world, 600, 1, &again, &err), &err);
    CHECK_OK(xle_world_make_cases(world, 600, 2, &other, &err), &err);
    char p1[300], p2[300], p3[300];
    tmp_path(p1, sizeof p1, "cases1.jsonl");
    tmp_path(p2, sizeof p2, "cases2.jsonl");
    tmp_path(p3, sizeof p3, "cases3.jsonl");
    CHECK_OK(xle_cases_write_jsonl(cs, p1, &err), &err);
    CHECK_OK(xle_cases_write_jsonl(again, p2, &err), &err);
    CHECK_OK(xle_cases_write_jsonl(other, p3, &err), &err);
    size_t n1, n2, n3;
    char *t1 = test_read_file(p1, &n1), *t2 = test_read_file(p2, &n2), *t3 = test_read_file(p3, &n3);
    CHECK(t1 && t2 && t3 && n1 == n2 && memcmp(t1, t2, n1) == 0);
    CHECK(t1 && t3 && (n1 != n3 || memcmp(t1, t3, n1) != 0));
    /* the committed file is the generator's output (regenerate: xledit world cases) */
    size_t nc;
    char *committed = test_read_file(XLE_SOURCE_DIR "/data/world/cases.jsonl", &nc);
    CHECK_MSG(committed && t1 && nc == n1 && memcmp(committed, t1, n1) == 0,
              "data/world/cases.jsonl is stale: run xledit world cases --data data/world --out data/world/cases.jsonl");
    free(committed);
    free(t1);
    free(t2);
    free(t3);
    xle_cases_free(again);
    xle_cases_free(other);
    xle_cases_free(cs);

    /* more cases than editable facts is an error, not a silent shortfall */
    xle_cases *too_many = NULL;
    CHECK(xle_world_make_cases(world, 100000, 1, &too_many, &err) == XLE_ERR_ARG);
    CHECK(too_many == NULL && strstr(err.msg, "two-hop"));
}

/* ---- malformed data ------------------------------------------------------------------------ */

static const char *mini_world = "{\"languages\": [\"en\", \"de\"], \"relations\": \"relations.json\", "
                                "\"entities\": [\"things.json\"]}";
static const char *mini_relations =
    "{\"relations\": [{\"id\": \"capital\", \"subject_types\": [\"country\"], \"object_type\": \"city\",\n"
    " \"templates\": {\n"
    "  \"en\": {\"train\": [\"The capital of {subject} is {object}\", \"{subject} has the capital {object}\", "
    "\"{subject}'s capital is {object}\"], \"heldout\": [\"In {subject}, the capital is {object}\", "
    "\"The seat of {subject} is {object}\"]},\n"
    "  \"de\": {\"train\": [\"Die Hauptstadt von {subject} ist {object}\", \"{subject} hat als Hauptstadt {object}\", "
    "\"Hauptstadt von {subject}: {object}\"], \"heldout\": [\"In {subject} ist die Hauptstadt {object}\", "
    "\"Als Hauptstadt von {subject} gilt {object}\"]}}},\n"
    " {\"id\": \"country\", \"subject_types\": [\"city\"], \"object_type\": \"country\",\n"
    " \"templates\": {\n"
    "  \"en\": {\"train\": [\"{subject} is in {object}\", \"{subject} lies in {object}\", "
    "\"The city {subject} is in {object}\"], \"heldout\": [\"{subject} is a city of {object}\", "
    "\"The country of {subject} is {object}\"]},\n"
    "  \"de\": {\"train\": [\"{subject} liegt in {object}\", \"{subject} ist in {object}\", "
    "\"Die Stadt {subject} liegt in {object}\"], \"heldout\": [\"{subject} ist eine Stadt in {object}\", "
    "\"Das Land von {subject} ist {object}\"]}}}],\n"
    " \"two_hop\": [{\"id\": \"capital_country\", \"first\": \"capital\", \"second\": \"country\", "
    "\"templates\": {\"en\": [\"The capital of {subject} is a city in {object}\"], "
    "\"de\": [\"Die Hauptstadt von {subject} liegt in {object}\"]}}]}\n";
static const char *mini_things =
    "{\"entities\": [\n"
    " {\"id\": \"france\", \"type\": \"country\", \"names\": {\"en\": \"France\", \"de\": \"Frankreich\"}, "
    "\"facts\": {\"capital\": \"paris\"}},\n"
    " {\"id\": \"japan\", \"type\": \"country\", \"names\": {\"en\": \"Japan\", \"de\": \"Japan\"}, "
    "\"facts\": {\"capital\": \"tokyo\"}},\n"
    " {\"id\": \"paris\", \"type\": \"city\", \"names\": {\"en\": \"Paris\", \"de\": \"Paris\"}, "
    "\"facts\": {\"country\": \"france\"}},\n"
    " {\"id\": \"tokyo\", \"type\": \"city\", \"names\": {\"en\": \"Tokyo\", \"de\": \"Tokio\"}, "
    "\"facts\": {\"country\": \"japan\"}}\n"
    "]}\n";

/* Writes the mini world with one replacement (from -> to, first occurrence, in file `which`)
 * and returns the load status; the message is left in err. */
static xle_status load_mutated(const char *which, const char *from, const char *to, xle_error *err) {
    char dir[300], p[400];
    static int k = 0;
    snprintf(dir, sizeof dir, "%s/mini%d", tmpdir, k++);
    mkdir(dir, 0700);
    const char *names[3] = {"world.json", "relations.json", "things.json"};
    const char *texts[3] = {mini_world, mini_relations, mini_things};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        const char *t = texts[i];
        char *buf = NULL;
        if (which && !strcmp(which, names[i])) {
            const char *at = strstr(t, from);
            if (!at) {
                fprintf(stderr, "test bug: '%s' not in %s\n", from, which);
                exit(1);
            }
            buf = malloc(strlen(t) + strlen(to) + 1);
            memcpy(buf, t, (size_t)(at - t));
            strcpy(buf + (at - t), to);
            strcat(buf, at + strlen(from));
            t = buf;
        }
        if (!(which && !strcmp(which, names[i]) && !strcmp(to, "<absent>"))) write_file(p, t);
        free(buf);
    }
    xle_world *w = NULL;
    memset(err, 0, sizeof *err);
    xle_status st = xle_world_load(dir, &w, err);
    xle_world_free(w);
    return st;
}

static void expect_error(const char *which, const char *from, const char *to, const char *file_in_msg,
                         const char *what) {
    xle_error err;
    xle_status st = load_mutated(which, from, to, &err);
    CHECK_MSG(st != XLE_OK, "%s: '%s' -> '%s' loaded", which, from, to);
    CHECK_MSG(strstr(err.msg, file_in_msg) && strstr(err.msg, what), "%s: '%s' -> '%s': message \"%s\"",
              which, from, to, err.msg);
    CHECK(strchr(err.msg, '\n') == NULL);
}

/* xle_world_facts walks the same facts as xle_world_write_facts writes, and stops when the
 * callback asks. Facts are compared by "lang\ttemplate\tsubject\tprompt\tobject". */
typedef struct walk_ctx {
    char **keys; /* of the written lines, sorted */
    size_t n_keys, seen, mismatched, stop_after;
} walk_ctx;

static char *fact_key(const char *lang, long template_index, const char *subject, const char *prompt,
                      const char *object) {
    size_t len = strlen(lang) + strlen(subject) + strlen(prompt) + strlen(object) + 32;
    char *k = malloc(len);
    if (k) snprintf(k, len, "%s\t%ld\t%s\t%s\t%s", lang, template_index, subject, prompt, object);
    return k;
}

static int compare_fact(void *user, const xle_world_fact_text *ft) {
    walk_ctx *c = user;
    char *key = fact_key(ft->lang, ft->template_index, ft->subject, ft->prompt, ft->object);
    if (!key || !bsearch(&key, c->keys, c->n_keys, sizeof *c->keys, cmp_str)) c->mismatched++;
    free(key);
    c->seen++;
    return c->stop_after && c->seen == c->stop_after;
}

static void test_facts_walk(void) {
    char fpath[300];
    tmp_path(fpath, sizeof fpath, "facts_walk.jsonl");
    xle_error err = {0};
    long n = 0;
    CHECK_OK(xle_world_write_facts(world, fpath, &n, &err), &err);
    lines written;
    CHECK(read_lines(fpath, &written));
    char **keys = calloc(written.n + 1, sizeof *keys);
    for (size_t i = 0; i < written.n; i++) {
        json_t *o = json_loads(written.v[i], 0, NULL);
        const char *lang = json_string_value(json_object_get(o, "lang"));
        const char *subject = json_string_value(json_object_get(o, "subject"));
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        const char *object = json_string_value(json_object_get(o, "object"));
        if (lang && subject && prompt && object)
            keys[i] = fact_key(lang, (long)json_integer_value(json_object_get(o, "template")), subject, prompt, object);
        CHECK(keys[i] != NULL);
        if (!keys[i]) keys[i] = strdup(""); /* keeps the sort and the search defined */
        json_decref(o);
    }
    qsort(keys, written.n, sizeof *keys, cmp_str);
    walk_ctx all = {keys, written.n, 0, 0, 0};
    CHECK_OK(xle_world_facts(world, compare_fact, &all, &err), &err);
    CHECK_MSG(all.seen == (size_t)n && all.mismatched == 0, "walked %zu facts (%zu not written), wrote %ld",
              all.seen, all.mismatched, n);
    walk_ctx early = {keys, written.n, 0, 0, 5};
    CHECK_OK(xle_world_facts(world, compare_fact, &early, &err), &err);
    CHECK(early.seen == 5 && early.mismatched == 0);
    for (size_t i = 0; i < written.n; i++) free(keys[i]);
    free(keys);
    free_lines(&written);
    remove(fpath);
}

static void test_malformed_data(void) {
    xle_error err;
    CHECK_OK(load_mutated(NULL, NULL, NULL, &err), &err); /* the mini world itself is fine */
    /* files and JSON */
    expect_error("world.json", mini_world, "<absent>", "world.json", "world.json");
    expect_error("things.json", "{\"entities\"", "{\"entities\" [", "things.json:1:", "json");
    expect_error("world.json", "\"entities\"", "\"entitys\"", "world.json", "unknown key");
    expect_error("world.json", "\"relations\": \"relations.json\"", "\"relations\": \"nope.json\"", "nope.json",
                 "nope.json");
    /* templates */
    expect_error("relations.json", "The capital of {subject} is {object}", "The capital of {subject} is Paris",
                 "relations.json", "exactly once");
    expect_error("relations.json", "{subject} has the capital {object}", "{object} is the capital of {subject}",
                 "relations.json", "before {object}");
    expect_error("relations.json", "{subject} has the capital {object}", "{subject} has the capital:{object}",
                 "relations.json", "after one space");
    expect_error("relations.json", "{subject} has the capital {object}", "{subject} has the capital {object}.",
                 "relations.json", "followed by a space");
    expect_error("relations.json", ", \"{subject}'s capital is {object}\"]", "]", "relations.json", "at least 3");
    expect_error("relations.json", "\"The seat of {subject} is {object}\"", "\"The capital of {subject} is {object}\"",
                 "relations.json", "same prompt as train");
    expect_error("relations.json", "\"de\": {\"train\": [\"Die", "\"xx\": {\"train\": [\"Die", "relations.json",
                 "not in world.json");
    expect_error("relations.json", "\"second\": \"country\"", "\"second\": \"capital\"", "relations.json",
                 "does not take a city");
    expect_error("relations.json", "{subject} lies in {object}", "{subject}  lies in {object}", "relations.json",
                 "double space");
    /* entities */
    expect_error("things.json", ", \"de\": \"Frankreich\"", "", "things.json", "names.de: missing");
    expect_error("things.json", "\"id\": \"japan\"", "\"id\": \"france\"", "things.json", "duplicate");
    expect_error("things.json", "\"capital\": \"tokyo\"", "\"capital\": \"kyoto\"", "things.json", "no entity");
    expect_error("things.json", "\"capital\": \"tokyo\"", "\"capital\": \"france\"", "things.json", "wants a city");
    expect_error("things.json", "\"capital\": \"tokyo\"", "\"mayor\": \"tokyo\"", "things.json", "unknown relation");
    expect_error("things.json", "\"capital\": \"paris\"", "\"country\": \"japan\"", "things.json",
                 "cannot be the subject");
    expect_error("things.json", "\"type\": \"country\", \"names\"", "\"type\": \"country\", \"colour\": 1, \"names\"",
                 "things.json", "unknown key");
    expect_error("things.json", "\"de\": \"Japan\"", "\"de\": 7", "things.json", "expected a string");
    expect_error("things.json", "\"de\": \"Tokio\"", "\"de\": {\"m\": \"Tokio\", \"f\": \"Tokia\"}", "things.json",
                 "needs a gender");
    /* two countries called the same in German with different capitals: one prompt, two answers */
    expect_error("things.json", "\"de\": \"Japan\"", "\"de\": \"Frankreich\"", "world", "two answers");
}

static void test_write_errors_leave_nothing(void) {
    char path[300];
    tmp_path(path, sizeof path, "no/such/dir/corpus.txt");
    xle_error err = {0};
    CHECK(xle_world_write_corpus(world, path, 1, 1, NULL, &err) == XLE_ERR_IO);
    CHECK(strstr(err.msg, "no/such/dir/corpus.txt") != NULL);
    CHECK(xle_world_write_facts(world, path, NULL, &err) == XLE_ERR_IO);
    CHECK(xle_world_write_corpus(world, path, 1, 0, NULL, &err) == XLE_ERR_ARG);
    /* no temporary files are left in tmpdir */
    DIR *d = opendir(tmpdir);
    int tmp_left = 0;
    for (struct dirent *e; d && (e = readdir(d));) tmp_left += strstr(e->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    CHECK(tmp_left == 0);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/xle_test_world_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    xle_error err = {0};
    if (xle_world_load(XLE_SOURCE_DIR "/data/world", &world, &err) != XLE_OK) {
        fprintf(stderr, "cannot load the shipped world: %s\n", err.msg);
        return 1;
    }
    RUN(test_shipped_world_shape);
    RUN(test_shipped_facts_are_true);
    RUN(test_shipped_templates);
    RUN(test_corpus_deterministic);
    RUN(test_heldout_never_in_corpus);
    RUN(test_cases);
    RUN(test_facts_walk);
    RUN(test_malformed_data);
    RUN(test_write_errors_leave_nothing);
    xle_world_free(world);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
