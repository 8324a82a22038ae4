/*
 * torchbin.c: torch.save checkpoints (`pytorch_model.bin`, PyTorch >= 1.6 zip format) read
 * without running code. The archive holds <prefix>/data.pkl, a pickle of the state dict, and
 * one member <prefix>/data/<key> per storage. The pickle is interpreted by a small machine
 * that knows only the opcodes a state dict uses (protocols 2-5: containers, numbers, strings,
 * memo, persistent ids, REDUCE, BUILD) and only these globals: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the torch.*Storage classes. Every
 * other global is refused where it is named, before anything could call it, so a malicious
 * file (os.system via REDUCE, builtins.eval, subprocess) fails with one line naming the file
 * and the global — what torch.load(weights_only=True) promises, with no Python at all.
 * Values live in an arena freed at the end; tensors become entries pointing into the mapping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/torchbin.h"

#define PK_MAX_DIMS XLE_ST_MAX_DIMS
#define PK_MAX_STRING (1u << 20)

typedef enum pk_kind {
    PK_MARK, PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT,
    PK_GLOBAL, PK_STORAGE, PK_TENSOR
} pk_kind;

/* The globals a state dict may name. */
typedef enum pk_global {
    G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE
} pk_global;

static const struct { const char *module, *name; const char *dtype; size_t elsize; } STORAGES[] = {
    {"torch", "FloatStorage", "F32", 4}, {"torch", "HalfStorage", "F16", 2},
    {"torch", "BFloat16Storage", "BF16", 2}, {"torch", "DoubleStorage", "F64", 8},
    /* known, refused when a tensor uses them (so the message names the dtype) */
    {"torch", "LongStorage", NULL, 8}, {"torch", "IntStorage", NULL, 4},
    {"torch", "ShortStorage", NULL, 2}, {"torch", "CharStorage", NULL, 1},
    {"torch", "ByteStorage", NULL, 1}, {"torch", "BoolStorage", NULL, 1},
    {"torch", "ComplexFloatStorage", NULL, 8}, {"torch", "ComplexDoubleStorage", NULL, 16},
};

typedef struct pk_value pk_value;
struct pk_value {
    pk_kind kind;
    int64_t i;                 /* INT, BOOL; GLOBAL: pk_global; STORAGE: element count */
    int storage_type;          /* GLOBAL G_STORAGE and STORAGE: index into STORAGES */
    char *s;                   /* STR (NUL-terminated); STORAGE: key */
    pk_value **items;          /* TUPLE, LIST; DICT: key, value, key, value, ... */
    int n, cap;
    /* TENSOR */
    const pk_value *storage;
    int64_t offset;
    int ndim;
    int64_t shape[PK_MAX_DIMS];
};

typedef struct pk_machine {
    const char *path;          /* for messages: "<file>: data.pkl" */
    const char *prefix;        /* archive folder ("archive", "pytorch_model", ...) */
    const xle_zip *zip;
    const uint8_t *p, *end;
    uint64_t pickle_len;
    pk_value **stack;
    int sp, stack_cap;
    pk_value **memo;
    size_t memo_cap;
    size_t memo_next;          /* MEMOIZE's next index */
    pk_value **arena;          /* every value, for freeing */
    size_t n_arena, arena_cap;
    xle_error *err;
} pk_machine;

static xle_status pk_fail(pk_machine *m, xle_status st, const char *what) {
    return xle_fail(m->err, st, "%s: %s/data.pkl: %s", m->path, m->prefix, what);
}

static pk_value *pk_new(pk_machine *m, pk_kind kind) {
    if (m->n_arena == m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap * 2 : 256;
        pk_value **a = realloc(m->arena, cap * sizeof *a);
        if (!a) return NULL;
        m->arena = a;
        m->arena_cap = cap;
    }
    pk_value *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    m->arena[m->n_arena++] = v;
    return v;
}

static void pk_machine_free(pk_machine *m) {
    for (size_t i = 0; i < m->n_arena; i++) {
        free(m->arena[i]->s);
        free(m->arena[i]->items);
        free(m->arena[i]);
    }
    free(m->arena);
    free(m->stack);
    free(m->memo);
}

static int pk_append(pk_value *c, pk_value *x) {
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        pk_value **a = realloc(c->items, (size_t)cap * sizeof *a);
        if (!a) return 0;
        c->items = a;
        c->cap = cap;
    }
    c->items[c->n++] = x;
    return 1;
}

static xle_status push(pk_machine *m, pk_value *v) {
    if (!v) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    if (m->sp == m->stack_cap) {
        int cap = m->stack_cap ? m->stack_cap * 2 : 64;
        pk_value **s = realloc(m->stack, (size_t)cap * sizeof *s);
        if (!s) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        m->stack = s;
        m->stack_cap = cap;
    }
    m->stack[m->sp++] = v;
    return XLE_OK;
}

static pk_value *pop(pk_machine *m) {
    if (m->sp == 0 || m->stack[m->sp - 1]->kind == PK_MARK) return NULL;
    return m->stack[--m->sp];
}

/* Index of the topmost mark, or -1. */
static int top_mark(const pk_machine *m) {
    for (int i = m->sp - 1; i >= 0; i--)
        if (m->stack[i]->kind == PK_MARK) return i;
    return -1;
}

static int take(pk_machine *m, size_t n, const uint8_t **out) {
    if ((size_t)(m->end - m->p) < n) return 0;
    *out = m->p;
    m->p += n;
    return 1;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--) x = x << 8 | p[i];
    return x;
}

static xle_status push_int(pk_machine *m, int64_t x) {
    pk_value *v = pk_new(m, PK_INT);
    if (v) v->i = x;
    return push(m, v);
}

static xle_status push_str(pk_machine *m, size_t len) {
    const uint8_t *b;
    if (len > PK_MAX_STRING) return pk_fail(m, XLE_ERR_FORMAT, "string longer than 1 MiB");
    if (!take(m, len, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated string");
    pk_value *v = pk_new(m, PK_STR);
    if (v && (v->s = malloc(len + 1))) {
        memcpy(v->s, b, len);
        v->s[len] = 0;
        v->n = (int)len;
    } else if (v) {
        v = NULL;
    }
    return push(m, v);
}

static xle_status memo_put(pk_machine *m, uint64_t idx) {
    if (m->sp == 0 || m->stack[m->sp - 1]->kind == PK_MARK)
        return pk_fail(m, XLE_ERR_FORMAT, "memo put with an empty stack");
    /* a pickle memoizes at most one value per opcode, so no index reaches its length */
    if (idx >= m->pickle_len)
        return pk_fail(m, XLE_ERR_FORMAT, "memo index out of range");
    if (idx >= m->memo_cap) {
        size_t cap = m->memo_cap ? m->memo_cap : 64;
        while (cap <= idx) cap *= 2;
        pk_value **a = realloc(m->memo, cap * sizeof *a);
        if (!a) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        memset(a + m->memo_cap, 0, (cap - m->memo_cap) * sizeof *a);
        m->memo = a;
        m->memo_cap = cap;
    }
    m->memo[idx] = m->stack[m->sp - 1];
    return XLE_OK;
}

static xle_status memo_get(pk_machine *m, uint64_t idx) {
    if (idx >= m->memo_cap || !m->memo[idx]) return pk_fail(m, XLE_ERR_FORMAT, "memo get of an unset index");
    return push(m, m->memo[idx]);
}

/* GLOBAL / STACK_GLOBAL: only the names a state dict needs; everything else is refused here,
 * before it could be called. */
static xle_status push_global(pk_machine *m, const char *module, const char *name) {
    pk_value *v = pk_new(m, PK_GLOBAL);
    if (!v) return push(m, v);
    if (!strcmp(module, "collections") && !strcmp(name, "OrderedDict")) v->i = G_ORDERED_DICT;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_tensor_v2")) v->i = G_REBUILD_TENSOR;
    else if (!strcmp(module, "torch._utils") && !strcmp(name, "_rebuild_parameter")) v->i = G_REBUILD_PARAMETER;
    else {
        v->i = -1;
        for (size_t k = 0; k < sizeof STORAGES / sizeof STORAGES[0]; k++)
            if (!strcmp(module, STORAGES[k].module) && !strcmp(name, STORAGES[k].name)) {
                v->i = G_STORAGE;
                v->storage_type = (int)k;
            }
        if (v->i < 0)
            return xle_fail(m->err, XLE_ERR_FORMAT, "%s: %s/data.pkl: refused global %.100s.%.100s "
                            "(only tensors, storages and ordered dicts are loaded; no code is run)",
                            m->path, m->prefix, module, name);
    }
    return push(m, v);
}

/* "module\nname\n" of the text GLOBAL opcode. */
static xle_status op_global(pk_machine *m) {
    char parts[2][256];
    for (int k = 0; k < 2; k++) {
        const uint8_t *nl = memchr(m->p, '\n', (size_t)(m->end - m->p));
        if (!nl || nl - m->p >= (ptrdiff_t)sizeof parts[k])
            return pk_fail(m, XLE_ERR_FORMAT, "GLOBAL: bad name");
        memcpy(parts[k], m->p, (size_t)(nl - m->p));
        parts[k][nl - m->p] = 0;
        m->p = nl + 1;
    }
    return push_global(m, parts[0], parts[1]);
}

static xle_status op_stack_global(pk_machine *m) {
    pk_value *name = pop(m), *module = pop(m);
    if (!name || !module || name->kind != PK_STR || module->kind != PK_STR)
        return pk_fail(m, XLE_ERR_FORMAT, "STACK_GLOBAL: module and name must be strings");
    return push_global(m, module->s, name->s);
}

/* Pops everything above the topmost mark into a new container. */
static xle_status collect(pk_machine *m, pk_kind kind) {
    int mk = top_mark(m);
    if (mk < 0) return pk_fail(m, XLE_ERR_FORMAT, "no mark on the stack");
    pk_value *c = pk_new(m, kind);
    if (!c) return push(m, c);
    for (int i = mk + 1; i < m->sp; i++)
        if (!pk_append(c, m->stack[i])) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    m->sp = mk;
    return push(m, c);
}

static xle_status tuple_n(pk_machine *m, int n) {
    pk_value *t = pk_new(m, PK_TUPLE);
    if (!t) return push(m, t);
    if (m->sp < n) return pk_fail(m, XLE_ERR_FORMAT, "stack underflow");
    for (int i = m->sp - n; i < m->sp; i++) {
        if (m->stack[i]->kind == PK_MARK) return pk_fail(m, XLE_ERR_FORMAT, "stack underflow");
        if (!pk_append(t, m->stack[i])) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    }
    m->sp -= n;
    return push(m, t);
}

static xle_status dict_set(pk_machine *m, pk_value *d, pk_value *k, pk_value *v) {
    if (d->kind != PK_DICT) return pk_fail(m, XLE_ERR_FORMAT, "SETITEM on something that is not a dict");
    if (k->kind == PK_STR)
        for (int i = 0; i < d->n; i += 2)
            if (d->items[i]->kind == PK_STR && !strcmp(d->items[i]->s, k->s))
                return xle_fail(m->err, XLE_ERR_FORMAT, "%s: %s/data.pkl: key '%.200s' appears twice",
                                m->path, m->prefix, k->s);
    if (!pk_append(d, k) || !pk_append(d, v)) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    return XLE_OK;
}

static xle_status op_setitems(pk_machine *m) {
    int mk = top_mark(m);
    if (mk < 1 || (m->sp - mk - 1) % 2) return pk_fail(m, XLE_ERR_FORMAT, "SETITEMS: bad stack");
    pk_value *d = m->stack[mk - 1];
    for (int i = mk + 1; i < m->sp; i += 2) {
        xle_status st = dict_set(m, d, m->stack[i], m->stack[i + 1]);
        if (st != XLE_OK) return st;
    }
    m->sp = mk;
    return XLE_OK;
}

static xle_status op_appends(pk_machine *m) {
    int mk = top_mark(m);
    if (mk < 1 || m->stack[mk - 1]->kind != PK_LIST) return pk_fail(m, XLE_ERR_FORMAT, "APPENDS: no list");
    for (int i = mk + 1; i < m->sp; i++)
        if (!pk_append(m->stack[mk - 1], m->stack[i])) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    m->sp = mk;
    return XLE_OK;
}

/* BINPERSID: ('storage', torch.XStorage, key, location, numel) -> the storage's member. */
static xle_status op_persid(pk_machine *m) {
    pk_value *pid = pop(m);
    if (!pid || pid->kind != PK_TUPLE || pid->n != 5 || pid->items[0]->kind != PK_STR ||
        strcmp(pid->items[0]->s, "storage") != 0 || pid->items[1]->kind != PK_GLOBAL ||
        pid->items[1]->i != G_STORAGE || pid->items[2]->kind != PK_STR || pid->items[4]->kind != PK_INT)
        return pk_fail(m, XLE_ERR_FORMAT, "persistent id is not ('storage', torch.<Type>Storage, key, "
                       "location, size)");
    int type = pid->items[1]->storage_type;
    const char *key = pid->items[2]->s;
    int64_t numel = pid->items[4]->i;
    if (!STORAGES[type].dtype)
        return xle_fail(m->err, XLE_ERR_UNSUPPORTED, "%s: storage %.40s: torch.%s is not supported "
                        "(float32, float16, bfloat16, float64 tensors)", m->path, key, STORAGES[type].name);
    char member[600];
    snprintf(member, sizeof member, "%s/data/%.500s", m->prefix, key);
    const xle_zip_member *zm = xle_zip_find(m->zip, member);
    if (!zm) return xle_fail(m->err, XLE_ERR_FORMAT, "%s: storage %.40s: member %s is missing", m->path, key, member);
    if (!zm->data)
        return xle_fail(m->err, XLE_ERR_UNSUPPORTED, "%s: %s: compressed (method %d); torch.save stores "
                        "tensors uncompressed", m->path, member, zm->method);
    if (numel < 0 || (uint64_t)numel > zm->size / STORAGES[type].elsize ||
        (uint64_t)numel * STORAGES[type].elsize != zm->size)
        return xle_fail(m->err, XLE_ERR_FORMAT, "%s: storage %.40s: %lld elements of %zu bytes != the "
                        "member's %llu bytes", m->path, key, (long long)numel, STORAGES[type].elsize,
                        (unsigned long long)zm->size);
    pk_value *s = pk_new(m, PK_STORAGE);
    if (s) {
        s->storage_type = type;
        s->i = numel;
        s->s = strdup(key);
        if (!s->s) s = NULL;
    }
    return push(m, s);
}

static int int_tuple(const pk_value *t, int64_t *out, int *n) {
    if (t->kind != PK_TUPLE || t->n > PK_MAX_DIMS) return 0;
    for (int i = 0; i < t->n; i++) {
        if (t->items[i]->kind != PK_INT) return 0;
        out[i] = t->items[i]->i;
    }
    *n = t->n;
    return 1;
}

static int is_empty_dict(const pk_value *v) { return v->kind == PK_DICT && v->n == 0; }

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
 * [, metadata]): a contiguous view into the storage. */
static xle_status rebuild_tensor(pk_machine *m, const pk_value *args, pk_value **out) {
    int64_t stride[PK_MAX_DIMS];
    int nstride = 0;
    pk_value *t = pk_new(m, PK_TENSOR);
    if (!t) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    if (args->n < 6 || args->n > 7 || args->items[0]->kind != PK_STORAGE || args->items[1]->kind != PK_INT ||
        !int_tuple(args->items[2], t->shape, &t->ndim) || !int_tuple(args->items[3], stride, &nstride) ||
        nstride != t->ndim || args->items[4]->kind != PK_BOOL || !is_empty_dict(args->items[5]))
        return pk_fail(m, XLE_ERR_FORMAT, "_rebuild_tensor_v2: arguments are not (storage, offset, "
                       "size, stride, requires_grad, {}) with at most 8 dimensions");
    t->storage = args->items[0];
    t->offset = args->items[1]->i;
    int64_t numel = 1, expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] < 0 || (t->shape[d] > 0 && numel > INT64_MAX / 16 / t->shape[d]))
            return pk_fail(m, XLE_ERR_FORMAT, "_rebuild_tensor_v2: bad size");
        if (t->shape[d] != 1 && stride[d] != expect)
            return xle_fail(m->err, XLE_ERR_UNSUPPORTED, "%s: storage %.40s: a non-contiguous tensor "
                            "(stride %lld in dimension %d, %lld expected); save it with .contiguous()",
                            m->path, t->storage->s, (long long)stride[d], d, (long long)expect);
        numel *= t->shape[d];
        expect = numel;
    }
    if (t->offset < 0 || (numel > 0 && (t->offset > t->storage->i || numel > t->storage->i - t->offset)))
        return xle_fail(m->err, XLE_ERR_FORMAT, "%s: storage %.40s: offset %lld + %lld elements run "
                        "past its %lld elements", m->path, t->storage->s, (long long)t->offset,
                        (long long)numel, (long long)t->storage->i);
    *out = t;
    return XLE_OK;
}

static xle_status op_reduce(pk_machine *m) {
    pk_value *args = pop(m), *fn = pop(m);
    if (!args || !fn || args->kind != PK_TUPLE || fn->kind != PK_GLOBAL || fn->i == G_STORAGE)
        return pk_fail(m, XLE_ERR_FORMAT, "REDUCE: not a call of an allowed function with a tuple");
    pk_value *r = NULL;
    xle_status st = XLE_OK;
    switch ((pk_global)fn->i) {
    case G_ORDERED_DICT:
        if (args->n != 0) return pk_fail(m, XLE_ERR_FORMAT, "OrderedDict: called with arguments");
        r = pk_new(m, PK_DICT);
        break;
    case G_REBUILD_TENSOR:
        if ((st = rebuild_tensor(m, args, &r)) != XLE_OK) return st;
        break;
    case G_REBUILD_PARAMETER:
        if (args->n != 3 || args->items[0]->kind != PK_TENSOR)
            return pk_fail(m, XLE_ERR_FORMAT, "_rebuild_parameter: arguments are not (tensor, requires_grad, hooks)");
        r = args->items[0];
        break;
    case G_STORAGE:
        break;
    }
    return push(m, r);
}

/* BUILD on a dict: the state dict's `_metadata` attribute (per-module versions) is data only
 * and is dropped; BUILD of anything else would set attributes of an object and is refused. */
static xle_status op_build(pk_machine *m) {
    pk_value *state = pop(m);
    if (!state || m->sp == 0 || m->stack[m->sp - 1]->kind != PK_DICT ||
        !(state->kind == PK_DICT || state->kind == PK_NONE))
        return pk_fail(m, XLE_ERR_FORMAT, "BUILD: only a dict's attributes may be set");
    return XLE_OK;
}

/* Runs the pickle to STOP; *result is the value left. */
static xle_status run(pk_machine *m, pk_value **result) {
    pk_value *mark = pk_new(m, PK_MARK);
    if (!mark) return push(m, mark);
    const uint8_t *b;
    xle_status st = XLE_OK;
    while (st == XLE_OK) {
        if (m->p >= m->end) return pk_fail(m, XLE_ERR_FORMAT, "ends without STOP");
        uint8_t op = *m->p++;
        switch (op) {
        case 0x80: /* PROTO */
            if (!take(m, 1, &b) || b[0] < 2 || b[0] > 5) return pk_fail(m, XLE_ERR_FORMAT, "protocol is not 2-5");
            break;
        case 0x95: /* FRAME: framing only */
            if (!take(m, 8, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated FRAME");
            break;
        case '.': /* STOP */
            if (!(*result = pop(m))) return pk_fail(m, XLE_ERR_FORMAT, "STOP with an empty stack");
            return XLE_OK;
        case '(': st = push(m, mark); break;
        case ')': st = push(m, pk_new(m, PK_TUPLE)); break;
        case ']': st = push(m, pk_new(m, PK_LIST)); break;
        case '}': st = push(m, pk_new(m, PK_DICT)); break;
        case 't': st = collect(m, PK_TUPLE); break;
        case 'l': st = collect(m, PK_LIST); break;
        case 0x85: st = tuple_n(m, 1); break;
        case 0x86: st = tuple_n(m, 2); break;
        case 0x87: st = tuple_n(m, 3); break;
        case 'd': { /* DICT: key value pairs above the mark */
            int mk = top_mark(m);
            if (mk < 0 || (m->sp - mk - 1) % 2) return pk_fail(m, XLE_ERR_FORMAT, "DICT: bad stack");
            pk_value *d = pk_new(m, PK_DICT);
            if (!d) return push(m, d);
            for (int i = mk + 1; i < m->sp && st == XLE_OK; i += 2) st = dict_set(m, d, m->stack[i], m->stack[i + 1]);
            m->sp = mk;
            if (st == XLE_OK) st = push(m, d);
            break;
        }
        case 's': { /* SETITEM */
            pk_value *v = pop(m), *k = pop(m);
            if (!v || !k || m->sp == 0) return pk_fail(m, XLE_ERR_FORMAT, "SETITEM: bad stack");
            st = dict_set(m, m->stack[m->sp - 1], k, v);
            break;
        }
        case 'u': st = op_setitems(m); break;
        case 'a': { /* APPEND */
            pk_value *v = pop(m);
            if (!v || m->sp == 0 || m->stack[m->sp - 1]->kind != PK_LIST) return pk_fail(m, XLE_ERR_FORMAT, "APPEND: no list");
            if (!pk_append(m->stack[m->sp - 1], v)) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
            break;
        }
        case 'e': st = op_appends(m); break;
        case 'q': if (!take(m, 1, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated BINPUT");
            st = memo_put(m, b[0]); break;
        case 'r': if (!take(m, 4, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated LONG_BINPUT");
            st = memo_put(m, le(b, 4)); break;
        case 0x94: st = memo_put(m, m->memo_next++); break; /* MEMOIZE */
        case 'h': if (!take(m, 1, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated BINGET");
            st = memo_get(m, b[0]); break;
        case 'j': if (!take(m, 4, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated LONG_BINGET");
            st = memo_get(m, le(b, 4)); break;
        case 'J': if (!take(m, 4, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated BININT");
            st = push_int(m, (int32_t)(uint32_t)le(b, 4)); break;
        case 'K': if (!take(m, 1, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated BININT1");
            st = push_int(m, b[0]); break;
        case 'M': if (!take(m, 2, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated BININT2");
            st = push_int(m, (int64_t)le(b, 2)); break;
        case 0x8a: { /* LONG1: little-endian two's complement, up to 8 bytes here */
            const uint8_t *n;
            if (!take(m, 1, &n) || n[0] > 8 || !take(m, n[0], &b))
                return pk_fail(m, XLE_ERR_FORMAT, "LONG1: truncated or wider than 64 bits");
            uint64_t x = n[0] ? le(b, n[0]) : 0;
            if (n[0] && n[0] < 8 && (b[n[0] - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n[0]);
            st = push_int(m, (int64_t)x);
            break;
        }
        case 'G': /* BINFLOAT: accepted (metadata may hold one), its value is never used */
            if (!take(m, 8, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated BINFLOAT");
            st = push(m, pk_new(m, PK_FLOAT));
            break;
        case 'N': st = push(m, pk_new(m, PK_NONE)); break;
        case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
            pk_value *v = pk_new(m, PK_BOOL);
            if (v) v->i = op == 0x88;
            st = push(m, v);
            break;
        }
        case 'X': case 'T': case 'B': /* BINUNICODE, BINSTRING, BINBYTES: 4-byte length */
            if (!take(m, 4, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated string length");
            st = push_str(m, le(b, 4)); break;
        case 0x8c: case 'U': case 'C': /* SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES */
            if (!take(m, 1, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated string length");
            st = push_str(m, b[0]); break;
        case 0x8d: case 0x8e: /* BINUNICODE8, BINBYTES8 */
            if (!take(m, 8, &b)) return pk_fail(m, XLE_ERR_FORMAT, "truncated string length");
            st = le(b, 8) > PK_MAX_STRING ? pk_fail(m, XLE_ERR_FORMAT, "string longer than 1 MiB")
                                          : push_str(m, le(b, 8));
            break;
        case 'c': st = op_global(m); break;
        case 0x93: st = op_stack_global(m); break;
        case 'Q': st = op_persid(m); break;
        case 'R': st = op_reduce(m); break;
        case 'b': st = op_build(m); break;
        case '0': /* POP */
            if (!pop(m)) return pk_fail(m, XLE_ERR_FORMAT, "POP: empty stack");
            break;
        default: {
            char what[96];
            snprintf(what, sizeof what, "opcode 0x%02x is not allowed in a state dict", op);
            return pk_fail(m, XLE_ERR_FORMAT, what);
        }
        }
    }
    return st;
}

/* The archive's folder: the part before "/data.pkl" of its only such member. */
static xle_status find_prefix(const char *path, const xle_zip *z, char *prefix, size_t cap,
                              const xle_zip_member **pkl, xle_error *err) {
    *pkl = NULL;
    for (int i = 0; i < z->n; i++) {
        const char *n = z->members[i].name, *slash = strchr(n, '/');
        if (!slash || strcmp(slash, "/data.pkl") != 0) continue;
        if (*pkl) return xle_fail(err, XLE_ERR_FORMAT, "%s: more than one data.pkl", path);
        if ((size_t)(slash - n) >= cap) return xle_fail(err, XLE_ERR_FORMAT, "%s: archive folder name too long", path);
        memcpy(prefix, n, (size_t)(slash - n));
        prefix[slash - n] = 0;
        *pkl = &z->members[i];
    }
    if (!*pkl)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: no <folder>/data.pkl: not a torch.save archive", path);
    if (!(*pkl)->data)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: %s: compressed (method %d); torch.save stores "
                        "it uncompressed", path, (*pkl)->name, (*pkl)->method);
    return XLE_OK;
}

/* The state dict's tensors as entries. */
static xle_status to_entries(pk_machine *m, const pk_value *root, const uint8_t *base,
                             xle_safetensors *st) {
    if (root->kind != PK_DICT)
        return pk_fail(m, XLE_ERR_FORMAT, "the pickled object is not a state dict (a dict of tensors)");
    int n = root->n / 2;
    st->entries = calloc(n ? (size_t)n : 1, sizeof *st->entries);
    if (!st->entries) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
    for (int i = 0; i < n; i++) {
        const pk_value *k = root->items[2 * i], *v = root->items[2 * i + 1];
        if (k->kind != PK_STR) return pk_fail(m, XLE_ERR_FORMAT, "a state dict key is not a string");
        if (v->kind != PK_TENSOR)
            return xle_fail(m->err, XLE_ERR_FORMAT, "%s: %.200s: not a tensor", m->path, k->s);
        xle_st_entry *e = &st->entries[st->n];
        if (!(e->name = strdup(k->s))) return xle_fail(m->err, XLE_ERR_NOMEM, "%s: out of memory", m->path);
        st->n++;
        int type = v->storage->storage_type;
        snprintf(e->dtype, sizeof e->dtype, "%s", STORAGES[type].dtype);
        e->ndim = v->ndim;
        memcpy(e->shape, v->shape, sizeof e->shape);
        int64_t numel = 1;
        for (int d = 0; d < v->ndim; d++) numel *= v->shape[d];
        char member[600];
        snprintf(member, sizeof member, "%s/data/%.500s", m->prefix, v->storage->s);
        const xle_zip_member *zm = xle_zip_find(m->zip, member);
        e->data = zm->data + (size_t)v->offset * STORAGES[type].elsize;
        e->begin = (uint64_t)(e->data - base);
        e->end = e->begin + (uint64_t)numel * STORAGES[type].elsize;
    }
    return XLE_OK;
}

xle_status xle_torchbin_parse(const char *path, const uint8_t *base, size_t size,
                              xle_safetensors **out, xle_error *err) {
    *out = NULL;
    xle_zip *z = NULL;
    xle_status st = xle_zip_parse(path, base, size, &z, err);
    if (st != XLE_OK) return st;
    char prefix[256];
    const xle_zip_member *pkl;
    if ((st = find_prefix(path, z, prefix, sizeof prefix, &pkl, err)) != XLE_OK) {
        xle_zip_free(z);
        return st;
    }
    pk_machine m = {.path = path, .prefix = prefix, .zip = z, .p = pkl->data,
                    .end = pkl->data + pkl->size, .pickle_len = pkl->size, .err = err};
    xle_safetensors *s = calloc(1, sizeof *s);
    pk_value *root = NULL;
    if (!s || !(s->path = strdup(path))) st = xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    if (st == XLE_OK) st = run(&m, &root);
    if (st == XLE_OK) st = to_entries(&m, root, base, s);
    pk_machine_free(&m);
    xle_zip_free(z);
    if (st != XLE_OK) {
        xle_safetensors_free(s);
        return st;
    }
    *out = s;
    return XLE_OK;
}
