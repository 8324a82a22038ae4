/*
 * world.h: the in-memory fact world (module-internal; the public API is the "Built-in fact
 * world" section of xledit.h). world_load.c reads and checks the JSON files of data/world into these
 * structures; world_render.c turns (template, subject, object, language) into text and writes
 * the corpus and the facts list; world_cases.c makes counterfactual evaluation cases.
 * docs/world.md describes the data files and the template rules.
 */
#ifndef XLE_WORLD_INTERNAL_H
#define XLE_WORLD_INTERNAL_H

#include <stddef.h>

#include "xledit.h"

/* One language's name of an entity. f is NULL unless the word has a separate feminine form
 * (professions in de/fr/it/es/hi/kn); then m is the masculine one. */
typedef struct world_name {
    char *m;
    char *f;
} world_name;

typedef struct world_entity {
    char *id;
    char *type;        /* "country", "city", "person", ... */
    char gender;       /* 'm', 'f', or 0 when not given */
    world_name *names; /* one per language, in xle_world.langs order */
    int first_fact;    /* facts[first_fact .. first_fact + n_facts) have this subject */
    int n_facts;
} world_entity;

/* "prompt {object} suffix" with {subject} somewhere in the prompt. The prompt (what a model is
 * asked to continue) is text[0 .. object_at - 1): the text before the space before {object}. */
typedef struct world_template {
    char *text;
    size_t subject_at; /* byte offset of "{subject}" */
    size_t object_at;  /* byte offset of "{object}" */
} world_template;

typedef struct world_templates {
    world_template *items;
    int n;
} world_templates;

typedef struct world_relation {
    char *id;
    char **subject_types;
    int n_subject_types;
    char *object_type;
    world_templates *train;   /* per language: corpus and facts */
    world_templates *heldout; /* per language: rephrase tests only, never in the corpus */
    int *range;               /* entity indices that are an object of this relation, in entity order */
    int n_range;
} world_relation;

/* A two-hop chain: the answer is second(first(subject)). Its templates are evaluation-only. */
typedef struct world_chain {
    char *id;
    int first, second;          /* relation indices */
    world_templates *templates; /* per language */
} world_chain;

typedef struct world_fact {
    int subject, relation, object; /* entity, relation, entity */
} world_fact;

struct xle_world {
    char **langs;
    int n_langs;
    world_entity *entities;
    int n_entities;
    world_relation *relations;
    int n_relations;
    world_chain *chains;
    int n_chains;
    world_fact *facts; /* grouped by subject (entity order), then relation order */
    int n_facts;
};

/* The relation index named id, or -1. */
int world_relation_find(const xle_world *w, const char *id);
/* The entity index named id, or -1. */
int world_entity_find(const xle_world *w, const char *id);
/* The object of (subject, relation), or -1 when the world has no such fact. */
int world_object_of(const xle_world *w, int subject, int relation);

/* The name of entity in language lang as a sentence about `about` uses it: the feminine form
 * when the word has one and `about` is female (about < 0: the masculine/only form). */
const char *world_name_for(const xle_world *w, int entity, int lang, int about);

/* A template filled in. text is malloc'd and owned by the caller; the prompt is text[0 ..
 * prompt_len), the subject's name text[subject_start .. subject_start + subject_len) and the
 * object's name text[object_start .. object_start + object_len). A sentence starting with a
 * lower-case ASCII letter (a Latin-script article such as "la France") gets it upper-cased. */
typedef struct world_rendered {
    char *text;
    size_t prompt_len;
    size_t subject_start, subject_len;
    size_t object_start, object_len;
} world_rendered;

/* Fills t with subject's name and object's name in language lang (object_name overrides the
 * object's name when non-NULL; object may then be -1). Fails only on allocation failure. */
xle_status world_render(const xle_world *w, const world_template *t, int lang, int subject,
                        int object, const char *object_name, world_rendered *out, xle_error *err);

/* Writes n lines (each without its newline) to path atomically: a temporary file beside it,
 * fsync, rename. Nothing is left behind on failure. */
xle_status world_write_lines(const char *path, char *const *lines, size_t n, xle_error *err);

#endif
