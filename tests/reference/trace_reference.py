#!/usr/bin/python3
"""Golden outputs for tests/test_trace.c: causal tracing (ROME's corrupted-subject restoration,
Meng et al. 2022) re-implemented in PyTorch from its definition, on the tiny random Llama of
tests/fixtures/edit/model (F32 weights, 4 layers, d = 32, vocabulary 50).

Run by hand (CI never needs Python):
    /usr/bin/python3 tests/reference/trace_reference.py [OUT_DIR]
OUT_DIR defaults to tests/fixtures/trace. It writes trace.json: the tokens, the subject's
token range, the unit-variance noise [samples][subject tokens][d] (drawn here, float32, and
given to the C code as input), the noise level (3 x the unbiased standard deviation of the
subject tokens' embeddings), and for each window the target (the clean run's top token),
p_clean, p_corrupt and the score matrices [token][layer] of the three kinds.

Semantics (as ROME's experiments/causal_trace.py computes them):
  - corrupted run: embeddings of the subject tokens += noise_level * noise[sample];
  - score of (kind, token t, layer l): the corrupted runs with the clean run's value put back at
    token t: hidden = the residual stream after layer l; mlp / attn = the MLP / attention
    output at every layer in [max(0, l - w // 2), min(L, l + ceil(w / 2))); the probability of
    the target at the last position, softmax per sample, then the mean over samples.
Everything runs in float64 (the noise itself is float32 values).
"""
import json
import math
import os
import struct
import sys

import torch
import safetensors_io  # noqa: E402  (tests/reference/, beside this script)

DT = torch.float64
HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "fixtures", "edit", "model")


def read_safetensors(path):
    out = {}
    for name, (dtype, arr) in safetensors_io.read_safetensors(path).items():
        assert dtype == "F32", name
        out[name] = torch.from_numpy(arr.copy()).to(DT)
    return out


class Llama:
    def __init__(self, w, cfg):
        self.w, self.cfg = w, cfg
        self.L = cfg["num_hidden_layers"]
        self.H = cfg["num_attention_heads"]
        self.KV = cfg["num_key_value_heads"]
        self.HD = cfg.get("head_dim", cfg["hidden_size"] // self.H)
        self.eps = cfg["rms_norm_eps"]
        self.theta = cfg.get("rope_theta", 10000.0)

    def rms(self, x, g):
        return g * x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)

    def rope(self, x):  # x [B, heads, T, HD], rotate-half layout
        T = x.shape[2]
        inv = 1.0 / (self.theta ** (torch.arange(0, self.HD, 2, dtype=DT) / self.HD))
        ang = torch.arange(T, dtype=DT)[:, None] * inv[None, :]
        cos = torch.cat([ang.cos(), ang.cos()], -1)
        sin = torch.cat([ang.sin(), ang.sin()], -1)
        h = self.HD // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], -1)
        return x * cos + rot * sin

    def forward(self, ids, hook):
        """ids [B, T]; hook(point, layer, act [B, T, d]) returns the activation to use."""
        w, p = self.w, "model.layers.%d."
        x = w["model.embed_tokens.weight"][ids]
        x = hook("embed", 0, x)
        B, T, _ = x.shape
        mask = torch.full((T, T), float("-inf"), dtype=DT).triu(1)
        for l in range(self.L):
            q_ = p % l
            xn = self.rms(x, w[q_ + "input_layernorm.weight"])
            q = (xn @ w[q_ + "self_attn.q_proj.weight"].T).view(B, T, self.H, self.HD).transpose(1, 2)
            k = (xn @ w[q_ + "self_attn.k_proj.weight"].T).view(B, T, self.KV, self.HD).transpose(1, 2)
            v = (xn @ w[q_ + "self_attn.v_proj.weight"].T).view(B, T, self.KV, self.HD).transpose(1, 2)
            q, k = self.rope(q), self.rope(k)
            rep = self.H // self.KV
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.HD) + mask, -1) @ v
            att = att.transpose(1, 2).reshape(B, T, self.H * self.HD) @ w[q_ + "self_attn.o_proj.weight"].T
            x = x + hook("attn", l, att)
            xn = self.rms(x, w[q_ + "post_attention_layernorm.weight"])
            g = xn @ w[q_ + "mlp.gate_proj.weight"].T
            u = xn @ w[q_ + "mlp.up_proj.weight"].T
            mlp = (torch.nn.functional.silu(g) * u) @ w[q_ + "mlp.down_proj.weight"].T
            x = x + hook("mlp", l, mlp)
            x = hook("hidden", l, x)
        x = self.rms(x, w["model.norm.weight"])
        head = w["lm_head.weight"] if "lm_head.weight" in w else w["model.embed_tokens.weight"]
        return x @ head.T


def trace(model, ids, sb, se, noise, level, window):
    L, T = model.L, len(ids)
    clean = {}

    def keep(point, layer, act):
        if point != "embed":
            clean[(point, layer)] = act[0].clone()
        return act

    logits = model.forward(torch.tensor([ids]), keep)[0, -1]
    target = int(torch.argmax(logits))
    p_clean = float(torch.softmax(logits, -1)[target])
    S = noise.shape[0]

    def run(restore):
        """restore: {(point, layer): token}; the mean over samples of p(target)."""
        def hook(point, layer, act):
            act = act.clone()
            if point == "embed":
                act[:, sb:se] += level * noise
                return act
            t = restore.get((point, layer))
            if t is not None:
                act[:, t] = clean[(point, layer)][t]
            return act

        out = model.forward(torch.tensor([ids] * S), hook)[:, -1]
        return float(torch.softmax(out, -1)[:, target].mean())

    res = {"window": window, "target": target, "p_clean": p_clean, "p_corrupt": run({})}
    for kind in ("hidden", "mlp", "attn"):
        rows = []
        for t in range(T):
            row = []
            for l in range(L):
                if kind == "hidden":
                    layers = [l]
                else:
                    layers = range(max(0, l - window // 2), min(L, l - (-window // 2)))
                row.append(run({(kind, j): t for j in layers}))
            rows.append(row)
        res[kind] = rows
    return res


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "trace")
    os.makedirs(out, exist_ok=True)
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    model = Llama(read_safetensors(os.path.join(MODEL, "model.safetensors")), cfg)
    ids = [1, 17, 5, 33, 41, 9, 26, 12]
    sb, se, samples = 2, 5, 3
    gen = torch.Generator().manual_seed(20261205)
    noise32 = torch.randn(samples, se - sb, cfg["hidden_size"], generator=gen, dtype=torch.float32)
    emb = model.w["model.embed_tokens.weight"][ids[sb:se]]
    level = 3.0 * float(emb.std())
    runs = [trace(model, ids, sb, se, noise32.to(DT), level, w) for w in (10, 2)]
    doc = {"tokens": ids, "subject": [sb, se], "samples": samples, "noise_level": level,
           "embedding_std": float(emb.std()),
           "noise": [float(v) for v in noise32.flatten()], "runs": runs}
    with open(os.path.join(out, "trace.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    for r in runs:
        print("window %d: target %d p_clean %.6f p_corrupt %.6f" % (r["window"], r["target"], r["p_clean"], r["p_corrupt"]))


if __name__ == "__main__":
    main()
