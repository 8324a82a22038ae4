#!/usr/bin/env python3
"""Reference ids for byte-level BPE (Llama-3 and Qwen2 tiktoken files), independent of xledit.

Run by hand with a python3 that has the `regex` module (the pyenv python3 on PATH has it;
Debian's /usr/bin/python3 does not):

    python3 tests/reference/make_bytelevel_fixtures.py

Implements tiktoken's algorithm directly: split the text with the family's pre-tokenizer regex
(the original patterns with (?i:...), as in Meta's tokenizer.py and Qwen's tokenizer.json), look
a piece up whole, else start from its bytes and repeatedly merge the adjacent pair whose
concatenation has the lowest rank (leftmost on ties). Qwen2 applies NFC first. Texts: the edge
cases of llama2_edge_ids.json plus 300 seeded random strings over a mixed alphabet (contractions,
digit runs, whitespace runs, combining marks, several scripts, emoji). Writes
tests/fixtures/tokenizer/bytelevel_ids.json: [{"text", "llama3": [...], "qwen2": [...]}].
"""
import base64
import json
import os
import random
import sys
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(REPO, "tests", "fixtures", "tokenizer")
EXT = os.path.join(REPO, "..", "shared", "data", "external")

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def load_ranks(path):
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    return ranks


def bpe(piece, ranks):
    if piece in ranks:
        return [ranks[piece]]
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return [ranks[p] for p in parts]


def encode(text, pattern, ranks, nfc):
    if nfc:
        text = unicodedata.normalize("NFC", text)
    ids = []
    for m in regex.finditer(pattern, text):
        ids.extend(bpe(m.group(0).encode("utf-8"), ranks))
    return ids


def main():
    llama3 = load_ranks(os.path.join(EXT, "llama3-tokenizer", "tokenizer.model"))
    qwen = load_ranks(os.path.join(EXT, "qwen-tiktoken", "qwen.tiktoken"))
    assert len(llama3) == 128000 and len(qwen) == 151643
    with open(os.path.join(FIX, "llama2_edge_ids.json"), encoding="utf-8") as f:
        texts = [c["text"] for c in json.load(f)][:47]  # the hand-written ones
    rng = random.Random(7)
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") + list("0123456789" * 3) +
                [" "] * 14 + ["  ", "\n", "\r\n", "\t", "'s", "'T", "'re", "'LL", "'d", "'", ".", ",", "!", "?",
                              "-", "(", ")", "$", "%", "/", ":"] +
                list("\u00e4\u00f6\u00fc\u00df\u00e9\u00e8\u00e0\u00f1\u00e7") + ["e\u0301", "a\u0308", "\u212b"] +
                list("\u0915\u0916\u0917\u093e\u093f\u0940\u094d\u0902\u0966\u0967") +
                list("\u0b95\u0b99\u0b9a\u0bbe\u0bbf\u0bcd") + list("\u0c95\u0c96\u0cbe\u0cbf\u0ccd") +
                ["\u4e2d", "\u6587", "\u0661", "\U0001F600", "\u20ac", "\u00bd", "\u00a0", "\u3000", "\u200b"])
    for _ in range(300):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    cases = [{"text": t, "llama3": encode(t, LLAMA3, llama3, False), "qwen2": encode(t, QWEN2, qwen, True)}
             for t in texts]
    out = os.path.join(FIX, "bytelevel_ids.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print("wrote %d cases to %s" % (len(cases), out), file=sys.stderr)


if __name__ == "__main__":
    main()
