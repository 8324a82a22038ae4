#!/usr/bin/env bash
# cli_edit.sh XLEDIT SRCDIR: the editing commands end to end on stories260K (a real llama2.c
# model): stats (and its cache refusing other options), edit with --out and --patch, patch
# apply giving the same file as the edit, patch revert giving back the original bytes, and the
# errors a user meets (subject not in prompt, unknown option, bad method, wrong model) with
# one-line messages, non-zero exits and no output left behind.
set -u
XLEDIT="$1"
SRC="$2"
SHARED="${XLE_SHARED_DIR:-$SRC/../shared}"
MODEL="$SHARED/data/external/stories260k/stories260K.bin"
T="$(mktemp -d /tmp/xle_cli_edit.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_error CODE PATTERN CMD...: exits with CODE, prints one stderr line matching PATTERN
expect_error() {
  local code="$1" pattern="$2"; shift 2
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  [ "$rc" -eq "$code" ] || fail "exit $rc (want $code): $*"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $* -> $(cat "$T/err")"
  grep -q -- "$pattern" "$T/err" || fail "error does not match '$pattern': $(cat "$T/err")"
}

# a varied corpus: the model's own stories, sampled with different seeds (as Wikipedia is to a
# 7B model); MEMIT's λC + KKᵀ needs keys that span the 172-wide key space
for i in $(seq 1 60); do
  "$XLEDIT" generate "$MODEL" --ids 1 -n 200 --temp 1 --seed "$i" || fail "generate for the corpus"
  echo
  echo
done >"$T/corpus.txt"

"$XLEDIT" stats "$MODEL" --layers 1-2 --corpus "$T/corpus.txt" --out "$T/stats" >/dev/null ||
  fail "stats"
[ -f "$T/stats/layer-1.f64" ] && [ -f "$T/stats/layer-2.f64" ] || fail "stats files missing"
expect_error 1 "options" "$XLEDIT" stats "$MODEL" --layers 1-2 --corpus "$T/corpus.txt" \
  --max-tokens 100 --out "$T/stats"

"$XLEDIT" convert "$MODEL" --out "$T/orig" >/dev/null || fail "convert"
"$XLEDIT" edit "$MODEL" --method memit --layers 1-2 --stats "$T/stats" \
  --prompt "Lily liked to eat" --subject Lily --target cake --context-templates none \
  --out "$T/edited" --patch "$T/edit.xlpatch" >"$T/edit.log" || fail "edit: $(cat "$T/edit.log")"
grep -q "before:" "$T/edit.log" && grep -q "after:" "$T/edit.log" || fail "edit does not print before/after"
"$XLEDIT" patch info "$T/edit.xlpatch" | grep -q '"method":"memit"' || fail "patch info"
"$XLEDIT" patch apply "$MODEL" "$T/edit.xlpatch" --out "$T/applied" >/dev/null || fail "patch apply"
cmp -s "$T/edited/model.safetensors" "$T/applied/model.safetensors" || fail "apply differs from edit"
"$XLEDIT" patch revert "$T/edited" "$T/edit.xlpatch" --out "$T/reverted" >/dev/null || fail "patch revert"
cmp -s "$T/orig/model.safetensors" "$T/reverted/model.safetensors" || fail "revert is not the original"
# a patch applies only to the model it was made from, and reverts only an edited one
expect_error 1 "not the" "$XLEDIT" patch apply "$T/edited" "$T/edit.xlpatch" --out "$T/x1"
expect_error 1 "not the" "$XLEDIT" patch revert "$T/orig" "$T/edit.xlpatch" --out "$T/x2"
[ ! -e "$T/x1" ] && [ ! -e "$T/x2" ] || fail "output left behind after an error"
head -c 100 "$T/edit.xlpatch" >"$T/short.xlpatch"
expect_error 1 "short.xlpatch" "$XLEDIT" patch apply "$MODEL" "$T/short.xlpatch" --out "$T/x3"

# AlphaEdit in sequence: the first call takes the statistics and keeps P, the keys and the
# templates in DIR; the second, on the model the first wrote, needs only DIR; DIR refuses the
# unedited model and a method other than alphaedit (one line, nothing written)
ae() { "$XLEDIT" edit "$@" --method alphaedit --layers 1-2 --alphaedit-state "$T/ae" \
  --hparams "$T/ae.json"; }
echo '{"nullspace_threshold": 1e9}' >"$T/ae.json"
ae "$T/orig" --stats "$T/stats" --prompt "Lily liked to eat" --subject Lily --target cake \
  --out "$T/ae1" >"$T/ae1.log" 2>&1 || fail "alphaedit: $(cat "$T/ae1.log")"
[ -f "$T/ae/alphaedit-state.safetensors" ] && [ -f "$T/ae/context-templates.txt" ] || fail "alphaedit state not written"
grep -q "null space of 172 of 172" "$T/ae1.log" || fail "alphaedit does not report its null space: $(cat "$T/ae1.log")"
ae "$T/ae1" --stats "$T/no-such-dir" --prompt "Tom liked to play" --subject Tom --target ball \
  --out "$T/ae2" >"$T/ae2.log" 2>&1 || fail "alphaedit, second call: $(cat "$T/ae2.log")"
grep -q "(2 edit(s) so far)" "$T/ae2.log" || fail "alphaedit state does not count 2 edits"
expect_error 1 "fingerprint" ae "$T/orig" --prompt "Tom liked to play" --subject Tom --target ball --out "$T/ae3"
[ ! -e "$T/ae3" ] || fail "output written for a refused alphaedit state"
expect_error 2 "alphaedit-state" "$XLEDIT" edit "$T/orig" --method rome --alphaedit-state "$T/ae" \
  --prompt "Tom liked to play" --subject Tom --target ball --out "$T/ae4"
# a threshold below every eigenvalue selects nothing (as the reference's 2e-2 does on the
# built-in model): P = 0, and a warning says so
echo '{"nullspace_threshold": 1e-9}' >"$T/ae.json"
rm -rf "$T/ae"
ae "$T/orig" --stats "$T/stats" --prompt "Lily liked to eat" --subject Lily --target cake --quiet \
  --patch "$T/ae5.xlpatch" 2>"$T/ae5.err" || fail "alphaedit with the reference threshold"
grep -q "warning: edit: alphaedit: layer 1: no eigenvalue .* below nullspace_threshold 1e-09" "$T/ae5.err" ||
  fail "no warning for an empty null space: $(cat "$T/ae5.err")"

# user errors
expect_error 1 "not found in prompt" "$XLEDIT" edit "$MODEL" --method rome \
  --prompt "Lily liked to eat" --subject Tom --target cake --context-templates none --out "$T/x4"
[ ! -e "$T/x4" ] || fail "output written for a bad request"
expect_error 2 "unknown option" "$XLEDIT" edit "$MODEL" --method rome --bogus
expect_error 2 "method" "$XLEDIT" edit "$MODEL" --method rame --prompt a --subject a --target b --out "$T/x5"
printf '{"prompt": "Lily liked to eat", "subject": "Lily"}\n' >"$T/bad.jsonl"
expect_error 1 "bad.jsonl:1: target_new" "$XLEDIT" edit "$MODEL" --method rome --requests "$T/bad.jsonl" --out "$T/x6"
expect_error 1 "layer" "$XLEDIT" edit "$MODEL" --method rome --layers 9 --prompt "Lily liked to eat" \
  --subject Lily --target cake --out "$T/x7"
# a model folder's edit-hparams/rome.json applies (and says so), --no-model-hparams skips it,
# --layers overrides it, and a bad value in it is one error line naming the file and key
cp -r "$T/orig" "$T/hp"
mkdir "$T/hp/edit-hparams"
echo '{"layers": [2], "v_num_grad_steps": 3}' >"$T/hp/edit-hparams/rome.json"
edit_hp() { "$XLEDIT" edit "$T/hp" --method rome --prompt "Lily liked to eat" --subject Lily --target cake \
  --context-templates none "$@"; }
edit_hp --patch "$T/hp1.xlpatch" >/dev/null 2>"$T/hp1.err" || fail "edit with edit-hparams"
grep -q "using $T/hp/edit-hparams/rome.json" "$T/hp1.err" || fail "edit does not say it uses edit-hparams"
"$XLEDIT" patch info "$T/hp1.xlpatch" | grep -q '"layers":\[2\]' || fail "edit-hparams layer not used"
edit_hp --no-model-hparams --patch "$T/hp2.xlpatch" >/dev/null 2>"$T/hp2.err" || fail "edit --no-model-hparams"
! grep -q "edit-hparams" "$T/hp2.err" || fail "--no-model-hparams still uses edit-hparams"
"$XLEDIT" patch info "$T/hp2.xlpatch" | grep -q '"layers":\[1\]' || fail "--no-model-hparams: not the default layer"
edit_hp --layers 3 --patch "$T/hp3.xlpatch" >/dev/null 2>&1 || fail "edit --layers over edit-hparams"
"$XLEDIT" patch info "$T/hp3.xlpatch" | grep -q '"layers":\[3\]' || fail "--layers does not override edit-hparams"
echo '{"layers": [2], "v_lr": "fast"}' >"$T/hp/edit-hparams/rome.json"
expect_error 1 "edit-hparams/rome.json: v_lr" edit_hp --patch "$T/hp4.xlpatch"
[ ! -e "$T/hp4.xlpatch" ] || fail "patch written despite bad edit-hparams"
expect_error 1 "edit-hparams/rome.json: v_lr" "$XLEDIT" eval "$T/hp" --data /dev/null --out "$T/hp-run" --methods rome

# a quantized GGUF (Q4_K_M: ffn_down is Q6_K): the edited matrix is F16 by default, its own type
# with --requantize; a patch cannot hold quantized bytes (one line, nothing written)
Q="$SRC/tests/fixtures/quant/tiny_q4_k_m.gguf"
qedit() { "$XLEDIT" edit "$Q" --method rome --prompt "the cat is" --subject cat --target " big" --quiet "$@"; }
qedit --out "$T/q_f16.gguf" || fail "edit of a Q4_K_M model"
"$XLEDIT" info "$T/q_f16.gguf" | grep -q "Q6_K x2, F16 x1" || fail "edited Q6_K not stored F16: $("$XLEDIT" info "$T/q_f16.gguf" | grep stored)"
qedit --requantize --out "$T/q_rq.gguf" || fail "edit --requantize"
"$XLEDIT" info "$T/q_rq.gguf" | grep -q "Q6_K x3" || fail "--requantize: $("$XLEDIT" info "$T/q_rq.gguf" | grep stored)"
expect_error 2 "edited-dtype" qedit --edited-dtype f8 --out "$T/q_bad.gguf"
expect_error 1 "Q6_K cannot be stored in a patch" qedit --patch "$T/q.xlpatch"
[ ! -e "$T/q.xlpatch" ] && [ ! -e "$T/q_bad.gguf" ] || fail "output left behind by a refused quantized edit"

for c in stats edit patch convert; do
  "$XLEDIT" "$c" --help | grep -q "usage: xledit $c" || fail "$c --help"
done

[ "$fails" -eq 0 ] && echo "cli_edit: all passed" || { echo "cli_edit: $fails failed"; exit 1; }
