/*
 * test_torchbin.c: PyTorch checkpoints (pytorch_model.bin) in Hugging Face folders. The
 * fixtures come from tests/reference/make_torchbin_fixtures.py (torch.save of the llama_gqa
 * model's weights; single F32 file with views at storage offsets, two BF16 shards with an
 * index; pickles that call os.system, builtins.eval, subprocess.Popen; a transposed tensor,
 * an int64 tensor). Checks: the .bin folders give bitwise the logits of their safetensors
 * twins; safetensors wins when a folder has both; saving a .bin model writes safetensors
 * (renamed shards and index) with the same logits; every malicious pickle is refused with one
 * line naming the file and the global, and its payload never runs; corrupt archives (each
 * truncation, flipped bytes) fail cleanly.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_files.h"
#include "formats/torchbin.h"
#include "xledit.h"

#define MODELS XLE_SOURCE_DIR "/tests/fixtures/models/llama_gqa/"
#define BAD XLE_SOURCE_DIR "/tests/fixtures/torchbin/"
#define PWNED "/tmp/xledit-torchbin-pwned"

static const int32_t SEQ[] = {1, 17, 250, 3, 99, 42, 7, 288, 5, 64, 128, 2};
#define SEQ_LEN ((int)(sizeof SEQ / sizeof SEQ[0]))

static char g_tmp[256];

static float *logits_of(const char *path) {
    xle_model *m = NULL;
    xle_error err = {0};
    if (xle_model_load(path, &m, &err) != XLE_OK) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        return NULL;
    }
    int V = xle_model_config(m)->vocab_size;
    float *out = malloc((size_t)SEQ_LEN * (size_t)V * sizeof *out);
    int starts[2] = {0, SEQ_LEN};
    xle_batch b = {1, SEQ, starts};
    xle_forward_opts o = {0};
    if (out && xle_forward(m, &b, &o, out, &err) != XLE_OK) {
        fprintf(stderr, "forward %s: %s\n", path, err.msg);
        free(out);
        out = NULL;
    }
    xle_model_free(m);
    return out;
}

static int same_logits(const char *a, const char *b) {
    float *x = logits_of(a), *y = logits_of(b);
    int same = x && y && memcmp(x, y, (size_t)SEQ_LEN * 300 * sizeof(float)) == 0;
    free(x);
    free(y);
    return same;
}

static void test_single_and_sharded(void) {
    CHECK_MSG(same_logits(MODELS "hf_f32", MODELS "hf_bin_f32"), "single F32 .bin");
    CHECK_MSG(same_logits(MODELS "hf_bf16", MODELS "hf_bin_bf16_sharded"), "sharded BF16 .bin");
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(MODELS "hf_bin_bf16_sharded", &m, &err), &err);
    if (m) CHECK(xle_model_weight_dtype(m) == XLE_BF16);
    xle_model_free(m);
}

static void link_into(const char *dir, const char *src) {
    char dst[600];
    const char *base = strrchr(src, '/') + 1;
    snprintf(dst, sizeof dst, "%s/%s", dir, base);
    CHECK(symlink(src, dst) == 0);
}

/* A folder with model.safetensors (F32) and pytorch_model-*.bin (BF16): the safetensors are read. */
static void test_safetensors_first(void) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/both", g_tmp);
    CHECK(mkdir(dir, 0755) == 0);
    link_into(dir, MODELS "hf_f32/config.json");
    link_into(dir, MODELS "hf_f32/model.safetensors");
    link_into(dir, MODELS "hf_bin_bf16_sharded/pytorch_model.bin.index.json");
    link_into(dir, MODELS "hf_bin_bf16_sharded/pytorch_model-00001-of-00002.bin");
    link_into(dir, MODELS "hf_bin_bf16_sharded/pytorch_model-00002-of-00002.bin");
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(dir, &m, &err), &err);
    if (m) CHECK(xle_model_weight_dtype(m) == XLE_F32);
    xle_model_free(m);
    CHECK(same_logits(dir, MODELS "hf_f32"));
}

/* Saving a model read from .bin shards writes safetensors under transformers' names. */
static void test_save_as_safetensors(void) {
    char out[300], p[400];
    snprintf(out, sizeof out, "%s/saved", g_tmp);
    xle_model *m = NULL;
    xle_error err = {0};
    CHECK_OK(xle_model_load(MODELS "hf_bin_bf16_sharded", &m, &err), &err);
    if (!m) return;
    CHECK_OK(xle_model_save(m, out, &err), &err);
    xle_model_free(m);
    const char *want[] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                          "model.safetensors.index.json", "config.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", out, want[i]);
        CHECK_MSG(access(p, F_OK) == 0, "%s missing", want[i]);
    }
    snprintf(p, sizeof p, "%s/pytorch_model-00001-of-00002.bin", out);
    CHECK(access(p, F_OK) != 0);
    CHECK(same_logits(out, MODELS "hf_bf16"));
}

/* Loads a .bin folder made of config.json and one archive; returns the status, err filled. */
static xle_status load_bin(const char *file, xle_error *err) {
    char dir[300];
    static int n;
    snprintf(dir, sizeof dir, "%s/bad%d", g_tmp, n++);
    if (mkdir(dir, 0755) != 0) return XLE_ERR_IO;
    link_into(dir, MODELS "hf_f32/config.json");
    char dst[400];
    snprintf(dst, sizeof dst, "%s/pytorch_model.bin", dir);
    if (symlink(file, dst) != 0) return XLE_ERR_IO;
    xle_model *m = NULL;
    xle_status st = xle_model_load(dir, &m, err);
    xle_model_free(m);
    return st;
}

static void test_malicious_refused(void) {
    static const struct { const char *file, *global; } cases[] = {
        {BAD "os_system.bin", "refused global posix.system"},
        {BAD "builtins_eval.bin", "refused global builtins.eval"},
        {BAD "subprocess.bin", "refused global subprocess.Popen"},
    };
    unlink(PWNED);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        xle_error err = {0};
        xle_status st = load_bin(cases[i].file, &err);
        CHECK(st == XLE_ERR_FORMAT);
        CHECK_MSG(strstr(err.msg, cases[i].global) && strstr(err.msg, "pytorch_model.bin") &&
                  !strchr(err.msg, '\n'), "message: %s", err.msg);
    }
    CHECK_MSG(access(PWNED, F_OK) != 0, "a payload ran");
}

static void test_unsupported_tensors(void) {
    xle_error err = {0};
    CHECK(load_bin(BAD "transposed.bin", &err) == XLE_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "non-contiguous"), "%s", err.msg);
    CHECK(load_bin(BAD "i64.bin", &err) == XLE_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(err.msg, "torch.LongStorage"), "%s", err.msg);
}

/* Every truncation of an archive and single flipped bytes: an error or a parse, never a crash
 * (ASan checks the reads). Under the sanitizers every 7th length only. */
static void test_corrupt_archives(void) {
    size_t size = 0;
    uint8_t *full = test_read_file(BAD "transposed.bin", &size);
    CHECK(full != NULL);
    if (!full) return;
#ifdef XLE_SANITIZED
    const size_t step = 7;
#else
    const size_t step = 1;
#endif
    int refused = 0;
    for (size_t n = 0; n < size; n += step) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, full, n);
        xle_safetensors *st = NULL;
        xle_error err = {0};
        if (xle_torchbin_parse("t.bin", copy, n, &st, &err) == XLE_OK) xle_safetensors_free(st);
        else refused++;
        free(copy);
    }
    CHECK(refused > 0);
    for (size_t at = 0; at < size; at += step) {
        uint8_t *copy = malloc(size);
        memcpy(copy, full, size);
        copy[at] ^= 0xA5;
        xle_safetensors *st = NULL;
        xle_error err = {0};
        if (xle_torchbin_parse("t.bin", copy, size, &st, &err) == XLE_OK) xle_safetensors_free(st);
        free(copy);
    }
    free(full);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/xle_torchbin_%d", (int)getpid());
    if (mkdir(g_tmp, 0755) != 0) return 1;
    RUN(test_single_and_sharded);
    RUN(test_safetensors_first);
    RUN(test_save_as_safetensors);
    RUN(test_malicious_refused);
    RUN(test_unsupported_tensors);
    RUN(test_corrupt_archives);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return check_summary();
}
