#!/usr/bin/python3
"""Golden fixtures for tests/test_families.c: tiny random models of the families beyond Llama
(docs/families.md), saved the way transformers' save_pretrained saves them, with the logits an
independent float64 PyTorch re-implementation of the Hugging Face modeling code computes for
them at every position. No transformers, tokenizers or safetensors package is used.

Run by hand (CI never needs Python):
    /usr/bin/python3 tests/reference/make_family_fixtures.py [OUT_DIR]
OUT_DIR defaults to tests/fixtures/families in this repository.

gpt2: GPT2LMHeadModel as transformers 4.46 defines it (modeling_gpt2.py):
  h = wte[ids] + wpe[positions]
  per block: a = ln_1(h); qkv = a @ c_attn.weight + c_attn.bias (Conv1D: weight [in, out]);
             q, k, v = qkv.split(n_embd); heads of n_embd / n_head; scores q k^T / sqrt(head_dim)
             with the causal mask; h = h + (softmax @ v) @ attn.c_proj.weight + attn.c_proj.bias
             m = ln_2(h); h = h + gelu_new(m @ c_fc.weight + c_fc.bias) @ mlp.c_proj.weight
                              + mlp.c_proj.bias
  logits = ln_f(h) @ wte^T (lm_head tied to wte, so model.safetensors has no lm_head.weight)
  LayerNorm: (x - mean) / sqrt(var + eps) * w + b with the biased variance, eps 1e-5;
  gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
  Sizes: n_embd 32, n_head 4, n_layer 2, n_positions 64, n_inner null (128), vocabulary 269:
  a byte-level BPE tokenizer.json (the 256 bytes in GPT-2's byte alphabet, 12 merges,
  <|endoftext|> = 268) as the tokenizers library writes GPT-2's.

Outputs under OUT_DIR/gpt2: hf_f32/ (config.json, model.safetensors, tokenizer.json),
golden.bin (little-endian float32 logits: for each sequence in order, every position,
vocab_size values each) and manifest.json (sequences, tolerance, a tokenizer test vector whose
ids this script computes with its own BPE: GPT-2's pre-tokenizer regex on ASCII text, then merges
by rank).
"""
import json
import math
import os
import re
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from make_model_fixtures import write_safetensors  # noqa: E402  (same writer as the Llama fixtures)

DT = torch.float64
SEQ_SEED = 17
SEQ_LENS = (5, 12, 32, 64)          # 64 = n_positions: the last learned position is used
TOL_ABS = 1e-4                      # max |logit - golden|, stated in test_families.c

# ---- the tokenizer ---------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's byte alphabet (encoder.py): printable bytes map to themselves, the others to
    U+0100 onwards in byte order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


BYTE_CHAR = bytes_to_unicode()
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"),
          ("Ġ", "s"), ("r", "e"), ("a", "t"), ("Ġ", "c"), ("i", "s")]
EOT = "<|endoftext|>"


def gpt2_vocab():
    vocab = {}
    for b in BYTE_CHAR:               # the byte tokens in the alphabet's order
        vocab[BYTE_CHAR[b]] = len(vocab)
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    vocab[EOT] = len(vocab)
    return vocab


VOCAB = gpt2_vocab()
V = len(VOCAB)                       # 269

# GPT-2's pattern, restricted to ASCII text (\p{L} -> [A-Za-z], \p{N} -> [0-9]).
GPT2_ASCII_RE = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")


def bpe_encode(text):
    ranks = {a + " " + b: i for i, (a, b) in enumerate(MERGES)}
    ids = []
    for piece in GPT2_ASCII_RE.findall(text):
        parts = [BYTE_CHAR[b] for b in piece.encode("utf-8")]
        while len(parts) > 1:
            best, at = None, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + " " + parts[i + 1])
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            parts[at:at + 2] = [parts[at] + parts[at + 1]]
        ids += [VOCAB[p] for p in parts]
    return ids


def tokenizer_json():
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": VOCAB[EOT], "content": EOT, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": VOCAB,
                  "merges": [a + " " + b for a, b in MERGES]},
    }


# ---- the model --------------------------------------------------------------------------------

def gpt2_config():
    """GPT2Config().to_json_string() of transformers 4.46 for these sizes, keys sorted."""
    return {
        "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1, "bos_token_id": VOCAB[EOT], "embd_pdrop": 0.1,
        "eos_token_id": VOCAB[EOT], "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2", "n_embd": 32, "n_head": 4, "n_inner": None, "n_layer": 2,
        "n_positions": 64, "reorder_and_upcast_attn": False, "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
        "summary_type": "cls_index", "summary_use_proj": True, "torch_dtype": "float32",
        "transformers_version": "4.46.0", "use_cache": True, "vocab_size": V,
    }


def gpt2_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, L, P = cfg["n_embd"], cfg["n_layer"], cfg["n_positions"]
    f = cfg["n_inner"] or 4 * d

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).contiguous()

    w = {"transformer.wte.weight": randn(V, d, scale=0.5),
         "transformer.wpe.weight": randn(P, d, scale=0.3)}
    for l in range(L):
        p = f"transformer.h.{l}."
        w[p + "ln_1.weight"] = 1.0 + randn(d, scale=0.1)
        w[p + "ln_1.bias"] = randn(d, scale=0.1)
        w[p + "attn.c_attn.weight"] = randn(d, 3 * d, scale=d ** -0.5)     # Conv1D [in, out]
        w[p + "attn.c_attn.bias"] = randn(3 * d, scale=0.1)
        w[p + "attn.c_proj.weight"] = randn(d, d, scale=d ** -0.5)
        w[p + "attn.c_proj.bias"] = randn(d, scale=0.1)
        w[p + "ln_2.weight"] = 1.0 + randn(d, scale=0.1)
        w[p + "ln_2.bias"] = randn(d, scale=0.1)
        w[p + "mlp.c_fc.weight"] = randn(d, f, scale=d ** -0.5)
        w[p + "mlp.c_fc.bias"] = randn(f, scale=0.1)
        w[p + "mlp.c_proj.weight"] = randn(f, d, scale=f ** -0.5)
        w[p + "mlp.c_proj.bias"] = randn(d, scale=0.1)
    w["transformer.ln_f.weight"] = 1.0 + randn(d, scale=0.1)
    w["transformer.ln_f.bias"] = randn(d, scale=0.1)
    return w


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def gpt2_forward(cfg, w, ids):
    """Logits [T, V] of one sequence, float64."""
    d, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    hd = d // H
    T = len(ids)
    allowed = torch.arange(T)[None, :] <= torch.arange(T)[:, None]
    mask = torch.zeros(T, T, dtype=DT).masked_fill(~allowed, float("-inf"))
    h = w["transformer.wte.weight"][torch.tensor(ids)] + w["transformer.wpe.weight"][:T]
    for l in range(L):
        p = f"transformer.h.{l}."
        a = layer_norm(h, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(d, dim=-1)
        q, k, v = (t.view(T, H, hd).transpose(0, 1) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, d)
        h = h + o @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = layer_norm(h, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        h = h + gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]) @ \
            w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    h = layer_norm(h, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return h @ w["transformer.wte.weight"].T


# ---- main ---------------------------------------------------------------------------------------

def write_gpt2(out):
    cfg = gpt2_config()
    w = gpt2_weights(cfg, 21)
    folder = os.path.join(out, "gpt2", "hf_f32")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        fh.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write_safetensors(os.path.join(folder, "model.safetensors"), w, "F32")
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(tokenizer_json(), fh, ensure_ascii=False, indent=2)
        fh.write("\n")

    g = torch.Generator().manual_seed(SEQ_SEED)
    seqs = [torch.randint(0, V, (n,), generator=g).tolist() for n in SEQ_LENS]
    w64 = {k: t.to(DT) for k, t in w.items()}
    worst = 0.0
    with open(os.path.join(out, "gpt2", "golden.bin"), "wb") as fh:
        for ids in seqs:
            logits = gpt2_forward(cfg, w64, ids)
            worst = max(worst, float(logits.abs().max()))
            fh.write(logits.to(torch.float32).numpy().astype("<f4").tobytes())
    text = "the cat is on the mat, isn't it? 42 cats sat there"
    manifest = {
        "family": "gpt2", "model": "hf_f32", "vocab_size": V, "n_positions": cfg["n_positions"],
        "sequences": seqs, "golden": "golden.bin", "tolerance_abs": TOL_ABS,
        "max_abs_logit": worst,
        "tokenizer": {"text": text, "ids": bpe_encode(text)},
    }
    with open(os.path.join(out, "gpt2", "manifest.json"), "w") as fh:
        fh.write(json.dumps(manifest, indent=1) + "\n")
    print(f"gpt2: {len(seqs)} sequences, max |logit| {worst:.3f}, tokenizer ids {manifest['tokenizer']['ids']}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "families")
    write_gpt2(out)


if __name__ == "__main__":
    main()
