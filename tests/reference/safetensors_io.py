"""safetensors reading and writing for the reference scripts (no safetensors package needed):
an 8-byte little-endian header length, the JSON header padded with spaces to a multiple of 8,
then the tensors' bytes. One copy here, so every fixture script writes the same layout.
"""
import collections
import json
import struct

import numpy as np

# storage dtype of each safetensors type; BF16 is kept as its 16 bits
_STORAGE = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I32": "<i4", "I64": "<i8"}


def bf16_bits(x):
    """float32 -> bf16 bits, round to nearest even, NaN kept quiet (as xle_f32_to_bf16)."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF
    r = np.where(nan, (b >> 16) | 0x40, r)
    return r.astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits).astype(np.uint32) << 16).view(np.float32)


def encode(x, dtype):
    """A float array (numpy or torch) as stored in safetensors type dtype (BF16: its bits)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if dtype == "BF16":
        return bf16_bits(x)
    return np.ascontiguousarray(x).astype(_STORAGE[dtype])


def write_safetensors(path, entries, metadata=None, metadata_last=False, compact=True):
    """entries: (name, dtype, array already in its storage type, e.g. from encode()) in file
    order. metadata: the "__metadata__" object ({"format": "pt"} by default, as torch writes),
    first unless metadata_last. compact: JSON without spaces after separators, as the
    safetensors package writes. Returns the size of the data."""
    meta = {"format": "pt"} if metadata is None else metadata
    header, blobs, off = {}, [], 0
    if not metadata_last:
        header["__metadata__"] = meta
    for name, dtype, arr in entries:
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata_last:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":") if compact else None).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors(path):
    """{name: (dtype, numpy array)} in header order; BF16 decoded to float32, the other types
    as stored."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = collections.OrderedDict()
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=_STORAGE[e["dtype"]]).reshape(e["shape"])
        if e["dtype"] == "BF16":
            arr = bf16_bits_to_f32(arr).reshape(e["shape"])
        out[name] = (e["dtype"], arr)
    return out
