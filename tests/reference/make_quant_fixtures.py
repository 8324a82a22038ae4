#!/usr/bin/python3
"""Fixtures for tests/test_quant.c: quantized blocks made by llama.cpp's own tools and their
dequantized values as llama.cpp's gguf-py computes them.

Run by hand (CI never needs Python or llama.cpp):
    PYTHONPATH=/path/to/llama.cpp/gguf-py /usr/bin/python3 tests/reference/make_quant_fixtures.py \
        /path/to/llama-quantize [OUT_DIR]
OUT_DIR defaults to tests/fixtures/quant. llama.cpp must already be built (this script does not
build it); the fixtures committed here were made with llama.cpp c392e509.

Steps:
 1. Writes a tiny random Llama model as an F32 GGUF with gguf-py's GGUFWriter (seed 11):
    hidden 256, ffn 256, 1 layer, 4 heads of 64, 2 KV heads, vocabulary 64, untied output,
    a 64-token SentencePiece-style vocabulary. Width 256 so that every K-quant applies.
 2. Quantizes it with `llama-quantize --pure IN OUT TYPE` for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K
    Q3_K Q4_K Q5_K Q6_K (--pure: every matrix in that type; norms stay F32), and without --pure
    to Q4_K_M (llama.cpp's mix: Q4_K, with Q6_K for output.weight and some of attn_v/ffn_down).
    Q3_K is requested as type id 11 (Q3_K_S) with --pure, which is plain Q3_K.
 3. From each --pure file takes the first 8 rows of blk.0.ffn_down.weight (8 x 256 values) as
    stored, and dequantizes them with gguf-py's gguf.quants.dequantize. Writes quant_blocks.gguf
    (with gguf-py) holding, per type T: tensor "T" (the raw blocks, type T), "T.deq" (F32, 8 x
    256, gguf-py's dequantization), "T.dot" (F32, 8: the float64 dot products of the dequantized
    rows with x); and "x" (F32, 256, drawn from seed 12).
 4. Copies the Q4_K_M file as tiny_q4_k_m.gguf (the model-level test computes its logits with
    the quantized weights and with the same weights dequantized to F32).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf.quants import dequantize

TYPES = [("Q4_0", QT.Q4_0, "Q4_0"), ("Q4_1", QT.Q4_1, "Q4_1"), ("Q5_0", QT.Q5_0, "Q5_0"),
         ("Q5_1", QT.Q5_1, "Q5_1"), ("Q8_0", QT.Q8_0, "Q8_0"), ("Q2_K", QT.Q2_K, "Q2_K"),
         ("Q3_K", QT.Q3_K, "Q3_K_S"), ("Q4_K", QT.Q4_K, "Q4_K_S"), ("Q5_K", QT.Q5_K, "Q5_K_S"),
         ("Q6_K", QT.Q6_K, "Q6_K")]
ROWS = 8
D, FFN, HEADS, KV_HEADS, VOCAB = 256, 256, 4, 2, 64


def write_model(path):
    rng = np.random.default_rng(11)
    hd = D // HEADS
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(256)
    w.add_embedding_length(D)
    w.add_block_count(1)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(0)
    tokens = ["<unk>", "<s>", "</s>"] + ["\u2581" + chr(ord("a") + i) for i in range(26)] + \
             [chr(ord("a") + i) for i in range(26)] + ["\u2581", ".", ",", "!", "?", "\u2581the",
                                                        "\u2581of", "\u2581and", "\u2581is"]
    assert len(tokens) == VOCAB
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0, 0.0, 0.0] + [-float(i) for i in range(VOCAB - 3)])
    w.add_token_types([2, 3, 3] + [1] * (VOCAB - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def mat(rows, cols, scale):
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    w.add_tensor("token_embd.weight", mat(VOCAB, D, 1.0))
    w.add_tensor("blk.0.attn_norm.weight", (1.0 + 0.1 * rng.standard_normal(D)).astype(np.float32))
    w.add_tensor("blk.0.attn_q.weight", mat(HEADS * hd, D, D ** -0.5))
    w.add_tensor("blk.0.attn_k.weight", mat(KV_HEADS * hd, D, D ** -0.5))
    w.add_tensor("blk.0.attn_v.weight", mat(KV_HEADS * hd, D, D ** -0.5))
    w.add_tensor("blk.0.attn_output.weight", mat(D, HEADS * hd, D ** -0.5))
    w.add_tensor("blk.0.ffn_norm.weight", (1.0 + 0.1 * rng.standard_normal(D)).astype(np.float32))
    w.add_tensor("blk.0.ffn_gate.weight", mat(FFN, D, D ** -0.5))
    w.add_tensor("blk.0.ffn_up.weight", mat(FFN, D, D ** -0.5))
    w.add_tensor("blk.0.ffn_down.weight", mat(D, FFN, FFN ** -0.5))
    w.add_tensor("output_norm.weight", (1.0 + 0.1 * rng.standard_normal(D)).astype(np.float32))
    w.add_tensor("output.weight", mat(VOCAB, D, D ** -0.5))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    quantize = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "fixtures", "quant")
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="xle_quant_")
    f32 = os.path.join(tmp, "tiny_f32.gguf")
    write_model(f32)
    x = np.random.default_rng(12).standard_normal(FFN).astype(np.float32)
    out = gguf.GGUFWriter(os.path.join(out_dir, "quant_blocks.gguf"), "none")
    out.add_tensor("x", x)
    for name, qt, preset in TYPES:
        qpath = os.path.join(tmp, f"tiny_{name}.gguf")
        subprocess.run([quantize, "--pure", f32, qpath, preset], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = gguf.GGUFReader(qpath)
        t = next(t for t in r.tensors if t.name == "blk.0.ffn_down.weight")
        assert t.tensor_type == qt, (name, t.tensor_type)
        raw = np.asarray(t.data)[:ROWS].copy()        # uint8 [rows, bytes per row]
        deq = dequantize(raw, qt).astype(np.float32)  # [rows, 256]
        dot = (deq.astype(np.float64) @ x.astype(np.float64)).astype(np.float32)
        out.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=qt)
        out.add_tensor(name + ".deq", deq)
        out.add_tensor(name + ".dot", dot)
    out.write_header_to_file()
    out.write_kv_data_to_file()
    out.write_tensors_to_file()
    out.close()
    subprocess.run([quantize, f32, os.path.join(out_dir, "tiny_q4_k_m.gguf"), "Q4_K_M"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
