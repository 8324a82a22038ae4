/*
 * yaml_json.c: YAML (libyaml's event parser) into a jansson tree, for the configuration files
 * other tools publish: EasyEdit's hparams/<METHOD>/<model>.yaml and mergekit's recipes. Scalars
 * are typed the way those tools' Python loaders see them (see yaml_json.h), so that a YAML file
 * and the JSON written from it give the same tree.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "formats/yaml_json.h"

#define MAX_DEPTH 64

typedef struct yaml_reader {
    yaml_parser_t parser;
    const char *path;
    xle_error *err;
} yaml_reader;

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int one_of(const char *s, const char *const *words) {
    for (; *words; words++)
        if (!strcmp(s, *words)) return 1;
    return 0;
}

/* A plain (unquoted) scalar as PyYAML's safe loader types it, except that a number in any
 * notation strtod reads whole ("5e-1", which YAML 1.1 leaves a string) is a float: EasyEdit
 * converts such strings itself (HyperParams.construct_float_from_scientific_notation). */
static json_t *plain_scalar(const char *s) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    if (one_of(s, nulls)) return json_null();
    if (one_of(s, trues)) return json_true();
    if (one_of(s, falses)) return json_false();
    /* numbers: only digits, signs, '.', 'e'/'E' (no hex, inf or nan words) */
    if (strspn(s, "0123456789+-.eE") != strlen(s) || !strpbrk(s, "0123456789")) return json_string(s);
    char *end;
    errno = 0;
    if (strspn(s + (*s == '-' || *s == '+'), "0123456789") == strlen(s + (*s == '-' || *s == '+'))) {
        long long v = strtoll(s, &end, 10);
        if (!*end && errno == 0) return json_integer((json_int_t)v);
    }
    errno = 0;
    double d = strtod(s, &end);
    if (!*end && errno == 0) return json_real(d);
    return json_string(s);
}

static json_t *fail_at(yaml_reader *r, const yaml_mark_t *mark, const char *what) {
    xle_fail(r->err, XLE_ERR_FORMAT, "%s: line %zu: %s", r->path, mark->line + 1, what);
    return NULL;
}

static int next_event(yaml_reader *r, yaml_event_t *ev) {
    if (yaml_parser_parse(&r->parser, ev)) return 0;
    xle_fail(r->err, XLE_ERR_FORMAT, "%s: line %zu: %s%s%s", r->path, r->parser.problem_mark.line + 1,
             r->parser.problem ? r->parser.problem : "not valid YAML", r->parser.context ? " " : "",
             r->parser.context ? r->parser.context : "");
    return -1;
}

/* The node that starts with event ev (which this consumes). */
static json_t *read_node(yaml_reader *r, yaml_event_t *ev, int depth);

static json_t *read_mapping(yaml_reader *r, int depth) {
    json_t *obj = json_object();
    if (!obj) return NULL;
    for (;;) {
        yaml_event_t ev;
        if (next_event(r, &ev)) goto fail;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return obj;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            fail_at(r, &ev.start_mark, "a key must be a plain name");
            yaml_event_delete(&ev);
            goto fail;
        }
        char *key = strdup((const char *)ev.data.scalar.value);
        yaml_mark_t at = ev.start_mark;
        yaml_event_delete(&ev);
        if (!key) goto fail;
        if (json_object_get(obj, key)) {
            char msg[300];
            snprintf(msg, sizeof msg, "key '%.200s' appears twice", key);
            free(key);
            fail_at(r, &at, msg);
            goto fail;
        }
        if (next_event(r, &ev)) {
            free(key);
            goto fail;
        }
        json_t *value = read_node(r, &ev, depth + 1);
        if (!value || json_object_set_new(obj, key, value)) {
            free(key);
            goto fail;
        }
        free(key);
    }
fail:
    json_decref(obj);
    return NULL;
}

static json_t *read_sequence(yaml_reader *r, int depth) {
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (;;) {
        yaml_event_t ev;
        if (next_event(r, &ev)) break;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return arr;
        }
        json_t *value = read_node(r, &ev, depth + 1);
        if (!value || json_array_append_new(arr, value)) break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *read_node(yaml_reader *r, yaml_event_t *ev, int depth) {
    json_t *out = NULL;
    if (depth > MAX_DEPTH) {
        fail_at(r, &ev->start_mark, "nested too deeply");
    } else if (ev->type == YAML_ALIAS_EVENT ||
               (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor) ||
               (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor) ||
               (ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor)) {
        fail_at(r, &ev->start_mark, "anchors and aliases (&, *) are not supported");
    } else if (ev->type == YAML_SCALAR_EVENT) {
        const char *s = (const char *)ev->data.scalar.value;
        if (strlen(s) != ev->data.scalar.length) fail_at(r, &ev->start_mark, "a NUL character in a scalar");
        else if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag) out = plain_scalar(s);
        else out = json_string(s);
        if (!out && ev->data.scalar.length == strlen(s))
            fail_at(r, &ev->start_mark, "a scalar that is not valid UTF-8");
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        out = read_mapping(r, depth);
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        out = read_sequence(r, depth);
    } else {
        fail_at(r, &ev->start_mark, "unexpected YAML structure");
    }
    yaml_event_delete(ev);
    return out;
}

static json_t *load_yaml(const char *path, xle_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        xle_fail(err, XLE_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    yaml_reader r = {.path = path, .err = err};
    if (!yaml_parser_initialize(&r.parser)) {
        fclose(f);
        xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    yaml_parser_set_input_file(&r.parser, f);
    json_t *root = NULL;
    yaml_event_t ev;
    /* stream start, then one document (or none: an empty file reads as null) */
    if (next_event(&r, &ev)) goto done;
    yaml_event_delete(&ev);
    if (next_event(&r, &ev)) goto done;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        root = json_null();
        goto done;
    }
    yaml_event_delete(&ev); /* document start */
    if (next_event(&r, &ev)) goto done;
    if (!(root = read_node(&r, &ev, 0))) goto done;
    if (next_event(&r, &ev)) goto fail; /* document end */
    yaml_event_delete(&ev);
    if (next_event(&r, &ev)) goto fail;
    int more = ev.type != YAML_STREAM_END_EVENT;
    yaml_mark_t at = ev.start_mark;
    yaml_event_delete(&ev);
    if (more) {
        fail_at(&r, &at, "a second YAML document (---): one is expected");
        goto fail;
    }
    goto done;
fail:
    json_decref(root);
    root = NULL;
done:
    yaml_parser_delete(&r.parser);
    fclose(f);
    return root;
}

json_t *xle_yaml_or_json_load(const char *path, xle_error *err) {
    if (!ends_with(path, ".json")) return load_yaml(path, err);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) xle_fail(err, XLE_ERR_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    return root;
}
