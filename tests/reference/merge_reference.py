#!/usr/bin/python3
"""merge_reference.py: golden outputs for xledit's model merging (tests/test_merge.c).

Makes tiny random Llama models as Hugging Face folders (config.json + model.safetensors; f32,
one bf16 set, one with an extended vocabulary, a 4-layer set for per-layer values) and tiny
GPT-2, GPT-J and Gemma models with their own tensor names and layouts (GPT-2's Conv1D [in, out]
and fused c_attn, tied heads, LayerNorm biases, GPT-J's head bias), and merges them with an
independent NumPy implementation of linear, task arithmetic, TIES, DARE-TIES and DARE-linear as
docs/merging.md defines them (mergekit's definitions: each model its own weight and density,
per-layer value lists interpolated as mergekit's config.py does; every sum in f32, model 0
first, so that the C code can be checked bit for bit). Non-Llama families are merged tensor by
tensor as stored, by name. Writes everything under tests/fixtures/merge/:

    models/<name>/            input models
    expected/<case>.safetensors   the merged tensors (Hugging Face names, the base's dtype)
    cases.json                the cases: method, base, models, weights, density, ...

Run by hand (numpy only):  /usr/bin/python3 tests/reference/merge_reference.py
"""
import json
import os
import re
import shutil
import struct
from fractions import Fraction

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
    if cfg.get("family", "llama") != "llama":
        return family_shapes(cfg, vocab)
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


# Tiny models of other families, with their Hugging Face names and layouts (make_family_fixtures.py
# describes the families): 3 layers, so that per-layer values are interpolated between anchors.
FAMILIES = {
    "gpt2": dict(family="gpt2", dim=8, ffn=32, layers=3, heads=2, positions=16),
    "gptj": dict(family="gptj", dim=8, ffn=32, layers=3, heads=2, positions=16, rotary_dim=2),
    "gemma": dict(family="gemma", dim=8, ffn=16, layers=3, heads=2, kv_heads=1, head_dim=4, positions=16),
}
VOCAB_TENSORS = {"model.embed_tokens.weight", "lm_head.weight", "lm_head.bias", "transformer.wte.weight"}
LAYER_RE = re.compile(r"^(?:model\.layers|transformer\.h)\.(\d+)\.")


def family_shapes(cfg, vocab):
    d, f, fam = cfg["dim"], cfg["ffn"], cfg["family"]
    shapes = []
    if fam == "gpt2":  # Conv1D weights [in, out]; c_attn fused q | k | v; head tied to wte
        shapes += [("transformer.wte.weight", (vocab, d)), ("transformer.wpe.weight", (cfg["positions"], d))]
        for l in range(cfg["layers"]):
            p = "transformer.h.%d." % l
            shapes += [(p + "ln_1.weight", (d,)), (p + "ln_1.bias", (d,)),
                       (p + "attn.c_attn.weight", (d, 3 * d)), (p + "attn.c_attn.bias", (3 * d,)),
                       (p + "attn.c_proj.weight", (d, d)), (p + "attn.c_proj.bias", (d,)),
                       (p + "ln_2.weight", (d,)), (p + "ln_2.bias", (d,)),
                       (p + "mlp.c_fc.weight", (d, f)), (p + "mlp.c_fc.bias", (f,)),
                       (p + "mlp.c_proj.weight", (f, d)), (p + "mlp.c_proj.bias", (d,))]
        shapes += [("transformer.ln_f.weight", (d,)), ("transformer.ln_f.bias", (d,))]
    elif fam == "gptj":  # untied head with a bias [V]
        shapes += [("transformer.wte.weight", (vocab, d))]
        for l in range(cfg["layers"]):
            p = "transformer.h.%d." % l
            shapes += [(p + "ln_1.weight", (d,)), (p + "ln_1.bias", (d,)),
                       (p + "attn.q_proj.weight", (d, d)), (p + "attn.k_proj.weight", (d, d)),
                       (p + "attn.v_proj.weight", (d, d)), (p + "attn.out_proj.weight", (d, d)),
                       (p + "mlp.fc_in.weight", (f, d)), (p + "mlp.fc_in.bias", (f,)),
                       (p + "mlp.fc_out.weight", (d, f)), (p + "mlp.fc_out.bias", (d,))]
        shapes += [("transformer.ln_f.weight", (d,)), ("transformer.ln_f.bias", (d,)),
                   ("lm_head.weight", (vocab, d)), ("lm_head.bias", (vocab,))]
    else:  # gemma: tied head, (1 + w) RMSNorm weights
        hd, q, kv = cfg["head_dim"], cfg["heads"] * cfg["head_dim"], cfg["kv_heads"] * cfg["head_dim"]
        shapes += [("model.embed_tokens.weight", (vocab, d))]
        for l in range(cfg["layers"]):
            p = "model.layers.%d." % l
            shapes += [(p + "input_layernorm.weight", (d,)), (p + "self_attn.q_proj.weight", (q, d)),
                       (p + "self_attn.k_proj.weight", (kv, d)), (p + "self_attn.v_proj.weight", (kv, d)),
                       (p + "self_attn.o_proj.weight", (d, q)), (p + "post_attention_layernorm.weight", (d,)),
                       (p + "mlp.gate_proj.weight", (f, d)), (p + "mlp.up_proj.weight", (f, d)),
                       (p + "mlp.down_proj.weight", (d, f))]
        shapes += [("model.norm.weight", (d,))]
    return shapes


def family_config(cfg, vocab):
    fam = cfg["family"]
    if fam in ("gpt2", "gptj"):
        c = {"architectures": ["GPT2LMHeadModel" if fam == "gpt2" else "GPTJForCausalLM"], "model_type": fam,
             "activation_function": "gelu_new", "n_embd": cfg["dim"], "n_head": cfg["heads"], "n_inner": None,
             "n_layer": cfg["layers"], "n_positions": cfg["positions"], "layer_norm_epsilon": 1e-5,
             "vocab_size": vocab, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}
        if fam == "gptj":
            c.update(rotary_dim=cfg["rotary_dim"], tie_word_embeddings=False)
        return c
    return {"architectures": ["GemmaForCausalLM"], "model_type": "gemma", "attention_bias": False,
            "head_dim": cfg["head_dim"], "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
            "hidden_size": cfg["dim"], "intermediate_size": cfg["ffn"], "max_position_embeddings": cfg["positions"],
            "num_attention_heads": cfg["heads"], "num_hidden_layers": cfg["layers"],
            "num_key_value_heads": cfg["kv_heads"], "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "vocab_size": vocab, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
            "torch_dtype": "bfloat16"}


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


def write_model(name, weights, dtype, vocab, side=None, mcfg=CFG):
    d = os.path.join(OUT, "models", name)
    os.makedirs(d, exist_ok=True)
    if mcfg.get("family", "llama") != "llama":
        cfg = family_config(mcfg, vocab)
    else:
        cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
               "hidden_size": mcfg["dim"], "intermediate_size": mcfg["ffn"],
               "num_hidden_layers": mcfg["layers"], "num_attention_heads": mcfg["heads"],
               "num_key_value_heads": mcfg["kv_heads"], "vocab_size": vocab,
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


def random_base(rng, vocab, cfg=CFG):
    """Values on a 1/1024 grid, so that base + k/64 is exact in f32 (many tied |tau|)."""
    return {n: (np.round(rng.standard_normal(s) * 256) / 1024).astype(np.float32)
            for n, s in tensor_shapes(cfg, vocab)}


def finetune(rng, base, vocab, tie_grid, cfg=CFG):
    """base + a task vector: on the 1/64 grid (ties) or continuous; extra rows when vocab grows."""
    out = {}
    for n, s in tensor_shapes(cfg, vocab):
        b = base[n]
        if s[0] > b.shape[0]:  # extended vocabulary: new rows (a 1-D head bias too)
            b = np.concatenate([b, (np.round(rng.standard_normal((s[0] - b.shape[0],) + tuple(s[1:])) * 256) / 1024)
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
    return (h >> np.uint64(11)).astype(np.float64) < float(density) * 2.0 ** 53


# ---- the methods ---------------------------------------------------------------------------

F = np.float32


def trim_mask(tau, density):
    """TIES trim: the top k = max(1, floor(density * n)) entries by |tau|, density read as its
    shortest decimal (repr) exactly; among equal magnitudes the lower flat index wins (a stable
    sort on the f32 bit patterns)."""
    flat = tau.reshape(-1)
    n = flat.size
    k = max(1, int(Fraction(repr(float(density))) * n))
    if k >= n:
        return np.ones(tau.shape, dtype=bool)
    key = (np.abs(flat).view(np.uint32)).astype(np.int64)
    order = np.argsort(-key, kind="stable")[:k]
    mask = np.zeros(n, dtype=bool)
    mask[order] = True
    return mask.reshape(tau.shape)


def gradient_at(values, layer, n_layers):
    """mergekit's per-layer value (config.py evaluate_setting; plan.py t = i / (L - 1), t = 1 for
    one layer; tensors outside the layers take t = 0)."""
    if not isinstance(values, list):
        return float(values)
    t = 0.0 if layer < 0 else (layer / (n_layers - 1) if n_layers > 1 else 1.0)
    scaled = t * (len(values) - 1)
    i0 = int(scaled)
    i1 = min(len(values) - 1, i0 + 1)
    frac = scaled - i0
    return (1 - frac) * values[i0] + frac * values[i1]


def merge_tensor(case, name, B, Ms, layer, n_layers):
    method = case["method"]
    w = [F(gradient_at(x, layer, n_layers)) for x in case["weights"]]
    dens_all = [gradient_at(x, layer, n_layers) for x in case["densities"]]
    lam = F(case["lambda"])
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
        dens = dens_all[i]
        if method == "ties":
            kept = np.where(trim_mask(tau, dens), tau, F(0)) if dens < 1 else tau
        else:
            if dens < 1:
                keep = dare_keep(case["seed"], i, name, tau.size, dens).reshape(tau.shape)
                kept = np.where(keep, tau / F(dens), F(0))
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


def run_case(case, stored, dtypes, cfgs):
    base = stored[case["base"]] if case["base"] else None
    models = [stored[m] for m in case["models"]]
    ref_name = case["base"] or case["models"][0]
    ref = base if base is not None else models[0]
    cfg = cfgs[ref_name]
    embed = "model.embed_tokens.weight" if "model.embed_tokens.weight" in ref else "transformer.wte.weight"
    ref_vocab = ref[embed].shape[0]
    vocabs = [m[embed].shape[0] for m in models]
    donor = vocabs.index(max(vocabs)) if max(vocabs) > ref_vocab else -1
    out = []
    for name, _ in tensor_shapes(cfg, ref_vocab):
        rows = ref[name].shape[0]
        B = base[name] if base is not None else None
        Ms = [m[name][:rows] if name in VOCAB_TENSORS else m[name] for m in models]
        layer = int(LAYER_RE.match(name).group(1)) if LAYER_RE.match(name) else -1
        with np.errstate(over="ignore", invalid="ignore"):
            merged = merge_tensor(case, name, B, Ms, layer, cfg["layers"]).astype(np.float32)
        if donor >= 0 and name in VOCAB_TENSORS:
            merged = np.concatenate([merged, models[donor][name][rows:]])
        out.append((name, merged))
    dt = dtypes[ref_name]
    path = os.path.join(OUT, "expected", case["name"] + ".safetensors")
    write_safetensors(path, [(n, dt, a if dt == "F32" else f32_to_bf16_bits(a)) for n, a in out])


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "expected"))
    rng = np.random.default_rng(20240611)
    V = CFG["vocab"]
    base = random_base(rng, V)
    stored, dtypes, cfgs = {}, {}, {}

    def add(name, weights, dtype, vocab, side=None, cfg=CFG):
        stored[name] = write_model(name, weights, dtype, vocab, side, cfg)
        dtypes[name] = dtype
        cfgs[name] = cfg

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
    # 4 layers: per-layer values at t = 0, 1/3, 2/3, 1
    deep = dict(CFG, layers=4)
    dbase = random_base(rng, V, deep)
    add("deep_base", dbase, "F32", V, cfg=deep)
    add("deep_a", finetune(rng, dbase, V, True, deep), "F32", V, cfg=deep)
    add("deep_b", finetune(rng, dbase, V, False, deep), "F32", V, cfg=deep)
    add("deep_c", finetune(rng, dbase, V, True, deep), "F32", V, cfg=deep)
    for fam, fcfg in FAMILIES.items():
        dt = "BF16" if fam == "gemma" else "F32"
        fbase = random_base(rng, V, fcfg)
        add(fam + "_base", fbase, dt, V, cfg=fcfg)
        add(fam + "_a", finetune(rng, fbase, V, True, fcfg), dt, V, cfg=fcfg)
        add(fam + "_b", finetune(rng, fbase, V, False, fcfg), dt, V, cfg=fcfg)
        if fam != "gemma":
            add(fam + "_ext", finetune(rng, fbase, EXT_VOCAB, True, fcfg), dt, EXT_VOCAB, cfg=fcfg)

    def case(name, method, base_name, models, weights=None, density=1.0, lam=1.0, normalize=None,
             seed=0, exact=None, densities=None):
        """weights / densities: per model, a number or a per-layer list (mergekit's gradient)."""
        dflt = method in ("linear", "ties")
        return {"name": name, "method": method, "base": base_name, "models": models,
                "weights": weights or [1.0] * len(models), "density": density,
                "densities": densities or [density] * len(models), "lambda": lam,
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
        # each model its own density (mergekit's per-model density)
        case("ties_dens", "ties", "base", ["a", "b", "c"], [1.0, 0.5, 0.8], densities=[0.5, 0.2, 0.9]),
        case("dare_ties_dens", "dare-ties", "base", ["a", "b", "c"], densities=[0.3, 0.8, 1.0], seed=11),
        case("dare_linear_dens", "dare-linear", "base", ["a", "c"], [0.6, 0.4], densities=[0.6, 0.25], seed=3,
             lam=0.9),
        # per-layer value lists (mergekit's gradients) over 4 layers
        case("ties_grad", "ties", "deep_base", ["deep_a", "deep_b", "deep_c"], [[1.0, 0.25, 0.0], 0.5, [0.2, 0.9]],
             densities=[[0.2, 0.9], [0.6, 0.3, 0.45], 0.5]),
        case("dare_ties_grad", "dare-ties", "deep_base", ["deep_a", "deep_b"], [[0.5, 1.5], 1.0],
             densities=[[0.3, 0.9, 0.5], 0.7], seed=5),
        case("linear_grad", "linear", None, ["deep_a", "deep_b"], [[1.0, 0.0], [0.0, 1.0]]),
        case("ta_grad", "task-arithmetic", "deep_base", ["deep_a", "deep_c"], [[1.0, -0.5, 0.25], 0.5], lam=0.8),
        # other families, merged by name in their stored layouts
        case("ties_gpt2", "ties", "gpt2_base", ["gpt2_a", "gpt2_b"], [1.0, 0.7], densities=[0.4, 0.6]),
        case("dare_linear_gpt2", "dare-linear", "gpt2_base", ["gpt2_a", "gpt2_b"], [[1.0, 0.0, 0.5], 0.5],
             densities=[0.5, [0.9, 0.3]], seed=21),
        case("ties_gpt2_ext", "ties", "gpt2_base", ["gpt2_a", "gpt2_ext"], density=0.5),
        case("ta_gptj", "task-arithmetic", "gptj_base", ["gptj_a", "gptj_b"], [0.7, -0.3], lam=1.2),
        case("ties_gptj_ext", "ties", "gptj_base", ["gptj_ext", "gptj_b"], densities=[0.3, 0.7]),
        case("dare_ties_gemma", "dare-ties", "gemma_base", ["gemma_a", "gemma_b"], [0.8, [0.2, 1.0]],
             densities=[0.5, 0.7], seed=9),
        case("linear_gemma", "linear", None, ["gemma_a", "gemma_b"], [1.0, 2.0]),
    ]
    for c in cases:
        run_case(c, stored, dtypes, cfgs)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"config": CFG, "ext_vocab": EXT_VOCAB, "cases": cases}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(OUT) for x in fs)
    print("wrote %d cases, %d bytes under %s" % (len(cases), total, os.path.relpath(OUT)))


if __name__ == "__main__":
    main()
