/*
 * train.c: xle_train, the training loop: tokenized corpus -> packed batches -> forward with
 * kept activations -> next-token cross-entropy and its gradient -> backward into the weight
 * gradients -> global-norm clipping -> AdamW with warmup + cosine learning rate. Checkpoints
 * (weights, moments, step, data cursor, rng) are written every checkpoint_every steps and at
 * the end, so --resume continues bit for bit; the finished model is written as a Hugging Face
 * folder (export_hf.c). Every reduction runs in a fixed order, so a run is deterministic for
 * a given seed and thread count.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "formats/formats_internal.h"
#include "train/train_internal.h"

/* ---- loss ---------------------------------------------------------------------------------- */

xle_status xle_train_loss_grad(xle_model *m, xle_acts *acts, const xle_train_batch *b, float *logits,
                               xle_grads *grads, double *loss, xle_error *err) {
    const int T = b->n_tokens, V = xle_model_config(m)->vocab_size;
    xle_batch batch = {b->n_seqs, b->tokens, b->seq_start};
    xle_forward_opts fo;
    memset(&fo, 0, sizeof fo);
    fo.acts = grads ? acts : NULL;
    xle_status st = xle_forward(m, &batch, &fo, logits, err);
    if (st != XLE_OK) return st;
    double *row_loss = malloc((size_t)T * sizeof(double));
    if (!row_loss) return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
    const float inv_n = 1.0f / (float)T;
    /* Rows are independent; each thread writes its own rows, the sum is serial below. */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *z = logits + (int64_t)t * V;
        float mx = z[0];
        for (int j = 1; j < V; j++)
            if (z[j] > mx) mx = z[j];
        const int y = b->targets[t];
        const float zy = z[y] - mx;
        /* exponentials in float (the hot loop), their sum in double */
        double sum = 0;
        for (int j = 0; j < V; j++) {
            z[j] = expf(z[j] - mx);
            sum += z[j];
        }
        row_loss[t] = log(sum) - zy;
        if (grads) {
            /* d loss / d z = (softmax(z) - onehot(y)) / T */
            const float scale = (float)(1.0 / sum) * inv_n;
            for (int j = 0; j < V; j++) z[j] *= scale;
            z[y] -= inv_n;
        }
    }
    double total = 0;
    for (int t = 0; t < T; t++) total += row_loss[t];
    free(row_loss);
    *loss = total / T;
    if (!grads) return XLE_OK;
    return xle_backward(m, acts, logits, 0, NULL, grads, err);
}

/* ---- the run ------------------------------------------------------------------------------- */

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static xle_status make_dir(const char *dir, xle_error *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    if (!xle_path_is_dir(dir)) return xle_fail(err, XLE_ERR_IO, "%s: exists and is not a folder", dir);
    return XLE_OK;
}

/* Keeps the log lines of steps <= step (a resumed run rewrites what came after its checkpoint). */
static xle_status log_truncate(const char *path, int64_t step, xle_error *err) {
    if (!xle_path_exists(path)) return XLE_OK;
    char *data;
    size_t len;
    xle_status st = xle_read_whole_file(path, &data, &len, err);
    if (st != XLE_OK) return st;
    size_t keep = 0;
    for (size_t pos = 0; pos < len;) {
        size_t end = pos;
        while (end < len && data[end] != '\n') end++;
        if (end == len) break; /* a torn last line is dropped */
        char *num_end;
        long long s = strtoll(data + pos, &num_end, 10);
        if (num_end != data + pos && s > step) break;
        keep = end + 1;
        pos = end + 1;
    }
    free(data);
    if (truncate(path, (off_t)keep) != 0)
        return xle_fail(err, XLE_ERR_IO, "%s: cannot truncate: %s", path, strerror(errno));
    return XLE_OK;
}

typedef struct run {
    const xle_train_hparams *hp;
    const xle_train_opts *opts;
    xle_tokenizer *tok;
    xle_train_data data;
    xle_model *model;
    xle_grads *grads;
    xle_acts *acts;
    xle_param *params;
    int n_params;
    float *moments, *logits;
    xle_train_batch batch;
    char *hp_json, *ckpt_dir, *ckpt_path, *log_path;
    uint64_t data_hash;
    FILE *log;
} run;

static void run_free(run *r) {
    if (r->log) fclose(r->log);
    xle_tokenizer_free(r->tok);
    xle_train_data_free(&r->data);
    xle_model_free(r->model);
    xle_grads_free(r->grads);
    xle_acts_free(r->acts);
    free(r->params);
    free(r->moments);
    free(r->logits);
    xle_train_batch_free(&r->batch);
    free(r->hp_json);
    free(r->ckpt_dir);
    free(r->ckpt_path);
    free(r->log_path);
}

static xle_status run_setup(run *r, xle_error *err) {
    const xle_train_hparams *hp = r->hp;
    const xle_train_opts *o = r->opts;
    xle_status st = xle_tokenizer_load(o->tokenizer, &r->tok, err);
    if (st != XLE_OK) return st;
    char *text, *tok_bytes;
    size_t len, tok_len;
    if ((st = xle_read_whole_file(o->corpus, &text, &len, err))) return st;
    if ((st = xle_read_whole_file(o->tokenizer, &tok_bytes, &tok_len, err))) {
        free(text);
        return st;
    }
    r->data_hash = hash_bytes(hash_bytes(1469598103934665603ull, text, len), tok_bytes, tok_len);
    free(tok_bytes);
    st = xle_train_data_build(r->tok, text, len, hp->max_seq_len, &r->data, err);
    free(text);
    if (st != XLE_OK) {
        /* name the corpus in the message */
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return xle_fail(err, st, "%s: %s", o->corpus, msg);
    }
    xle_config cfg;
    xle_train_model_config(hp, xle_tokenizer_vocab_size(r->tok), xle_tokenizer_bos_id(r->tok),
                           xle_tokenizer_eos_id(r->tok), &cfg);
    if (o->init) {
        /* fine-tuning: start from the model's weights; a resume must start from the same one */
        char fingerprint[65];
        if ((st = xle_train_model_from(o->init, &cfg, &r->model, fingerprint, err))) return st;
        r->data_hash = hash_bytes(r->data_hash, fingerprint, 64);
    } else if ((st = xle_model_new(&cfg, hp->seed, hp->init_std, &r->model, err))) {
        return st;
    }
    if ((st = xle_grads_new(r->model, &r->grads, err))) return st;
    if ((st = xle_params_collect(r->model, r->grads, &r->params, &r->n_params, &r->moments, err))) return st;
    r->acts = xle_acts_new();
    int max_rows = hp->batch_tokens > hp->max_seq_len ? hp->batch_tokens : hp->max_seq_len;
    r->logits = malloc((size_t)max_rows * (size_t)cfg.vocab_size * sizeof(float));
    r->hp_json = xle_train_hparams_json(hp);
    r->ckpt_dir = xle_path_join(o->out_dir, "checkpoint");
    r->ckpt_path = r->ckpt_dir ? xle_path_join(r->ckpt_dir, "state.ckpt") : NULL;
    r->log_path = xle_path_join(o->out_dir, "train_log.tsv");
    if (!r->acts || !r->logits || !r->hp_json || !r->ckpt_path || !r->log_path)
        return xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
    return XLE_OK;
}

static xle_status save_checkpoint(run *r, const xle_train_state *s, xle_error *err) {
    return xle_checkpoint_save(r->ckpt_path, r->params, r->n_params, s, r->hp_json, r->data_hash, err);
}

xle_status xle_train(const xle_train_hparams *hp, const xle_train_opts *o, xle_error *err) {
    xle_status st = xle_train_hparams_validate(hp, "train config", err);
    if (st != XLE_OK) return st;
    if (!o || !o->corpus || !o->tokenizer || !o->out_dir)
        return xle_fail(err, XLE_ERR_ARG, "train: corpus, tokenizer and output folder are required");
    run r;
    memset(&r, 0, sizeof r);
    r.hp = hp;
    r.opts = o;
    xle_train_state s;
    memset(&s, 0, sizeof s);
    xle_rng_seed(&s.rng, hp->seed);

    if ((st = run_setup(&r, err))) goto done;
    if ((st = make_dir(o->out_dir, err)) || (st = make_dir(r.ckpt_dir, err))) goto done;
    if (o->resume) {
        st = xle_checkpoint_load(r.ckpt_path, r.params, r.n_params, &s, r.hp_json, r.data_hash, err);
        if (st == XLE_ERR_IO && !xle_path_exists(r.ckpt_path))
            st = xle_fail(err, XLE_ERR_ARG, "%s: no checkpoint to resume from", r.ckpt_path);
        if (st != XLE_OK) goto done;
        if ((st = log_truncate(r.log_path, s.step, err))) goto done;
    } else if (xle_path_exists(r.ckpt_path)) {
        st = xle_fail(err, XLE_ERR_ARG, "%s: already holds a training run (use --resume to continue it, "
                      "or another folder)", o->out_dir);
        goto done;
    }
    {
        json_t *hj = xle_train_hparams_to_json(hp);
        char *p = xle_path_join(o->out_dir, "train_config.json");
        st = hj && p ? xle_json_write_atomic(hj, p, err) : xle_fail(err, XLE_ERR_NOMEM, "train: out of memory");
        json_decref(hj);
        free(p);
        if (st != XLE_OK) goto done;
    }
    r.log = fopen(r.log_path, o->resume ? "a" : "w");
    if (!r.log) {
        st = xle_fail(err, XLE_ERR_IO, "%s: cannot open: %s", r.log_path, strerror(errno));
        goto done;
    }
    if (!o->resume || ftell(r.log) == 0) fprintf(r.log, "step\tlr\tloss\tgrad_norm\ttokens\tseconds\n");

    const double t0 = now_s();
    const int64_t first_step = s.step;
    double run_tokens = 0;
    while (s.step < hp->steps) {
        xle_grads_zero(r.grads);
        if ((st = xle_train_batch_next(&r.data, hp->seed, hp->batch_tokens, &s.cursor, &r.batch, err))) goto done;
        double loss;
        if ((st = xle_train_loss_grad(r.model, r.acts, &r.batch, r.logits, r.grads, &loss, err))) goto done;
        if (!isfinite(loss)) {
            st = xle_fail(err, XLE_ERR_NUMERIC, "train: step %lld: loss is %g (lower lr?)", (long long)s.step + 1, loss);
            goto done;
        }
        double norm = xle_grad_norm(r.params, r.n_params);
        float lr = xle_train_lr(hp, s.step);
        xle_adamw_step(r.params, r.n_params, s.step + 1, lr, hp->beta1, hp->beta2, hp->adam_eps,
                       hp->weight_decay, xle_clip_scale(norm, hp->grad_clip));
        s.step++;
        s.tokens_seen += r.batch.n_tokens;
        run_tokens += r.batch.n_tokens;
        double elapsed = now_s() - t0;
        fprintf(r.log, "%lld\t%.6g\t%.6f\t%.6g\t%.0f\t%.2f\n", (long long)s.step, (double)lr, loss, norm,
                s.tokens_seen, elapsed);
        fflush(r.log);
        int stop = 0;
        if (o->progress) {
            xle_train_progress p = {s.step, hp->steps, loss, lr, norm, run_tokens / (elapsed > 0 ? elapsed : 1e-9),
                                    elapsed, 0, s.tokens_seen / (double)r.data.n_targets, r.data.n_targets,
                                    r.data.n_docs};
            p.eta_s = elapsed / (double)(s.step - first_step) * (double)(hp->steps - s.step);
            stop = o->progress(o->progress_user, &p);
        }
        if (stop || (hp->checkpoint_every > 0 && s.step % hp->checkpoint_every == 0) || s.step == hp->steps)
            if ((st = save_checkpoint(&r, &s, err))) goto done;
        if (stop && s.step < hp->steps) {
            st = xle_fail(err, XLE_ERR_INTERRUPTED, "train: stopped after step %lld; checkpoint %s (continue "
                          "with --resume)", (long long)s.step, r.ckpt_path);
            goto done;
        }
    }
    st = xle_train_export_hf(r.model, o->tokenizer, hp->save_bf16, o->out_dir, err);
done:
    run_free(&r);
    return st;
}
