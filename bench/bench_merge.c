/*
 * bench_merge.c: merge throughput and memory on three Llama-3.2-1B-shaped bf16 models (d 2048,
 * ffn 8192, 16 layers, 32 heads, 8 KV heads, vocab 128256, tied embeddings: 2.47 GB each).
 *
 * Writes a base and two fine-tunes (base + small random task vectors) as Hugging Face folders
 * through the library's streaming safetensors writer (never holding a tensor), then measures
 * in the same run:
 *   - the disk: write bandwidth (1 GiB written and fsynced) and cold read bandwidth (the same
 *     file read back with read() after its pages were dropped from the page cache);
 *   - TIES (density 0.2) with cold inputs (every model file dropped from the page cache first),
 *     then again warm (inputs cached), and linear warm: wall time, MB/s of input (base + models),
 *     peak RSS. Each merge runs in a fresh process (this program re-executed) so that its
 *     ru_maxrss is the merge's alone.
 * Everything is removed at the end unless --keep. Needs about 4 x 2.5 GB + 1 GiB of disk.
 *
 *   bench_merge [--dir DIR] [--keep] [--skip-warm]
 */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "formats/formats_internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static xle_config llama32_1b_config(void) {
    xle_config c;
    memset(&c, 0, sizeof c);
    c.arch = XLE_ARCH_LLAMA;
    c.dim = 2048;
    c.ffn_dim = 8192;
    c.n_layers = 16;
    c.n_heads = 32;
    c.n_kv_heads = 8;
    c.head_dim = 64;
    c.vocab_size = 128256;
    c.max_seq_len = 131072;
    c.norm_eps = 1e-5f;
    c.rope_theta = 500000.0f;
    c.tied_embeddings = 1;
    c.bos_id = 128000;
    c.eos_id = 128001;
    return c;
}

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform value in [-0.5, 0.5) from (seed, tensor, index). */
static inline float unit(uint64_t seed, uint64_t tensor, uint64_t i) {
    uint64_t h = mix64(seed * 0x9E3779B97F4A7C15ull ^ mix64(tensor << 40 ^ i));
    return (float)(h >> 40) * (1.0f / 16777216.0f) - 0.5f;
}

/* ---- model files --------------------------------------------------------------------------- */

typedef struct tensor_desc {
    char name[96];
    int ndim;
    int64_t shape[2];
    int64_t numel;
    int norm;
} tensor_desc;

static int list_tensors(const xle_config *c, tensor_desc *out) {
    int n = 0;
    for (int k = 0; k < XLE_W_KIND_COUNT; k++) {
        if (k == XLE_W_ROPE_FREQS || k == XLE_W_LM_HEAD || (k >= XLE_W_BQ && k <= XLE_W_BO)) continue;
        if (xle_family_of(XLE_ARCH_LLAMA)->has[k] == XLE_ABSENT) continue; /* other families' kinds */
        int nl = xle_wkind_per_layer((xle_wkind)k) ? c->n_layers : 1;
        for (int l = 0; l < nl; l++) {
            tensor_desc *t = &out[n++];
            xle_weight_name(XLE_FORMAT_HF, (xle_wkind)k, l, t->name, sizeof t->name);
            xle_weight_expected_shape(c, (xle_wkind)k, &t->ndim, t->shape);
            t->numel = t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1);
            t->norm = t->ndim == 1;
        }
    }
    return n;
}

/* model 0 is the base; model m > 0 = base + a task vector 10x smaller than the weights. */
static int write_model(const char *dir, int model, uint64_t *bytes, xle_error *err) {
    xle_config c = llama32_1b_config();
    mkdir(dir, 0755);
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (xle_hf_write_config(&c, XLE_BF16, path, err) != XLE_OK) return 0;
    tensor_desc *ts = calloc(256, sizeof *ts);
    xle_st_tensor *st = calloc(256, sizeof *st);
    int n = list_tensors(&c, ts);
    for (int i = 0; i < n; i++) {
        st[i].name = ts[i].name;
        st[i].dtype = "BF16";
        st[i].ndim = ts[i].ndim;
        st[i].shape[0] = ts[i].shape[0];
        st[i].shape[1] = ts[i].shape[1];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    xle_st_stream *s;
    int ok = xle_st_stream_open(path, st, (size_t)n, NULL, &s, err) == XLE_OK;
    const int64_t chunk = (int64_t)1 << 22;
    uint16_t *buf = malloc((size_t)chunk * sizeof *buf);
    for (int i = 0; ok && i < n; i++) {
        for (int64_t first = 0; ok && first < ts[i].numel; first += chunk) {
            int64_t cnt = ts[i].numel - first < chunk ? ts[i].numel - first : chunk;
#pragma omp parallel for schedule(static)
            for (int64_t j = 0; j < cnt; j++) {
                uint64_t idx = (uint64_t)(first + j);
                float v = ts[i].norm ? 1.0f + 0.1f * unit(0, (uint64_t)i, idx) : 0.04f * unit(0, (uint64_t)i, idx);
                if (model > 0) v += 0.004f * unit((uint64_t)model, (uint64_t)i, idx);
                buf[j] = xle_f32_to_bf16(v);
            }
            ok = xle_st_stream_write(s, buf, (size_t)cnt * sizeof *buf, err) == XLE_OK;
        }
    }
    uint64_t data = 0;
    if (ok) ok = xle_st_stream_finish(s, &data, err) == XLE_OK;
    else xle_st_stream_abort(s);
    *bytes = data;
    free(buf);
    free(ts);
    free(st);
    return ok;
}

/* Whether dir already holds a model of this benchmark (kept by an earlier --keep run). */
static int model_present(const char *dir, double *mb) {
    xle_model *m;
    xle_error err = {0};
    if (xle_model_load(dir, &m, &err) != XLE_OK) return 0;
    const xle_config *c = xle_model_config(m);
    xle_config want = llama32_1b_config();
    int ok = c->dim == want.dim && c->n_layers == want.n_layers && c->vocab_size == want.vocab_size &&
             c->tied_embeddings && xle_model_weight_dtype(m) == XLE_BF16;
    *mb = (double)xle_tensor_nbytes(&xle_model_weights(m)->tok_embd) / 1e6;
    xle_model_free(m);
    return ok;
}

/* Drops a file's pages from the page cache (after an fsync they are clean). */
static void drop_cache(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

/* ---- the disk ------------------------------------------------------------------------------- */

static void disk_bandwidth(const char *dir, double *write_mbs, double *read_mbs) {
    char path[1024];
    snprintf(path, sizeof path, "%s/bandwidth.bin", dir);
    const size_t block = (size_t)8 << 20, total = (size_t)1 << 30;
    uint8_t *buf = malloc(block);
    for (size_t i = 0; i < block; i++) buf[i] = (uint8_t)mix64(i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    double t0 = now_s();
    for (size_t done = 0; done < total; done += block)
        if (write(fd, buf, block) != (ssize_t)block) break;
    fsync(fd);
    *write_mbs = (double)total / 1e6 / (now_s() - t0);
    close(fd);
    drop_cache(path);
    fd = open(path, O_RDONLY);
    t0 = now_s();
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf, block);
        if (r <= 0) break;
        got += (size_t)r;
    }
    *read_mbs = (double)got / 1e6 / (now_s() - t0);
    close(fd);
    unlink(path);
    free(buf);
}

/* ---- one merge in a fresh process ------------------------------------------------------------- */

/* Child: bench_merge --child METHOD OUT BASE A B; prints "input_bytes output_bytes passes seconds". */
static int child_main(int argc, char **argv) {
    if (argc != 7) return 2;
    xle_merge_opts o;
    xle_merge_opts_default(&o);
    xle_merge_method_parse(argv[2], &o.method);
    o.base = argv[4];
    const char *models[2] = {argv[5], argv[6]};
    o.models = models;
    o.n_models = 2;
    o.density = 0.2;
    xle_merge_stats st;
    xle_error err = {0};
    double t0 = now_s();
    if (xle_merge(&o, argv[3], &st, &err) != XLE_OK) {
        fprintf(stderr, "bench_merge: %s\n", err.msg);
        return 1;
    }
    printf("%llu %llu %d %.3f\n", (unsigned long long)st.input_bytes, (unsigned long long)st.output_bytes,
           st.passes, now_s() - t0);
    return 0;
}

typedef struct merge_result {
    double seconds, cpu_s, in_mb, out_mb, rss_mb;
    int passes;
} merge_result;

static int run_merge(const char *self, const char *method, const char *out, const char *base,
                     const char *a, const char *b, merge_result *r) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(self, self, "--child", method, out, base, a, b, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[256] = {0};
    ssize_t n = read(fds[0], line, sizeof line - 1);
    close(fds[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    unsigned long long in = 0, outb = 0;
    if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        sscanf(line, "%llu %llu %d %lf", &in, &outb, &r->passes, &r->seconds) != 4)
        return 0;
    r->in_mb = (double)in / 1e6;
    r->out_mb = (double)outb / 1e6;
    r->rss_mb = (double)ru.ru_maxrss / 1024.0;
    r->cpu_s = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
               1e-6 * (double)ru.ru_stime.tv_usec;
    return 1;
}

static void print_merge(const char *what, const merge_result *r) {
    printf("%-24s %6.1f s wall %6.1f s CPU  %5.0f MB/s of input  (%.0f MB in, %.0f MB out, %d passes)  "
           "peak RSS %.0f MB\n", what, r->seconds, r->cpu_s, r->in_mb / r->seconds, r->in_mb, r->out_mb,
           r->passes, r->rss_mb);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child") == 0) return child_main(argc, argv);
    const char *dir = "/tmp/xle-bench-merge";
    int keep = 0, skip_warm = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--keep")) keep = 1;
        else if (!strcmp(argv[i], "--skip-warm")) skip_warm = 1;
        else {
            fprintf(stderr, "usage: bench_merge [--dir DIR] [--keep] [--skip-warm]\n");
            return 2;
        }
    }
    char self[1024];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) return 1;
    self[sl] = 0;
    mkdir(dir, 0755);
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0) {
        double free_gb = (double)vfs.f_bavail * (double)vfs.f_frsize / 1e9;
        printf("disk free at %s: %.1f GB (need ~11.5)\n", dir, free_gb);
        if (free_gb < 12) {
            fprintf(stderr, "bench_merge: not enough free disk at %s\n", dir);
            return 1;
        }
    }
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(la);
    }
    printf("threads: %d, load average at start: %.1f\n", omp_get_max_threads(), load[0]);
    char paths[3][1024], out[1100];
    const char *names[3] = {"base", "ft_a", "ft_b"};
    double model_mb = 0;
    for (int m = 0; m < 3; m++) {
        snprintf(paths[m], sizeof paths[m], "%s/%s", dir, names[m]);
        xle_error err = {0};
        uint64_t bytes = 0;
        double emb_mb;
        if (model_present(paths[m], &emb_mb)) {
            struct stat sb;
            char f[1100];
            snprintf(f, sizeof f, "%.1000s/model.safetensors", paths[m]);
            model_mb = stat(f, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
            printf("reusing %s (%.0f MB)\n", paths[m], model_mb);
            continue;
        }
        double t0 = now_s();
        if (!write_model(paths[m], m, &bytes, &err)) {
            fprintf(stderr, "bench_merge: %s\n", err.msg);
            return 1;
        }
        model_mb = (double)bytes / 1e6;
        printf("wrote %s: %.0f MB in %.1f s (generation + write + fsync)\n", paths[m], model_mb, now_s() - t0);
    }
    double wmbs, rmbs;
    disk_bandwidth(dir, &wmbs, &rmbs);
    printf("disk: write %.0f MB/s (1 GiB + fsync), cold read %.0f MB/s (read() after dropping the cache)\n",
           wmbs, rmbs);
    char files[3][1200];
    for (int m = 0; m < 3; m++) {
        snprintf(files[m], sizeof files[m], "%.1000s/model.safetensors", paths[m]);
        drop_cache(files[m]);
    }
    merge_result r;
    snprintf(out, sizeof out, "%s/merged_ties_cold", dir);
    if (!run_merge(self, "ties", out, paths[0], paths[1], paths[2], &r)) return 1;
    print_merge("ties, cold inputs", &r);
    printf("    input read at most once from disk: cold-read bound %.1f s; output %.0f MB at write bandwidth %.1f s\n",
           r.in_mb / rmbs, r.out_mb, r.out_mb / wmbs);
    printf("    peak RSS %.0f MB vs one model %.0f MB (%.1f%%)\n", r.rss_mb, model_mb, 100 * r.rss_mb / model_mb);
    xle_path_remove(out);
    if (!skip_warm) {
        snprintf(out, sizeof out, "%s/merged_ties_warm", dir);
        if (!run_merge(self, "ties", out, paths[0], paths[1], paths[2], &r)) return 1;
        print_merge("ties, warm inputs", &r);
        xle_path_remove(out);
        snprintf(out, sizeof out, "%s/merged_linear_warm", dir);
        if (!run_merge(self, "linear", out, paths[0], paths[1], paths[2], &r)) return 1;
        print_merge("linear, warm inputs", &r);
        xle_path_remove(out);
        snprintf(out, sizeof out, "%s/merged_dare_warm", dir);
        if (!run_merge(self, "dare-ties", out, paths[0], paths[1], paths[2], &r)) return 1;
        print_merge("dare-ties, warm inputs", &r);
        xle_path_remove(out);
    }
    if (!keep) {
        for (int m = 0; m < 3; m++) xle_path_remove(paths[m]);
        rmdir(dir);
    }
    return 0;
}
