/*
 * world_load.c: reads the fact world (data/world/world.json, relations.json and the entity
 * files) with jansson and checks it strictly, so that the corpus and the cases made from it
 * can be trusted: unknown keys, missing languages, template rule breaks, facts whose types do
 * not match their relation, broken two-hop chains and prompts with two different answers all
 * fail with one line naming the file, the place in it and the field.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "world/world.h"

#define MIN_TRAIN_TEMPLATES 3
#define MIN_HELDOUT_TEMPLATES 2

/* A fact as read, resolved once every entity and relation is known. */
typedef struct pending_fact {
    int subject;
    char *relation;
    char *object;
    const char *file;
} pending_fact;

typedef struct loader {
    xle_world *w;
    xle_error *err;
    char **files; /* paths of the files read, for messages about facts (owned) */
    int n_files;
    pending_fact *pending;
    int n_pending, cap_pending;
} loader;

/* ---- small helpers ------------------------------------------------------------------------ */

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static const char *json_type_name(const json_t *v) {
    return json_is_object(v) ? "an object" : json_is_array(v) ? "an array"
           : json_is_string(v) ? "a string" : json_is_number(v) ? "a number"
           : json_is_boolean(v) ? "a boolean" : "null";
}

static xle_status nomem(xle_error *err, const char *path) {
    return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
}

static xle_status load_json_object(const char *path, json_t **out, xle_error *err) {
    json_error_t jerr;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out) {
        if (jerr.line < 0) return xle_fail(err, XLE_ERR_IO, "%s: %s", path, jerr.text);
        return xle_fail(err, XLE_ERR_FORMAT, "%s:%d:%d: json: %s", path, jerr.line, jerr.column,
                        jerr.text);
    }
    if (!json_is_object(*out)) {
        xle_status st = xle_fail(err, XLE_ERR_FORMAT, "%s: top level: expected an object, got %s",
                                 path, json_type_name(*out));
        json_decref(*out);
        *out = NULL;
        return st;
    }
    return XLE_OK;
}

/* Refuses keys not in allowed (NULL-terminated): a misspelt key would otherwise be ignored. */
static xle_status check_keys(const json_t *obj, const char *const *allowed, const char *path,
                             const char *where, xle_error *err) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = strcmp(key, allowed[i]) == 0;
        if (!ok) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: unknown key \"%.40s\"", path, where, key);
    }
    return XLE_OK;
}

/* v as a non-empty one-line string without surrounding or doubled spaces; `what` names it
 * ("where: field") in messages. */
static xle_status check_text(const json_t *v, const char *path, const char *what, const char **out,
                             xle_error *err) {
    if (!v) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", path, what);
    if (!json_is_string(v))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a string, got %s", path, what,
                        json_type_name(v));
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n == 0) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: empty", path, what);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: contains a tab or line break", path, what);
    if (s[0] == ' ' || s[n - 1] == ' ' || strstr(s, "  "))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: \"%.60s\": leading, trailing or double space",
                        path, what, s);
    *out = s;
    return XLE_OK;
}

/* obj[key] checked as by check_text. */
static xle_status get_text(const json_t *obj, const char *key, const char *path, const char *where,
                           const char **out, xle_error *err) {
    char what[200];
    snprintf(what, sizeof what, "%s: %s", where, key);
    return check_text(json_object_get(obj, key), path, what, out, err);
}

static int valid_id(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}

int world_relation_find(const xle_world *w, const char *id) {
    for (int i = 0; i < w->n_relations; i++)
        if (strcmp(w->relations[i].id, id) == 0) return i;
    return -1;
}

/* Entities are few (hundreds); a linear search keeps the structure simple. */
int world_entity_find(const xle_world *w, const char *id) {
    for (int i = 0; i < w->n_entities; i++)
        if (strcmp(w->entities[i].id, id) == 0) return i;
    return -1;
}

int world_object_of(const xle_world *w, int subject, int relation) {
    const world_entity *e = &w->entities[subject];
    for (int i = e->first_fact; i < e->first_fact + e->n_facts; i++)
        if (w->facts[i].relation == relation) return w->facts[i].object;
    return -1;
}

/* ---- templates ----------------------------------------------------------------------------- */

static size_t count_occurrences(const char *s, const char *what, const char **first) {
    size_t n = 0;
    *first = NULL;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) {
        if (!*first) *first = p;
        n++;
    }
    return n;
}

/* Checks the template rules (docs/world.md) and fills t. */
static xle_status parse_template(const char *text, const char *path, const char *where,
                                 world_template *t, xle_error *err) {
    const char *subj, *obj;
    size_t ns = count_occurrences(text, "{subject}", &subj);
    size_t no = count_occurrences(text, "{object}", &obj);
    if (ns != 1 || no != 1)
        return xle_fail(err, XLE_ERR_FORMAT,
                        "%s: %s: \"%.80s\": needs {subject} and {object} exactly once each", path,
                        where, text);
    size_t braces = 0;
    for (const char *p = text; *p; p++) braces += *p == '{' || *p == '}';
    if (braces != 4)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: \"%.80s\": a brace outside {subject}/{object}",
                        path, where, text);
    if (subj > obj)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: \"%.80s\": {subject} must come before {object}",
                        path, where, text);
    if (obj == text || obj[-1] != ' ')
        return xle_fail(err, XLE_ERR_FORMAT,
                        "%s: %s: \"%.80s\": {object} must follow the prompt after one space", path,
                        where, text);
    const char *after = obj + strlen("{object}");
    if (*after && *after != ' ')
        return xle_fail(err, XLE_ERR_FORMAT,
                        "%s: %s: \"%.80s\": {object} must end the text or be followed by a space "
                        "(so the object tokenizes as it does after the prompt)",
                        path, where, text);
    /* The prompt must say something besides the subject, or it names no relation. */
    int words = 0;
    for (const char *p = text; p < obj - 1; p++) {
        if (p == subj) {
            p += strlen("{subject}") - 1;
            continue;
        }
        words |= *p != ' ';
    }
    if (!words)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: \"%.80s\": the prompt is only the subject",
                        path, where, text);
    t->text = dup_str(text);
    if (!t->text) return nomem(err, path);
    t->subject_at = (size_t)(subj - text);
    t->object_at = (size_t)(obj - text);
    return XLE_OK;
}

/* The prompt part of a template ("... {subject} ..." up to the space before {object}). */
static int same_prompt(const world_template *a, const world_template *b) {
    return a->object_at == b->object_at && memcmp(a->text, b->text, a->object_at) == 0;
}

static xle_status parse_template_list(const json_t *arr, int min, const char *path,
                                      const char *where, world_templates *out, xle_error *err) {
    if (!json_is_array(arr))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected a list of templates, got %s", path,
                        where, arr ? json_type_name(arr) : "nothing");
    size_t n = json_array_size(arr);
    if ((int)n < min)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: %zu templates, at least %d needed", path,
                        where, n, min);
    out->items = calloc(n, sizeof *out->items);
    if (!out->items) return nomem(err, path);
    for (size_t i = 0; i < n; i++) {
        char w[160];
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        const char *text = NULL;
        xle_status st = check_text(json_array_get(arr, i), path, w, &text, err);
        if (!st) st = parse_template(text, path, w, &out->items[i], err);
        if (st) return st;
        out->n++;
        for (int j = 0; j < out->n - 1; j++)
            if (same_prompt(&out->items[j], &out->items[i]))
                return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: same prompt as %s[%d]", path, w,
                                where, j);
    }
    return XLE_OK;
}

/* ---- relations and two-hop chains ---------------------------------------------------------- */

static xle_status parse_relation(loader *L, const json_t *r, const char *path, int index) {
    xle_world *w = L->w;
    xle_error *err = L->err;
    char where[96];
    snprintf(where, sizeof where, "relations[%d]", index);
    if (!json_is_object(r))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected an object, got %s", path, where,
                        json_type_name(r));
    static const char *const keys[] = {"id", "subject_types", "object_type", "templates", NULL};
    xle_status st = check_keys(r, keys, path, where, err);
    const char *id, *object_type;
    if (st || (st = get_text(r, "id", path, where, &id, err))) return st;
    snprintf(where, sizeof where, "relation %s", id);
    if (!valid_id(id))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: id: use lower-case letters, digits and _", path, where);
    if (world_relation_find(w, id) >= 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: id: duplicate", path, where);
    if ((st = get_text(r, "object_type", path, where, &object_type, err))) return st;
    world_relation *rel = &w->relations[w->n_relations];
    memset(rel, 0, sizeof *rel);
    w->n_relations++; /* counted now so that world_free releases what is filled in */
    rel->id = dup_str(id);
    rel->object_type = dup_str(object_type);
    rel->train = calloc((size_t)w->n_langs, sizeof *rel->train);
    rel->heldout = calloc((size_t)w->n_langs, sizeof *rel->heldout);
    json_t *types = json_object_get(r, "subject_types");
    size_t nt = json_is_array(types) ? json_array_size(types) : 0;
    rel->subject_types = calloc(nt ? nt : 1, sizeof *rel->subject_types);
    if (!rel->id || !rel->object_type || !rel->train || !rel->heldout || !rel->subject_types)
        return nomem(err, path);
    if (nt == 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: subject_types: expected a non-empty list of types",
                        path, where);
    for (size_t i = 0; i < nt; i++) {
        json_t *v = json_array_get(types, i);
        if (!json_is_string(v) || !valid_id(json_string_value(v)))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: subject_types[%zu]: expected a type name",
                            path, where, i);
        if (!(rel->subject_types[i] = dup_str(json_string_value(v)))) return nomem(err, path);
        rel->n_subject_types++;
    }
    json_t *tpl = json_object_get(r, "templates");
    if (!json_is_object(tpl))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: templates: expected an object keyed by language",
                        path, where);
    const char *key;
    json_t *v;
    json_object_foreach(tpl, key, v) {
        int known = 0;
        for (int l = 0; l < w->n_langs; l++) known |= strcmp(key, w->langs[l]) == 0;
        if (!known)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: templates: language \"%.20s\" is not in world.json",
                            path, where, key);
    }
    for (int l = 0; l < w->n_langs; l++) {
        char lw[160];
        json_t *lt = json_object_get(tpl, w->langs[l]);
        snprintf(lw, sizeof lw, "%s: templates.%s", where, w->langs[l]);
        if (!lt) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", path, lw);
        if (!json_is_object(lt))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected an object with train and heldout",
                            path, lw);
        static const char *const tkeys[] = {"train", "heldout", NULL};
        if ((st = check_keys(lt, tkeys, path, lw, err))) return st;
        char tw[200];
        snprintf(tw, sizeof tw, "%s.train", lw);
        if ((st = parse_template_list(json_object_get(lt, "train"), MIN_TRAIN_TEMPLATES, path, tw,
                                      &rel->train[l], err)))
            return st;
        snprintf(tw, sizeof tw, "%s.heldout", lw);
        if ((st = parse_template_list(json_object_get(lt, "heldout"), MIN_HELDOUT_TEMPLATES, path,
                                      tw, &rel->heldout[l], err)))
            return st;
        /* A held-out template must not ask what a training one asks, or the rephrase test
         * would measure memorisation. */
        for (int i = 0; i < rel->heldout[l].n; i++)
            for (int j = 0; j < rel->train[l].n; j++)
                if (same_prompt(&rel->heldout[l].items[i], &rel->train[l].items[j]))
                    return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.heldout[%d]: same prompt as train[%d]",
                                    path, lw, i, j);
    }
    return XLE_OK;
}

static xle_status parse_chain(loader *L, const json_t *c, const char *path, int index) {
    xle_world *w = L->w;
    xle_error *err = L->err;
    char where[96];
    snprintf(where, sizeof where, "two_hop[%d]", index);
    if (!json_is_object(c))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected an object, got %s", path, where,
                        json_type_name(c));
    static const char *const keys[] = {"id", "first", "second", "templates", NULL};
    xle_status st = check_keys(c, keys, path, where, err);
    const char *id, *first, *second;
    if (st || (st = get_text(c, "id", path, where, &id, err))) return st;
    snprintf(where, sizeof where, "two_hop %s", id);
    for (int i = 0; i < w->n_chains; i++)
        if (strcmp(w->chains[i].id, id) == 0)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: id: duplicate", path, where);
    if ((st = get_text(c, "first", path, where, &first, err)) ||
        (st = get_text(c, "second", path, where, &second, err)))
        return st;
    world_chain *ch = &w->chains[w->n_chains];
    memset(ch, 0, sizeof *ch);
    w->n_chains++;
    ch->id = dup_str(id);
    ch->templates = calloc((size_t)w->n_langs, sizeof *ch->templates);
    if (!ch->id || !ch->templates) return nomem(err, path);
    ch->first = world_relation_find(w, first);
    ch->second = world_relation_find(w, second);
    if (ch->first < 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: first: unknown relation \"%.40s\"", path, where, first);
    if (ch->second < 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: second: unknown relation \"%.40s\"", path, where, second);
    const world_relation *r1 = &w->relations[ch->first], *r2 = &w->relations[ch->second];
    int joins = 0;
    for (int i = 0; i < r2->n_subject_types; i++) joins |= strcmp(r2->subject_types[i], r1->object_type) == 0;
    if (!joins)
        return xle_fail(err, XLE_ERR_FORMAT,
                        "%s: %s: second: relation %s does not take a %s (the object of %s) as subject",
                        path, where, r2->id, r1->object_type, r1->id);
    json_t *tpl = json_object_get(c, "templates");
    if (!json_is_object(tpl) || (int)json_object_size(tpl) != w->n_langs)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: templates: expected one list per language of world.json",
                        path, where);
    for (int l = 0; l < w->n_langs; l++) {
        char lw[160];
        snprintf(lw, sizeof lw, "%s: templates.%s", where, w->langs[l]);
        json_t *lt = json_object_get(tpl, w->langs[l]);
        if (!lt) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing", path, lw);
        if ((st = parse_template_list(lt, 1, path, lw, &ch->templates[l], err))) return st;
    }
    return XLE_OK;
}

static xle_status load_relations(loader *L, const char *path) {
    json_t *root;
    xle_status st = load_json_object(path, &root, L->err);
    if (st) return st;
    static const char *const keys[] = {"about", "relations", "two_hop", NULL};
    json_t *rels = json_object_get(root, "relations"), *hops = json_object_get(root, "two_hop");
    if ((st = check_keys(root, keys, path, "top level", L->err))) goto done;
    if (!json_is_array(rels) || json_array_size(rels) == 0) {
        st = xle_fail(L->err, XLE_ERR_FORMAT, "%s: relations: expected a non-empty list", path);
        goto done;
    }
    if (hops && !json_is_array(hops)) {
        st = xle_fail(L->err, XLE_ERR_FORMAT, "%s: two_hop: expected a list", path);
        goto done;
    }
    L->w->relations = calloc(json_array_size(rels), sizeof *L->w->relations);
    L->w->chains = calloc(hops ? json_array_size(hops) + 1 : 1, sizeof *L->w->chains);
    if (!L->w->relations || !L->w->chains) {
        st = nomem(L->err, path);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(rels) && !st; i++)
        st = parse_relation(L, json_array_get(rels, i), path, (int)i);
    for (size_t i = 0; hops && i < json_array_size(hops) && !st; i++)
        st = parse_chain(L, json_array_get(hops, i), path, (int)i);
done:
    json_decref(root);
    return st;
}

/* ---- entities ------------------------------------------------------------------------------ */

static xle_status parse_name(const json_t *names, const char *lang, const char *path,
                             const char *where, world_name *out, xle_error *err) {
    json_t *v = json_object_get(names, lang);
    char w[160];
    snprintf(w, sizeof w, "%s: names", where);
    if (!v) return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.%s: missing", path, w, lang);
    const char *m, *f = NULL;
    xle_status st;
    if (json_is_object(v)) {
        static const char *const keys[] = {"m", "f", NULL};
        char gw[180];
        snprintf(gw, sizeof gw, "%s.%s", w, lang);
        if ((st = check_keys(v, keys, path, gw, err)) || (st = get_text(v, "m", path, gw, &m, err)) ||
            (st = get_text(v, "f", path, gw, &f, err)))
            return st;
    } else if ((st = get_text(names, lang, path, w, &m, err))) {
        return st;
    }
    for (const char *p = m; *p; p++)
        if (*p == '{' || *p == '}' || *p == '=')
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s.%s: \"%.40s\": braces and '=' are reserved",
                            path, w, lang, m);
    out->m = dup_str(m);
    out->f = f ? dup_str(f) : NULL;
    if (!out->m || (f && !out->f)) return nomem(err, path);
    return XLE_OK;
}

static xle_status add_pending(loader *L, int subject, const char *relation, const char *object,
                              const char *file) {
    if (L->n_pending == L->cap_pending) {
        int cap = L->cap_pending ? 2 * L->cap_pending : 256;
        pending_fact *p = realloc(L->pending, (size_t)cap * sizeof *p);
        if (!p) return nomem(L->err, file);
        L->pending = p;
        L->cap_pending = cap;
    }
    pending_fact *p = &L->pending[L->n_pending];
    p->subject = subject;
    p->relation = dup_str(relation);
    p->object = dup_str(object);
    p->file = file;
    if (!p->relation || !p->object) {
        free(p->relation);
        free(p->object);
        return nomem(L->err, file);
    }
    L->n_pending++;
    return XLE_OK;
}

static xle_status parse_entity(loader *L, const json_t *e, const char *path, size_t index) {
    xle_world *w = L->w;
    xle_error *err = L->err;
    char where[128];
    snprintf(where, sizeof where, "entities[%zu]", index);
    if (!json_is_object(e))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: expected an object, got %s", path, where,
                        json_type_name(e));
    static const char *const keys[] = {"id", "type", "gender", "names", "facts", NULL};
    const char *id, *type;
    xle_status st = check_keys(e, keys, path, where, err);
    if (st || (st = get_text(e, "id", path, where, &id, err))) return st;
    snprintf(where, sizeof where, "entities[%zu] (%.40s)", index, id);
    if (!valid_id(id))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: id: use lower-case letters, digits and _", path, where);
    if (world_entity_find(w, id) >= 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: id: duplicate (ids are unique across all files)",
                        path, where);
    if ((st = get_text(e, "type", path, where, &type, err))) return st;
    world_entity *ent = &w->entities[w->n_entities];
    memset(ent, 0, sizeof *ent);
    w->n_entities++;
    ent->id = dup_str(id);
    ent->type = dup_str(type);
    ent->names = calloc((size_t)w->n_langs, sizeof *ent->names);
    if (!ent->id || !ent->type || !ent->names) return nomem(err, path);
    json_t *g = json_object_get(e, "gender");
    if (g) {
        const char *gs = json_is_string(g) ? json_string_value(g) : "";
        if (strcmp(gs, "m") && strcmp(gs, "f"))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: gender: expected \"m\" or \"f\"", path, where);
        ent->gender = gs[0];
    }
    json_t *names = json_object_get(e, "names");
    if (!json_is_object(names))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: names: expected an object keyed by language",
                        path, where);
    const char *key;
    json_t *v;
    json_object_foreach(names, key, v) {
        int known = 0;
        for (int l = 0; l < w->n_langs; l++) known |= strcmp(key, w->langs[l]) == 0;
        if (!known)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: names.%.20s: language not in world.json",
                            path, where, key);
    }
    for (int l = 0; l < w->n_langs; l++)
        if ((st = parse_name(names, w->langs[l], path, where, &ent->names[l], err))) return st;
    json_t *facts = json_object_get(e, "facts");
    if (facts && !json_is_object(facts))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: facts: expected an object {relation: object id}",
                        path, where);
    json_object_foreach(facts, key, v) {
        if (!json_is_string(v))
            return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: facts.%.40s: expected an entity id", path,
                            where, key);
        if ((st = add_pending(L, w->n_entities - 1, key, json_string_value(v), path))) return st;
    }
    return XLE_OK;
}

static xle_status load_entity_file(loader *L, const char *path) {
    json_t *root;
    xle_status st = load_json_object(path, &root, L->err);
    if (st) return st;
    static const char *const keys[] = {"about", "entities", NULL};
    json_t *ents = json_object_get(root, "entities");
    if ((st = check_keys(root, keys, path, "top level", L->err))) goto done;
    if (!json_is_array(ents)) {
        st = xle_fail(L->err, XLE_ERR_FORMAT, "%s: entities: expected a list", path);
        goto done;
    }
    world_entity *grown = realloc(L->w->entities, (size_t)(L->w->n_entities + (int)json_array_size(ents) + 1) *
                                                      sizeof *grown);
    if (!grown) {
        st = nomem(L->err, path);
        goto done;
    }
    L->w->entities = grown;
    for (size_t i = 0; i < json_array_size(ents) && !st; i++)
        st = parse_entity(L, json_array_get(ents, i), path, i);
done:
    json_decref(root);
    return st;
}

/* ---- facts --------------------------------------------------------------------------------- */

static int has_type(const world_relation *r, const char *type) {
    for (int i = 0; i < r->n_subject_types; i++)
        if (strcmp(r->subject_types[i], type) == 0) return 1;
    return 0;
}

static int cmp_fact(const void *a, const void *b) {
    const world_fact *x = a, *y = b;
    if (x->subject != y->subject) return x->subject < y->subject ? -1 : 1;
    return x->relation < y->relation ? -1 : x->relation > y->relation;
}

static xle_status resolve_facts(loader *L) {
    xle_world *w = L->w;
    w->facts = calloc((size_t)L->n_pending + 1, sizeof *w->facts);
    if (!w->facts) return nomem(L->err, "world");
    for (int i = 0; i < L->n_pending; i++) {
        const pending_fact *p = &L->pending[i];
        const world_entity *s = &w->entities[p->subject];
        int r = world_relation_find(w, p->relation);
        if (r < 0)
            return xle_fail(L->err, XLE_ERR_FORMAT, "%s: entity %s: facts.%.40s: unknown relation",
                            p->file, s->id, p->relation);
        const world_relation *rel = &w->relations[r];
        if (!has_type(rel, s->type))
            return xle_fail(L->err, XLE_ERR_FORMAT, "%s: entity %s: facts.%s: a %s cannot be the subject of %s",
                            p->file, s->id, rel->id, s->type, rel->id);
        int o = world_entity_find(w, p->object);
        if (o < 0)
            return xle_fail(L->err, XLE_ERR_FORMAT, "%s: entity %s: facts.%s: no entity \"%.40s\"",
                            p->file, s->id, rel->id, p->object);
        if (strcmp(w->entities[o].type, rel->object_type))
            return xle_fail(L->err, XLE_ERR_FORMAT,
                            "%s: entity %s: facts.%s: %s is a %s, the relation wants a %s", p->file,
                            s->id, rel->id, p->object, w->entities[o].type, rel->object_type);
        for (int l = 0; l < w->n_langs; l++)
            if (w->entities[o].names[l].f && !s->gender)
                return xle_fail(L->err, XLE_ERR_FORMAT,
                                "%s: entity %s: facts.%s: %s has gendered names, the subject needs a gender",
                                p->file, s->id, rel->id, p->object);
        w->facts[w->n_facts++] = (world_fact){p->subject, r, o};
    }
    qsort(w->facts, (size_t)w->n_facts, sizeof *w->facts, cmp_fact);
    for (int i = 0; i < w->n_facts; i++) {
        world_entity *e = &w->entities[w->facts[i].subject];
        if (e->n_facts == 0) e->first_fact = i;
        e->n_facts++;
    }
    /* Each relation's range: the objects it actually has, for counterfactual targets. */
    for (int r = 0; r < w->n_relations; r++) {
        world_relation *rel = &w->relations[r];
        char *seen = calloc((size_t)w->n_entities, 1);
        rel->range = calloc((size_t)w->n_entities, sizeof *rel->range);
        if (!seen || !rel->range) {
            free(seen);
            return nomem(L->err, "world");
        }
        for (int i = 0; i < w->n_facts; i++)
            if (w->facts[i].relation == r) seen[w->facts[i].object] = 1;
        for (int e = 0; e < w->n_entities; e++)
            if (seen[e]) rel->range[rel->n_range++] = e;
        free(seen);
    }
    return XLE_OK;
}

/* Two facts whose rendered training prompts are the same text but whose answers differ would
 * make the model's task impossible (and the facts test unfair): refuse them. */
typedef struct prompt_answer {
    char *prompt; /* owned */
    const char *answer;
    int fact;
} prompt_answer;

static int cmp_prompt(const void *a, const void *b) {
    return strcmp(((const prompt_answer *)a)->prompt, ((const prompt_answer *)b)->prompt);
}

static xle_status check_prompt_collisions(const xle_world *w, xle_error *err) {
    size_t cap = 0, n = 0;
    for (int f = 0; f < w->n_facts; f++)
        for (int l = 0; l < w->n_langs; l++) cap += (size_t)w->relations[w->facts[f].relation].train[l].n;
    prompt_answer *pa = calloc(cap ? cap : 1, sizeof *pa);
    if (!pa) return nomem(err, "world");
    xle_status st = XLE_OK;
    for (int f = 0; f < w->n_facts && !st; f++) {
        const world_fact *fa = &w->facts[f];
        const world_relation *rel = &w->relations[fa->relation];
        for (int l = 0; l < w->n_langs && !st; l++)
            for (int t = 0; t < rel->train[l].n && !st; t++) {
                world_rendered rd;
                if ((st = world_render(w, &rel->train[l].items[t], l, fa->subject, fa->object, NULL,
                                       &rd, err)))
                    break;
                rd.text[rd.prompt_len] = 0;
                pa[n++] = (prompt_answer){rd.text, world_name_for(w, fa->object, l, fa->subject), f};
            }
    }
    if (!st) qsort(pa, n, sizeof *pa, cmp_prompt);
    for (size_t i = 1; i < n && !st; i++)
        if (strcmp(pa[i].prompt, pa[i - 1].prompt) == 0 && strcmp(pa[i].answer, pa[i - 1].answer)) {
            const world_fact *a = &w->facts[pa[i - 1].fact], *b = &w->facts[pa[i].fact];
            st = xle_fail(err, XLE_ERR_FORMAT,
                          "world: prompt \"%.80s\" has two answers: %s (%s %s) and %s (%s %s)",
                          pa[i].prompt, pa[i - 1].answer, w->entities[a->subject].id,
                          w->relations[a->relation].id, pa[i].answer, w->entities[b->subject].id,
                          w->relations[b->relation].id);
        }
    for (size_t i = 0; i < n; i++) free(pa[i].prompt);
    free(pa);
    return st;
}

/* ---- world.json ---------------------------------------------------------------------------- */

static xle_status load_manifest(loader *L, const char *dir, json_t **entity_files,
                                const char **relations_file, json_t **root) {
    xle_world *w = L->w;
    char *path = path_join(dir, "world.json");
    if (!path) return nomem(L->err, dir);
    xle_status st = load_json_object(path, root, L->err);
    if (st) {
        free(path);
        return st;
    }
    static const char *const keys[] = {"name", "about", "languages", "relations", "entities", NULL};
    json_t *langs = json_object_get(*root, "languages");
    *entity_files = json_object_get(*root, "entities");
    if ((st = check_keys(*root, keys, path, "top level", L->err)) ||
        (st = get_text(*root, "relations", path, "top level", relations_file, L->err)))
        goto done;
    if (!json_is_array(langs) || json_array_size(langs) == 0 ||
        json_array_size(langs) > XLE_WORLD_MAX_LANGS) {
        st = xle_fail(L->err, XLE_ERR_FORMAT, "%s: languages: expected a list of 1..%d language codes",
                      path, XLE_WORLD_MAX_LANGS);
        goto done;
    }
    w->langs = calloc(json_array_size(langs), sizeof *w->langs);
    if (!w->langs) {
        st = nomem(L->err, path);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(langs); i++) {
        json_t *v = json_array_get(langs, i);
        const char *code = json_is_string(v) ? json_string_value(v) : "";
        int ok = *code && strlen(code) < XLE_LANG_MAX;
        for (const char *p = code; *p; p++) ok &= isalnum((unsigned char)*p) || *p == '-' || *p == '_';
        for (int j = 0; j < w->n_langs; j++) ok &= strcmp(w->langs[j], code) != 0;
        if (!ok) {
            st = xle_fail(L->err, XLE_ERR_FORMAT, "%s: languages[%zu]: expected a new language code",
                          path, i);
            goto done;
        }
        if (!(w->langs[w->n_langs] = dup_str(code))) {
            st = nomem(L->err, path);
            goto done;
        }
        w->n_langs++;
    }
    if (!json_is_array(*entity_files) || json_array_size(*entity_files) == 0) {
        st = xle_fail(L->err, XLE_ERR_FORMAT, "%s: entities: expected a list of file names", path);
        goto done;
    }
    for (size_t i = 0; i < json_array_size(*entity_files); i++) {
        json_t *v = json_array_get(*entity_files, i);
        if (!json_is_string(v) || !*json_string_value(v) || strchr(json_string_value(v), '/')) {
            st = xle_fail(L->err, XLE_ERR_FORMAT, "%s: entities[%zu]: expected a file name in %s",
                          path, i, dir);
            goto done;
        }
    }
done:
    free(path);
    return st;
}

static void free_templates(world_templates *t, int n_langs) {
    if (!t) return;
    for (int l = 0; l < n_langs; l++) {
        for (int i = 0; i < t[l].n; i++) free(t[l].items[i].text);
        free(t[l].items);
    }
    free(t);
}

void xle_world_free(xle_world *w) {
    if (!w) return;
    for (int i = 0; i < w->n_entities; i++) {
        world_entity *e = &w->entities[i];
        free(e->id);
        free(e->type);
        for (int l = 0; e->names && l < w->n_langs; l++) {
            free(e->names[l].m);
            free(e->names[l].f);
        }
        free(e->names);
    }
    free(w->entities);
    for (int r = 0; r < w->n_relations; r++) {
        world_relation *rel = &w->relations[r];
        free(rel->id);
        for (int i = 0; i < rel->n_subject_types; i++) free(rel->subject_types[i]);
        free(rel->subject_types);
        free(rel->object_type);
        free_templates(rel->train, w->n_langs);
        free_templates(rel->heldout, w->n_langs);
        free(rel->range);
    }
    free(w->relations);
    for (int c = 0; c < w->n_chains; c++) {
        free(w->chains[c].id);
        free_templates(w->chains[c].templates, w->n_langs);
    }
    free(w->chains);
    free(w->facts);
    for (int l = 0; l < w->n_langs; l++) free(w->langs[l]);
    free(w->langs);
    free(w);
}

xle_status xle_world_load(const char *dir, xle_world **out, xle_error *err) {
    *out = NULL;
    if (!dir || !*dir) return xle_fail(err, XLE_ERR_ARG, "world: no data folder given");
    loader L = {0};
    L.err = err;
    L.w = calloc(1, sizeof *L.w);
    if (!L.w) return nomem(err, dir);
    json_t *manifest = NULL, *entity_files = NULL;
    const char *relations_file = NULL;
    xle_status st = load_manifest(&L, dir, &entity_files, &relations_file, &manifest);
    if (!st) {
        char *rpath = path_join(dir, relations_file);
        st = rpath ? load_relations(&L, rpath) : nomem(err, dir);
        free(rpath);
    }
    if (!st) {
        size_t n = json_array_size(entity_files);
        L.files = calloc(n, sizeof *L.files);
        if (!L.files) st = nomem(err, dir);
        for (size_t i = 0; i < n && !st; i++) {
            L.files[L.n_files] = path_join(dir, json_string_value(json_array_get(entity_files, i)));
            if (!L.files[L.n_files]) {
                st = nomem(err, dir);
                break;
            }
            st = load_entity_file(&L, L.files[L.n_files++]);
        }
    }
    if (!st) st = resolve_facts(&L);
    if (!st && L.w->n_facts == 0) st = xle_fail(err, XLE_ERR_FORMAT, "%s: the world has no facts", dir);
    if (!st) st = check_prompt_collisions(L.w, err);
    for (int i = 0; i < L.n_pending; i++) {
        free(L.pending[i].relation);
        free(L.pending[i].object);
    }
    free(L.pending);
    for (int i = 0; i < L.n_files; i++) free(L.files[i]);
    free(L.files);
    json_decref(manifest);
    if (st) {
        xle_world_free(L.w);
        return st;
    }
    *out = L.w;
    return XLE_OK;
}

void xle_world_get_counts(const xle_world *w, xle_world_counts *out) {
    memset(out, 0, sizeof *out);
    out->n_langs = w->n_langs;
    for (int l = 0; l < w->n_langs && l < XLE_WORLD_MAX_LANGS; l++)
        snprintf(out->langs[l], XLE_LANG_MAX, "%s", w->langs[l]);
    out->n_entities = w->n_entities;
    for (int e = 0; e < w->n_entities; e++) out->n_subjects += w->entities[e].n_facts > 0;
    out->n_relations = w->n_relations;
    out->n_facts = w->n_facts;
    out->n_two_hop = w->n_chains;
    for (int r = 0; r < w->n_relations; r++)
        for (int l = 0; l < w->n_langs; l++) {
            out->n_train_templates += w->relations[r].train[l].n;
            out->n_heldout_templates += w->relations[r].heldout[l].n;
        }
}
