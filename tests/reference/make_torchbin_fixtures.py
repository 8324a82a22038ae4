#!/usr/bin/python3
"""PyTorch-checkpoint fixtures for tests/test_torchbin.c: the llama_gqa model of
make_model_fixtures.py saved by torch.save as Hugging Face folders with pytorch_model.bin, and
pickles that must be refused.

Run by hand (CI never needs Python), with Debian's torch:
    /usr/bin/python3 tests/reference/make_torchbin_fixtures.py [FIXTURE_DIR]
FIXTURE_DIR defaults to tests/fixtures in this repository. It reads
models/llama_gqa/hf_f32 and hf_bf16 (safetensors, parsed here without the safetensors package)
and writes under models/llama_gqa/:
  hf_bin_f32/            config.json + pytorch_model.bin: the F32 state dict as
                         `torch.save(model.state_dict())` writes it (an OrderedDict carrying a
                         _metadata attribute, one storage per tensor) except that layer 0's
                         q_proj, k_proj and v_proj are views into one fused storage at three
                         storage offsets, and lm_head.weight is a view of a larger storage too:
                         the loader must respect storage offsets.
  hf_bin_bf16_sharded/   config.json + pytorch_model-0000{1,2}-of-00002.bin +
                         pytorch_model.bin.index.json (the BF16 weights split by layer as
                         transformers' shard_checkpoint does: same weight_map layout).
and under torchbin/ (each a torch-layout zip, archive/data.pkl + archive/data/N):
  os_system.bin          data.pkl calls os.system("touch /tmp/xledit-torchbin-pwned") via
                         GLOBAL posix.system + REDUCE (what pickle makes of os.system)
  builtins_eval.bin      builtins.eval + REDUCE of an expression (protocol 4: STACK_GLOBAL)
  subprocess.bin         GLOBAL subprocess.Popen (refused at the GLOBAL, before any call)
  transposed.bin         a state dict holding a non-contiguous (transposed) tensor
  i64.bin                a state dict with an int64 tensor (dtype not supported)
The test loads hf_f32 and hf_bin_f32 (and hf_bf16 / hf_bin_bf16_sharded) and requires bitwise
identical logits.
"""
import collections
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile

import numpy as np
import torch
import safetensors_io  # noqa: E402  (tests/reference/, beside this script)

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures")
SRC = os.path.join(FIX, "models", "llama_gqa")

ST_DTYPES = {"F32": (np.float32, torch.float32), "BF16": (np.int16, torch.bfloat16),
             "F16": (np.float16, torch.float16)}


def read_safetensors(path):
    """{name: tensor} in header order, from a safetensors file (bf16 stays bf16: exact)."""
    out = collections.OrderedDict()
    for name, (dtype, arr) in safetensors_io.read_safetensors(path).items():
        out[name] = torch.from_numpy(arr.copy()).to(ST_DTYPES[dtype][1])
    return out


def load_folder(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    sd = collections.OrderedDict()
    for fn in files:
        sd.update(read_safetensors(os.path.join(d, fn)))
    return collections.OrderedDict(sorted(sd.items()))


def as_state_dict(d):
    """An OrderedDict with _metadata, as nn.Module.state_dict() returns."""
    sd = collections.OrderedDict(d)
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("model", {"version": 1})])
    return sd


def fresh_folder(path, src):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    shutil.copy(os.path.join(src, "config.json"), os.path.join(path, "config.json"))


def make_single_f32():
    sd = load_folder(os.path.join(SRC, "hf_f32"))
    pre = "model.layers.0.self_attn."
    q, k, v = sd[pre + "q_proj.weight"], sd[pre + "k_proj.weight"], sd[pre + "v_proj.weight"]
    fused = torch.cat([q, k, v], 0).clone()
    nq, nk = q.shape[0], k.shape[0]
    sd[pre + "q_proj.weight"] = fused[:nq]
    sd[pre + "k_proj.weight"] = fused[nq:nq + nk]
    sd[pre + "v_proj.weight"] = fused[nq + nk:]
    head = sd["lm_head.weight"]
    padded = torch.cat([torch.zeros(3, head.shape[1]), head], 0).clone()
    sd["lm_head.weight"] = padded[3:]
    for name in (pre + "q_proj.weight", pre + "k_proj.weight", pre + "v_proj.weight",
                 "lm_head.weight"):
        assert sd[name].is_contiguous()
    out = os.path.join(SRC, "hf_bin_f32")
    fresh_folder(out, os.path.join(SRC, "hf_f32"))
    torch.save(as_state_dict(sd), os.path.join(out, "pytorch_model.bin"))


def make_sharded_bf16():
    sd = load_folder(os.path.join(SRC, "hf_bf16"))
    out = os.path.join(SRC, "hf_bin_bf16_sharded")
    fresh_folder(out, os.path.join(SRC, "hf_bf16"))
    names = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    parts = [collections.OrderedDict(), collections.OrderedDict()]
    for name, t in sd.items():
        second = name.startswith("model.layers.1.") or name in ("model.norm.weight", "lm_head.weight")
        parts[1 if second else 0][name] = t
    weight_map = {}
    total = 0
    for fn, part in zip(names, parts):
        torch.save(as_state_dict(part), os.path.join(out, fn))
        for name, t in part.items():
            weight_map[name] = fn
            total += t.numel() * t.element_size()
    with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
        f.write("\n")


def torch_zip(path, pkl, storages=()):
    """A zip laid out as torch.save's: archive/data.pkl, archive/data/<key>, archive/version."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        for key, raw in storages:
            z.writestr("archive/data/%s" % key, raw)
        z.writestr("archive/version", "3\n")


class Reduce:
    """Pickles as GLOBAL fn + args + REDUCE (the classic code-execution pickle)."""
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def make_malicious():
    out = os.path.join(FIX, "torchbin")
    os.makedirs(out, exist_ok=True)
    payload = {"model.embed_tokens.weight": Reduce(os.system, ("touch /tmp/xledit-torchbin-pwned",))}
    torch_zip(os.path.join(out, "os_system.bin"), pickle.dumps(payload, protocol=2))
    payload = {"x": Reduce(eval, ("open('/tmp/xledit-torchbin-pwned','w')",))}
    torch_zip(os.path.join(out, "builtins_eval.bin"), pickle.dumps(payload, protocol=4))
    import subprocess
    payload = {"x": Reduce(subprocess.Popen, (["touch", "/tmp/xledit-torchbin-pwned"],))}
    torch_zip(os.path.join(out, "subprocess.bin"), pickle.dumps(payload, protocol=2, fix_imports=False))
    for name in ("os_system.bin", "builtins_eval.bin", "subprocess.bin"):
        data = zipfile.ZipFile(os.path.join(out, name)).read("archive/data.pkl")
        assert b"system" in data or b"eval" in data or b"Popen" in data
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    assert not t.is_contiguous()
    torch.save(collections.OrderedDict([("w", t)]), os.path.join(out, "transposed.bin"))
    torch.save(collections.OrderedDict([("w", torch.ones(2, 2, dtype=torch.int64))]),
               os.path.join(out, "i64.bin"))


def check_roundtrip():
    """torch.load (weights_only) gives back the safetensors values for every .bin written."""
    ref = load_folder(os.path.join(SRC, "hf_f32"))
    got = torch.load(os.path.join(SRC, "hf_bin_f32", "pytorch_model.bin"), weights_only=True)
    assert list(got) == list(ref)
    for n in ref:
        assert torch.equal(got[n], ref[n]), n
    ref = load_folder(os.path.join(SRC, "hf_bf16"))
    d = os.path.join(SRC, "hf_bin_bf16_sharded")
    got = {}
    for fn in sorted(f for f in os.listdir(d) if f.endswith(".bin")):
        got.update(torch.load(os.path.join(d, fn), weights_only=True))
    assert sorted(got) == sorted(ref)
    for n in ref:
        assert got[n].dtype == torch.bfloat16 and torch.equal(got[n], ref[n]), n


if __name__ == "__main__":
    torch.manual_seed(0)
    make_single_f32()
    make_sharded_bf16()
    make_malicious()
    check_roundtrip()
    print("written under", FIX)
