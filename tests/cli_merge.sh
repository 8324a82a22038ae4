#!/usr/bin/env bash
# cli_merge.sh XLEDIT SRCDIR: `xledit merge` end to end: help, usage errors (exit 2) and input
# errors (exit 1) as one line naming the file and field with no output left behind, merges of
# the tiny fixture models (every method, the extended vocabulary), DARE-TIES reproducible from
# its seed, and stories260K (a real model) merged with itself across formats (.gguf + llama2.c
# .bin, GGUF and HF output) giving back the model's own logits.
set -u
XLEDIT="$1"
SRC="$2"
SHARED="${XLE_SHARED_DIR:-$SRC/../shared}"
FIX="$SRC/tests/fixtures/merge/models"
S260="$SHARED/data/external/stories260k"
T="$(mktemp -d /tmp/xle_cli_merge.XXXXXX)"
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

# help
"$XLEDIT" merge --help >"$T/help" || fail "merge --help exits non-zero"
for w in ties task-arithmetic dare-ties linear --density --lambda --seed --out-format; do
  grep -q -- "$w" "$T/help" || fail "help does not mention $w"
done
"$XLEDIT" --help | grep -q "merge" || fail "merge missing from the command list"

# usage errors: exit 2, one line, nothing written
M="--base $FIX/base --models $FIX/a $FIX/b"
expect_error 2 "--out is required" "$XLEDIT" merge --method ties $M
expect_error 2 "--method is required" "$XLEDIT" merge $M --out "$T/u1"
expect_error 2 "slerp" "$XLEDIT" merge --method slerp $M --out "$T/u2"
expect_error 2 "density" "$XLEDIT" merge --method ties $M --density 1.5 --out "$T/u3"
expect_error 2 "3 weights for 2 models" "$XLEDIT" merge --method ties $M --weights 1,2,3 --out "$T/u4"
expect_error 2 "weights" "$XLEDIT" merge --method ties $M --weights 1,x --out "$T/u5"
expect_error 2 "base is required" "$XLEDIT" merge --method ties --models "$FIX/a" --out "$T/u6"
expect_error 2 "unknown" "$XLEDIT" merge --method ties $M --frobnicate --out "$T/u7"
expect_error 2 "gguf" "$XLEDIT" merge --method ties $M --out-format safetensors --out "$T/u8"
for i in 1 2 3 4 5 6 7 8; do [ ! -e "$T/u$i" ] || fail "output u$i written after a usage error"; done

# input errors: exit 1, one line naming the file and the field, no output, no temporary
if [ -f "$S260/stories260K.bin" ]; then
  expect_error 1 "stories260K.bin: dim" "$XLEDIT" merge --method ties --base "$FIX/base" \
    --models "$FIX/a" "$S260/stories260K.bin" --out "$T/e1"
else
  echo "cli_merge: $S260 missing: real-model checks skipped" >&2
fi
expect_error 1 "nonexistent" "$XLEDIT" merge --method ties --base "$FIX/base" \
  --models "$T/nonexistent" --out "$T/e2"
expect_error 1 "needs a GGUF base" "$XLEDIT" merge --method ties $M --out-format gguf --out "$T/e3.gguf"
mkdir "$T/e4" && touch "$T/e4/keep"
expect_error 1 "already exists" "$XLEDIT" merge --method ties $M --out "$T/e4"
[ -e "$T/e4/keep" ] || fail "an existing output folder was touched"
ls "$T" | grep -q "tmp-" && fail "temporary output left behind: $(ls "$T")"
for i in 1 2 3; do [ ! -e "$T/e$i" ] && [ ! -e "$T/e$i.gguf" ] || fail "output e$i written after an error"; done

# every method on the fixtures
for method in linear task-arithmetic ties dare-ties; do
  "$XLEDIT" merge --method "$method" $M --weights 0.7,0.3 --density 0.4 --lambda 0.9 --seed 3 \
    --out "$T/m_$method" >"$T/log" 2>&1 || fail "$method: $(cat "$T/log")"
  grep -q "merged 21 tensors ($method, 2 models)" "$T/log" || fail "$method: summary: $(cat "$T/log")"
  "$XLEDIT" info "$T/m_$method" >/dev/null || fail "$method: output does not load"
  [ -f "$T/m_$method/merge_info.json" ] || fail "$method: merge_info.json missing"
done
cmp -s "$T/m_ties/model.safetensors" "$T/m_linear/model.safetensors" && fail "ties equals linear"
# DARE-TIES: same seed, same bytes; another seed, other bytes
"$XLEDIT" merge --method dare-ties $M --weights 0.7,0.3 --density 0.4 --lambda 0.9 --seed 3 \
  --out "$T/dare_again" >/dev/null || fail "dare again"
cmp -s "$T/m_dare-ties/model.safetensors" "$T/dare_again/model.safetensors" || fail "dare-ties not reproducible"
"$XLEDIT" merge --method dare-ties $M --weights 0.7,0.3 --density 0.4 --lambda 0.9 --seed 4 \
  --out "$T/dare_other" >/dev/null || fail "dare other seed"
cmp -s "$T/m_dare-ties/model.safetensors" "$T/dare_other/model.safetensors" && fail "seed has no effect"
# linear needs no base; the extended vocabulary comes from the donor
"$XLEDIT" merge --method linear --models "$FIX/a" "$FIX/ext" --out "$T/lin_ext" 2>"$T/log" || fail "linear ext"
grep -q "vocab 30 (extended)" "$T/log" || fail "extended vocabulary not reported: $(cat "$T/log")"
"$XLEDIT" info "$T/lin_ext" | grep -q "vocab *30" || fail "extended output vocab"

# stories260K with itself: TIES of identical task vectors (zero) gives the model back
if [ -f "$S260/stories260K.gguf" ]; then
  "$XLEDIT" merge --method ties --base "$S260/stories260K.gguf" \
    --models "$S260/stories260K.gguf" "$S260/stories260K.bin" --out-format gguf --out "$T/s.gguf" \
    >/dev/null || fail "stories260K gguf merge"
  "$XLEDIT" merge --method dare-ties --base "$S260/stories260K.gguf" --density 0.3 \
    --models "$S260/stories260K.gguf" "$S260/stories260K.bin" --out "$T/s_hf" \
    >/dev/null || fail "stories260K hf merge"
  "$XLEDIT" logits "$S260/stories260K.bin" --ids 1,403,407,261 >"$T/l0" || fail "logits"
  "$XLEDIT" logits "$T/s.gguf" --ids 1,403,407,261 >"$T/l1" || fail "logits of the GGUF merge"
  cmp -s "$T/l0" "$T/l1" || fail "GGUF merge of stories260K with itself changed its logits"
  "$XLEDIT" logits "$T/s_hf" --ids 1,403,407,261 >"$T/l2" || fail "logits of the HF merge"
  # HF output computes RoPE rotate-half: the same numbers up to float rounding
  paste -d' ' <(tr -s ' ,[]' '\n' <"$T/l0" | grep -E '^-?[0-9]+\.') \
              <(tr -s ' ,[]' '\n' <"$T/l2" | grep -E '^-?[0-9]+\.') |
    awk '{d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++} END {exit !(n > 500 && m < 1e-4)}' ||
    fail "HF merge of stories260K with itself changed its logits"
fi

[ "$fails" -eq 0 ] && echo "cli_merge: all passed" && exit 0
exit 1
