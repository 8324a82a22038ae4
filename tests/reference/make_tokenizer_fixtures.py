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
"""
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


if __name__ == "__main__":
    main()
