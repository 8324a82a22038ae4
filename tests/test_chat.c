/*
 * test_chat.c: chat templates. Every family's template (tests/fixtures/chat/<family>.json,
 * shaped like tokenizer_config.json) renders each fixed conversation, with and without the
 * generation prompt, exactly as Jinja2 renders it (tests/fixtures/chat/expected.json, made by
 * tests/reference/make_chat_fixtures.py with transformers' Jinja settings), or fails with the
 * template's own message; a template one character away from a known one is refused naming
 * the file.
 */
#include <jansson.h>
#include <unistd.h>

#include "check.h"
#include "xledit.h"

#define CHAT XLE_SOURCE_DIR "/tests/fixtures/chat/"

static void test_goldens(void) {
    json_error_t jerr;
    json_t *cases = json_load_file(CHAT "expected.json", 0, &jerr);
    CHECK(json_is_array(cases) && json_array_size(cases) >= 50);
    size_t i;
    json_t *c;
    int rendered = 0, refused = 0;
    json_array_foreach(cases, i, c) {
        char path[512];
        snprintf(path, sizeof path, CHAT "%s", json_string_value(json_object_get(c, "template")));
        xle_chat_template *t = NULL;
        xle_error err = {0};
        CHECK_OK(xle_chat_template_load(path, &t, &err), &err);
        if (!t) continue;
        json_t *msgs = json_object_get(c, "messages");
        xle_chat_message m[8];
        int n = (int)json_array_size(msgs);
        for (int k = 0; k < n && k < 8; k++) {
            m[k].role = json_string_value(json_object_get(json_array_get(msgs, (size_t)k), "role"));
            m[k].content = json_string_value(json_object_get(json_array_get(msgs, (size_t)k), "content"));
        }
        char *out = NULL;
        xle_status st = xle_chat_render(t, m, n, json_is_true(json_object_get(c, "add_generation_prompt")), &out, &err);
        json_t *want = json_object_get(c, "expected");
        if (want) {
            CHECK_MSG(st == XLE_OK && strcmp(out, json_string_value(want)) == 0,
                      "case %zu (%s): got [%s] want [%s] %s", i, path, out ? out : "", json_string_value(want), err.msg);
            rendered++;
        } else {
            const char *msg = json_string_value(json_object_get(c, "error"));
            CHECK_MSG(st == XLE_ERR_ARG && strstr(err.msg, msg) && strstr(err.msg, path),
                      "case %zu (%s): want error '%s', got %d '%s'", i, path, msg, st, err.msg);
            refused++;
        }
        free(out);
        xle_chat_template_free(t);
    }
    CHECK(rendered >= 40 && refused >= 4);
    json_decref(cases);
}

static void test_unrecognised(void) {
    char dir[] = "/tmp/xle_chat_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_t *cfg = json_load_file(CHAT "chatml.json", 0, NULL);
    const char *text = json_string_value(json_object_get(cfg, "chat_template"));
    char *changed = strdup(text);
    changed[strlen(changed) - 3] = 'X'; /* "{% endif %}" -> "{% endXf %}" */
    json_object_set_new(cfg, "chat_template", json_string(changed));
    CHECK(json_dump_file(cfg, path, 0) == 0);
    xle_chat_template *t = NULL;
    xle_error err = {0};
    CHECK(xle_chat_template_load(path, &t, &err) == XLE_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "chat_template"), "%s", err.msg);
    json_object_del(cfg, "chat_template");
    CHECK(json_dump_file(cfg, path, 0) == 0);
    CHECK(xle_chat_template_load(path, &t, &err) == XLE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "chat_template: missing"), "%s", err.msg);
    free(changed);
    json_decref(cfg);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    RUN(test_goldens);
    RUN(test_unrecognised);
    return check_summary();
}
