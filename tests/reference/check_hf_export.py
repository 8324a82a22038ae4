#!/usr/bin/env python3
"""Checks a folder written by `xledit train` against an independent reading of the Hugging Face
Llama format: parses config.json and model.safetensors by hand (no transformers needed), runs
the Llama forward pass of train_reference.py (rotate-half RoPE, GQA, SwiGLU, RMSNorm) in
float64, and compares the last-position logits with `xledit logits`.

  /usr/bin/python3 tests/reference/check_hf_export.py XLEDIT MODEL_DIR [ids...]
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_reference as ref  # noqa: E402
import safetensors_io  # noqa: E402  (tests/reference/, beside this script)


def read_safetensors(path):
    out = {}
    for name, (dtype, arr) in safetensors_io.read_safetensors(path).items():
        if dtype not in ("F32", "BF16"):
            raise SystemExit(f"{name}: unexpected dtype {dtype}")
        out[name] = torch.tensor(arr.astype(np.float64))
    return out


def main():
    xledit, model = sys.argv[1], sys.argv[2]
    ids = [int(x) for x in sys.argv[3:]] or [1, 5, 9, 13, 7]
    cfg = json.load(open(os.path.join(model, "config.json")))
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
    ref.CFG.update(dim=cfg["hidden_size"], n_layers=cfg["num_hidden_layers"], n_heads=cfg["num_attention_heads"],
                   n_kv_heads=cfg["num_key_value_heads"], ffn_dim=cfg["intermediate_size"],
                   vocab=cfg["vocab_size"], eps=cfg["rms_norm_eps"], theta=cfg["rope_theta"])
    P = read_safetensors(os.path.join(model, "model.safetensors"))
    tied = cfg["tie_word_embeddings"]
    assert ("lm_head.weight" in P) == (not tied)
    logits = ref.forward(P, torch.tensor(ids), [0, len(ids)], tied)[-1].numpy()
    out = subprocess.run([xledit, "logits", model, "--ids", ",".join(map(str, ids)), "--no-bos"],
                         capture_output=True, check=True, text=True).stdout
    got = np.array(json.loads(out)["logits"][-1], dtype=np.float64)
    diff = np.abs(got - logits).max()
    print(f"{model}: {len(P)} tensors, max |logit difference| = {diff:.2e} (logit scale {np.abs(logits).max():.2f})")
    sys.exit(0 if diff < 1e-3 else 1)


if __name__ == "__main__":
    main()
