#!/usr/bin/python3
"""GGUF twins of the tiny Hugging Face family models (tests/fixtures/families/<family>/hf_f32,
written by make_family_fixtures.py) for tests/test_families_gguf.c: each twin holds what
llama.cpp's convert_hf_to_gguf.py (commit c392e509) writes for that architecture, written with
llama.cpp's own gguf-py. convert_hf_to_gguf.py itself cannot run here (it needs transformers for
GPT-2's vocabulary and a SentencePiece tokenizer.model for Gemma's), so this script applies its
rules, which are, per architecture (facts read from its GPT2Model, GemmaModel, Gemma2Model and
Model.prepare_tensors):

gpt2   (GPT2LMHeadModel): keys block_count = n_layer, context_length = n_ctx (this config has
       n_positions only, which is the same number), embedding_length = n_embd,
       feed_forward_length = 4 * n_embd, head_count = n_head, attention.layer_norm_epsilon.
       The Conv1D weights c_attn, c_proj, c_fc are transposed to [out, in]; c_attn stays fused as
       blk.N.attn_qkv (rows q | k | v); output.weight is written as a copy of token_embd.weight
       (the HF head is tied). Vocabulary: tokenizer.ggml.model "gpt2", pre "gpt-2", tokens in id
       order, token_type NORMAL (CONTROL for the added special token), merges.
gemma  (GemmaForCausalLM): context_length, embedding_length, block_count, feed_forward_length,
       head_count, head_count_kv, attention.layer_norm_rms_epsilon, attention.key_length and
       value_length = head_dim. Every "*norm.weight" is stored as w + 1 (the HF RMSNorm scales by
       1 + w; llama.cpp's graph multiplies by the stored weight). No output tensor (tied).
       Q/K are NOT permuted (llama.cpp permutes Q/K for Llama only; Gemma uses rotate-half RoPE).
gemma2 (Gemma2ForCausalLM): Gemma's keys plus attn_logit_softcapping, final_logit_softcapping
       and attention.sliding_window. query_pre_attn_scalar is not written: llama.cpp scales
       queries by head_dim^-1/2 (n_embd/n_head for the 46-layer 27B), so the twin of this
       fixture (query_pre_attn_scalar 24, head_dim 16) matches the HF model with 16 there; the
       test says so.
bloom  (BloomForCausalLM): keys context_length = seq_length (absent, as here: n_embed, the
       converter's fallback; ALiBi has no position table, so it limits nothing), embedding_length,
       feed_forward_length = 4 * n_embed, block_count, head_count, head_count_kv = n_head,
       attention.layer_norm_epsilon. query_key_value, whose rows are [n_head, 3, head_dim], is
       reordered into the q | k | v rows of blk.N.attn_qkv (weight and bias); output.weight is
       written as a copy of token_embd.weight when the folder has no lm_head;
       word_embeddings_layernorm is token_embd_norm. Vocabulary as GPT-2's with pre "bloom"; ids
       past the tokenizer's up to vocab_size are "[PAD<id>]" of type UNUSED (_set_vocab_gpt2).
Tensor types (prepare_tensors): 1-D tensors, "*_norm.weight", position_embd and every non-
".weight" tensor stay F32; the other matrices take the file type (F32, F16 or Q8_0; a matrix
whose rows are not whole Q8_0 blocks falls back to F16, as prepare_tensors does on QuantError).
Gemma's vocabulary: convert reads tokenizer.model; the twin takes the same pieces from
tokenizer.json (a SentencePiece conversion): model "llama", scores -id for ordinary pieces (the
merge order of this vocabulary is its id order), 0 for the others; token_type CONTROL for
<pad>/<eos>/<bos>, UNKNOWN for <unk>, BYTE for <0xXX>; add_space_prefix false, add_bos_token true,
add_eos_token false (Gemma's tokenizer_config).

Run by hand (CI never needs Python):
    PYTHONPATH=/work/scratch/llama.cpp/gguf-py /usr/bin/python3 \
        tests/reference/make_gguf_family_fixtures.py [FAMILIES_DIR]
Outputs FAMILIES_DIR/<family>/gguf_{f32,f16,q8_0}.gguf for gpt2, gemma, gemma2 and bloom (no
F16 twin for bloom). GPT-J has no
twin: llama.cpp defines no GPT-J tensors (llama-arch.cpp lists only token_embd) and its converter
has no GPT-J class.
"""
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from safetensors_io import read_safetensors  # noqa: E402

# gguf-py imports sentencepiece for its vocabulary helpers, which this script does not use.
sys.modules.setdefault("sentencepiece", types.SimpleNamespace(SentencePieceProcessor=None))
import gguf  # noqa: E402

FILE_TYPES = {
    "f32": (gguf.LlamaFileType.ALL_F32, gguf.GGMLQuantizationType.F32),
    "f16": (gguf.LlamaFileType.MOSTLY_F16, gguf.GGMLQuantizationType.F16),
    "q8_0": (gguf.LlamaFileType.MOSTLY_Q8_0, gguf.GGMLQuantizationType.Q8_0),
}


def tensor_type(name, data, qtype):
    """prepare_tensors' choice for one tensor."""
    if data.ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight"):
        return gguf.GGMLQuantizationType.F32
    if name.startswith("position_embd"):
        return gguf.GGMLQuantizationType.F32
    return qtype


def gpt2_tensors(weights):
    out = []
    for name, (_, arr) in weights.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        a = np.asarray(arr, dtype=np.float32)
        if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
            a = np.ascontiguousarray(a.T)
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if short.startswith("h."):
            _, layer, rest = short.split(".", 2)
            new = {"ln_1.weight": "attn_norm.weight", "ln_1.bias": "attn_norm.bias",
                   "attn.c_attn.weight": "attn_qkv.weight", "attn.c_attn.bias": "attn_qkv.bias",
                   "attn.c_proj.weight": "attn_output.weight", "attn.c_proj.bias": "attn_output.bias",
                   "ln_2.weight": "ffn_norm.weight", "ln_2.bias": "ffn_norm.bias",
                   "mlp.c_fc.weight": "ffn_up.weight", "mlp.c_fc.bias": "ffn_up.bias",
                   "mlp.c_proj.weight": "ffn_down.weight", "mlp.c_proj.bias": "ffn_down.bias"}[rest]
            out.append((f"blk.{layer}.{new}", a))
            continue
        new = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
               "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}[short]
        out.append((new, a))
        if new == "token_embd.weight":
            out.append(("output.weight", a.copy()))
    return out


def gemma_tensors(weights):
    per_layer = {"input_layernorm.weight": "attn_norm.weight",
                 "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                 "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                 "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                 "mlp.down_proj.weight": "ffn_down.weight"}
    out = []
    v2 = any("pre_feedforward_layernorm" in n for n in weights)
    if v2:  # tensor_mapping.py: Gemma-2's four norms
        per_layer.update({"post_attention_layernorm.weight": "post_attention_norm.weight",
                          "pre_feedforward_layernorm.weight": "ffn_norm.weight",
                          "post_feedforward_layernorm.weight": "post_ffw_norm.weight"})
    else:
        per_layer["post_attention_layernorm.weight"] = "ffn_norm.weight"
    for name, (_, arr) in weights.items():
        if name == "lm_head.weight":
            continue
        a = np.asarray(arr, dtype=np.float32)
        if name.endswith("norm.weight"):
            a = a + np.float32(1)
        if name.startswith("model.layers."):
            _, _, layer, rest = name.split(".", 3)
            out.append((f"blk.{layer}.{per_layer[rest]}", a))
        else:
            out.append(({"model.embed_tokens.weight": "token_embd.weight",
                         "model.norm.weight": "output_norm.weight"}[name], a))
    return out


def bloom_tensors(weights, cfg):
    n_head, d = cfg["n_head"], cfg.get("n_embed") or cfg["hidden_size"]
    per_layer = {"input_layernorm": "attn_norm", "self_attention.query_key_value": "attn_qkv",
                 "self_attention.dense": "attn_output", "post_attention_layernorm": "ffn_norm",
                 "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down"}
    out = []
    for name, (_, arr) in weights.items():
        a = np.asarray(arr, dtype=np.float32)
        short = name[len("transformer."):] if name.startswith("transformer.") else name
        if short.startswith("h."):
            _, layer, rest = short.split(".", 2)
            module, kind = rest.rsplit(".", 1)
            if module == "self_attention.query_key_value":
                heads = a.reshape((n_head, 3, d // n_head) + a.shape[1:])
                a = np.concatenate([heads[:, p].reshape((d,) + a.shape[1:]) for p in range(3)], axis=0)
            out.append((f"blk.{layer}.{per_layer[module]}.{kind}", np.ascontiguousarray(a)))
            continue
        new = {"word_embeddings.weight": "token_embd.weight",
               "word_embeddings_layernorm.weight": "token_embd_norm.weight",
               "word_embeddings_layernorm.bias": "token_embd_norm.bias",
               "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias",
               "lm_head.weight": "output.weight"}[short]
        out.append((new, a))
        if new == "token_embd.weight" and "lm_head.weight" not in weights:
            out.append(("output.weight", a.copy()))
    return out


def add_gpt2_vocab(w, tok, cfg, pre):
    vocab = tok["model"]["vocab"]
    special = {t["id"] for t in tok["added_tokens"] if t.get("special")}
    n = max(cfg["vocab_size"], len(vocab))
    tokens = [f"[PAD{i}]" for i in range(n)]
    types_ = [gguf.TokenType.UNUSED] * n
    for piece, i in vocab.items():
        tokens[i] = piece
        types_[i] = gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)  # get_vocab_base_pre's name for the tokenizer's hash
    w.add_token_list(tokens)
    w.add_token_types(types_)
    w.add_token_merges(tok["model"]["merges"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    if "<unk>" in vocab:
        w.add_unk_token_id(vocab["<unk>"])
    else:
        w.add_unk_token_id(cfg["eos_token_id"])  # GPT-2's tokenizer_config: <|endoftext|>
    if "pad_token_id" in cfg:
        w.add_pad_token_id(cfg["pad_token_id"])


def add_spm_vocab(w, tok, cfg):
    vocab = tok["model"]["vocab"]
    tokens = [None] * len(vocab)
    for piece, i in vocab.items():
        tokens[i] = piece
    types_, scores = [], []
    for i, piece in enumerate(tokens):
        if piece in ("<pad>", "<eos>", "<bos>"):
            types_.append(gguf.TokenType.CONTROL)
            scores.append(0.0)
        elif piece == "<unk>":
            types_.append(gguf.TokenType.UNKNOWN)
            scores.append(0.0)
        elif piece.startswith("<0x") and len(piece) == 6:
            types_.append(gguf.TokenType.BYTE)
            scores.append(0.0)
        else:
            types_.append(gguf.TokenType.NORMAL)
            scores.append(-float(i))
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types_)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_unk_token_id(vocab["<unk>"])
    w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)


def write_twin(folder, family, kind):
    hf = os.path.join(folder, family, "hf_f32")
    with open(os.path.join(hf, "config.json")) as fh:
        cfg = json.load(fh)
    with open(os.path.join(hf, "tokenizer.json"), encoding="utf-8") as fh:
        tok = json.load(fh)
    weights = read_safetensors(os.path.join(hf, "model.safetensors"))
    ftype, qtype = FILE_TYPES[kind]
    path = os.path.join(folder, family, f"gguf_{kind}.gguf")
    w = gguf.GGUFWriter(path, family)
    w.add_name(f"tiny-{family}")
    if family == "gpt2":
        w.add_block_count(cfg["n_layer"])
        w.add_context_length(cfg.get("n_ctx", cfg["n_positions"]))
        w.add_embedding_length(cfg["n_embd"])
        w.add_feed_forward_length(4 * cfg["n_embd"])
        w.add_head_count(cfg["n_head"])
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        tensors = gpt2_tensors(weights)
        add_gpt2_vocab(w, tok, cfg, "gpt-2")
    elif family == "bloom":
        d = cfg.get("n_embed") or cfg["hidden_size"]
        w.add_context_length(cfg.get("seq_length", d))
        w.add_embedding_length(d)
        w.add_feed_forward_length(4 * d)
        w.add_block_count(cfg["n_layer"])
        w.add_head_count(cfg["n_head"])
        w.add_head_count_kv(cfg["n_head"])
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        tensors = bloom_tensors(weights, cfg)
        add_gpt2_vocab(w, tok, cfg, "bloom")
    else:
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(cfg["hidden_size"])
        w.add_block_count(cfg["num_hidden_layers"])
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_head_count(cfg["num_attention_heads"])
        w.add_head_count_kv(cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_key_length(cfg["head_dim"])
        w.add_value_length(cfg["head_dim"])
        if family == "gemma2":
            w.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
            w.add_final_logit_softcapping(cfg["final_logit_softcapping"])
            w.add_sliding_window(cfg["sliding_window"])
        tensors = gemma_tensors(weights)
        add_spm_vocab(w, tok, cfg)
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for name, a in tensors:
        t = tensor_type(name, a, qtype)
        try:
            data = gguf.quants.quantize(a, t)
        except gguf.QuantError:
            t = gguf.GGMLQuantizationType.F16
            data = gguf.quants.quantize(a, t)
        w.add_tensor(name, data, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "families")
    for family in ("gpt2", "gemma", "gemma2", "bloom"):
        for kind in FILE_TYPES:
            if family == "bloom" and kind == "f16":
                continue  # its Q8_0 twin is mostly F16 already (rows of 48 are not whole blocks)
            write_twin(folder, family, kind)


if __name__ == "__main__":
    main()
