/*
 * world_render.c: facts into text. A template is filled with the subject's and the object's
 * names in one language; the corpus is every fact in every language with every training
 * template plus one line of names per entity, shuffled by a seed; the facts list is the same
 * sentences cut into (prompt, object) pairs as JSONL. Files are written atomically.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "core/outpath.h"
#include "world/world.h"

const char *world_name_for(const xle_world *w, int entity, int lang, int about) {
    const world_name *n = &w->entities[entity].names[lang];
    if (n->f && about >= 0 && w->entities[about].gender == 'f') return n->f;
    return n->m;
}

xle_status world_render(const xle_world *w, const world_template *t, int lang, int subject,
                        int object, const char *object_name, world_rendered *out, xle_error *err) {
    const char *sname = world_name_for(w, subject, lang, -1);
    const char *oname = object_name ? object_name : world_name_for(w, object, lang, subject);
    static const size_t subj_ph = sizeof "{subject}" - 1, obj_ph = sizeof "{object}" - 1;
    size_t tlen = strlen(t->text), slen = strlen(sname), olen = strlen(oname);
    char *s = malloc(tlen - subj_ph - obj_ph + slen + olen + 1);
    if (!s) return xle_fail(err, XLE_ERR_NOMEM, "world: out of memory");
    /* The template is  A {subject} B {object} C  with the subject first (checked on load). */
    const char *a = t->text, *b = t->text + t->subject_at + subj_ph, *c = t->text + t->object_at + obj_ph;
    size_t na = t->subject_at, nb = t->object_at - t->subject_at - subj_ph, nc = strlen(c);
    char *p = s;
    memcpy(p, a, na);
    p += na;
    memcpy(p, sname, slen);
    p += slen;
    memcpy(p, b, nb);
    p += nb;
    memcpy(p, oname, olen);
    p += olen;
    memcpy(p, c, nc + 1);
    if (s[0] >= 'a' && s[0] <= 'z') s[0] = (char)(s[0] - 'a' + 'A');
    out->text = s;
    out->subject_start = na;
    out->subject_len = slen;
    out->object_start = na + slen + nb;
    out->object_len = olen;
    out->prompt_len = out->object_start - 1; /* without the space before the object */
    return XLE_OK;
}

xle_status world_write_lines(const char *path, char *const *lines, size_t n, xle_error *err) {
    xle_status checked = xle_out_check(path, XLE_OUT_FILE, err);
    if (checked != XLE_OK) return checked;
    xle_atomic_file out;
    xle_status open_st = xle_atomic_open(&out, path, err);
    if (open_st != XLE_OK) return open_st;
    FILE *f = out.f;
    xle_status st = XLE_OK;
    for (size_t i = 0; i < n && !st; i++)
        if (fputs(lines[i], f) == EOF || fputc('\n', f) == EOF)
            st = xle_fail(err, XLE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    xle_status close_st = xle_atomic_close(&out, !st, err);
    return st ? st : close_st;
}

/* ---- corpus -------------------------------------------------------------------------------- */

/* A growable list of owned strings. */
typedef struct line_list {
    char **items;
    size_t n, cap;
} line_list;

static xle_status list_push(line_list *l, char *s, xle_error *err) {
    if (!s) return xle_fail(err, XLE_ERR_NOMEM, "world: out of memory");
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        char **p = realloc(l->items, cap * sizeof *p);
        if (!p) {
            free(s);
            return xle_fail(err, XLE_ERR_NOMEM, "world: out of memory");
        }
        l->items = p;
        l->cap = cap;
    }
    l->items[l->n++] = s;
    return XLE_OK;
}

static void list_free(line_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
}

/* "France = Frankreich = la France = ..." : every distinct name of the entity, in language
 * order, so each name is seen once in its own script next to the others. */
static char *names_line(const xle_world *w, int e) {
    const char *seen[2 * XLE_WORLD_MAX_LANGS];
    int n = 0;
    size_t len = 1;
    for (int l = 0; l < w->n_langs; l++) {
        const world_name *nm = &w->entities[e].names[l];
        const char *forms[2] = {nm->m, nm->f};
        for (int k = 0; k < 2; k++) {
            if (!forms[k]) continue;
            int dup = 0;
            for (int i = 0; i < n && !dup; i++) dup = strcmp(seen[i], forms[k]) == 0;
            if (dup) continue;
            seen[n++] = forms[k];
            len += strlen(forms[k]) + 3;
        }
    }
    char *s = malloc(len);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, " = ");
        strcat(s, seen[i]);
    }
    return s;
}

xle_status xle_world_write_corpus(const xle_world *w, const char *path, uint64_t seed, int copies,
                                  xle_world_corpus_stats *stats, xle_error *err) {
    if (copies < 1 || copies > 1000)
        return xle_fail(err, XLE_ERR_ARG, "world corpus: copies: %d is not in 1..1000", copies);
    xle_world_corpus_stats local;
    memset(&local, 0, sizeof local);
    line_list lines = {0};
    xle_status st = XLE_OK;
    for (int f = 0; f < w->n_facts && !st; f++) {
        const world_fact *fa = &w->facts[f];
        const world_relation *rel = &w->relations[fa->relation];
        for (int l = 0; l < w->n_langs && !st; l++)
            for (int t = 0; t < rel->train[l].n && !st; t++) {
                world_rendered rd;
                st = world_render(w, &rel->train[l].items[t], l, fa->subject, fa->object, NULL, &rd, err);
                if (!st) st = list_push(&lines, rd.text, err);
                if (!st && l < XLE_WORLD_MAX_LANGS) local.n_sentences_lang[l]++;
            }
    }
    local.n_sentences = (long)lines.n;
    for (int e = 0; e < w->n_entities && !st; e++) st = list_push(&lines, names_line(w, e), err);
    local.n_name_lines = (long)lines.n - local.n_sentences;
    /* copies shuffled views of the same lines (Fisher-Yates, one rng stream for all copies) */
    char **order = NULL;
    size_t total = lines.n * (size_t)copies;
    if (!st && !(order = malloc((total ? total : 1) * sizeof *order)))
        st = xle_fail(err, XLE_ERR_NOMEM, "world: out of memory");
    if (!st) {
        xle_rng rng;
        xle_rng_seed(&rng, seed);
        for (int c = 0; c < copies; c++) {
            char **part = order + (size_t)c * lines.n;
            memcpy(part, lines.items, lines.n * sizeof *part);
            for (size_t i = lines.n; i > 1; i--) {
                size_t j = (size_t)(xle_rng_next(&rng) % i);
                char *tmp = part[i - 1];
                part[i - 1] = part[j];
                part[j] = tmp;
            }
        }
        st = world_write_lines(path, order, total, err);
    }
    local.n_lines = st ? 0 : (long)total;
    free(order);
    list_free(&lines);
    if (!st && stats) *stats = local;
    return st;
}

/* ---- facts --------------------------------------------------------------------------------- */

xle_status xle_world_facts(const xle_world *w, xle_world_fact_fn fn, void *user, xle_error *err) {
    xle_status st = XLE_OK;
    int stop = 0;
    for (int f = 0; f < w->n_facts && !st && !stop; f++) {
        const world_fact *fa = &w->facts[f];
        const world_relation *rel = &w->relations[fa->relation];
        for (int l = 0; l < w->n_langs && !st && !stop; l++)
            for (int t = 0; t < rel->train[l].n && !st && !stop; t++) {
                world_rendered rd;
                st = world_render(w, &rel->train[l].items[t], l, fa->subject, fa->object, NULL, &rd, err);
                if (st) break;
                char *prompt = strndup(rd.text, rd.prompt_len);
                char *subject = strndup(rd.text + rd.subject_start, rd.subject_len);
                char *object = strndup(rd.text + rd.object_start, rd.object_len);
                if (prompt && subject && object) {
                    xle_world_fact_text ft = {w->langs[l], rel->id, w->entities[fa->subject].id, t,
                                              subject, prompt, object};
                    stop = fn(user, &ft);
                } else {
                    st = xle_fail(err, XLE_ERR_NOMEM, "world: out of memory");
                }
                free(prompt);
                free(subject);
                free(object);
                free(rd.text);
            }
    }
    return st;
}

typedef struct facts_json_ctx {
    line_list lines;
    xle_status st;
    xle_error *err;
} facts_json_ctx;

static int push_fact_json(void *user, const xle_world_fact_text *ft) {
    facts_json_ctx *c = user;
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s}", "lang", ft->lang, "relation", ft->relation,
                          "subject_id", ft->subject_id, "template", ft->template_index, "subject",
                          ft->subject, "prompt", ft->prompt, "object", ft->object);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    c->st = list_push(&c->lines, s, c->err);
    return c->st != XLE_OK;
}

xle_status xle_world_write_facts(const xle_world *w, const char *path, long *n_written,
                                 xle_error *err) {
    facts_json_ctx c = {{0}, XLE_OK, err};
    xle_status st = xle_world_facts(w, push_fact_json, &c, err);
    if (!st) st = c.st;
    if (!st) st = world_write_lines(path, c.lines.items, c.lines.n, err);
    if (!st && n_written) *n_written = (long)c.lines.n;
    list_free(&c.lines);
    return st;
}
