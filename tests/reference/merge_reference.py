#!/usr/bin/python3
"""merge_reference.py: golden outputs for xledit's model merging (tests/test_merge.c).

Makes tiny random Llama models as Hugging Face folders (config.json + model.safetensors; f32,
one bf16 set, one with an extended vocabulary) and merges them with an independent NumPy
implementation of linear, task arithmetic, TIES and DARE-TIES as docs/merging.md defines them
(mergekit's definitions; every sum in f32, model 0 first, so that the C code can be checked
bit for bit). Writes everything under tests/fixtures/merge/:

    models/<name>/            input models
    expected/<case>.safetensors   the merged tensors (Hugging Face names, the base's dtype)
    cases.json                the cases: method, base, models, weights, density, ...

Run by hand (numpy only):  /usr/bin/python3 tests/reference/merge_reference.py
"""
import json
import os
import shutil
import struct

import numpy as np
import safetensors_io  # noqa: E402  (tests/reference/, beside this script)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "merge")

# A tiny Llama: 2 heads of 4 (q/k RoPE row orders matter), 1 KV head, 2 layers.
CFG = dict(dim=8, ffn=16, layers=2, heads=2, kv_heads=1, head_dim=4, vocab=24)
EXT_VOCAB = 30
M64 = (1 << 64) - 1


# ---- model files ---------------------------------------------------------------------------

def tensor_shapes(cfg, vocab):
    d, f, hd = cfg["dim"], cfg["ffn"], cfg["head_dim"]
    q, kv = cfg["heads"] * hd, cfg["kv_heads"] * hd
    shapes = [("model.embed_tokens.weight", (vocab, d))]
    for l in range(cfg["layers"]):
        p = "model.layers.%d." % l
        shapes += [(p + "input_layernorm.weight", (d,)),
                   (p + "self_attn.q_proj.weight", (q, d)),
                   (p + "self_attn.k_proj.weight", (kv, d)),
                   (p + "self_attn.v_proj.weight", (kv, d)),
                   (p + "self_attn.o_proj.weight", (d, q)),
                   (p + "post_attention_layernorm.weight", (d,)),
                   (p + "mlp.gate_proj.weight", (f, d)),
                   (p + "mlp.up_proj.weight", (f, d)),
                   (p + "mlp.down_proj.weight", (d, f))]
    shapes += [("model.norm.weight", (d,)), ("lm_head.weight", (vocab, d))]
    return shapes


def f32_to_bf16_bits(x):
    """Round to nearest even, NaN kept quiet: xle_f32_to_bf16."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
    r = np.where(nan, ((b >> 16) | 0x40) & 0xFFFF, r)
    return r.astype(np.uint16)


bf16_bits_to_f32 = safetensors_io.bf16_bits_to_f32


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype 'F32'|'BF16', array in that storage type) in file order."""
    safetensors_io.write_safetensors(
        path, [(n, dt, np.asarray(a, dtype=np.float32 if dt == "F32" else np.uint16)) for n, dt, a in tensors])


def read_safetensors(path):
    return {name: arr for name, (dtype, arr) in safetensors_io.read_safetensors(path).items()}


def write_model(name, weights, dtype, vocab, side=None):
    d = os.path.join(OUT, "models", name)
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": CFG["dim"], "intermediate_size": CFG["ffn"],
           "num_hidden_layers": CFG["layers"], "num_attention_heads": CFG["heads"],
           "num_key_value_heads": CFG["kv_heads"], "vocab_size": vocab,
           "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
           "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
           "hidden_act": "silu", "torch_dtype": "float32" if dtype == "F32" else "bfloat16"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for fname, text in (side or {}).items():
        with open(os.path.join(d, fname), "w") as f:
            f.write(text)
    ts = [(n, dtype, w if dtype == "F32" else f32_to_bf16_bits(w)) for n, w in weights.items()]
    write_safetensors(os.path.join(d, "model.safetensors"), ts)
    # what the merge reads: values as stored
    return {n: (w.astype(np.float32) if dtype == "F32" else bf16_bits_to_f32(f32_to_bf16_bits(w)))
            for n, w in weights.items()}


def random_base(rng, vocab):
    """Values on a 1/1024 grid, so that base + k/64 is exact in f32 (many tied |tau|)."""
    return {n: (np.round(rng.standard_normal(s) * 256) / 1024).astype(np.float32)
            for n, s in tensor_shapes(CFG, vocab)}


def finetune(rng, base, vocab, tie_grid):
    """base + a task vector: on the 1/64 grid (ties) or continuous; extra rows when vocab grows."""
    out = {}
    for n, s in tensor_shapes(CFG, vocab):
        b = base[n]
        if s[0] > b.shape[0] and len(s) == 2:  # extended vocabulary: new rows
            b = np.concatenate([b, (np.round(rng.standard_normal((s[0] - b.shape[0], s[1])) * 256) / 1024)
                                .astype(np.float32)])
        if tie_grid:
            tau = np.round(rng.standard_normal(s) * 3) / 64
        else:
            tau = rng.standard_normal(s) * 0.05
        out[n] = (b + tau).astype(np.float32)
    return out


# ---- the DARE mask: counter-based hash, same as src/merge/kernel.c --------------------------

def mix64_int(z):
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def mix64_arr(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def name_hash(name):
    h = 0xCBF29CE484222325
    for c in name.encode():
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def dare_keep(seed, model, name, n, density):
    stream = mix64_int(seed ^ mix64_int(name_hash(name) ^ mix64_int(model + 1)))
    idx = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = mix64_arr(np.uint64(stream) + (idx + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15))
    return (h >> np.uint64(11)).astype(np.float64) < float(np.float32(density)) * 2.0 ** 53


# ---- the methods ---------------------------------------------------------------------------

F = np.float32


def trim_mask(tau, density):
    """TIES trim: the top k = max(1, floor(density * n)) entries by |tau|; among equal
    magnitudes the lower flat index wins (a stable sort on the f32 bit patterns)."""
    flat = tau.reshape(-1)
    n = flat.size
    k = max(1, int(float(F(density)) * n))
    if k >= n:
        return np.ones(tau.shape, dtype=bool)
    key = (np.abs(flat).view(np.uint32)).astype(np.int64)
    order = np.argsort(-key, kind="stable")[:k]
    mask = np.zeros(n, dtype=bool)
    mask[order] = True
    return mask.reshape(tau.shape)


def merge_tensor(case, name, B, Ms):
    method, w = case["method"], [F(x) for x in case["weights"]]
    lam, dens = F(case["lambda"]), F(case["density"])
    normalize = case["normalize"]
    if method == "linear":
        acc = np.zeros_like(Ms[0])
        for wi, M in zip(w, Ms):
            acc = acc + wi * M
        if normalize:
            wsum = F(0)
            for wi in w:
                wsum = F(wsum + wi)
            acc = acc / wsum
        return acc
    if method == "task-arithmetic":
        acc = np.zeros_like(B)
        for wi, M in zip(w, Ms):
            acc = acc + wi * (M - B)
        div = F(0)
        for wi in w:
            div = F(div + wi)
        if abs(div) < F(1e-8):
            div = F(1)
        mixed = acc / div if normalize else acc
        return B + lam * mixed
    wds = []
    for i, (wi, M) in enumerate(zip(w, Ms)):
        tau = M - B
        if method == "ties":
            kept = np.where(trim_mask(tau, dens), tau, F(0))
        else:
            if dens < 1:
                keep = dare_keep(case["seed"], i, name, tau.size, dens).reshape(tau.shape)
                kept = np.where(keep, tau / dens, F(0))
            else:
                kept = tau
        wds.append(wi * kept)
    s = np.zeros_like(B)
    for wd in wds:
        s = s + wd
    if method == "dare-linear":  # no election: the weighted sparse task vectors summed
        div = F(0)
        for wi in w:
            div = F(div + wi)
        if abs(div) < F(1e-8):
            div = F(1)
        mixed = s / div if normalize else s
        return B + lam * mixed
    elected = np.where(s >= 0, 1, -1)
    mixed, div = np.zeros_like(B), np.zeros_like(B)
    for wi, wd in zip(w, wds):
        agree = np.sign(wd).astype(np.int64) == elected
        mixed = np.where(agree, mixed + wd, mixed)
        div = np.where(agree, div + wi, div)
    div = np.where(div == 0, F(1), div)
    if normalize:
        mixed = mixed / div
    return B + lam * mixed


def run_case(case, stored, dtypes):
    base = stored[case["base"]] if case["base"] else None
    models = [stored[m] for m in case["models"]]
    ref = base if base is not None else models[0]
    ref_vocab = ref["model.embed_tokens.weight"].shape[0]
    vocabs = [m["model.embed_tokens.weight"].shape[0] for m in models]
    donor = vocabs.index(max(vocabs)) if max(vocabs) > ref_vocab else -1
    out = []
    for name, _ in tensor_shapes(CFG, ref_vocab):
        rows = ref[name].shape[0]
        B = base[name] if base is not None else None
        Ms = [m[name][:rows] if name in ("model.embed_tokens.weight", "lm_head.weight") else m[name]
              for m in models]
        with np.errstate(over="ignore", invalid="ignore"):
            merged = merge_tensor(case, name, B, Ms).astype(np.float32)
        if donor >= 0 and name in ("model.embed_tokens.weight", "lm_head.weight"):
            merged = np.concatenate([merged, models[donor][name][rows:]])
        out.append((name, merged))
    dt = dtypes[case["base"] or case["models"][0]]
    path = os.path.join(OUT, "expected", case["name"] + ".safetensors")
    write_safetensors(path, [(n, dt, a if dt == "F32" else f32_to_bf16_bits(a)) for n, a in out])


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "expected"))
    rng = np.random.default_rng(20240611)
    V = CFG["vocab"]
    base = random_base(rng, V)
    stored, dtypes = {}, {}

    def add(name, weights, dtype, vocab, side=None):
        stored[name] = write_model(name, weights, dtype, vocab, side)
        dtypes[name] = dtype

    add("base", base, "F32", V, {"tokenizer_config.json": '{"which": "base"}\n',
                                  "generation_config.json": '{"bos_token_id": 1}\n'})
    add("a", finetune(rng, base, V, True), "F32", V)
    add("b", finetune(rng, base, V, True), "F32", V)
    add("c", finetune(rng, base, V, False), "F32", V)
    add("ext", finetune(rng, base, EXT_VOCAB, True), "F32", EXT_VOCAB,
        {"tokenizer_config.json": '{"which": "ext"}\n'})
    bbase = random_base(rng, V)
    add("bf_base", bbase, "BF16", V)
    add("bf_a", finetune(rng, bbase, V, False), "BF16", V)
    add("bf_b", finetune(rng, bbase, V, False), "BF16", V)

    def case(name, method, base_name, models, weights=None, density=1.0, lam=1.0, normalize=None,
             seed=0, exact=None):
        dflt = method in ("linear", "ties")
        return {"name": name, "method": method, "base": base_name, "models": models,
                "weights": weights or [1.0] * len(models), "density": density, "lambda": lam,
                "normalize": dflt if normalize is None else normalize, "seed": seed,
                "exact": exact if exact is not None else method in ("linear", "task-arithmetic")}

    cases = [
        case("linear_f32", "linear", None, ["a", "b", "c"], [0.5, 1.0, 1.5]),
        case("linear_f32_sum", "linear", "base", ["a", "c"], [0.25, 0.75], normalize=False),
        case("ta_f32", "task-arithmetic", "base", ["a", "b", "c"], [1.0, 0.5, -0.25], lam=0.7),
        case("ta_f32_norm", "task-arithmetic", "base", ["a", "b"], [0.3, 0.9], normalize=True),
        case("ties_f32", "ties", "base", ["a", "b", "c"], density=0.3),
        case("ties_f32_weighted", "ties", "base", ["a", "b", "c"], [0.6, 1.2, -0.4], density=0.5, lam=0.8),
        case("ties_f32_sum", "ties", "base", ["a", "b"], density=0.2, normalize=False),
        case("dare_ties_f32", "dare-ties", "base", ["a", "b", "c"], [1.0, 0.5, 1.0], density=0.4, seed=1234),
        case("dare_ties_f32_norm", "dare-ties", "base", ["a", "c"], density=0.7, seed=7, normalize=True),
        case("ta_bf16", "task-arithmetic", "bf_base", ["bf_a", "bf_b"], [0.5, 0.5], lam=1.3),
        case("ties_bf16", "ties", "bf_base", ["bf_a", "bf_b"], density=0.2),
        case("dare_ties_bf16", "dare-ties", "bf_base", ["bf_a", "bf_b"], density=0.5, seed=99),
        case("dare_linear_f32", "dare-linear", "base", ["a", "b", "c"], [1.0, 0.5, -0.25], density=0.4, seed=1234,
             lam=0.9),
        case("dare_linear_f32_norm", "dare-linear", "base", ["a", "c"], [0.3, 0.9], density=0.6, seed=5,
             normalize=True),
        case("dare_linear_bf16", "dare-linear", "bf_base", ["bf_a", "bf_b"], density=0.5, seed=99),
        case("ties_ext", "ties", "base", ["a", "ext"], density=0.4),
        case("linear_ext", "linear", "base", ["ext", "b"], [1.0, 3.0]),
    ]
    for c in cases:
        run_case(c, stored, dtypes)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"config": CFG, "ext_vocab": EXT_VOCAB, "cases": cases}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(OUT) for x in fs)
    print("wrote %d cases, %d bytes under %s" % (len(cases), total, os.path.relpath(OUT)))


if __name__ == "__main__":
    main()
