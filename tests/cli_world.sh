#!/usr/bin/env bash
# cli_world.sh XLEDIT SRCDIR: xledit world end to end on the shipped data/world: info counts;
# corpus byte-identical for a seed, different for another, --epochs-copies N gives N times the
# lines; facts lines = corpus sentences; cases validate as 100% usable in all 8 languages and
# equal the committed data/world/cases.jsonl; user errors exit 2 (usage) or 1 (data) with one
# line on stderr and leave no output behind; data files are never written to.
set -u
XLEDIT="$1"
SRC="$2"
DATA="$SRC/data/world"
T="$(mktemp -d /tmp/xle_cli_world.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_error CODE PATTERN CMD...: exits with CODE, one stderr line matching PATTERN, no stdout
expect_error() {
  local code="$1" pattern="$2"; shift 2
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  [ "$rc" -eq "$code" ] || fail "exit $rc (want $code): $*"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $* -> $(cat "$T/err")"
  grep -q -- "$pattern" "$T/err" || fail "error does not match '$pattern': $(cat "$T/err")"
  [ -s "$T/out" ] && fail "wrote to stdout on error: $*"
}

before="$(cd "$DATA" && cat ./*.json ./*.jsonl | md5sum)"

"$XLEDIT" world info --data "$DATA" >"$T/info" || fail "info"
grep -q "^languages: 8 (en de fr it es hi ta kn)" "$T/info" || fail "info languages: $(cat "$T/info")"
subjects=$(sed -n 's/^entities: [0-9]* (\([0-9]*\) with facts)/\1/p' "$T/info")
[ "${subjects:-0}" -ge 300 ] || fail "want >= 300 subjects, got '$subjects'"

"$XLEDIT" world corpus --data "$DATA" --out "$T/c1.txt" 2>"$T/log1" || fail "corpus"
"$XLEDIT" world corpus --data "$DATA" --out "$T/c2.txt" --seed 1 >/dev/null || fail "corpus again"
"$XLEDIT" world corpus --data "$DATA" --out "$T/c3.txt" --seed 2 >/dev/null || fail "corpus seed 2"
"$XLEDIT" world corpus --data "$DATA" --out "$T/c4.txt" --epochs-copies 2 >/dev/null || fail "corpus copies"
cmp -s "$T/c1.txt" "$T/c2.txt" || fail "same seed, different corpus"
cmp -s "$T/c1.txt" "$T/c3.txt" && fail "seed 2 gives the same order"
[ "$(sort "$T/c1.txt" | md5sum)" = "$(sort "$T/c3.txt" | md5sum)" ] || fail "seed 2 gives other lines"
lines=$(wc -l <"$T/c1.txt")
[ "$(wc -l <"$T/c4.txt")" -eq $((2 * lines)) ] || fail "--epochs-copies 2 is not twice the lines"
grep -q "wrote $T/c1.txt: $lines lines" "$T/log1" || fail "corpus report: $(cat "$T/log1")"
grep -q "sentences per language: en [0-9]* de [0-9]* fr [0-9]* it [0-9]* es [0-9]* hi [0-9]* ta [0-9]* kn [0-9]*" \
  "$T/log1" || fail "no per-language counts: $(cat "$T/log1")"

"$XLEDIT" world facts --data "$DATA" --out "$T/facts.jsonl" 2>"$T/flog" || fail "facts"
sentences=$(sed -n 's/.* of \([0-9]*\) fact sentences.*/\1/p' "$T/log1")
[ "$(wc -l <"$T/facts.jsonl")" -eq "${sentences:-0}" ] || fail "facts lines != corpus sentences ($sentences)"
head -1 "$T/facts.jsonl" | grep -q '"lang":"en".*"prompt":.*"object":' || fail "facts format: $(head -1 "$T/facts.jsonl")"

"$XLEDIT" world cases --data "$DATA" --out "$T/cases.jsonl" 2>"$T/clog" || fail "cases"
grep -q "600 cases in 8 languages" "$T/clog" || fail "cases report: $(cat "$T/clog")"
cmp -s "$T/cases.jsonl" "$DATA/cases.jsonl" || fail "data/world/cases.jsonl differs from xledit world cases"
"$XLEDIT" validate "$T/cases.jsonl" >"$T/val" || fail "validate"
for l in en de fr it es hi ta kn; do
  grep -qE "^$l +600 +600 " "$T/val" || fail "language $l not 600/600 usable: $(cat "$T/val")"
done
"$XLEDIT" world cases --data "$DATA" --out "$T/cases550.jsonl" --n 550 --seed 3 >/dev/null || fail "cases --n 550"
[ "$(wc -l <"$T/cases550.jsonl")" -eq 550 ] || fail "--n 550 does not give 550 cases"

# user errors
expect_error 2 "data DIR is required" "$XLEDIT" world corpus --out "$T/x1"
expect_error 2 "out FILE is required" "$XLEDIT" world cases --data "$DATA"
expect_error 2 "unknown subcommand" "$XLEDIT" world train --data "$DATA"
expect_error 2 "epochs-copies" "$XLEDIT" world corpus --data "$DATA" --out "$T/x1" --epochs-copies 0
expect_error 2 "is for 'world cases'" "$XLEDIT" world corpus --data "$DATA" --out "$T/x1" --n 5
expect_error 2 "seed" "$XLEDIT" world cases --data "$DATA" --out "$T/x1" --seed -4
expect_error 2 "unknown option" "$XLEDIT" world corpus --data "$DATA" --out "$T/x1" --frobnicate
expect_error 1 "$T/nowhere/world.json" "$XLEDIT" world corpus --data "$T/nowhere" --out "$T/x1"
expect_error 1 "two-hop" "$XLEDIT" world cases --data "$DATA" --out "$T/x1" --n 100000
expect_error 1 "$T/no/dir/c.txt" "$XLEDIT" world corpus --data "$DATA" --out "$T/no/dir/c.txt"
# a broken data file: the message names the file and the field
mkdir -p "$T/bad" && cp "$DATA"/*.json "$T/bad/"
sed -i '0,/"id": "capital"/s//"id": "capital", "colour": 1/' "$T/bad/relations.json"
expect_error 1 "relations.json: relations\[0\]: unknown key \"colour\"" \
  "$XLEDIT" world info --data "$T/bad"
[ -e "$T/x1" ] && fail "output left behind after an error"
ls "$T" | grep -q '\.tmp' && fail "temporary file left behind"
[ "$(cd "$DATA" && cat ./*.json ./*.jsonl | md5sum)" = "$before" ] || fail "data/world was modified"

"$XLEDIT" world --help | grep -q "xledit world corpus" || fail "world --help"
"$XLEDIT" --help | grep -q "^  world " || fail "world missing from xledit --help"

if [ "$fails" -ne 0 ]; then
  echo "$fails failure(s)" >&2
  exit 1
fi
echo "cli_world: all passed"
