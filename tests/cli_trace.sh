#!/bin/bash
# cli_trace.sh XLEDIT SOURCE_DIR: `xledit trace` on stories260K: one prompt (trace.json with the
# subject's tokens, a score matrix per kind, well-formed SVG), a case file (--case ID: one fact
# per language; without: summary.json with a mean per language and layer), same seed -> same
# bytes, and the error exits (one line on stderr, no output folder left behind).
XLEDIT="$1"
SRC="$2"
M="$SRC/../shared/data/external/stories260k/stories260K.bin"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
PY=/usr/bin/python3

"$XLEDIT" trace "$M" --prompt "Lily saw a big red ball" --subject "big red ball" --samples 2 \
  --out "$T/one" -t 1 --quiet 2>"$T/err" || fail "one prompt: exit $? ($(cat "$T/err"))"
[ -s "$T/one/trace.json" ] && [ -s "$T/one/trace.svg" ] || fail "one prompt: files missing"
$PY - "$T/one" <<'PY' || fail "one prompt: content"
import json, sys, xml.dom.minidom
d = json.load(open(sys.argv[1] + "/trace.json"))
f = d["facts"][0]
b, e = f["subject_tokens"]
assert "".join(f["tokens"][b:e]).replace(" ", "") == "bigredball", f["tokens"][b:e]
assert "ball" not in "".join(f["tokens"][:b]) and "saw" in "".join(f["tokens"][:b])
L = d["layers"]
for k in ("hidden", "mlp", "attn"):
    assert len(f[k]) == len(f["tokens"]) and all(len(r) == L for r in f[k])
assert 0 <= f["p_corrupt"] <= 1 and 0 <= f["p_clean"] <= 1
assert d["options"]["samples"] == 2 and d["options"]["noise_level"] > 0
xml.dom.minidom.parse(sys.argv[1] + "/trace.svg")
PY
"$XLEDIT" trace "$M" --prompt "Lily saw a big red ball" --subject "big red ball" --samples 2 \
  --out "$T/again" -t 1 --quiet 2>/dev/null
cmp -s "$T/one/trace.json" "$T/again/trace.json" || fail "same seed: different trace.json"

cat >"$T/cases.jsonl" <<'J'
{"id":"c0","source":"t","langs":{"en":{"prompt":"Lily saw a big red ball","subject":"Lily","target_new":"cat"},"xx":{"prompt":"Tom had a little dog","subject":"little dog","target_new":"cat"}}}
{"id":"c1","source":"t","langs":{"en":{"prompt":"The sun was hot and Tom","subject":"sun","target_new":"moon"}}}
J
"$XLEDIT" trace "$M" --data "$T/cases.jsonl" --case c0 --samples 2 --out "$T/case" -t 1 --quiet \
  2>"$T/err" || fail "--case: exit $? ($(cat "$T/err"))"
$PY -c "import json,sys; d=json.load(open(sys.argv[1])); assert [f['lang'] for f in d['facts']]==['en','xx']" \
  "$T/case/trace.json" || fail "--case: one fact per language"
"$XLEDIT" trace "$M" --data "$T/cases.jsonl" --samples 2 --out "$T/sum" -t 1 --quiet \
  2>"$T/err" || fail "summary: exit $? ($(cat "$T/err"))"
$PY - "$T/sum" <<'PY' || fail "summary: content"
import json, sys, xml.dom.minidom
d = json.load(open(sys.argv[1] + "/summary.json"))
m = d["mean_indirect_effect"]
assert m["en"]["traced"] == 2 and m["xx"]["traced"] == 1 and m["xx"]["skipped"] == 1, m
assert len(m["en"]["mlp"]["last_subject_token"]) == d["layers"]
xml.dom.minidom.parse(sys.argv[1] + "/summary.svg")
PY

expect_error() { # expect_error CODE PATTERN ARGS...
  local code="$1" pattern="$2"
  shift 2
  "$XLEDIT" trace "$@" --out "$T/bad" >"$T/out" 2>"$T/err"
  local rc=$?
  [ "$rc" -eq "$code" ] || fail "exit $rc (want $code): $*"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $* -> $(cat "$T/err")"
  grep -q -- "$pattern" "$T/err" || fail "want '$pattern': $* -> $(cat "$T/err")"
  [ ! -e "$T/bad" ] || fail "output left behind: $*"
}
expect_error 1 "subject 'dog' not found" "$M" --prompt "Lily saw a ball" --subject dog -t 1
expect_error 1 "no case with id 'nope'" "$M" --data "$T/cases.jsonl" --case nope -t 1
expect_error 2 "either --prompt" "$M" -t 1
expect_error 2 "--samples" "$M" --prompt "a b" --subject a --samples 0
expect_error 1 "cases.jsonl" "$M" --data "$T/missing/cases.jsonl" -t 1
exit $((FAILS > 0))
