#!/usr/bin/python3
"""Reference token ids for the multilingual tokenizer fixtures.

Run by hand with Debian's python3-sentencepiece (0.1.97):

    /usr/bin/python3 tests/reference/make_tokenizer_fixtures.py

Reads tests/fixtures/tokenizer/sentences_<lang>.txt (one sentence per line, written for this
project) and encodes every sentence with the real Llama-2 SentencePiece model
(shared/data/external/llama2-tokenizer/tokenizer.model), without BOS, as Llama-2's tokenizer
does before it adds BOS. Writes tests/fixtures/tokenizer/llama2_multilingual_ids.tsv:
"lang<TAB>line<TAB>id id id ...", line counted from 1. Also checks that SentencePiece decodes
the ids back to the sentence, so the C test may require the same.

Also writes tests/fixtures/tokenizer/llama2_edge_ids.json: [{"text", "ids", "decoded"}] for
hand-written edge cases (spaces, tabs, newlines, emoji, mixed scripts, markup that looks like
special tokens) and 300 seeded random strings over a mixed alphabet, with SentencePiece's ids
and its decoding of them.
"""
import json
import random
import os
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(REPO, "tests", "fixtures", "tokenizer")
MODEL = os.path.join(REPO, "..", "shared", "data", "external", "llama2-tokenizer", "tokenizer.model")
LANGS = ["en", "de", "fr", "it", "es", "hi", "ta", "kn"]


def main():
    sp = spm.SentencePieceProcessor(model_file=MODEL)
    assert sp.vocab_size() == 32000, sp.vocab_size()
    rows = []
    for lang in LANGS:
        with open(os.path.join(FIX, "sentences_%s.txt" % lang), encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        assert len(lines) >= 50, (lang, len(lines))
        for i, text in enumerate(lines, 1):
            ids = sp.encode(text)
            assert sp.decode(ids) == text, (lang, i, text)
            rows.append("%s\t%d\t%s" % (lang, i, " ".join(str(t) for t in ids)))
    out = os.path.join(FIX, "llama2_multilingual_ids.tsv")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    print("wrote %d rows to %s" % (len(rows), out), file=sys.stderr)

    edge = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", " \n ", "Hello", " Hello", "  Hello", "Hello ",
        "Hello  world", "Hello\tworld", "Hello\nworld", "a  b   c    d", "  leading and trailing  ",
        "<s>", "</s>", "<unk>", "<s> Hello </s>", "<0x0A>", "\u2581", "\u2581Hello", "a\u2581b",
        "\U0001F600 emoji \U0001F680\U0001F30D", "ied 4 \u00bd months", "F\u00fchrer",
        "caf\u00e9 na\u00efve", "cafe\u0301", "\u00c5ngstr\u00f6m", "\u4f60\u597d\uff0c\u4e16\u754c",
        "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
        "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e", "\u0bb5\u0ba3\u0b95\u0bcd\u0b95\u0bae\u0bcd",
        "\u0ca8\u0cae\u0cb8\u0ccd\u0c95\u0cbe\u0cb0", "1234567890", "3.14159, 2.71828; 1,000,000",
        "https://example.com/path?q=1&r=2", "def f(x):\n    return x * 2\n", "\"quoted\" 'single' \u00abguillemets\u00bb",
        "\u200bzero\u200bwidth", "\u00a0non-breaking\u00a0space", "tab\tand\u3000ideographic space",
        "\x7f\x01control", "\U0001F468\u200d\U0001F469\u200d\U0001F467 family",
    ]
    rng = random.Random(20240611)
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") +
                list(" " * 12) + ["\n", "\t", ".", ",", "!", "?", "'", "-", "(", ")"] +
                list("\u00e4\u00f6\u00fc\u00df\u00e9\u00e8\u00e0\u00f1\u00e7") +
                list("\u0915\u0916\u0917\u093e\u093f\u0940\u094d\u0902") +
                list("\u0b95\u0b99\u0b9a\u0bbe\u0bbf\u0bcd") + list("\u0c95\u0c96\u0cbe\u0cbf\u0ccd") +
                ["\u4e2d", "\u6587", "\U0001F600", "\u20ac", "\u00bd"])
    for _ in range(300):
        edge.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    cases = []
    for text in edge:
        ids = sp.encode(text)
        cases.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
    out = os.path.join(FIX, "llama2_edge_ids.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=True, indent=0)
        f.write("\n")
    print("wrote %d edge cases to %s" % (len(cases), out), file=sys.stderr)


if __name__ == "__main__":
    main()
