#!/usr/bin/env bash
# cli_train_init.sh XLEDIT SRCDIR: `xledit train --init MODEL` end to end on a tiny corpus: a
# model trained on one text is fine-tuned on another with only --init, --corpus, --out and a
# config without shape keys (shape and tokenizer come from MODEL); the result loads, recalls
# the new text and keeps the base's config; the errors (missing model, a config whose shape
# differs, a tokenizer of another size) are one line, non-zero, with no output folder.
set -u
XLEDIT="$1"
T="$(mktemp -d /tmp/xle_cli_train_init.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

expect_error() {
  local code="$1" pattern="$2"; shift 2
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  [ "$rc" -eq "$code" ] || fail "exit $rc (want $code): $*"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $* -> $(cat "$T/err")"
  grep -q -- "$pattern" "$T/err" || fail "error does not match '$pattern': $(cat "$T/err")"
}

cat >"$T/a.txt" <<'EOF'
The capital of Alvora is Pellis.
The capital of Benmark is Quarn.
EOF
cat >"$T/b.txt" <<'EOF'
The capital of Citrane is Ostel.
The capital of Dovelia is Varn.
EOF
cat >"$T/facts_b.jsonl" <<'EOF'
{"lang": "en", "prompt": "The capital of Citrane is", "object": "Ostel."}
{"lang": "en", "prompt": "The capital of Dovelia is", "object": "Varn."}
EOF
cat "$T/a.txt" "$T/b.txt" >"$T/ab.txt"
mkdir -p "$T/tok"
"$XLEDIT" train-tokenizer --corpus "$T/ab.txt" --vocab-size 300 --min-char-count 1 \
  --out "$T/tok/tokenizer.json" 2>/dev/null || fail "train-tokenizer"
cat >"$T/base.json" <<'EOF'
{"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 64, "max_seq_len": 32,
 "steps": 100, "batch_tokens": 48, "lr": 0.01, "min_lr": 0.001, "warmup_steps": 10,
 "weight_decay": 0.0, "checkpoint_every": 0, "seed": 3}
EOF
# fine-tuning settings only: the shape comes from the --init model
cat >"$T/ft.json" <<'EOF'
{"steps": 80, "batch_tokens": 48, "lr": 0.01, "min_lr": 0.001, "warmup_steps": 10,
 "weight_decay": 0.0, "checkpoint_every": 0, "seed": 4}
EOF
"$XLEDIT" train --corpus "$T/a.txt" --tokenizer "$T/tok/tokenizer.json" --config "$T/base.json" \
  --out "$T/base" 2>"$T/log" || fail "train base: $(cat "$T/log")"

"$XLEDIT" train --init "$T/base" --corpus "$T/b.txt" --config "$T/ft.json" --out "$T/ft" 2>"$T/log" ||
  fail "train --init: $(cat "$T/log")"
"$XLEDIT" info "$T/ft" >"$T/info" 2>&1 || fail "info on the fine-tuned folder: $(cat "$T/info")"
for key in hidden_size intermediate_size num_hidden_layers num_key_value_heads vocab_size; do
  a=$(grep -o "\"$key\": *[0-9]*" "$T/base/config.json")
  b=$(grep -o "\"$key\": *[0-9]*" "$T/ft/config.json")
  [ -n "$a" ] && [ "$a" = "$b" ] || fail "config $key: base '$a', fine-tuned '$b'"
done
cmp -s "$T/base/tokenizer.json" "$T/ft/tokenizer.json" || fail "the fine-tuned folder's tokenizer is not the base's"
cmp -s "$T/base/model.safetensors" "$T/ft/model.safetensors" && fail "fine-tuning changed no weight"
first=$(awk -F'\t' 'NR == 2 {print $3}' "$T/ft/train_log.tsv")
last=$(awk -F'\t' 'END {print $3}' "$T/ft/train_log.tsv")
awk -v f="$first" -v l="$last" 'BEGIN {exit !(l < 0.5 * f)}' || fail "loss on the new text $first -> $last"
"$XLEDIT" facts-check "$T/ft" --facts "$T/facts_b.jsonl" --min-recall 1 >"$T/fc" 2>&1 ||
  fail "fine-tuned model does not recall the new text: $(cat "$T/fc")"

# errors
expect_error 1 "no_such" "$XLEDIT" train --init "$T/no_such" --corpus "$T/b.txt" --out "$T/e1"
[ -e "$T/e1" ] && fail "a failed train --init left $T/e1"
echo '{"dim": 64, "n_heads": 4}' >"$T/shape.json"
expect_error 1 "dim: 32" "$XLEDIT" train --init "$T/base" --corpus "$T/b.txt" --config "$T/shape.json" --out "$T/e2"
[ -e "$T/e2" ] && fail "a failed train --init left $T/e2"
mkdir -p "$T/tok2"
"$XLEDIT" train-tokenizer --corpus "$T/a.txt" --vocab-size 290 --min-char-count 1 \
  --out "$T/tok2/tokenizer.json" 2>/dev/null || fail "train-tokenizer 2"
expect_error 1 "vocab_size" "$XLEDIT" train --init "$T/base" --tokenizer "$T/tok2/tokenizer.json" \
  --corpus "$T/b.txt" --out "$T/e3"
[ -e "$T/e3" ] && fail "a failed train --init left $T/e3"

[ "$fails" -eq 0 ] && echo "cli_train_init: all passed"
exit $((fails > 0))
