/*
 * world_cases.c: counterfactual evaluation cases from the fact world, in the canonical case
 * format (xledit.h "Evaluation cases"). A case edits one fact (subject, relation, true object)
 * to another object of the same relation and carries, in every language: the prompt of a
 * training template, the held-out templates as rephrases, three locality facts of other
 * subjects (one of the same relation, two of other relations) with their true answers, and the
 * two-hop portability questions whose answers follow from the NEW object (new birthplace ->
 * its country). Only relations that start a two-hop chain are edited, so every case can test
 * portability. Everything is drawn from one seeded xle_rng stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "world/world.h"

#define N_LOCALITY 3

static uint64_t draw(xle_rng *rng, uint64_t n) { return xle_rng_next(rng) % n; }

static int starts_chain(const xle_world *w, int relation) {
    for (int c = 0; c < w->n_chains; c++)
        if (w->chains[c].first == relation) return 1;
    return 0;
}

/* Whether o can replace the true object: another entity whose name differs from the true
 * object's in every language (else the edit would be invisible in that language). */
static int distinct_everywhere(const xle_world *w, int subject, int truth, int o) {
    if (o == truth) return 0;
    for (int l = 0; l < w->n_langs; l++)
        if (!strcmp(world_name_for(w, o, l, subject), world_name_for(w, truth, l, subject))) return 0;
    return 1;
}

/* How well o serves as a new object: 2 when every chain from the relation has an answer for o
 * that differs from the true object's answer (portability then tests something), 1 when every
 * chain has an answer, 0 otherwise. */
static int target_quality(const xle_world *w, int relation, int truth, int o) {
    int all_answered = 1, all_differ = 1;
    for (int c = 0; c < w->n_chains; c++) {
        if (w->chains[c].first != relation) continue;
        int a_new = world_object_of(w, o, w->chains[c].second);
        int a_old = world_object_of(w, truth, w->chains[c].second);
        all_answered &= a_new >= 0;
        all_differ &= a_new >= 0 && a_new != a_old;
    }
    return all_answered ? 1 + all_differ : 0;
}

static int pick_target(const xle_world *w, const world_fact *f, xle_rng *rng, int *pool) {
    const world_relation *rel = &w->relations[f->relation];
    for (int want = 2; want >= 0; want--) {
        int n = 0;
        for (int i = 0; i < rel->n_range; i++) {
            int o = rel->range[i];
            if (distinct_everywhere(w, f->subject, f->object, o) &&
                target_quality(w, f->relation, f->object, o) >= want)
                pool[n++] = o;
        }
        if (n) return pool[draw(rng, (uint64_t)n)];
    }
    return -1;
}

/* Picks N_LOCALITY facts about subjects the edit does not touch: the first of the edited
 * relation, the others of other relations, all with different subjects. */
static int pick_locality(const xle_world *w, const world_fact *f, int new_object, xle_rng *rng,
                         int *pool, int *out) {
    int n_out = 0;
    for (int k = 0; k < N_LOCALITY; k++) {
        int n = 0;
        for (int g = 0; g < w->n_facts; g++) {
            const world_fact *h = &w->facts[g];
            if ((k == 0) != (h->relation == f->relation)) continue;
            if (h->subject == f->subject || h->subject == f->object || h->subject == new_object) continue;
            int reused = 0;
            for (int j = 0; j < n_out; j++) reused |= w->facts[out[j]].subject == h->subject;
            if (!reused) pool[n++] = g;
        }
        if (n == 0) continue;
        out[n_out++] = pool[draw(rng, (uint64_t)n)];
    }
    return n_out;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

/* The prompt of template t filled for (subject, object) in lang, as a new string; the subject
 * as it appears in that prompt goes to *subject (new string) when subject is non-NULL. */
static xle_status prompt_of(const xle_world *w, const world_template *t, int lang, int subj,
                            int obj, const char *obj_name, char **prompt, char **subject,
                            xle_error *err) {
    world_rendered rd;
    xle_status st = world_render(w, t, lang, subj, obj, obj_name, &rd, err);
    if (st) return st;
    rd.text[rd.prompt_len] = 0;
    *prompt = rd.text;
    if (subject) {
        *subject = strndup(rd.text + rd.subject_start, rd.subject_len);
        if (!*subject) {
            free(rd.text);
            return xle_fail(err, XLE_ERR_NOMEM, "world cases: out of memory");
        }
    }
    return XLE_OK;
}

/* One language half of a case. */
static xle_status add_lang(const xle_world *w, xle_case *c, int l, const world_fact *f,
                           int new_object, uint64_t template_draw, const int *loc, int n_loc,
                           const uint64_t *loc_draws, xle_error *err) {
    const world_relation *rel = &w->relations[f->relation];
    const world_template *t = &rel->train[l].items[template_draw % (uint64_t)rel->train[l].n];
    char *prompt = NULL, *subject = NULL;
    xle_case_lang *cl;
    xle_status st = prompt_of(w, t, l, f->subject, f->object, NULL, &prompt, &subject, err);
    if (!st)
        st = xle_case_add_lang(c, w->langs[l], prompt, subject,
                               world_name_for(w, new_object, l, f->subject),
                               world_name_for(w, f->object, l, f->subject), &cl, err);
    free(prompt);
    free(subject);
    for (int i = 0; i < rel->heldout[l].n && !st; i++) {
        if ((st = prompt_of(w, &rel->heldout[l].items[i], l, f->subject, f->object, NULL, &prompt,
                            NULL, err)))
            break;
        st = xle_case_lang_add_rephrase(cl, prompt, err);
        free(prompt);
    }
    for (int i = 0; i < n_loc && !st; i++) {
        const world_fact *h = &w->facts[loc[i]];
        const world_templates *ts = &w->relations[h->relation].train[l];
        if ((st = prompt_of(w, &ts->items[loc_draws[i] % (uint64_t)ts->n], l, h->subject, h->object,
                            NULL, &prompt, NULL, err)))
            break;
        st = xle_case_lang_add_locality(cl, prompt, world_name_for(w, h->object, l, h->subject), err);
        free(prompt);
    }
    for (int ch = 0; ch < w->n_chains && !st; ch++) {
        const world_chain *chain = &w->chains[ch];
        if (chain->first != f->relation) continue;
        int answer = world_object_of(w, new_object, chain->second);
        if (answer < 0) continue;
        const char *answer_name = world_name_for(w, answer, l, f->subject);
        for (int i = 0; i < chain->templates[l].n && !st; i++) {
            if ((st = prompt_of(w, &chain->templates[l].items[i], l, f->subject, -1, answer_name,
                                &prompt, NULL, err)))
                break;
            st = xle_case_lang_add_portability(cl, prompt, answer_name, err);
            free(prompt);
        }
    }
    return st;
}

xle_status xle_world_make_cases(const xle_world *w, int n, uint64_t seed, xle_cases **out,
                                xle_error *err) {
    *out = NULL;
    if (n < 1) return xle_fail(err, XLE_ERR_ARG, "world cases: n: %d is not a positive number", n);
    int *cand = malloc((size_t)w->n_facts * sizeof *cand);
    int *pool = malloc((size_t)(w->n_facts > w->n_entities ? w->n_facts : w->n_entities) * sizeof *pool);
    if (!cand || !pool) {
        free(cand);
        free(pool);
        return xle_fail(err, XLE_ERR_NOMEM, "world cases: out of memory");
    }
    int n_cand = 0;
    for (int f = 0; f < w->n_facts; f++)
        if (starts_chain(w, w->facts[f].relation) && w->relations[w->facts[f].relation].n_range > 1)
            cand[n_cand++] = f;
    xle_status st = XLE_OK;
    if (n > n_cand)
        st = xle_fail(err, XLE_ERR_ARG,
                      "world cases: n: only %d facts have a relation that starts a two-hop chain, %d asked",
                      n_cand, n);
    xle_rng rng;
    xle_rng_seed(&rng, seed);
    /* a seeded sample of n candidates, then back in fact order so the file reads in order */
    for (int i = 0; i < n && !st; i++) {
        int j = i + (int)draw(&rng, (uint64_t)(n_cand - i));
        int tmp = cand[i];
        cand[i] = cand[j];
        cand[j] = tmp;
    }
    if (!st) qsort(cand, (size_t)n, sizeof *cand, cmp_int);
    xle_cases *cs = NULL;
    if (!st) st = xle_cases_new(&cs, err);
    for (int i = 0; i < n && !st; i++) {
        const world_fact *f = &w->facts[cand[i]];
        const world_relation *rel = &w->relations[f->relation];
        int new_object = pick_target(w, f, &rng, pool);
        if (new_object < 0) {
            st = xle_fail(err, XLE_ERR_ARG, "world cases: %s %s: no other object to edit to",
                          w->entities[f->subject].id, rel->id);
            break;
        }
        int loc[N_LOCALITY];
        uint64_t loc_draws[N_LOCALITY];
        int n_loc = pick_locality(w, f, new_object, &rng, pool, loc);
        uint64_t template_draw = xle_rng_next(&rng);
        for (int k = 0; k < n_loc; k++) loc_draws[k] = xle_rng_next(&rng);
        char id[256];
        snprintf(id, sizeof id, "world-%s-%s", rel->id, w->entities[f->subject].id);
        xle_case *c;
        if ((st = xle_cases_add(cs, id, "xledit-world", rel->id, &c, err))) break;
        for (int l = 0; l < w->n_langs && !st; l++)
            st = add_lang(w, c, l, f, new_object, template_draw, loc, n_loc, loc_draws, err);
    }
    free(cand);
    free(pool);
    if (st) {
        xle_cases_free(cs);
        return st;
    }
    *out = cs;
    return XLE_OK;
}
