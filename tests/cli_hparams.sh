#!/usr/bin/env bash
# cli_hparams.sh XLEDIT SRCDIR: `xledit edit --hparams` with EasyEdit's own files
# (tests/fixtures/easyedit/): ROME, MEMIT and FT-L for llama-7b give byte-identical patches from
# the YAML and from its JSON twin on the built-in model (edit layer 0), and differ from an edit
# without the file (so the file took effect); the keys xledit does not use are named in one note
# line; a GPT-J file is refused with one line and nothing written.
set -u
XLEDIT="$1"
SRC="$2"
MODEL="$SRC/models/xledit-mini"
FIX="$SRC/tests/fixtures/easyedit"
T="$(mktemp -d /tmp/xle_cli_hparams.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
edit() { "$XLEDIT" edit "$MODEL" --prompt "The capital of France is" --subject France --target Rome \
  --layers 0 --stats "$T/stats" "$@"; }

# MEMIT's key statistics of layer 0, from a small English text
"$XLEDIT" stats "$MODEL" --layers 0 --corpus "$SRC/docs/editing.md" --out "$T/stats" >/dev/null 2>&1 ||
  fail "stats"

PAIRS="rome:ROME memit:MEMIT ft-l:FT"
[ "${XLE_SANITIZED:-OFF}" = "ON" ] && PAIRS="rome:ROME" # sanitizers: one method (seconds, not minutes)
for pair in $PAIRS; do
  m="${pair%%:*}" d="${pair##*:}"
  edit --method "$m" --hparams "$FIX/hparams/$d/llama-7b.yaml" --patch "$T/$m-yaml.xlpatch" \
    >/dev/null 2>"$T/$m.err" || fail "$m: the YAML file: $(cat "$T/$m.err")"
  edit --method "$m" --hparams "$FIX/json/$d/llama-7b.json" --patch "$T/$m-json.xlpatch" --quiet \
    >/dev/null || fail "$m: the JSON file"
  edit --method "$m" --patch "$T/$m-none.xlpatch" --quiet >/dev/null || fail "$m: no file"
  cmp -s "$T/$m-yaml.xlpatch" "$T/$m-json.xlpatch" || fail "$m: YAML and JSON patches differ"
  cmp -s "$T/$m-yaml.xlpatch" "$T/$m-none.xlpatch" && fail "$m: the file changed nothing"
  [ "$(grep -c 'note:' "$T/$m.err")" -eq 1 ] || fail "$m: want one note line: $(cat "$T/$m.err")"
  grep 'note:' "$T/$m.err" | grep -q "model_name" || fail "$m: the note does not name model_name"
done

"$XLEDIT" edit "$MODEL" --method rome --prompt "The capital of France is" --subject France --target Rome \
  --no-model-hparams --hparams "$FIX/hparams/ROME/gpt-j-6B.yaml" --patch "$T/gptj.xlpatch" >"$T/out" 2>"$T/err"
[ $? -ne 0 ] || fail "the GPT-J file was accepted"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $(cat "$T/err")"
grep -q "gpt-j-6B.yaml: rewrite_module_tmp: .*GPT-J" "$T/err" || fail "message: $(cat "$T/err")"
[ -e "$T/gptj.xlpatch" ] && fail "a patch was written"

[ "$fails" -eq 0 ] || exit 1
echo "cli_hparams: ok"
