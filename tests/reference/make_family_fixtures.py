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


# ---- GPT-J ------------------------------------------------------------------------------------

def gptj_config():
    """GPTJConfig().to_json_string() of transformers 4.46 for these sizes, keys sorted."""
    return {
        "activation_function": "gelu_new", "architectures": ["GPTJForCausalLM"],
        "attn_pdrop": 0.0, "bos_token_id": VOCAB[EOT], "embd_pdrop": 0.0,
        "eos_token_id": VOCAB[EOT], "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
        "model_type": "gptj", "n_embd": 32, "n_head": 4, "n_inner": None, "n_layer": 2,
        "n_positions": 64, "resid_pdrop": 0.0, "rotary_dim": 4, "tie_word_embeddings": False,
        "torch_dtype": "float32", "transformers_version": "4.46.0", "use_cache": True,
        "vocab_size": V,
    }


def gptj_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, L = cfg["n_embd"], cfg["n_layer"]
    f = cfg["n_inner"] or 4 * d

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).contiguous()

    w = {"transformer.wte.weight": randn(V, d, scale=0.5)}
    for l in range(L):
        p = f"transformer.h.{l}."
        w[p + "ln_1.weight"] = 1.0 + randn(d, scale=0.1)
        w[p + "ln_1.bias"] = randn(d, scale=0.1)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):    # nn.Linear [out, in], no bias
            w[p + f"attn.{n}.weight"] = randn(d, d, scale=d ** -0.5)
        w[p + "mlp.fc_in.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.fc_in.bias"] = randn(f, scale=0.1)
        w[p + "mlp.fc_out.weight"] = randn(d, f, scale=f ** -0.5)
        w[p + "mlp.fc_out.bias"] = randn(d, scale=0.1)
    w["transformer.ln_f.weight"] = 1.0 + randn(d, scale=0.1)
    w["transformer.ln_f.bias"] = randn(d, scale=0.1)
    w["lm_head.weight"] = randn(V, d, scale=0.5)
    w["lm_head.bias"] = randn(V, scale=0.1)
    return w


def causal_mask(T, window=0):
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    allowed = j <= i
    if window:
        allowed = allowed & (i - j < window)
    return torch.zeros(T, T, dtype=DT).masked_fill(~allowed, float("-inf"))


def rotate_every_two(x):
    """modeling_gptj.rotate_every_two: pairs (2i, 2i+1) -> (-x[2i+1], x[2i])."""
    x1 = x[..., ::2]
    x2 = x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def gptj_rotary(x, rot, theta=10000.0):
    """x [H, T, hd]: the first rot dims rotated as GPT-J does (sin/cos repeat_interleave(2))."""
    T = x.shape[1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, rot, 2, dtype=DT) / rot))
    ang = torch.arange(T, dtype=DT)[:, None] * inv_freq[None, :]
    sin = torch.repeat_interleave(torch.sin(ang), 2, dim=-1)
    cos = torch.repeat_interleave(torch.cos(ang), 2, dim=-1)
    xr, xp = x[..., :rot], x[..., rot:]
    xr = xr * cos + rotate_every_two(xr) * sin
    return torch.cat([xr, xp], dim=-1)


def gptj_forward(cfg, w, ids):
    """Logits [T, V] of one sequence, float64: h = h + attn(ln_1(h)) + mlp(ln_1(h))."""
    d, H, L, eps = cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    hd, rot = d // H, cfg["rotary_dim"]
    T = len(ids)
    mask = causal_mask(T)
    h = w["transformer.wte.weight"][torch.tensor(ids)]
    for l in range(L):
        p = f"transformer.h.{l}."
        a = layer_norm(h, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        q, k, v = ((a @ w[p + f"attn.{n}.weight"].T).view(T, H, hd).transpose(0, 1)
                   for n in ("q_proj", "k_proj", "v_proj"))
        q, k = gptj_rotary(q, rot), gptj_rotary(k, rot)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, d) @ w[p + "attn.out_proj.weight"].T
        m = gelu_new(a @ w[p + "mlp.fc_in.weight"].T + w[p + "mlp.fc_in.bias"]) @ \
            w[p + "mlp.fc_out.weight"].T + w[p + "mlp.fc_out.bias"]
        h = o + m + h
    h = layer_norm(h, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return h @ w["lm_head.weight"].T + w["lm_head.bias"]


# ---- Gemma and Gemma-2: a SentencePiece-converted tokenizer.json ------------------------------

SPM_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>"]
SPM_CHARS = "▁abcdefghijklmnopqrstuvwxyz"
SPM_MERGES = [("▁", "t"), ("h", "e"), ("▁t", "he"), ("a", "t"), ("▁", "c"), ("▁c", "at"),
              ("o", "n"), ("▁", "s"), ("▁s", "at"), ("▁", "o"), ("▁o", "n"), ("▁", "m"),
              ("▁m", "at"), ("i", "s")]


def spm_vocab():
    vocab = {t: i for i, t in enumerate(SPM_SPECIAL)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in SPM_CHARS:
        vocab[ch] = len(vocab)
    for a, b in SPM_MERGES:
        vocab[a + b] = len(vocab)
    return vocab


SPM_VOCAB = spm_vocab()
SPM_V = len(SPM_VOCAB)               # 4 + 256 + 27 + 14 = 301


def spm_encode(text):
    """Hugging Face's BPE as Gemma's tokenizer.json configures it: spaces -> "▁" (no prefix), the
    whole text one word, characters outside the vocabulary as their UTF-8 byte tokens, then the
    merges by rank (byte tokens never merge)."""
    ranks = {(a, b): i for i, (a, b) in enumerate(SPM_MERGES)}
    parts = []
    for ch in text.replace(" ", "▁"):
        if ch in SPM_VOCAB:
            parts.append(ch)
        else:
            parts += [f"<0x{b:02X}>" for b in ch.encode("utf-8")]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get((parts[i], parts[i + 1]))
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return [SPM_VOCAB[p] for p in parts]


def spm_tokenizer_json():
    """The layout of google/gemma-7b's tokenizer.json, with this vocabulary."""
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(SPM_SPECIAL)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<bos>", "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": True,
                  "byte_fallback": True, "ignore_merges": False, "vocab": SPM_VOCAB,
                  "merges": [a + " " + b for a, b in SPM_MERGES]},
    }


def gemma_config(v2):
    """GemmaConfig / Gemma2Config().to_json_string() of transformers 4.46 for these sizes. Four
    query heads share two kv heads; head_dim 16 is explicit (not hidden_size / heads = 8). The
    Gemma-2 soft-capping values are small so that tanh bends the test's scores and logits."""
    c = {
        "architectures": ["Gemma2ForCausalLM" if v2 else "GemmaForCausalLM"],
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 2, "eos_token_id": 1,
        "head_dim": 16, "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 32, "initializer_range": 0.02,
        "intermediate_size": 64, "max_position_embeddings": 64,
        "model_type": "gemma2" if v2 else "gemma", "num_attention_heads": 4,
        "num_hidden_layers": 2, "num_key_value_heads": 2, "pad_token_id": 0,
        "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "torch_dtype": "float32",
        "transformers_version": "4.46.0", "use_cache": True, "vocab_size": SPM_V,
    }
    if v2:
        c.update({"attn_logit_softcapping": 2.0, "cache_implementation": "hybrid",
                  "final_logit_softcapping": 15.0, "query_pre_attn_scalar": 24,
                  "sliding_window": 6})
    return c


def gemma_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, L, f = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    v2 = cfg["model_type"] == "gemma2"

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).contiguous()

    w = {"model.embed_tokens.weight": randn(SPM_V, d, scale=0.5)}
    norms = ["input_layernorm", "post_attention_layernorm"]
    if v2:
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    for l in range(L):
        p = f"model.layers.{l}."
        for n in norms:
            w[p + n + ".weight"] = randn(d, scale=0.1)        # the norm scales by 1 + w
        w[p + "self_attn.q_proj.weight"] = randn(H * hd, d, scale=d ** -0.5)
        w[p + "self_attn.k_proj.weight"] = randn(KV * hd, d, scale=d ** -0.5)
        w[p + "self_attn.v_proj.weight"] = randn(KV * hd, d, scale=d ** -0.5)
        w[p + "self_attn.o_proj.weight"] = randn(d, H * hd, scale=(H * hd) ** -0.5)
        w[p + "mlp.gate_proj.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.up_proj.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.down_proj.weight"] = randn(d, f, scale=f ** -0.5)
    w["model.norm.weight"] = randn(d, scale=0.1)
    return w


def gemma_rms(x, w, eps):
    """GemmaRMSNorm: x / sqrt(mean(x²) + eps) * (1 + w)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w)


def rope_rotate_half(x, theta):
    """x [H, T, hd]: Llama's rotate-half RoPE on the whole head."""
    T, hd = x.shape[1], x.shape[2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=DT) / hd))
    ang = torch.arange(T, dtype=DT)[:, None] * inv_freq[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
    return x * torch.cos(emb) + torch.cat([-x2, x1], dim=-1) * torch.sin(emb)


def gemma_forward(cfg, w, ids):
    """Logits [T, V] of one sequence, float64, Gemma or Gemma-2 (modeling_gemma.py,
    modeling_gemma2.py)."""
    d, L, eps = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    H, KV, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    v2 = cfg["model_type"] == "gemma2"
    T = len(ids)
    # the normaliser is a tensor in the model's dtype (float32 here)
    normalizer = float(torch.tensor(d ** 0.5, dtype=torch.float32))
    h = w["model.embed_tokens.weight"][torch.tensor(ids)] * normalizer
    scale = cfg["query_pre_attn_scalar"] ** -0.5 if v2 else hd ** -0.5
    for l in range(L):
        p = f"model.layers.{l}."
        window = cfg["sliding_window"] if v2 and l % 2 == 0 else 0   # even layers slide
        mask = causal_mask(T, window)
        a = gemma_rms(h, w[p + "input_layernorm.weight"], eps)
        q = (a @ w[p + "self_attn.q_proj.weight"].T).view(T, H, hd).transpose(0, 1)
        k = (a @ w[p + "self_attn.k_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        v = (a @ w[p + "self_attn.v_proj.weight"].T).view(T, KV, hd).transpose(0, 1)
        q, k = rope_rotate_half(q, cfg["rope_theta"]), rope_rotate_half(k, cfg["rope_theta"])
        k = k.repeat_interleave(H // KV, dim=0)
        v = v.repeat_interleave(H // KV, dim=0)
        s = q @ k.transpose(1, 2) * scale
        if v2:
            cap = cfg["attn_logit_softcapping"]
            s = torch.tanh(s / cap) * cap
        att = torch.softmax(s + mask, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, H * hd) @ w[p + "self_attn.o_proj.weight"].T
        if v2:
            o = gemma_rms(o, w[p + "post_attention_layernorm.weight"], eps)
        h = h + o
        m = gemma_rms(h, w[p + ("pre_feedforward_layernorm" if v2 else "post_attention_layernorm")
                             + ".weight"], eps)
        y = (gelu_new(m @ w[p + "mlp.gate_proj.weight"].T) * (m @ w[p + "mlp.up_proj.weight"].T)) \
            @ w[p + "mlp.down_proj.weight"].T
        if v2:
            y = gemma_rms(y, w[p + "post_feedforward_layernorm.weight"], eps)
        h = h + y
    logits = gemma_rms(h, w["model.norm.weight"], eps) @ w["model.embed_tokens.weight"].T
    if v2:
        cap = cfg["final_logit_softcapping"]
        logits = torch.tanh(logits / cap) * cap
    return logits


# ---- BLOOM: a byte-level BPE with BLOOM's Split pre-tokenizer ------------------------------------

BLOOM_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
# bigscience/bloom's tokenizer.json Split pattern. tokenizers runs it with Oniguruma, where the
# inner [...] is a nested class: " ?" then characters that are neither whitespace nor one of
# ( | . , ! ? … 。 ， 、 । ۔ ، ). BLOOM_SPLIT_FLAT is the same set written flat for Python's re.
BLOOM_SPLIT = " ?[^(\\s|[.,!?…。，、।۔،])]+"
BLOOM_SPLIT_FLAT = re.compile(r" ?[^(\s|.,!?…。，、।۔،)]+")


def bloom_vocab():
    vocab = {t: i for i, t in enumerate(BLOOM_SPECIAL)}
    for b in BYTE_CHAR:
        vocab[BYTE_CHAR[b]] = len(vocab)
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    return vocab


BLOOM_VOCAB = bloom_vocab()
BLOOM_V = len(BLOOM_VOCAB)           # 4 + 256 + 12 = 272
BLOOM_V_CFG = 280                    # config vocab_size: the embedding has rows beyond the tokenizer's


def bloom_encode(text):
    """Split (Isolated): every match and every gap between matches is a piece; each piece in GPT-2's
    byte alphabet, then the merges by rank (ByteLevel without its own regex)."""
    ranks = {a + " " + b: i for i, (a, b) in enumerate(MERGES)}
    pieces, at = [], 0
    for mt in BLOOM_SPLIT_FLAT.finditer(text):
        if mt.start() > at:
            pieces.append(text[at:mt.start()])
        pieces.append(mt.group(0))
        at = mt.end()
    if at < len(text):
        pieces.append(text[at:])
    ids = []
    for piece in pieces:
        parts = [BYTE_CHAR[b] for b in piece.encode("utf-8")]
        while len(parts) > 1:
            best, pos = None, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + " " + parts[i + 1])
                if r is not None and (best is None or r < best):
                    best, pos = r, i
            if best is None:
                break
            parts[pos:pos + 2] = [parts[pos] + parts[pos + 1]]
        ids += [BLOOM_VOCAB[p] for p in parts]
    return ids


def bloom_tokenizer_json():
    """The layout of bigscience/bloom's tokenizer.json, with this vocabulary."""
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(BLOOM_SPECIAL)]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": BLOOM_SPLIT}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": False,
                  "byte_fallback": False, "ignore_merges": False, "vocab": BLOOM_VOCAB,
                  "merges": [a + " " + b for a, b in MERGES]},
    }


def bloom_config():
    """BloomConfig().to_json_string() of transformers 4.46 for these sizes, keys sorted. Six
    heads: not a power of two, so ALiBi's extra slopes are used."""
    return {
        "apply_residual_connection_post_layernorm": False, "architectures": ["BloomForCausalLM"],
        "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "hidden_dropout": 0.0,
        "hidden_size": 48, "initializer_range": 0.02, "layer_norm_epsilon": 1e-05,
        "model_type": "bloom", "n_head": 6, "n_layer": 2, "pad_token_id": 3, "pretraining_tp": 1,
        "slow_but_exact": False, "torch_dtype": "float32", "transformers_version": "4.46.0",
        "use_cache": True, "vocab_size": BLOOM_V_CFG,
    }


def bloom_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    d, L = cfg["hidden_size"], cfg["n_layer"]
    f = 4 * d

    def randn(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale).contiguous()

    w = {"transformer.word_embeddings.weight": randn(cfg["vocab_size"], d, scale=0.5),
         "transformer.word_embeddings_layernorm.weight": 1.0 + randn(d, scale=0.1),
         "transformer.word_embeddings_layernorm.bias": randn(d, scale=0.1)}
    for l in range(L):
        p = f"transformer.h.{l}."
        w[p + "input_layernorm.weight"] = 1.0 + randn(d, scale=0.1)
        w[p + "input_layernorm.bias"] = randn(d, scale=0.1)
        # nn.Linear [out, in]; rows [n_head, 3, head_dim]
        w[p + "self_attention.query_key_value.weight"] = randn(3 * d, d, scale=d ** -0.5)
        w[p + "self_attention.query_key_value.bias"] = randn(3 * d, scale=0.1)
        w[p + "self_attention.dense.weight"] = randn(d, d, scale=d ** -0.5)
        w[p + "self_attention.dense.bias"] = randn(d, scale=0.1)
        w[p + "post_attention_layernorm.weight"] = 1.0 + randn(d, scale=0.1)
        w[p + "post_attention_layernorm.bias"] = randn(d, scale=0.1)
        w[p + "mlp.dense_h_to_4h.weight"] = randn(f, d, scale=d ** -0.5)
        w[p + "mlp.dense_h_to_4h.bias"] = randn(f, scale=0.1)
        w[p + "mlp.dense_4h_to_h.weight"] = randn(d, f, scale=f ** -0.5)
        w[p + "mlp.dense_4h_to_h.bias"] = randn(d, scale=0.1)
    w["transformer.ln_f.weight"] = 1.0 + randn(d, scale=0.1)
    w["transformer.ln_f.bias"] = randn(d, scale=0.1)
    return w


def alibi_slopes(n_head):
    """build_alibi_tensor's slopes: float32 bases raised to integer powers in float32."""
    p = 2 ** math.floor(math.log2(n_head))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(p) - 3))), dtype=torch.float32)
    slopes = torch.pow(base, torch.arange(1, 1 + p, dtype=torch.int32))
    if p != n_head:
        extra = torch.tensor(2 ** (-(2 ** -(math.log2(2 * p) - 3))), dtype=torch.float32)
        n_rest = min(p, n_head - p)
        slopes = torch.cat([slopes, torch.pow(extra, torch.arange(1, 1 + 2 * n_rest, 2, dtype=torch.int32))])
    return slopes


def bloom_gelu(x):
    """modeling_bloom.bloom_gelu_forward (its own rounding of sqrt(2/pi))."""
    return x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))


def bloom_forward(cfg, w, ids):
    """Logits [T, V] of one sequence, float64 (modeling_bloom.py with
    apply_residual_connection_post_layernorm false): scores q·k/√hd + slope_h · key position."""
    d, H, L, eps = cfg["hidden_size"], cfg["n_head"], cfg["n_layer"], cfg["layer_norm_epsilon"]
    hd = d // H
    T = len(ids)
    mask = causal_mask(T)
    alibi = alibi_slopes(H).to(DT)[:, None, None] * torch.arange(T, dtype=DT)[None, None, :]
    h = w["transformer.word_embeddings.weight"][torch.tensor(ids)]
    h = layer_norm(h, w["transformer.word_embeddings_layernorm.weight"],
                   w["transformer.word_embeddings_layernorm.bias"], eps)
    for l in range(L):
        p = f"transformer.h.{l}."
        a = layer_norm(h, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], eps)
        fused = a @ w[p + "self_attention.query_key_value.weight"].T + \
            w[p + "self_attention.query_key_value.bias"]
        fused = fused.view(T, H, 3, hd)
        q, k, v = (fused[:, :, i].transpose(0, 1) for i in range(3))       # [H, T, hd]
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + alibi + mask, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(T, d)
        h = h + o @ w[p + "self_attention.dense.weight"].T + w[p + "self_attention.dense.bias"]
        m = layer_norm(h, w[p + "post_attention_layernorm.weight"],
                       w[p + "post_attention_layernorm.bias"], eps)
        h = h + bloom_gelu(m @ w[p + "mlp.dense_h_to_4h.weight"].T + w[p + "mlp.dense_h_to_4h.bias"]) \
            @ w[p + "mlp.dense_4h_to_h.weight"].T + w[p + "mlp.dense_4h_to_h.bias"]
    h = layer_norm(h, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], eps)
    return h @ w["transformer.word_embeddings.weight"].T


# ---- main ---------------------------------------------------------------------------------------

def write_family(out, family, cfg, w, forward, tok_json, encode, text, vocab_size, n_positions):
    """hf_f32/ (config.json, model.safetensors, tokenizer.json), golden.bin, manifest.json."""
    folder = os.path.join(out, family, "hf_f32")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        fh.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    write_safetensors(os.path.join(folder, "model.safetensors"), w, "F32")
    with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(tok_json, fh, ensure_ascii=False, indent=2)
        fh.write("\n")

    g = torch.Generator().manual_seed(SEQ_SEED)
    seqs = [torch.randint(0, vocab_size, (n,), generator=g).tolist() for n in SEQ_LENS]
    w64 = {k: t.to(DT) for k, t in w.items()}
    worst = 0.0
    with open(os.path.join(out, family, "golden.bin"), "wb") as fh:
        for ids in seqs:
            logits = forward(cfg, w64, ids)
            worst = max(worst, float(logits.abs().max()))
            fh.write(logits.to(torch.float32).numpy().astype("<f4").tobytes())
    manifest = {
        "family": family, "model": "hf_f32", "vocab_size": vocab_size, "n_positions": n_positions,
        "sequences": seqs, "golden": "golden.bin", "tolerance_abs": TOL_ABS,
        "max_abs_logit": worst,
        "tokenizer": {"text": text, "ids": encode(text)},
    }
    with open(os.path.join(out, family, "manifest.json"), "w") as fh:
        fh.write(json.dumps(manifest, indent=1) + "\n")
    print(f"{family}: {len(seqs)} sequences, max |logit| {worst:.3f}, tokenizer ids {manifest['tokenizer']['ids']}")


def write_gpt2(out):
    cfg = gpt2_config()
    write_family(out, "gpt2", cfg, gpt2_weights(cfg, 21), gpt2_forward, tokenizer_json(), bpe_encode,
                 "the cat is on the mat, isn't it? 42 cats sat there", V, cfg["n_positions"])


def write_gptj(out):
    cfg = gptj_config()
    write_family(out, "gptj", cfg, gptj_weights(cfg, 22), gptj_forward, tokenizer_json(), bpe_encode,
                 "the cat is on the mat, isn't it? 42 cats sat there", V, cfg["n_positions"])


def write_gemma(out, v2):
    cfg = gemma_config(v2)
    write_family(out, "gemma2" if v2 else "gemma", cfg, gemma_weights(cfg, 24 if v2 else 23),
                 gemma_forward, spm_tokenizer_json(), spm_encode,
                 "the cat sat on the mat is 42 caf\u00e9s", SPM_V, cfg["max_position_embeddings"])


def write_bloom(out):
    cfg = bloom_config()
    write_family(out, "bloom", cfg, bloom_weights(cfg, 25), bloom_forward, bloom_tokenizer_json(),
                 bloom_encode, "the cat is on the mat, isn't it? 42 cats (sat) there... | ok",
                 BLOOM_V_CFG, 0)
    # ALiBi's slopes for head counts with and without a power of two, for test_families
    with open(os.path.join(out, "bloom", "manifest.json")) as fh:
        manifest = json.load(fh)
    manifest["alibi_slopes"] = {str(n): alibi_slopes(n).tolist() for n in (1, 2, 3, 6, 8, 12, 16, 30, 112)}
    with open(os.path.join(out, "bloom", "manifest.json"), "w") as fh:
        fh.write(json.dumps(manifest, indent=1) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "families")
    write_gpt2(out)
    write_gptj(out)
    write_gemma(out, False)
    write_gemma(out, True)
    write_bloom(out)


if __name__ == "__main__":
    main()
