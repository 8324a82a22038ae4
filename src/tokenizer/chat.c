/*
 * chat.c: chat templates (tokenizer_config.json "chat_template") without a Jinja engine (none
 * is packaged for C in Debian). The published templates of the common families are recognised
 * by their exact text (FNV-1a 64 and length; the texts are in the fixtures tests/fixtures/chat/<family>.json) and
 * rendered here as Jinja renders them, Python's str.strip included, their raise_exception
 * messages included. Any other template is refused naming the file. Golden renderings made
 * with Jinja2 (tests/reference/make_chat_fixtures.py) check every family.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xledit.h"

typedef enum chat_family { FAM_CHATML, FAM_LLAMA2, FAM_MISTRAL, FAM_LLAMA3, FAM_GEMMA } chat_family;

static const struct {
    uint64_t fnv;
    size_t len;
    chat_family family;
    int gemma_bos;                /* gemma: the template starts with {{ bos_token }} */
    const char *name;             /* family name reported to the user */
    const char *source;           /* models that publish it */
} KNOWN[] = {
    {0xa41d6bae9b9141bcull, 199, FAM_CHATML, 0, "chatml", "teknium/OpenHermes-2.5-Mistral-7B, TowerInstruct"},
    {0x17fde6ecda9c7c01ull, 294, FAM_CHATML, 0, "chatml", "ChatML with an add_generation_prompt default"},
    {0xf344eecf1bd3a427ull, 815, FAM_LLAMA2, 0, "llama2", "meta-llama/Llama-2-*-chat-hf"},
    {0x8c734b90b4f8d84dull, 470, FAM_MISTRAL, 0, "mistral", "mistralai/Mistral-7B-Instruct-v0.1/v0.2, Mixtral-8x7B-Instruct"},
    {0x0e60067a5537498eull, 389, FAM_LLAMA3, 0, "llama3", "meta-llama/Meta-Llama-3-8B-Instruct"},
    {0x70f3cded3fb90051ull, 594, FAM_GEMMA, 1, "gemma", "google/gemma-7b-it, gemma-2-*-it"},
    {0x690954969ec87269ull, 579, FAM_GEMMA, 0, "gemma", "google/gemma-7b-it (without bos_token)"},
};

struct xle_chat_template {
    char *path;
    int known;                    /* index into KNOWN */
    char *bos, *eos;              /* NULL when tokenizer_config.json has none */
};

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

void xle_chat_template_free(xle_chat_template *t) {
    if (!t) return;
    free(t->path);
    free(t->bos);
    free(t->eos);
    free(t);
}

const char *xle_chat_template_family(const xle_chat_template *t) { return KNOWN[t->known].name; }

/* A special token field: a string or an AddedToken object {"content": ...}. */
static char *token_field(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

xle_status xle_chat_template_load(const char *path, xle_chat_template **out, xle_error *err) {
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (jerr.line < 1 && strstr(jerr.text, "unable to open"))
            return xle_fail(err, XLE_ERR_IO, "%s: cannot open (--chat needs the model's tokenizer_config.json)", path);
        return xle_fail(err, XLE_ERR_FORMAT, "%s: line %d column %d: invalid JSON: %s", path, jerr.line,
                        jerr.column, jerr.text);
    }
    json_t *ct = json_object_get(root, "chat_template");
    xle_status st = XLE_OK;
    if (!ct || json_is_null(ct)) {
        st = xle_fail(err, XLE_ERR_FORMAT, "%s: chat_template: missing (the model has no chat template)", path);
    } else if (!json_is_string(ct)) {
        st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: chat_template: not a string (named templates are not "
                      "supported)", path);
    } else {
        const char *text = json_string_value(ct);
        size_t n = json_string_length(ct);
        uint64_t h = fnv1a(text, n);
        int known = -1;
        for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
            if (KNOWN[i].fnv == h && KNOWN[i].len == n) known = (int)i;
        if (known < 0) {
            st = xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: chat_template: not one of the recognised templates "
                          "(ChatML, Llama-2, Mistral [INST], Llama-3, Gemma; docs/tokenizers.md)", path);
        } else {
            xle_chat_template *t = calloc(1, sizeof *t);
            if (t && (t->path = strdup(path))) {
                t->known = known;
                t->bos = token_field(root, "bos_token");
                t->eos = token_field(root, "eos_token");
                *out = t;
            } else {
                free(t);
                st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
            }
        }
    }
    json_decref(root);
    return st;
}

/* ---- rendering -------------------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int failed;
} sbuf;

static void put_n(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void put(sbuf *b, const char *s) { put_n(b, s, strlen(s)); }

/* Length of the UTF-8 code point of Python's str.isspace() set that starts at s, else 0. */
static size_t space_at(const unsigned char *s, size_t left) {
    if (left >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20))) return 1;
    if (left >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (left < 3) return 0;
    unsigned cp = (unsigned)(s[0] & 0x0f) << 12 | (unsigned)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    if ((s[0] & 0xf0) != 0xe0 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
    if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 ||
        cp == 0x202f || cp == 0x205f || cp == 0x3000)
        return 3;
    return 0;
}

/* Start of the last code point before end (UTF-8). */
static size_t last_cp(const unsigned char *s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xc0) == 0x80 && end - i < 4) i--;
    return i;
}

/* content with Python's str.strip() applied (Jinja's trim filter). */
static void put_stripped(sbuf *b, const char *content) {
    const unsigned char *s = (const unsigned char *)content;
    size_t lo = 0, hi = strlen(content), k;
    while (lo < hi && (k = space_at(s + lo, hi - lo)) > 0) lo += k;
    while (hi > lo) {
        size_t at = last_cp(s, hi);
        if (at < lo || space_at(s + at, hi - at) != hi - at) break;
        hi = at;
    }
    put_n(b, content + lo, hi - lo);
}

static const char *const ALTERNATE = "Conversation roles must alternate user/assistant/user/assistant/...";

static xle_status fail_render(const xle_chat_template *t, xle_status st, const char *what, xle_error *err) {
    return xle_fail(err, st, "%s: chat_template: %s", t->path, what);
}

static int is_role(const xle_chat_message *m, const char *role) { return strcmp(m->role, role) == 0; }

static xle_status render_llama2(const xle_chat_template *t, const xle_chat_message *msgs, int n, sbuf *b,
                                xle_error *err) {
    int has_system = is_role(&msgs[0], "system");
    const xle_chat_message *loop = msgs + has_system;
    for (int i = 0; i < n - has_system; i++) {
        if (is_role(&loop[i], "user") != (i % 2 == 0)) return fail_render(t, XLE_ERR_ARG, ALTERNATE, err);
        sbuf content = {0};
        if (i == 0 && has_system) {
            put(&content, "<<SYS>>\n");
            put(&content, msgs[0].content);
            put(&content, "\n<</SYS>>\n\n");
        }
        put(&content, loop[i].content);
        if (content.failed) return xle_fail(err, XLE_ERR_NOMEM, "chat: out of memory");
        if (is_role(&loop[i], "user")) {
            put(b, t->bos);
            put(b, "[INST] ");
            put_stripped(b, content.p);
            put(b, " [/INST]");
        } else if (is_role(&loop[i], "assistant")) {
            put(b, " ");
            put_stripped(b, content.p);
            put(b, " ");
            put(b, t->eos);
        }
        free(content.p);
    }
    return XLE_OK;
}

static xle_status render_mistral(const xle_chat_template *t, const xle_chat_message *msgs, int n, sbuf *b,
                                 xle_error *err) {
    put(b, t->bos);
    for (int i = 0; i < n; i++) {
        if (is_role(&msgs[i], "user") != (i % 2 == 0)) return fail_render(t, XLE_ERR_ARG, ALTERNATE, err);
        if (is_role(&msgs[i], "user")) {
            put(b, "[INST] ");
            put(b, msgs[i].content);
            put(b, " [/INST]");
        } else if (is_role(&msgs[i], "assistant")) {
            put(b, msgs[i].content);
            put(b, t->eos);
        } else {
            return fail_render(t, XLE_ERR_ARG, "Only user and assistant roles are supported!", err);
        }
    }
    return XLE_OK;
}

static xle_status render_gemma(const xle_chat_template *t, const xle_chat_message *msgs, int n, int gen,
                               sbuf *b, xle_error *err) {
    if (KNOWN[t->known].gemma_bos) put(b, t->bos);
    if (is_role(&msgs[0], "system")) return fail_render(t, XLE_ERR_ARG, "System role not supported", err);
    for (int i = 0; i < n; i++) {
        if (is_role(&msgs[i], "user") != (i % 2 == 0)) return fail_render(t, XLE_ERR_ARG, ALTERNATE, err);
        put(b, "<start_of_turn>");
        put(b, is_role(&msgs[i], "assistant") ? "model" : msgs[i].role);
        put(b, "\n");
        put_stripped(b, msgs[i].content);
        put(b, "<end_of_turn>\n");
    }
    if (gen) put(b, "<start_of_turn>model\n");
    return XLE_OK;
}

xle_status xle_chat_render(const xle_chat_template *t, const xle_chat_message *msgs, int n,
                           int add_generation_prompt, char **out, xle_error *err) {
    *out = NULL;
    if (n < 1) return xle_fail(err, XLE_ERR_ARG, "chat: no messages");
    for (int i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content) return xle_fail(err, XLE_ERR_ARG, "chat: message %d: role or content missing", i);
    chat_family fam = KNOWN[t->known].family;
    int needs_tokens = fam == FAM_LLAMA2 || fam == FAM_MISTRAL || fam == FAM_LLAMA3 ||
                       (fam == FAM_GEMMA && KNOWN[t->known].gemma_bos);
    if (needs_tokens && (!t->bos || (!t->eos && (fam == FAM_LLAMA2 || fam == FAM_MISTRAL))))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: %s: missing (the chat template uses it)", t->path,
                        t->bos ? "eos_token" : "bos_token");
    sbuf b = {0};
    xle_status st = XLE_OK;
    put(&b, "");
    switch (fam) {
    case FAM_CHATML:
        for (int i = 0; i < n; i++) {
            put(&b, "<|im_start|>");
            put(&b, msgs[i].role);
            put(&b, "\n");
            put(&b, msgs[i].content);
            put(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) put(&b, "<|im_start|>assistant\n");
        break;
    case FAM_LLAMA2: st = render_llama2(t, msgs, n, &b, err); break;
    case FAM_MISTRAL: st = render_mistral(t, msgs, n, &b, err); break;
    case FAM_LLAMA3:
        for (int i = 0; i < n; i++) {
            if (i == 0) put(&b, t->bos);
            put(&b, "<|start_header_id|>");
            put(&b, msgs[i].role);
            put(&b, "<|end_header_id|>\n\n");
            put_stripped(&b, msgs[i].content);
            put(&b, "<|eot_id|>");
        }
        if (add_generation_prompt) put(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case FAM_GEMMA: st = render_gemma(t, msgs, n, add_generation_prompt, &b, err); break;
    }
    if (st == XLE_OK && b.failed) st = xle_fail(err, XLE_ERR_NOMEM, "chat: out of memory");
    if (st != XLE_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return XLE_OK;
}

xle_status xle_chat_tokenize(const struct xle_tokenizer *tok, const xle_chat_template *t,
                             const char *prompt, const char *answer, int32_t **prompt_ids,
                             int *n_prompt, int32_t **answer_ids, int *n_answer, xle_error *err) {
    *prompt_ids = NULL, *n_prompt = 0;
    if (answer_ids) *answer_ids = NULL, *n_answer = 0;
    char *text = NULL;
    xle_tokens p = {0}, a = {0};
    xle_chat_message msg = {"user", prompt};
    xle_status st = xle_chat_render(t, &msg, 1, 1, &text, err);
    if (st == XLE_OK) st = xle_tokenize(tok, text, strlen(text), 0, 1, &p, err);
    if (st == XLE_OK && answer && answer_ids) {
        st = xle_tokenize(tok, answer, strlen(answer), 0, 0, &a, err);
        if (st == XLE_OK && a.n == 0) st = xle_fail(err, XLE_ERR_ARG, "chat: the answer has no tokens");
    }
    free(text);
    if (st != XLE_OK) {
        xle_tokens_free(&p);
        xle_tokens_free(&a);
        return st;
    }
    *prompt_ids = p.ids, *n_prompt = p.n;
    p.ids = NULL;
    if (answer_ids) *answer_ids = a.ids, *n_answer = a.n, a.ids = NULL;
    xle_tokens_free(&p);
    xle_tokens_free(&a);
    return XLE_OK;
}
