#!/usr/bin/python3
"""PyTorch timings of the editing work on a Llama-3.2-1B-shaped model, for comparison with the C
library's editing bench on the same machine. Run by hand (never by CI):

    /usr/bin/python3 bench/bench_edit_ref.py [--threads N] [--workload rome|memit|stats|all]

The algorithms are those of tests/reference/edit_reference.py (EasyEdit's ROME compute_u /
compute_v, MEMIT compute_z / compute_ks / float64 solve, right-padded batches, full logits), here
in float32 as EasyEdit runs a float32 model. The model has Llama-3.2-1B's shapes (d 2048, d_ff
8192, 16 layers, 32 query / 8 KV heads of 64, vocabulary 128256, tied embeddings) with random
weights; plain RoPE with theta 500000 (Llama-3 frequency scaling changes no cost).

Workloads (EasyEdit's Llama defaults, layers scaled to 16 layers as xledit does):
  rome   one request, layer 3, 25 steps of v*, 21 prompts (bare + 10 with 5-token and 10 with
         10-token prefixes), 2 target tokens, mom2_adjustment false;
  memit  10 requests, layers 2-4, z at layer 4 with 25 steps, 6 prompts each (bare + 5 with
         10-token prefixes), λ = 15000; C is the identity (the solve costs the same for any
         positive definite matrix; the statistics themselves are the stats workload);
  stats  Σ k kᵀ at one layer (3, ROME's) over 100,000 tokens: random documents of 512 tokens
         (BOS + 511), 8 per forward pass, the pass stopped after the layer, accumulated in
         float32 (EasyEdit's mom2_dtype), as EasyEdit does one layer per pass.
Each workload runs in its own process; the time excludes building the model; peak RSS is the
process's maximum resident set (the float32 model alone is 4.9 GB).
"""
import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "edit_reference", os.path.join(HERE, "..", "tests", "reference", "edit_reference.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

CFG_1B = dict(
    model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
    num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
    max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True,
)
BOS = 1  # any id: the cost does not depend on it


def make_model(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    d, f, hd = cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]
    h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    def randn(*shape, scale=1.0, offset=0.0):
        t = torch.empty(*shape, dtype=torch.float32)
        t.normal_(generator=g).mul_(scale).add_(offset)
        return t

    w = {"model.embed_tokens.weight": randn(cfg["vocab_size"], d, scale=0.02)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = randn(d, scale=0.1, offset=1.0)
        w[p + "self_attn.q_proj.weight"] = randn(h * hd, d, scale=d ** -0.5)
        w[p + "self_attn.k_proj.weight"] = randn(kv * hd, d, scale=d ** -0.5)
        w[p + "self_attn.v_proj.weight"] = randn(kv * hd, d, scale=d ** -0.5)
        w[p + "self_attn.o_proj.weight"] = randn(d, h * hd, scale=(h * hd) ** -0.5)
        w[p + "post_attention_layernorm.weight"] = randn(d, scale=0.1, offset=1.0)
        w[p + "mlp.gate_proj.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.up_proj.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.down_proj.weight"] = randn(d, f, scale=f ** -0.5)
    w["model.norm.weight"] = randn(d, scale=0.1, offset=1.0)
    return ref.Llama(w, cfg=cfg, dtype=torch.float32)


def make_request(rng, vocab, prefix_lens, subject_len=2, n_target=2):
    """A token-level request like a CounterFact one: BOS, 2 relation tokens, the subject,
    4 relation tokens (fact token = the subject's last); templates BOS + prefix + "." + body."""
    def toks(n):
        return torch.randint(1000, vocab - 1000, (n,), generator=rng).tolist()

    before, subj, after = toks(2), toks(subject_len), toks(4)
    body = before + subj + after
    fact = len(before + subj)
    dot = 13
    prompts = [{"ids": [BOS] + body, "fact_idx": fact, "group": 0}]
    for n in prefix_lens:
        pre = toks(n - 1)  # the generated text: n tokens with BOS
        prompts.append({"ids": [BOS] + pre + [dot] + body, "fact_idx": len(pre) + 1 + fact, "group": 1})
    kl = {"ids": [BOS] + subj + toks(2), "fact_idx": len(subj)}
    return {"prompts": prompts, "kl": kl, "target": toks(n_target)}


def run_rome(model, args):
    rng = torch.Generator().manual_seed(1)
    req = make_request(rng, model.vocab, [5] * 10 + [10] * 10)
    hp = dict(v_num_grad_steps=args.steps, v_lr=0.5, v_weight_decay=1e-3, clamp_norm_factor=4.0,
              kl_factor=0.0625, mom2_adjustment=False)
    t = time.perf_counter()
    dw, loss, steps = ref.rome(model, req, hp, 3, None)
    return time.perf_counter() - t, dict(loss=loss, steps=steps, prompts=len(req["prompts"]))


def run_memit(model, args):
    rng = torch.Generator().manual_seed(2)
    reqs = [make_request(rng, model.vocab, [10] * 5) for _ in range(args.memit_requests)]
    hp = dict(v_num_grad_steps=args.steps, v_lr=0.5, v_weight_decay=1e-3, clamp_norm_factor=4.0,
              kl_factor=0.0625, mom2_update_weight=15000.0, layers=[2, 3, 4])
    eye = torch.eye(model.f, dtype=torch.float32)
    stats = {l: (eye, 1) for l in hp["layers"]}
    t = time.perf_counter()
    deltas, loss, steps = ref.memit(model, reqs, hp, stats)
    return time.perf_counter() - t, dict(loss=loss, steps=steps, requests=len(reqs))


def run_stats(model, args):
    rng = torch.Generator().manual_seed(3)
    layer, n_docs = 3, -(-args.stats_tokens // args.stats_len)
    total = torch.zeros(model.f, model.f, dtype=torch.float32)
    count = 0
    t = time.perf_counter()
    for b in range(0, n_docs, args.stats_batch):
        nb = min(args.stats_batch, n_docs - b)
        ids = torch.randint(1000, model.vocab - 1000, (nb, args.stats_len), generator=rng)
        ids[:, 0] = BOS
        got = {}

        def grab(a):
            got["k"] = a
            return a

        with torch.no_grad():
            model.forward(ids, hooks={("key", layer): grab}, stop_after=("key", layer))
            k = got["k"].reshape(-1, model.f)
            total += k.T @ k
        count += k.shape[0]
    return time.perf_counter() - t, dict(tokens=count, layer=layer)


def child(args):
    torch.set_num_threads(args.threads)
    cfg = dict(CFG_1B, hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2,
               vocab_size=4096) if args.small else CFG_1B
    model = make_model(cfg)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    cpu0 = time.process_time()
    seconds, info = {"rome": run_rome, "memit": run_memit, "stats": run_stats}[args.workload](model, args)
    cpu = time.process_time() - cpu0  # all threads: comparable when the machine is shared
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(dict(workload=args.workload, seconds=round(seconds, 2), cpu_seconds=round(cpu, 2),
                          peak_rss_gib=round(peak, 2),
                          model_rss_gib=round(base_rss, 2), threads=args.threads, torch=torch.__version__,
                          **info)), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="all", choices=["rome", "memit", "stats", "all"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--memit-requests", type=int, default=10)
    ap.add_argument("--stats-tokens", type=int, default=100000)
    ap.add_argument("--stats-len", type=int, default=512)
    ap.add_argument("--stats-batch", type=int, default=8)
    ap.add_argument("--small", type=int, default=0, help="1: a small model, to check the script runs")
    args = ap.parse_args()
    if args.workload != "all":
        child(args)
        return
    for w in ("rome", "memit", "stats"):  # one process each, so each peak RSS is its own
        cmd = [sys.executable, os.path.abspath(__file__), "--workload", w] + [
            a for k, v in vars(args).items() if k != "workload"
            for a in (f"--{k.replace('_', '-')}", str(v))]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
