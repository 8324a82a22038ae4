/*
 * family_fixture.h: the fixtures tests/reference/make_family_fixtures.py writes for one model
 * family (tests/fixtures/families/NAME: manifest.json with token sequences and tokenizer test
 * vectors, golden.bin with the reference logits of every sequence), and the checks the family
 * tests share: logits comparison, the finite-difference loss, tensor-by-tensor file equality.
 * Used by test_families.c and test_families_rope.c. Header-only like check.h.
 */
#ifndef XLE_FAMILY_FIXTURE_H
#define XLE_FAMILY_FIXTURE_H

#include <jansson.h>
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "formats/safetensors.h"
#include "test_files.h"
#include "xledit.h"

#define FAMILY_FIX_DIR XLE_SOURCE_DIR "/tests/fixtures/families/"

/* The fixtures of one family; owned by the test, released with family_fix_free. */
typedef struct family_fix {
    const char *name; /* folder under FAMILY_FIX_DIR */
    json_t *manifest;
    float *golden;    /* for each sequence, [len x V] */
} family_fix;

static inline int fix_n_seqs(const family_fix *fx) {
    return (int)json_array_size(json_object_get(fx->manifest, "sequences"));
}

/* Sequence s as ids (caller frees); *n its length. */
static inline int32_t *fix_seq_ids(const family_fix *fx, int s, int *n) {
    json_t *a = json_array_get(json_object_get(fx->manifest, "sequences"), (size_t)s);
    *n = (int)json_array_size(a);
    int32_t *ids = malloc((size_t)*n * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return ids;
}

/* The golden logits of sequence s. */
static inline const float *fix_golden_of(const family_fix *fx, int s, int V) {
    size_t off = 0;
    for (int i = 0; i < s; i++) {
        int n;
        free(fix_seq_ids(fx, i, &n));
        off += (size_t)n * (size_t)V;
    }
    return fx->golden + off;
}

/* Loads family name's manifest and golden logits and checks that their sizes agree; 0 (with a
 * line on stderr naming prog and the file) on failure. */
static inline int family_fix_load(family_fix *fx, const char *name, const char *prog) {
    char path[256];
    json_error_t jerr;
    size_t size = 0;
    memset(fx, 0, sizeof *fx);
    fx->name = name;
    snprintf(path, sizeof path, FAMILY_FIX_DIR "%s/manifest.json", name);
    fx->manifest = json_load_file(path, 0, &jerr);
    snprintf(path, sizeof path, FAMILY_FIX_DIR "%s/golden.bin", name);
    fx->golden = test_read_file(path, &size);
    if (!fx->manifest || !fx->golden) {
        fprintf(stderr, "%s: cannot read the fixtures under %s%s\n", prog, FAMILY_FIX_DIR, name);
        return 0;
    }
    size_t want = 0;
    const size_t V = (size_t)json_integer_value(json_object_get(fx->manifest, "vocab_size"));
    for (int s = 0; s < fix_n_seqs(fx); s++) {
        int n;
        free(fix_seq_ids(fx, s, &n));
        want += (size_t)n * V;
    }
    if (size / sizeof(float) != want) {
        fprintf(stderr, "%s: %s/golden.bin holds %zu floats, the manifest implies %zu\n", prog, name,
                size / sizeof(float), want);
        return 0;
    }
    return 1;
}

static inline void family_fix_free(family_fix *fx) {
    json_decref(fx->manifest);
    free(fx->golden);
    memset(fx, 0, sizeof *fx);
}

static inline double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; /* NaN counts as worst */
    }
    return worst;
}

/* ---- the backward pass, by central finite differences ------------------------------------- */

static const int k_logit_rows[] = {3, 7, 11};
#define N_ROWS 3

/* L = Σ C ⊙ logits at k_logit_rows of sequence 1 (12 tokens). */
static inline double fd_loss(xle_model *m, const int32_t *ids, int n, const float *C) {
    const int V = xle_model_config(m)->vocab_size;
    int starts[2] = {0, n};
    xle_batch b = {.n_seqs = 1, .tokens = ids, .seq_start = starts};
    xle_forward_opts o = {.logit_rows = k_logit_rows, .n_logit_rows = N_ROWS};
    float *logits = malloc((size_t)N_ROWS * (size_t)V * sizeof *logits);
    xle_error err;
    double s = NAN;
    if (xle_forward(m, &b, &o, logits, &err) == XLE_OK) {
        s = 0;
        for (int i = 0; i < N_ROWS * V; i++) s += (double)C[i] * logits[i];
    }
    free(logits);
    return s;
}

static inline int close_enough(double num, double ana) { return fabs(num - ana) <= 5e-3 + 2e-2 * fabs(ana); }

/* ---- saving ------------------------------------------------------------------------------- */

/* Every tensor of safetensors file a is in b with the same name, dtype, shape and bytes (and b
 * has no others). */
static inline int same_tensors(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    uint8_t *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    xle_safetensors *sa = NULL, *sb = NULL;
    xle_error err = {0};
    int same = x && y && xle_safetensors_parse(a, x, na, &sa, &err) == XLE_OK &&
               xle_safetensors_parse(b, y, nb, &sb, &err) == XLE_OK && sa->n == sb->n;
    for (int i = 0; same && i < sa->n; i++) {
        const xle_st_entry *ea = &sa->entries[i], *eb = xle_safetensors_find(sb, ea->name);
        same = eb && ea->ndim == eb->ndim && memcmp(ea->shape, eb->shape, sizeof ea->shape) == 0 &&
               strcmp(ea->dtype, eb->dtype) == 0 && ea->end - ea->begin == eb->end - eb->begin &&
               memcmp(ea->data, eb->data, ea->end - ea->begin) == 0;
        if (!same) fprintf(stderr, "     %s: %s differs\n", b, ea->name);
    }
    xle_safetensors_free(sa);
    xle_safetensors_free(sb);
    free(x);
    free(y);
    return same;
}

/* The logits at every position of sequence 1 (caller frees). */
static inline float *fix_seq1_logits(const family_fix *fx, xle_model *m) {
    const int V = xle_model_config(m)->vocab_size;
    int n;
    int32_t *ids = fix_seq_ids(fx, 1, &n);
    int starts[2] = {0, n};
    xle_batch b = {.n_seqs = 1, .tokens = ids, .seq_start = starts};
    float *out = malloc((size_t)n * (size_t)V * sizeof *out);
    xle_error err = {0};
    CHECK_OK(xle_forward(m, &b, NULL, out, &err), &err);
    free(ids);
    return out;
}

#endif
