#!/bin/bash
# cli_tokenize.sh XLEDIT SOURCE_DIR: `xledit tokenize` on stories260K's tokenizer (tok512.bin,
# the .gguf, the llama2.c checkpoint with the tokenizer beside it), on the Llama-2, Llama-3 and
# Qwen tokenizer files, and its error exits (one line on stderr, exit 1 or 2); --text on
# generate (streamed text = run.c's), score and logits.
XLEDIT="$1"
SRC="$2"
SHARED="$SRC/../shared/data/external"
S="$SHARED/stories260k"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() { echo "FAIL: $*" >&2; FAILS=$((FAILS + 1)); }

expect_ids() { # expect_ids WANT ARGS... : the "ids" of --json output
  local want="$1"
  shift
  "$XLEDIT" tokenize "$@" --json >"$T/out" 2>"$T/err" || { fail "exit $?: $* ($(cat "$T/err"))"; return; }
  local got
  got=$(grep -o '"ids": \[[^]]*\]' "$T/out")
  [ "$got" = "\"ids\": [$want]" ] || fail "$*: got '$got', want [$want]"
}

expect_error() { # expect_error CODE PATTERN ARGS...
  local code="$1" pattern="$2"
  shift 2
  "$XLEDIT" tokenize "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  [ "$rc" -eq "$code" ] || fail "exit $rc (want $code): $*"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $* -> $(cat "$T/err")"
  grep -q -- "$pattern" "$T/err" || fail "error does not match '$pattern': $(cat "$T/err")"
  [ ! -s "$T/out" ] || fail "output on error: $*"
}

# run.c's encoding of this prompt (stories260k SOURCE.md): BOS + 15 ids
STORY="Once upon a time, there was a little girl named Lily."
WANT="1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426"
expect_ids "$WANT" "$S/tok512.bin" --text "$STORY"
expect_ids "$WANT" "$S/stories260K.gguf" --text "$STORY"
expect_ids "$WANT" "$S/stories260K.bin" --text "$STORY"
expect_ids "${WANT#1, }" "$S/tok512.bin" --text "$STORY" --no-bos
expect_ids "1, 1, 403" "$S/tok512.bin" --text "<s>Once" --parse-special
# offsets and pieces in the JSON
"$XLEDIT" tokenize "$S/tok512.bin" --text "Once upon" --json >"$T/out" || fail "json run"
grep -q '{"id": 407, "piece": "▁upon", "offset": 4, "length": 5}' "$T/out" || fail "json token: $(cat "$T/out")"
# plain listing: id, offset, length, piece
"$XLEDIT" tokenize "$S/tok512.bin" --text "Once upon" >"$T/out" || fail "plain run"
[ "$(sed -n 3p "$T/out")" = "$(printf '407\t4\t5\t▁upon')" ] || fail "plain listing: $(cat "$T/out")"

# real vocabularies
expect_ids "15043, 3186" "$SHARED/llama2-tokenizer/tokenizer.model" --text "Hello world" --no-bos
expect_ids "1, 15043, 3186" "$SHARED/llama2-tokenizer/tokenizer.bin" --text "Hello world"
expect_ids "128000, 9906, 1917" "$SHARED/llama3-tokenizer/tokenizer.model" --text "Hello world"
expect_ids "9707, 1879" "$SHARED/qwen-tiktoken/qwen.tiktoken" --text "Hello world"
expect_ids "9707, 1879, 151645" "$SHARED/qwen-tiktoken/qwen.tiktoken" --text "Hello world<|im_end|>" --parse-special

# a folder with a tokenizer file
mkdir -p "$T/folder"
cp "$S/tok512.bin" "$T/folder/tokenizer.bin"
expect_ids "$WANT" "$T/folder" --text "$STORY"

# --text on the model commands: generate prints by streaming decode exactly what run.c prints
"$XLEDIT" generate "$S/stories260K.bin" --ids 1 -n 200 >"$T/gen.txt" || fail "generate"
cmp -s "$T/gen.txt" "$S/greedy200_text.txt" || fail "generate text differs from run.c's greedy200_text.txt"
"$XLEDIT" generate "$S/stories260K.bin" --text "Once upon a time" -n 4 >"$T/out" || fail "generate --text"
[ "$(cat "$T/out")" = ", there was a" ] || fail "generate --text: '$(cat "$T/out")'"
"$XLEDIT" score "$S/stories260K.bin" --text "Once upon a time, there was a little girl named" --target "Lily" --json \
  >"$T/a" || fail "score --target"
"$XLEDIT" score "$S/stories260K.bin" --text "Once upon a time, there was a little girl named" --target-ids 317 --json \
  >"$T/b" || fail "score --target-ids"
cmp -s "$T/a" "$T/b" || fail "score --target 'Lily' differs from --target-ids 317: $(cat "$T/a") vs $(cat "$T/b")"
"$XLEDIT" logits "$S/stories260K.bin" --text "Once" >"$T/out" || fail "logits --text"
grep -q '"ids": \[1, 403\]' "$T/out" || fail "logits --text ids"

# errors: usage (2), bad files (1)
"$XLEDIT" tokenize --help >"$T/out" 2>&1 || fail "--help exit"
grep -q "usage: xledit tokenize" "$T/out" || fail "--help text"
expect_error 2 "--text is required" "$S/tok512.bin"
expect_error 2 "unknown option" "$S/tok512.bin" --text x --bogus
expect_error 2 "expected one MODEL" --text x
expect_error 1 "cannot open" "$T/missing.bin" --text x
printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}' >"$T/dup.json"
expect_error 1 "dup.json: model.vocab" "$T/dup.json" --text x
printf '{"model": ' >"$T/trunc.json"
expect_error 1 "trunc.json: bad JSON" "$T/trunc.json" --text x
head -c 3000 "$S/tok512.bin" >"$T/tok.bin"
expect_error 1 "tok.bin" "$T/tok.bin" --text x

[ "$FAILS" -eq 0 ] || { echo "$FAILS failures" >&2; exit 1; }
echo "cli_tokenize: all passed"
