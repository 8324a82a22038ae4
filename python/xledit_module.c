/*
 * xledit_module.c: the CPython extension `xledit._xledit`, a thin layer over the public library
 * (include/xledit.h). It defines the types Model and Patch and the exception Error; the package
 * python/xledit/__init__.py builds the user-facing API on them (numpy arrays, dict hparams,
 * temporary files, results as dicts). docs/python.md describes both.
 *
 * Rules kept here:
 *  - every object owns its C handle and frees it in dealloc; there is no module-level mutable
 *    state (the exception type lives in the module state);
 *  - the GIL is released around every call that computes (Py_BEGIN_ALLOW_THREADS), and a
 *    model's lock is held meanwhile so two Python threads never run one model at once;
 *  - a library failure raises xledit.Error (a RuntimeError) with the library's one-line message
 *    and its status name in .status; an interrupted evaluation raises KeyboardInterrupt.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <xledit.h>

/* ---- module state ------------------------------------------------------------------------- */

typedef struct module_state {
    PyObject *error_type; /* xledit.Error */
} module_state;

static PyModuleDef xledit_module_def;

static module_state *state_of_module(PyObject *module) {
    return (module_state *)PyModule_GetState(module);
}

/* The module state reached from any type defined by this module (heap types keep their module). */
static module_state *state_of_type(PyTypeObject *type) {
    PyObject *module = PyType_GetModuleByDef(type, &xledit_module_def);
    return module ? state_of_module(module) : NULL;
}

/* The status as a short key for Python code: "io", "format", "arg", ... */
static const char *status_key(xle_status status) {
    switch (status) {
    case XLE_OK: return "ok";
    case XLE_ERR_IO: return "io";
    case XLE_ERR_FORMAT: return "format";
    case XLE_ERR_ARG: return "arg";
    case XLE_ERR_NOMEM: return "nomem";
    case XLE_ERR_UNSUPPORTED: return "unsupported";
    case XLE_ERR_NUMERIC: return "numeric";
    case XLE_ERR_NOT_FOUND: return "not_found";
    case XLE_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown";
}

/* Raises xledit.Error(err->msg) with .status set to the status key (KeyboardInterrupt for an
 * interrupted call, MemoryError for an allocation failure); returns NULL. */
static PyObject *raise_error(module_state *st, const xle_error *err) {
    if (err->status == XLE_ERR_INTERRUPTED) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyboardInterrupt, err->msg);
        return NULL;
    }
    if (err->status == XLE_ERR_NOMEM) return PyErr_NoMemory();
    PyObject *exc = PyObject_CallFunction(st->error_type, "s", err->msg[0] ? err->msg : "xledit: error");
    if (!exc) return NULL;
    PyObject *status = PyUnicode_FromString(status_key(err->status));
    if (!status || PyObject_SetAttrString(exc, "status", status) < 0) {
        Py_XDECREF(status);
        Py_DECREF(exc);
        return NULL;
    }
    Py_DECREF(status);
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* The same from a method of one of the module's types. */
static PyObject *raise_library_error(PyTypeObject *type, const xle_error *err) {
    module_state *st = state_of_type(type);
    return st ? raise_error(st, err) : NULL;
}

/* ---- Model -------------------------------------------------------------------------------- */

typedef struct model_object {
    PyObject_HEAD
    xle_model *model;          /* owned */
    PyThread_type_lock lock;   /* held (without the GIL) while the library uses the model */
    int threads;               /* 0: the library's default */
} model_object;

/* Brackets a compute call: drops the GIL, takes the model's lock, sets the thread count of this
 * OS thread (OpenMP's count is per thread), and undoes it all in reverse. */
#define COMPUTE_BEGIN(self)                                   \
    Py_BEGIN_ALLOW_THREADS                                    \
    PyThread_acquire_lock((self)->lock, WAIT_LOCK);           \
    if ((self)->threads > 0) xle_threads_set((self)->threads);
#define COMPUTE_END(self)                                     \
    PyThread_release_lock((self)->lock);                      \
    Py_END_ALLOW_THREADS

static xle_tokenizer *model_tokenizer_or_raise(model_object *self) {
    xle_tokenizer *tok = xle_model_tokenizer(self->model);
    if (!tok) {
        xle_error err = {XLE_ERR_ARG, ""};
        snprintf(err.msg, sizeof err.msg, "%s: the model has no tokenizer", xle_model_path(self->model));
        raise_library_error(Py_TYPE(self), &err);
    }
    return tok;
}

/* A Python sequence of token ids as an int32 array (caller frees); checks the range. */
static int32_t *ids_from_sequence(model_object *self, PyObject *seq_obj, int *n_out, const char *what) {
    PyObject *seq = PySequence_Fast(seq_obj, "expected a str or a sequence of token ids");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > INT32_MAX / 2) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s: too many token ids", what);
        return NULL;
    }
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    int vocab = xle_model_config(self->model)->vocab_size;
    for (Py_ssize_t i = 0; i < n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) goto fail;
        if (v < 0 || v >= vocab) {
            PyErr_Format(PyExc_ValueError, "%s: token id %ld at position %zd is outside the vocabulary (0..%d)",
                         what, v, i, vocab - 1);
            goto fail;
        }
        ids[i] = (int32_t)v;
    }
    Py_DECREF(seq);
    *n_out = (int)n;
    return ids;
fail:
    free(ids);
    Py_DECREF(seq);
    return NULL;
}

/* Encodes text (BOS as add_bos says: 1, 0, or -1 as the tokenizer's files say). */
static int32_t *ids_from_text(model_object *self, const char *text, Py_ssize_t len, int add_bos,
                              int special, int *n_out) {
    xle_tokenizer *tok = model_tokenizer_or_raise(self);
    if (!tok) return NULL;
    xle_tokens t = {0};
    xle_error err = {0};
    if (xle_tokenize(tok, text, (size_t)len, add_bos, special, &t, &err) != XLE_OK) {
        raise_library_error(Py_TYPE(self), &err);
        return NULL;
    }
    *n_out = t.n;
    int32_t *ids = t.ids;
    t.ids = NULL;
    xle_tokens_free(&t);
    if (!ids) ids = malloc(sizeof *ids); /* an empty text: a valid empty array */
    if (!ids) PyErr_NoMemory();
    return ids;
}

/* A prompt given as str (encoded with BOS as the files say) or as token ids. */
static int32_t *prompt_ids(model_object *self, PyObject *prompt, int *n_out, const char *what) {
    if (PyUnicode_Check(prompt)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(prompt, &len);
        return s ? ids_from_text(self, s, len, -1, 0, n_out) : NULL;
    }
    return ids_from_sequence(self, prompt, n_out, what);
}

static PyObject *ids_to_list(const int32_t *ids, int n) {
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) {
        PyObject *v = PyLong_FromLong(ids[i]);
        if (!v) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static int model_init(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", "threads", NULL};
    PyObject *path_obj = NULL, *threads_obj = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|O:Model", kwlist, PyUnicode_FSConverter,
                                     &path_obj, &threads_obj))
        return -1;
    int threads = 0;
    if (threads_obj != Py_None) {
        long t = PyLong_AsLong(threads_obj);
        if (t == -1 && PyErr_Occurred()) goto fail;
        if (t < 1 || t > 4096) {
            PyErr_SetString(PyExc_ValueError, "threads: expected a count >= 1 (or None for all CPUs)");
            goto fail;
        }
        threads = (int)t;
    }
    if (self->model) { /* another thread may be computing with it: never swapped under it */
        PyErr_SetString(PyExc_TypeError, "Model is already loaded (create a new Model)");
        goto fail;
    }
    if (!self->lock && !(self->lock = PyThread_allocate_lock())) {
        PyErr_NoMemory();
        goto fail;
    }
    const char *path = PyBytes_AS_STRING(path_obj);
    xle_error err = {0};
    xle_status st;
    xle_model *model = NULL;
    Py_BEGIN_ALLOW_THREADS
    st = xle_model_load(path, &model, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (st != XLE_OK) {
        raise_library_error(Py_TYPE(self), &err);
        return -1;
    }
    self->model = model;
    self->threads = threads;
    return 0;
fail:
    Py_DECREF(path_obj);
    return -1;
}

static void model_dealloc(model_object *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    xle_model_free(self->model);
    if (self->lock) PyThread_free_lock(self->lock);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static int model_traverse(model_object *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int model_ready(model_object *self) {
    if (self->model) return 1;
    PyErr_SetString(PyExc_ValueError, "the Model was not initialised");
    return 0;
}

static PyObject *model_tokenize(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"text", "bos", "special", NULL};
    const char *text;
    Py_ssize_t len;
    PyObject *bos_obj = Py_None;
    int special = 0;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "s#|Op:tokenize", kwlist, &text, &len, &bos_obj, &special))
        return NULL;
    int add_bos = -1;
    if (bos_obj != Py_None) {
        int b = PyObject_IsTrue(bos_obj);
        if (b < 0) return NULL;
        add_bos = b;
    }
    int n = 0;
    int32_t *ids = ids_from_text(self, text, len, add_bos, special, &n);
    if (!ids) return NULL;
    PyObject *list = ids_to_list(ids, n);
    free(ids);
    return list;
}

static PyObject *model_detokenize(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"ids", "skip_special", NULL};
    PyObject *ids_obj;
    int skip_special = 1;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:detokenize", kwlist, &ids_obj, &skip_special))
        return NULL;
    xle_tokenizer *tok = model_tokenizer_or_raise(self);
    if (!tok) return NULL;
    int n = 0;
    int32_t *ids = ids_from_sequence(self, ids_obj, &n, "detokenize");
    if (!ids) return NULL;
    char *text = xle_detokenize(tok, ids, n, skip_special);
    free(ids);
    if (!text) return PyErr_NoMemory();
    PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
    free(text);
    return s;
}

static PyObject *model_score(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"prompt", "continuation", "per_token", NULL};
    PyObject *prompt, *cont;
    int per_token = 0;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "OO|p:score", kwlist, &prompt, &cont, &per_token))
        return NULL;
    int32_t *p = NULL, *t = NULL;
    int np = 0, nt = 0;
    xle_error err = {0};
    if (PyUnicode_Check(prompt) && PyUnicode_Check(cont)) {
        /* both texts: the continuation's tokens as they follow the prompt (as `xledit score`) */
        xle_tokenizer *tok = model_tokenizer_or_raise(self);
        const char *ps = tok ? PyUnicode_AsUTF8(prompt) : NULL;
        const char *cs = ps ? PyUnicode_AsUTF8(cont) : NULL;
        if (!cs) return NULL;
        if (xle_tokenize_continuation(tok, ps, cs, &p, &np, &t, &nt, &err) != XLE_OK)
            return raise_library_error(Py_TYPE(self), &err);
    } else {
        if (!(p = prompt_ids(self, prompt, &np, "score: prompt"))) return NULL;
        if (PyUnicode_Check(cont)) { /* a text continuation after id prompt: alone, without BOS */
            Py_ssize_t len;
            const char *cs = PyUnicode_AsUTF8AndSize(cont, &len);
            t = cs ? ids_from_text(self, cs, len, 0, 0, &nt) : NULL;
        } else {
            t = ids_from_sequence(self, cont, &nt, "score: continuation");
        }
        if (!t) {
            free(p);
            return NULL;
        }
    }
    if (np < 1 || nt < 1) {
        free(p);
        free(t);
        PyErr_SetString(PyExc_ValueError, "score: the prompt and the continuation need a token each");
        return NULL;
    }
    float *per = malloc((size_t)nt * sizeof *per);
    if (!per) {
        free(p);
        free(t);
        return PyErr_NoMemory();
    }
    double logprob = 0;
    xle_status st;
    COMPUTE_BEGIN(self)
    st = xle_score(self->model, p, np, t, nt, &logprob, per, &err);
    COMPUTE_END(self)
    PyObject *result = NULL;
    if (st != XLE_OK) {
        raise_library_error(Py_TYPE(self), &err);
    } else if (!per_token) {
        result = PyFloat_FromDouble(logprob);
    } else {
        PyObject *list = PyList_New(nt);
        for (int i = 0; list && i < nt; i++) {
            PyObject *v = PyFloat_FromDouble(per[i]);
            if (!v) Py_CLEAR(list);
            else PyList_SET_ITEM(list, i, v);
        }
        PyObject *ids = list ? ids_to_list(t, nt) : NULL;
        if (ids) result = Py_BuildValue("{s:d,s:O,s:O}", "logprob", logprob, "per_token", list, "ids", ids);
        Py_XDECREF(list);
        Py_XDECREF(ids);
    }
    free(per);
    free(p);
    free(t);
    return result;
}

static PyObject *model_generate(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"prompt", "n", "temperature", "top_k", "seed", "stop_at_eos", "top_p",
                             "repeat_penalty", "repeat_last_n", NULL};
    PyObject *prompt;
    int n_new = 32, top_k = 0, stop_at_eos = 1, repeat_last_n = 64;
    double temperature = 0, top_p = 0, repeat_penalty = 0;
    unsigned long long seed = 0;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "O|$idiKpddi:generate", kwlist, &prompt, &n_new,
                                     &temperature, &top_k, &seed, &stop_at_eos, &top_p, &repeat_penalty,
                                     &repeat_last_n))
        return NULL;
    if (n_new < 0 || top_k < 0 || !(temperature >= 0) || !(top_p >= 0) || !(repeat_penalty >= 0) ||
        repeat_last_n < 1) {
        PyErr_SetString(PyExc_ValueError, "generate: n, top_k, temperature, top_p and repeat_penalty must "
                                          "be >= 0, repeat_last_n >= 1");
        return NULL;
    }
    int as_text = PyUnicode_Check(prompt);
    int np = 0, n_out = 0;
    int32_t *p = prompt_ids(self, prompt, &np, "generate: prompt");
    if (!p) return NULL;
    if (np < 1) {
        free(p);
        PyErr_SetString(PyExc_ValueError, "generate: the prompt needs a token");
        return NULL;
    }
    int32_t *all = malloc((size_t)(np + n_new + 1) * sizeof *all);
    if (!all) {
        free(p);
        return PyErr_NoMemory();
    }
    memcpy(all, p, (size_t)np * sizeof *all);
    xle_sampler sampler = {.temperature = (float)temperature, .top_k = top_k, .seed = (uint64_t)seed,
                           .stop_at_eos = stop_at_eos, .top_p = (float)top_p,
                           .repeat_penalty = (float)repeat_penalty, .repeat_last_n = repeat_last_n};
    xle_error err = {0};
    xle_status st;
    COMPUTE_BEGIN(self)
    st = xle_generate(self->model, p, np, n_new, &sampler, all + np, &n_out, &err);
    COMPUTE_END(self)
    free(p);
    PyObject *result = NULL;
    if (st != XLE_OK) {
        raise_library_error(Py_TYPE(self), &err);
    } else if (!as_text) {
        result = ids_to_list(all + np, n_out);
    } else {
        /* the new text: decode prompt + continuation and drop the prompt's own text, so that the
         * continuation keeps the spacing the tokenizer gives it after the prompt */
        xle_tokenizer *tok = model_tokenizer_or_raise(self);
        char *whole = tok ? xle_detokenize(tok, all, np + n_out, 1) : NULL;
        char *head = whole ? xle_detokenize(tok, all, np, 1) : NULL;
        if (tok && (!whole || !head)) {
            PyErr_NoMemory();
        } else if (whole) {
            size_t skip = strlen(head);
            if (strncmp(whole, head, skip) != 0) skip = 0; /* not a prefix: give it all */
            result = PyUnicode_DecodeUTF8(whole + skip, (Py_ssize_t)strlen(whole + skip), "replace");
        }
        free(whole);
        free(head);
    }
    free(all);
    return result;
}

/* _logits(text_or_ids, last_only) -> (bytes of float32 rows, n_rows, vocab_size) */
static PyObject *model_logits_raw(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"text_or_ids", "last_only", NULL};
    PyObject *input;
    int last_only = 0;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "O|p:logits", kwlist, &input, &last_only))
        return NULL;
    int n = 0;
    int32_t *ids = prompt_ids(self, input, &n, "logits");
    if (!ids) return NULL;
    if (n < 1) {
        free(ids);
        PyErr_SetString(PyExc_ValueError, "logits: the input needs a token");
        return NULL;
    }
    const int V = xle_model_config(self->model)->vocab_size;
    int n_rows = last_only ? 1 : n;
    int *rows = malloc((size_t)n_rows * sizeof *rows);
    PyObject *bytes = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)n_rows * V * (Py_ssize_t)sizeof(float));
    if (!rows || !bytes) {
        free(ids);
        free(rows);
        Py_XDECREF(bytes);
        return rows ? NULL : PyErr_NoMemory();
    }
    for (int i = 0; i < n_rows; i++) rows[i] = last_only ? n - 1 : i;
    float *out = (float *)PyByteArray_AS_STRING(bytes);
    int start[2] = {0, n};
    xle_batch batch = {1, ids, start};
    xle_forward_opts fo = {.logit_rows = rows, .n_logit_rows = n_rows};
    xle_error err = {0};
    xle_status st;
    COMPUTE_BEGIN(self)
    st = xle_forward(self->model, &batch, &fo, out, &err);
    COMPUTE_END(self)
    free(ids);
    free(rows);
    if (st != XLE_OK) {
        Py_DECREF(bytes);
        return raise_library_error(Py_TYPE(self), &err);
    }
    PyObject *result = Py_BuildValue("(Oii)", bytes, n_rows, V);
    Py_DECREF(bytes);
    return result;
}

static int parse_method(const char *name, xle_edit_method *m) {
    if (!xle_edit_method_parse(name, strlen(name), m)) return 1;
    PyErr_Format(PyExc_ValueError, "method: expected rome, memit, ft-l, ft-m, ike or alphaedit, got '%s'", name);
    return 0;
}

/* A method's hyperparameters as `xledit edit` resolves them: defaults for the model, the model
 * folder's edit-hparams/<method>.json (use_folder), the JSON file hparams_path, then layers and
 * seed when given (layers: a sequence or None; seed: an int or None). */
static int resolve_hparams(model_object *self, const char *method, int use_folder,
                           const char *hparams_path, PyObject *layers, PyObject *seed,
                           xle_edit_hparams *hp) {
    xle_edit_method m;
    if (!parse_method(method, &m)) return 0;
    xle_error err = {0};
    const char *folder = use_folder ? xle_model_path(self->model) : NULL;
    if (xle_edit_hparams_for_model_path(hp, m, self->model, folder, NULL, &err) != XLE_OK ||
        (hparams_path && xle_edit_hparams_load_json(hp, hparams_path, &err) != XLE_OK)) {
        raise_library_error(Py_TYPE(self), &err);
        return 0;
    }
    if (layers && layers != Py_None) {
        PyObject *seq = PySequence_Fast(layers, "layers: expected a sequence of layer numbers");
        if (!seq) return 0;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        int n_model = xle_model_config(self->model)->n_layers;
        if (n < 1 || n > XLE_EDIT_MAX_LAYERS) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_ValueError, "layers: expected 1..%d layers", XLE_EDIT_MAX_LAYERS);
            return 0;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            long l = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
            if (l == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                return 0;
            }
            if (l < 0 || l >= n_model) {
                Py_DECREF(seq);
                PyErr_Format(PyExc_ValueError, "layers: layer %ld: the model has layers 0..%d", l, n_model - 1);
                return 0;
            }
            hp->layers[i] = (int)l;
        }
        hp->n_layers = (int)n;
        Py_DECREF(seq);
    }
    if (seed && seed != Py_None) {
        unsigned long long s = PyLong_AsUnsignedLongLong(seed);
        if (s == (unsigned long long)-1 && PyErr_Occurred()) return 0;
        hp->seed = s;
    }
    return 1;
}

/* The patch's description, as `xledit edit --patch` writes it. */
static char *patch_info_json(model_object *self, const xle_edit_hparams *hp, const xle_edit_request *reqs,
                             int n, const xle_context_templates *ct) {
    char fp[65];
    xle_model_fingerprint(self->model, fp);
    json_t *layers = json_array(), *jreqs = json_array(), *tpls = json_array();
    for (int i = 0; i < hp->n_layers; i++) json_array_append_new(layers, json_integer(hp->layers[i]));
    for (int i = 0; i < n; i++)
        json_array_append_new(jreqs, json_pack("{s:s, s:s, s:s}", "prompt", reqs[i].prompt, "subject",
                                               reqs[i].subject, "target_new", reqs[i].target));
    for (int i = 0; ct && i < ct->n; i++) json_array_append_new(tpls, json_string(ct->texts[i]));
    json_t *info = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:I}", "tool",
                             "xledit " XLE_VERSION_STRING " (python)", "method",
                             xle_edit_method_name(hp->method), "model_fingerprint", fp, "layers", layers,
                             "requests", jreqs, "context_templates", tpls, "seed", (json_int_t)hp->seed);
    char *text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    return text;
}

/* The edit's work without the GIL: templates, tokens, statistics, the edit, the patch file. */
static xle_status run_edit(model_object *self, const xle_edit_hparams *hp, const xle_edit_request *reqs,
                           int n, const char *stats_dir, const char *ctx, const char *patch_path,
                           xle_edit_result *result, xle_error *err) {
    xle_tokenizer *tok = xle_model_tokenizer(self->model);
    xle_context_templates *ct = NULL;
    xle_edit_request_tok *toks = calloc((size_t)n, sizeof *toks);
    xle_layer_stats *stats[XLE_EDIT_MAX_LAYERS] = {0};
    char *info = NULL;
    xle_status st = toks ? XLE_OK : xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    int ft = hp->method == XLE_EDIT_FT_L || hp->method == XLE_EDIT_FT_M;
    if (st == XLE_OK) {
        if (ft || (ctx && !strcmp(ctx, "none"))) st = xle_context_templates_none(&ct, err);
        else if (ctx) st = xle_context_templates_load(ctx, &ct, err);
        else st = xle_context_templates_sample(self->model, tok, hp, &ct, err);
    }
    for (int i = 0; st == XLE_OK && i < n; i++)
        if ((st = xle_edit_request_tokenize(tok, &reqs[i], ct, &toks[i], err)) != XLE_OK) {
            xle_error inner = *err;
            xle_fail(err, inner.status, "request %d: %s", i + 1, inner.msg);
        }
    if (st == XLE_OK && xle_edit_hparams_need_stats(hp)) {
        if (!stats_dir)
            st = xle_fail(err, XLE_ERR_ARG, "%s needs key statistics: pass stats=DIR (made by `xledit stats`)",
                          xle_edit_method_name(hp->method));
        for (int i = 0; st == XLE_OK && i < hp->n_layers; i++)
            st = xle_stats_load(self->model, stats_dir, hp->layers[i], &stats[i], err);
    }
    if (st == XLE_OK) st = xle_edit_run(self->model, hp, toks, n, stats, result, err);
    if (st == XLE_OK && !(info = patch_info_json(self, hp, reqs, n, ct)))
        st = xle_fail(err, XLE_ERR_NOMEM, "out of memory");
    if (st == XLE_OK) st = xle_patch_write(self->model, result, info, patch_path, err);
    free(info);
    for (int i = 0; i < XLE_EDIT_MAX_LAYERS; i++) xle_layer_stats_free(stats[i]);
    for (int i = 0; toks && i < n; i++) xle_edit_request_tok_free(&toks[i]);
    free(toks);
    xle_context_templates_free(ct);
    return st;
}

/* _edit(method, requests, patch_path, hparams_path=None, stats_dir=None, layers=None,
 *       context_templates=None, seed=None, model_hparams=True) -> dict
 * requests: a sequence of (prompt, subject, target) string triples. Writes the patch file (the
 * model is left unchanged) and returns {"layers", "seed", "final_loss", "steps"}. */
static PyObject *model_edit_raw(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"method", "requests", "patch_path", "hparams_path", "stats_dir", "layers",
                             "context_templates", "seed", "model_hparams", NULL};
    const char *method, *patch_path, *hparams_path = NULL, *stats_dir = NULL, *ctx = NULL;
    PyObject *requests, *layers = Py_None, *seed = Py_None;
    int model_hparams = 1;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "sOs|zzOzOp:edit", kwlist, &method, &requests, &patch_path,
                                     &hparams_path, &stats_dir, &layers, &ctx, &seed, &model_hparams))
        return NULL;
    if (!model_tokenizer_or_raise(self)) return NULL;
    xle_edit_hparams hp;
    if (!resolve_hparams(self, method, model_hparams, hparams_path, layers, seed, &hp)) return NULL;
    if (hp.method == XLE_EDIT_IKE) {
        PyErr_SetString(PyExc_ValueError, "method: ike changes no weights: evaluate() runs it, edit() cannot");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(requests, "requests: expected a sequence of (prompt, subject, target)");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > 1000000) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "requests: expected at least one request");
        return NULL;
    }
    xle_edit_request *reqs = calloc((size_t)n, sizeof *reqs);
    if (!reqs) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    /* the strings stay owned by the tuples in seq, which lives until the end */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) ||
            !PyArg_ParseTuple(item, "sss;requests: expected (prompt, subject, target) strings", &reqs[i].prompt,
                              &reqs[i].subject, &reqs[i].target)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "requests: expected (prompt, subject, target) tuples");
            free(reqs);
            Py_DECREF(seq);
            return NULL;
        }
    }
    xle_edit_result result = {0};
    xle_error err = {0};
    xle_status st;
    COMPUTE_BEGIN(self)
    st = run_edit(self, &hp, reqs, (int)n, stats_dir, ctx, patch_path, &result, &err);
    COMPUTE_END(self)
    free(reqs);
    Py_DECREF(seq);
    PyObject *out = NULL;
    if (st != XLE_OK) {
        raise_library_error(Py_TYPE(self), &err);
    } else {
        PyObject *layer_list = PyList_New(hp.n_layers);
        for (int i = 0; layer_list && i < hp.n_layers; i++) {
            PyObject *v = PyLong_FromLong(hp.layers[i]);
            if (!v) Py_CLEAR(layer_list);
            else PyList_SET_ITEM(layer_list, i, v);
        }
        if (layer_list)
            out = Py_BuildValue("{s:s,s:O,s:K,s:d,s:i}", "method", xle_edit_method_name(hp.method), "layers",
                                layer_list, "seed", (unsigned long long)hp.seed, "final_loss", result.final_loss,
                                "steps", result.steps);
        Py_XDECREF(layer_list);
    }
    xle_edit_result_free(&result);
    return out;
}

/* Called by xle_eval_run between units, possibly without the GIL: runs Python's signal handlers
 * so that Ctrl-C stops the run after the unit in progress (the exception stays set). */
static int eval_progress(void *user, int64_t done, int64_t total) {
    (void)user, (void)done, (void)total;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = PyErr_CheckSignals() != 0;
    PyGILState_Release(g);
    return stop;
}

/* A sequence of strings as a NULL-free C array borrowing from the (kept) sequence. */
static int string_list(PyObject *obj, const char *what, PyObject **keep, const char ***out, int *n_out) {
    *keep = NULL, *out = NULL, *n_out = 0;
    if (obj == Py_None) return 1;
    PyObject *seq = PySequence_Fast(obj, what);
    if (!seq) return 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **items = malloc((size_t)(n ? n : 1) * sizeof *items);
    if (!items) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(items[i] = PyUnicode_Check(PySequence_Fast_GET_ITEM(seq, i))
                             ? PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i))
                             : NULL)) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s", what);
            free(items);
            Py_DECREF(seq);
            return 0;
        }
    *keep = seq, *out = items, *n_out = (int)n;
    return 1;
}

/* _evaluate(cases_path, run_dir, methods, hparams_path=None, edit_langs=None, test_langs=None,
 *           max_cases=0, resume=False, stats_dir=None, context_templates=None,
 *           subject_match="exact", seed=None, model_hparams=True) -> summary dict */
static PyObject *model_evaluate_raw(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"cases_path", "run_dir", "methods", "hparams_path", "edit_langs", "test_langs",
                             "max_cases", "resume", "stats_dir", "context_templates", "subject_match",
                             "seed", "model_hparams", NULL};
    const char *cases_path, *run_dir, *hparams_path = NULL, *stats_dir = NULL, *ctx = NULL,
               *match_name = "exact";
    PyObject *methods_obj, *edit_obj = Py_None, *test_obj = Py_None, *seed = Py_None;
    int max_cases = 0, resume = 0, model_hparams = 1;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "ssO|zOOipzzsOp:evaluate", kwlist, &cases_path, &run_dir,
                                     &methods_obj, &hparams_path, &edit_obj, &test_obj, &max_cases, &resume,
                                     &stats_dir, &ctx, &match_name, &seed, &model_hparams))
        return NULL;
    if (!model_tokenizer_or_raise(self)) return NULL;
    xle_match match;
    if (!strcmp(match_name, "exact")) match = XLE_MATCH_EXACT;
    else if (!strcmp(match_name, "caseless")) match = XLE_MATCH_CASELESS;
    else if (!strcmp(match_name, "stem")) match = XLE_MATCH_STEM;
    else {
        PyErr_Format(PyExc_ValueError, "subject_match: expected exact, caseless or stem, got '%s'", match_name);
        return NULL;
    }
    PyObject *keep_m = NULL, *keep_e = NULL, *keep_t = NULL, *out = NULL;
    const char **mnames = NULL, **elangs = NULL, **tlangs = NULL;
    int n_m = 0, n_e = 0, n_t = 0;
    xle_edit_hparams hps[6];
    if (!string_list(methods_obj, "methods: expected a sequence of method names", &keep_m, &mnames, &n_m) ||
        !string_list(edit_obj, "edit_langs: expected a sequence of language codes", &keep_e, &elangs, &n_e) ||
        !string_list(test_obj, "test_langs: expected a sequence of language codes", &keep_t, &tlangs, &n_t))
        goto done;
    if (n_m < 1 || n_m > 6) {
        PyErr_SetString(PyExc_ValueError, "methods: expected 1 to 6 of rome, memit, ft-l, ft-m, ike, alphaedit");
        goto done;
    }
    for (int i = 0; i < n_m; i++)
        if (!resolve_hparams(self, mnames[i], model_hparams, hparams_path, NULL, seed, &hps[i])) goto done;
    xle_eval_opts o = {0};
    o.data_path = cases_path;
    o.run_dir = run_dir;
    o.hparams = hps;
    o.n_methods = n_m;
    o.edit_langs = elangs;
    o.n_edit_langs = n_e;
    o.test_langs = tlangs;
    o.n_test_langs = n_t;
    o.max_cases = max_cases;
    o.resume = resume;
    o.stats_dir = stats_dir;
    o.context_templates = ctx;
    o.subject_match = match;
    o.progress = eval_progress;
    xle_eval_summary sum = {0};
    xle_error err = {0};
    xle_status st;
    COMPUTE_BEGIN(self)
    st = xle_eval_run(self->model, &o, &sum, &err);
    COMPUTE_END(self)
    if (st != XLE_OK) raise_library_error(Py_TYPE(self), &err);
    else
        out = Py_BuildValue("{s:i,s:L,s:L,s:L,s:L,s:L}", "cases", sum.n_cases, "units", (long long)sum.n_units,
                            "resumed", (long long)sum.n_resumed, "done", (long long)sum.n_done, "skipped",
                            (long long)sum.n_skipped, "failed", (long long)sum.n_failed);
done:
    free(mnames);
    free(elangs);
    free(tlangs);
    Py_XDECREF(keep_m);
    Py_XDECREF(keep_e);
    Py_XDECREF(keep_t);
    return out;
}

/* _build_stats(layers, corpus, out_dir, max_tokens=0, max_len=0): `xledit stats` (resumes,
 * or finds complete, the statistics in out_dir, which must exist). */
static PyObject *model_build_stats_raw(model_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"layers", "corpus", "out_dir", "max_tokens", "max_len", NULL};
    PyObject *layers_obj, *corpus_obj;
    const char *out_dir;
    long long max_tokens = 0;
    int max_len = 0;
    if (!model_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "OOs|Li:build_stats", kwlist, &layers_obj, &corpus_obj,
                                     &out_dir, &max_tokens, &max_len))
        return NULL;
    if (!model_tokenizer_or_raise(self)) return NULL;
    if (max_tokens < 0 || max_len < 0) {
        PyErr_SetString(PyExc_ValueError, "build_stats: max_tokens and max_len must be >= 0");
        return NULL;
    }
    xle_edit_hparams hp; /* only its layer list: parsed and checked as edit's layers are */
    memset(&hp, 0, sizeof hp);
    PyObject *keep = NULL, *out = NULL;
    const char **corpus = NULL;
    int n_corpus = 0;
    if (!resolve_hparams(self, "rome", 0, NULL, layers_obj, NULL, &hp) ||
        !string_list(corpus_obj, "corpus: expected a sequence of file names", &keep, &corpus, &n_corpus))
        goto done;
    if (n_corpus < 1) {
        PyErr_SetString(PyExc_ValueError, "build_stats: corpus: expected at least one file");
        goto done;
    }
    xle_stats_opts o = {hp.layers, hp.n_layers, corpus, n_corpus, (int64_t)max_tokens, max_len, out_dir,
                        eval_progress, NULL};
    xle_error err = {0};
    xle_status st;
    COMPUTE_BEGIN(self)
    st = xle_stats_build(self->model, xle_model_tokenizer(self->model), &o, &err);
    COMPUTE_END(self)
    if (st != XLE_OK) raise_library_error(Py_TYPE(self), &err);
    else out = PyUnicode_FromString(out_dir);
done:
    free(corpus);
    Py_XDECREF(keep);
    return out;
}

static PyObject *model_fingerprint(model_object *self, PyObject *unused) {
    (void)unused;
    if (!model_ready(self)) return NULL;
    char fp[65];
    COMPUTE_BEGIN(self)
    xle_model_fingerprint(self->model, fp);
    COMPUTE_END(self)
    return PyUnicode_FromString(fp);
}

static PyObject *model_get_config(model_object *self, void *closure) {
    (void)closure;
    if (!model_ready(self)) return NULL;
    const xle_config *c = xle_model_config(self->model);
    static const char *archs[] = {"llama", "mistral", "qwen2"};
    return Py_BuildValue("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:d,s:O,s:i,s:i}", "arch",
                         (unsigned)c->arch < 3 ? archs[c->arch] : "?", "dim", c->dim, "ffn_dim", c->ffn_dim,
                         "n_layers", c->n_layers, "n_heads", c->n_heads, "n_kv_heads", c->n_kv_heads,
                         "vocab_size", c->vocab_size, "max_seq_len", c->max_seq_len, "head_dim", c->head_dim,
                         "rope_theta", (double)c->rope_theta, "tied_embeddings",
                         c->tied_embeddings ? Py_True : Py_False, "bos_id", c->bos_id, "eos_id", c->eos_id);
}

static PyObject *model_get_path(model_object *self, void *closure) {
    (void)closure;
    if (!model_ready(self)) return NULL;
    return PyUnicode_DecodeFSDefault(xle_model_path(self->model));
}

static PyObject *model_get_threads(model_object *self, void *closure) {
    (void)closure;
    if (self->threads > 0) return PyLong_FromLong(self->threads);
    Py_RETURN_NONE;
}

static PyObject *model_get_precision(model_object *self, void *closure) {
    (void)closure;
    if (!model_ready(self)) return NULL;
    return PyUnicode_FromString(xle_model_precision(self->model) == XLE_PRECISION_BF16 ? "bf16" : "exact");
}

static int model_set_precision(model_object *self, PyObject *value, void *closure) {
    (void)closure;
    if (!model_ready(self)) return -1;
    const char *s = value && PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : NULL;
    if (!s || (strcmp(s, "exact") && strcmp(s, "bf16"))) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "precision: expected 'exact' or 'bf16'");
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    xle_model_set_precision(self->model, !strcmp(s, "bf16") ? XLE_PRECISION_BF16 : XLE_PRECISION_EXACT);
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS
    return 0;
}

static PyMethodDef model_methods[] = {
    {"tokenize", (PyCFunction)(void (*)(void))model_tokenize, METH_VARARGS | METH_KEYWORDS,
     "tokenize(text, bos=None, special=False) -> list of ids (bos None: as the tokenizer's files say)"},
    {"detokenize", (PyCFunction)(void (*)(void))model_detokenize, METH_VARARGS | METH_KEYWORDS,
     "detokenize(ids, skip_special=True) -> str"},
    {"score", (PyCFunction)(void (*)(void))model_score, METH_VARARGS | METH_KEYWORDS,
     "score(prompt, continuation, per_token=False) -> log p(continuation | prompt), natural log"},
    {"generate", (PyCFunction)(void (*)(void))model_generate, METH_VARARGS | METH_KEYWORDS,
     "generate(prompt, *, n=32, temperature=0.0, top_k=0, seed=0, stop_at_eos=True, top_p=0.0, "
     "repeat_penalty=0.0, repeat_last_n=64) -> the continuation (text for a text prompt, else ids)"},
    {"_logits", (PyCFunction)(void (*)(void))model_logits_raw, METH_VARARGS | METH_KEYWORDS,
     "_logits(text_or_ids, last_only=False) -> (float32 bytes, rows, vocab_size)"},
    {"_edit", (PyCFunction)(void (*)(void))model_edit_raw, METH_VARARGS | METH_KEYWORDS,
     "_edit(method, requests, patch_path, ...) -> dict; writes the patch, leaves the model unchanged"},
    {"_evaluate", (PyCFunction)(void (*)(void))model_evaluate_raw, METH_VARARGS | METH_KEYWORDS,
     "_evaluate(cases_path, run_dir, methods, ...) -> summary dict; writes RUN_DIR"},
    {"_build_stats", (PyCFunction)(void (*)(void))model_build_stats_raw, METH_VARARGS | METH_KEYWORDS,
     "_build_stats(layers, corpus, out_dir, max_tokens=0, max_len=0) -> out_dir"},
    {"fingerprint", (PyCFunction)model_fingerprint, METH_NOARGS,
     "fingerprint() -> the 64-hex-digit hash of the model's configuration and weights"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef model_getset[] = {
    {"config", (getter)model_get_config, NULL, "the model's configuration (dict)", NULL},
    {"path", (getter)model_get_path, NULL, "the path the model was loaded from", NULL},
    {"threads", (getter)model_get_threads, NULL, "threads per compute call (None: the default)", NULL},
    {"precision", (getter)model_get_precision, (setter)model_set_precision,
     "'exact' (default) or 'bf16' products with bf16 weights", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot model_slots[] = {
    {Py_tp_doc, "Model(path, threads=None): a model loaded from an HF folder, a GGUF file or a llama2.c "
                "checkpoint (memory-mapped; the files are never written)."},
    {Py_tp_init, model_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, model_dealloc},
    {Py_tp_traverse, model_traverse},
    {Py_tp_methods, model_methods},
    {Py_tp_getset, model_getset},
    {0, NULL}};

static PyType_Spec model_spec = {"xledit._xledit.Model", sizeof(model_object), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, model_slots};

/* ---- Patch -------------------------------------------------------------------------------- */

typedef struct patch_object {
    PyObject_HEAD
    xle_patch *patch; /* owned */
} patch_object;

static int patch_init(patch_object *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"path", NULL};
    PyObject *path_obj = NULL;
    if (self->patch) { /* as Model: never swapped under a running apply/revert */
        PyErr_SetString(PyExc_TypeError, "Patch is already loaded (create a new Patch)");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&:Patch", kwlist, PyUnicode_FSConverter, &path_obj))
        return -1;
    xle_patch *p = NULL;
    xle_error err = {0};
    xle_status st;
    const char *path = PyBytes_AS_STRING(path_obj);
    Py_BEGIN_ALLOW_THREADS
    st = xle_patch_load(path, &p, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path_obj);
    if (st != XLE_OK) {
        raise_library_error(Py_TYPE(self), &err);
        return -1;
    }
    self->patch = p;
    return 0;
}

static void patch_dealloc(patch_object *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    xle_patch_free(self->patch);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static int patch_traverse(patch_object *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    return 0;
}

/* apply(model) / revert(model): sign +1 or -1. */
static PyObject *patch_change(patch_object *self, PyObject *args, int sign) {
    PyObject *model_obj;
    if (!self->patch) {
        PyErr_SetString(PyExc_ValueError, "the Patch was not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, sign > 0 ? "O:apply" : "O:revert", &model_obj)) return NULL;
    module_state *ms = state_of_type(Py_TYPE(self));
    if (!ms) return NULL;
    PyObject *module = PyType_GetModuleByDef(Py_TYPE(self), &xledit_module_def);
    PyObject *model_type = module ? PyObject_GetAttrString(module, "Model") : NULL;
    if (!model_type) return NULL;
    int ok = PyObject_IsInstance(model_obj, model_type);
    Py_DECREF(model_type);
    if (ok <= 0) {
        if (ok == 0) PyErr_SetString(PyExc_TypeError, "expected an xledit.Model");
        return NULL;
    }
    model_object *m = (model_object *)model_obj;
    if (!model_ready(m)) return NULL;
    xle_error err = {0};
    xle_status st;
    COMPUTE_BEGIN(m)
    st = sign > 0 ? xle_patch_apply(m->model, self->patch, &err) : xle_patch_revert(m->model, self->patch, &err);
    COMPUTE_END(m)
    if (st != XLE_OK) return raise_library_error(Py_TYPE(self), &err);
    Py_RETURN_NONE;
}

static PyObject *patch_apply(patch_object *self, PyObject *args) { return patch_change(self, args, +1); }
static PyObject *patch_revert(patch_object *self, PyObject *args) { return patch_change(self, args, -1); }

static PyObject *patch_get_info(patch_object *self, void *closure) {
    (void)closure;
    const char *info = self->patch ? xle_patch_info(self->patch) : NULL;
    return PyUnicode_FromString(info ? info : "{}");
}

static PyObject *patch_get_layers(patch_object *self, void *closure) {
    (void)closure;
    if (!self->patch) return PyList_New(0);
    const xle_edit_result *r = xle_patch_deltas(self->patch);
    PyObject *list = PyList_New(r->n_deltas);
    for (int i = 0; list && i < r->n_deltas; i++) {
        PyObject *v = PyLong_FromLong(r->deltas[i].layer);
        if (!v) Py_CLEAR(list);
        else PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyMethodDef patch_methods[] = {
    {"apply", (PyCFunction)patch_apply, METH_VARARGS,
     "apply(model): adds the deltas (refused unless the edited tensors are the ones it was made from)"},
    {"revert", (PyCFunction)patch_revert, METH_VARARGS,
     "revert(model): puts the original bytes back (refused unless the model holds the patched values)"},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef patch_getset[] = {
    {"info_json", (getter)patch_get_info, NULL, "the patch's description (JSON text)", NULL},
    {"layers", (getter)patch_get_layers, NULL, "the layers whose down projection it changes", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot patch_slots[] = {
    {Py_tp_doc, "Patch(path): an edit as a file (deltas plus the original bytes), as `xledit patch` uses."},
    {Py_tp_init, patch_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, patch_dealloc},
    {Py_tp_traverse, patch_traverse},
    {Py_tp_methods, patch_methods},
    {Py_tp_getset, patch_getset},
    {0, NULL}};

static PyType_Spec patch_spec = {"xledit._xledit.Patch", sizeof(patch_object), 0,
                                 Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, patch_slots};

/* ---- module ------------------------------------------------------------------------------- */

static PyObject *module_version(PyObject *module, PyObject *unused) {
    (void)module, (void)unused;
    return PyUnicode_FromString(xle_version());
}

static PyObject *module_threads_available(PyObject *module, PyObject *unused) {
    (void)module, (void)unused;
    return PyLong_FromLong(xle_threads_available());
}

/* report(run_dir, format="text") -> str: `xledit report RUN_DIR --format F`. */
static PyObject *module_report(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"run_dir", "format", NULL};
    PyObject *dir_obj = NULL;
    const char *format = "text";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&|s:report", kwlist, PyUnicode_FSConverter, &dir_obj,
                                     &format))
        return NULL;
    int f = -1;
    for (int i = 0; i < XLE_REPORT_FORMAT_COUNT; i++)
        if (!strcmp(format, xle_report_format_ext((xle_report_format)i)) ||
            (i == XLE_REPORT_TEXT && !strcmp(format, "text")))
            f = i;
    if (f < 0) {
        Py_DECREF(dir_obj);
        PyErr_Format(PyExc_ValueError, "format: expected text, md, csv, json or html, got '%s'", format);
        return NULL;
    }
    xle_report *r = NULL;
    char *text = NULL;
    size_t len = 0;
    xle_error err = {0};
    xle_status st;
    const char *dir = PyBytes_AS_STRING(dir_obj);
    Py_BEGIN_ALLOW_THREADS
    st = xle_report_load(dir, &r, &err);
    if (st == XLE_OK) st = xle_report_render(r, (xle_report_format)f, &text, &len, &err);
    xle_report_free(r);
    Py_END_ALLOW_THREADS
    Py_DECREF(dir_obj);
    PyObject *out = st == XLE_OK ? PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "replace")
                                 : raise_error(state_of_module(module), &err);
    free(text);
    return out;
}

static int module_exec(PyObject *module) {
    module_state *st = state_of_module(module);
    st->error_type = PyErr_NewExceptionWithDoc(
        "xledit.Error",
        "A failure reported by libxledit: the message names the file and field; .status is the "
        "library's status name (io, format, arg, unsupported, numeric, not_found).",
        PyExc_RuntimeError, NULL);
    if (!st->error_type || PyModule_AddObjectRef(module, "Error", st->error_type) < 0) return -1;
    PyObject *model_type = PyType_FromModuleAndSpec(module, &model_spec, NULL);
    if (!model_type) return -1;
    int rc = PyModule_AddObjectRef(module, "Model", model_type);
    Py_DECREF(model_type);
    if (rc < 0) return -1;
    PyObject *patch_type = PyType_FromModuleAndSpec(module, &patch_spec, NULL);
    if (!patch_type) return -1;
    rc = PyModule_AddObjectRef(module, "Patch", patch_type);
    Py_DECREF(patch_type);
    if (rc < 0) return -1;
    return PyModule_AddStringConstant(module, "HEADER_VERSION", XLE_VERSION_STRING);
}

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
    Py_VISIT(state_of_module(module)->error_type);
    return 0;
}

static int module_clear(PyObject *module) {
    Py_CLEAR(state_of_module(module)->error_type);
    return 0;
}

static void module_free(void *module) { module_clear((PyObject *)module); }

static PyMethodDef module_methods[] = {
    {"version", module_version, METH_NOARGS, "version() -> the libxledit version linked in"},
    {"report", (PyCFunction)(void (*)(void))module_report, METH_VARARGS | METH_KEYWORDS,
     "report(run_dir, format='text') -> the run's report (text, md, csv, json or html), as `xledit report`"},
    {"threads_available", module_threads_available, METH_NOARGS,
     "threads_available() -> the CPUs this process may run on"},
    {NULL, NULL, 0, NULL}};

static PyModuleDef_Slot module_slots[] = {{Py_mod_exec, module_exec}, {0, NULL}};

static PyModuleDef xledit_module_def = {PyModuleDef_HEAD_INIT, "xledit._xledit",
                                        "The C layer of the xledit package (use `import xledit`).",
                                        sizeof(module_state), module_methods, module_slots, module_traverse,
                                        module_clear, module_free};

PyMODINIT_FUNC PyInit__xledit(void) { return PyModuleDef_Init(&xledit_module_def); }
