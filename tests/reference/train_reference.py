#!/usr/bin/env python3
"""Reference for tests/test_train.c: two AdamW training steps of a tiny Llama in PyTorch.

Writes tests/fixtures/train/adamw_<variant>.safetensors holding, for a tiny model (GQA, RoPE
rotate-half as Hugging Face computes it, SwiGLU, RMSNorm; tied or untied embeddings):
  init.<name>, step1.<name>, step2.<name>   the weights before and after each step (float32)
  tokens, targets, seq_start                 one packed batch of two sequences (int32)
  loss                                       the loss of each step (float64)
  hparams                                    lr, min_lr, warmup, steps, b1, b2, eps, wd, clip
The model runs in float64 here (the reference), torch.optim.AdamW does the update with weight
decay on 2-D tensors only, the learning rate follows linear warmup + cosine decay, and
torch.nn.utils.clip_grad_norm_ clips the global norm (small enough to act on both steps).

Run by hand with Debian's python (torch, numpy): /usr/bin/python3 tests/reference/train_reference.py
The C test never needs Python; the fixtures are committed.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import safetensors_io  # noqa: E402  (tests/reference/, beside this script)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "train")

CFG = dict(dim=16, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=24, vocab=23, eps=1e-5, theta=10000.0)
HP = dict(lr=0.01, min_lr=0.001, warmup_steps=1, steps=4, beta1=0.9, beta2=0.95, adam_eps=1e-8,
          weight_decay=0.1, grad_clip=0.5)


def lr_at(step):
    """Linear warmup over warmup_steps, then cosine decay to min_lr at steps (step is 0-based)."""
    if step < HP["warmup_steps"]:
        return HP["lr"] * (step + 1) / HP["warmup_steps"]
    progress = (step - HP["warmup_steps"]) / (HP["steps"] - HP["warmup_steps"])
    return HP["min_lr"] + 0.5 * (HP["lr"] - HP["min_lr"]) * (1 + math.cos(math.pi * progress))


def hf_names(n_layers, tied):
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not tied:
        names.append("lm_head.weight")
    for l in range(n_layers):
        p = f"model.layers.{l}."
        names += [p + "input_layernorm.weight", p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
                  p + "self_attn.v_proj.weight", p + "self_attn.o_proj.weight",
                  p + "post_attention_layernorm.weight", p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                  p + "mlp.down_proj.weight"]
    return names


def init_weights(rng, tied):
    d, f, V = CFG["dim"], CFG["ffn_dim"], CFG["vocab"]
    hd = d // CFG["n_heads"]
    qd, kvd = CFG["n_heads"] * hd, CFG["n_kv_heads"] * hd
    w = {"model.embed_tokens.weight": rng.normal(0, 0.3, (V, d)),
         "model.norm.weight": 1 + 0.1 * rng.normal(size=d)}
    if not tied:
        w["lm_head.weight"] = rng.normal(0, 0.3, (V, d))
    for l in range(CFG["n_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=d)
        w[p + "self_attn.q_proj.weight"] = rng.normal(0, 0.3, (qd, d))
        w[p + "self_attn.k_proj.weight"] = rng.normal(0, 0.3, (kvd, d))
        w[p + "self_attn.v_proj.weight"] = rng.normal(0, 0.3, (kvd, d))
        w[p + "self_attn.o_proj.weight"] = rng.normal(0, 0.3, (d, qd))
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=d)
        w[p + "mlp.gate_proj.weight"] = rng.normal(0, 0.3, (f, d))
        w[p + "mlp.up_proj.weight"] = rng.normal(0, 0.3, (f, d))
        w[p + "mlp.down_proj.weight"] = rng.normal(0, 0.3, (d, f))
    # The fixture stores float32; the reference starts from exactly those values.
    return {k: v.astype(np.float32) for k, v in w.items()}


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + CFG["eps"]) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def forward(P, tokens, seq_start, tied):
    d = CFG["dim"]
    H, KV = CFG["n_heads"], CFG["n_kv_heads"]
    hd = d // H
    logits_all = []
    for s in range(len(seq_start) - 1):
        ids = tokens[seq_start[s]:seq_start[s + 1]]
        n = len(ids)
        x = P["model.embed_tokens.weight"][ids]
        pos = torch.arange(n, dtype=torch.float64)
        inv_freq = 1.0 / (CFG["theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.outer(pos, inv_freq)
        ang = torch.cat([ang, ang], dim=-1)
        cos, sin = ang.cos(), ang.sin()
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
        for l in range(CFG["n_layers"]):
            p = f"model.layers.{l}."
            h = rmsnorm(x, P[p + "input_layernorm.weight"])
            q = (h @ P[p + "self_attn.q_proj.weight"].T).view(n, H, hd).transpose(0, 1)
            k = (h @ P[p + "self_attn.k_proj.weight"].T).view(n, KV, hd).transpose(0, 1)
            v = (h @ P[p + "self_attn.v_proj.weight"].T).view(n, KV, hd).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // KV, dim=0)
            v = v.repeat_interleave(H // KV, dim=0)
            att = (q @ k.transpose(1, 2)) / math.sqrt(hd)
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            o = (att @ v).transpose(0, 1).reshape(n, H * hd)
            x = x + o @ P[p + "self_attn.o_proj.weight"].T
            h = rmsnorm(x, P[p + "post_attention_layernorm.weight"])
            g = h @ P[p + "mlp.gate_proj.weight"].T
            u = h @ P[p + "mlp.up_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down_proj.weight"].T
        x = rmsnorm(x, P["model.norm.weight"])
        head = P["model.embed_tokens.weight"] if tied else P["lm_head.weight"]
        logits_all.append(x @ head.T)
    return torch.cat(logits_all, 0)


def write_safetensors(path, tensors):
    """tensors: name -> (dtype, array in that storage type); the run's hyperparameters and
    config go in the metadata."""
    safetensors_io.write_safetensors(path, [(n, dt, a) for n, (dt, a) in tensors.items()],
                                     metadata={"hparams": json.dumps(HP), "config": json.dumps(CFG)},
                                     metadata_last=True, compact=False)


def run(tied):
    rng = np.random.default_rng(1234 + tied)
    init = init_weights(rng, tied)
    names = hf_names(CFG["n_layers"], tied)
    # Two packed sequences (attention must not cross them).
    seqs = [[1, 5, 9, 13, 7, 21, 3, 2], [1, 4, 4, 17, 2]]
    tokens, targets, seq_start = [], [], [0]
    for s in seqs:
        tokens += s[:-1]
        targets += s[1:]
        seq_start.append(len(tokens))
    P = {k: torch.tensor(init[k], dtype=torch.float64, requires_grad=True) for k in names}
    decay = [P[k] for k in names if P[k].ndim == 2]
    no_decay = [P[k] for k in names if P[k].ndim != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": HP["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]), eps=HP["adam_eps"])
    out = {"init." + k: ("F32", init[k]) for k in names}
    losses = []
    tok_t = torch.tensor(tokens)
    tgt_t = torch.tensor(targets)
    for step in range(2):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad()
        logits = forward(P, tok_t, seq_start, tied)
        loss = torch.nn.functional.cross_entropy(logits, tgt_t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), HP["grad_clip"])
        opt.step()
        losses.append(loss.item())
        for k in names:
            out[f"step{step + 1}." + k] = ("F32", P[k].detach().numpy().astype(np.float32))
    out["tokens"] = ("I32", np.array(tokens, dtype=np.int32))
    out["targets"] = ("I32", np.array(targets, dtype=np.int32))
    out["seq_start"] = ("I32", np.array(seq_start, dtype=np.int32))
    out["loss"] = ("F64", np.array(losses, dtype=np.float64))
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"adamw_{'tied' if tied else 'untied'}.safetensors")
    write_safetensors(path, out)
    print(path, "losses", losses)


if __name__ == "__main__":
    torch.manual_seed(0)
    run(tied=False)
    run(tied=True)
