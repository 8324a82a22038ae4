#!/usr/bin/env bash
# cli_train.sh XLEDIT SRCDIR: train-tokenizer, train (with Ctrl-C-style stop via --steps and
# --resume) and facts-check end to end on a tiny multilingual corpus; the trained folder loads
# with `xledit info` and `generate`; the errors a user meets (missing corpus, bad vocab size,
# bad config key, resume without a checkpoint, a folder already holding a run) give one-line
# messages, non-zero exits and no partial output.
set -u
XLEDIT="$1"
T="$(mktemp -d /tmp/xle_cli_train.XXXXXX)"
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

cat >"$T/corpus.txt" <<'EOF'
The capital of Alvora is Pellis.
Die Hauptstadt von Alvora ist Pellis.
La capitale de Benmark est Quarn.
The capital of Benmark is Quarn.
अल्वोरा की राजधानी पेलिस है।
ಬೆನ್ಮಾರ್ಕ್ ರಾಜಧಾನಿ ಕ್ವಾರ್ನ್.
EOF
cat >"$T/facts.jsonl" <<'EOF'
{"lang": "en", "prompt": "The capital of Alvora is", "object": "Pellis."}
{"lang": "en", "prompt": "The capital of Benmark is", "object": "Quarn."}
{"lang": "de", "prompt": "Die Hauptstadt von Alvora ist", "object": "Pellis."}
{"lang": "fr", "prompt": "La capitale de Benmark est", "object": "Quarn."}
{"lang": "hi", "prompt": "अल्वोरा की राजधानी", "object": "पेलिस है।"}
EOF

# ---- train-tokenizer
# a missing output folder is made (it receives tokenizer_config.json too); a file in its place
# is one error line, before the training
"$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 400 --min-char-count 1 \
  --out "$T/newtok/tokenizer.json" 2>"$T/err" || fail "train-tokenizer into a missing folder: $(cat "$T/err")"
[ -f "$T/newtok/tokenizer.json" ] && [ -f "$T/newtok/tokenizer_config.json" ] || fail "no newtok/ files"
touch "$T/afile"
"$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 400 --out "$T/afile/tokenizer.json" \
  2>"$T/err" && fail "train-tokenizer under a file succeeded"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $(cat "$T/err")"
mkdir -p "$T/tok"
"$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 400 --min-char-count 1 \
  --out "$T/tok/tokenizer.json" 2>"$T/tok.log" || fail "train-tokenizer: $(cat "$T/tok.log")"
grep -q "400 tokens" "$T/tok.log" || fail "train-tokenizer summary: $(cat "$T/tok.log")"
[ -f "$T/tok/tokenizer.json" ] && [ -f "$T/tok/tokenizer_config.json" ] || fail "tokenizer files missing"
ls "$T/tok" | grep -q tmp && fail "temporary files left in $T/tok"
"$XLEDIT" tokenize "$T/tok/tokenizer.json" --text "The capital of Alvora is Pellis." >"$T/ids" ||
  fail "tokenize with the trained tokenizer"
head -1 "$T/ids" | grep -q "<s>" || fail "BOS not added: $(head -1 "$T/ids")"
expect_error 1 "cannot open" "$XLEDIT" train-tokenizer --corpus "$T/none.txt" --out "$T/tok/x.json"
expect_error 2 "vocab-size" "$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 12 --out "$T/tok/x.json"
expect_error 2 "out is required" "$XLEDIT" train-tokenizer --corpus "$T/corpus.txt"
expect_error 1 "characters" "$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 270 \
  --min-char-count 1 --out "$T/tok/x.json"
[ -e "$T/tok/x.json" ] && fail "a failed train-tokenizer left output"
grep -q "train-tokenizer: train-tokenizer:" "$T/err" && fail "doubled prefix: $(cat "$T/err")"

# ---- train
cat >"$T/cfg.json" <<'EOF'
{"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 64, "max_seq_len": 32,
 "batch_tokens": 128, "steps": 120, "warmup_steps": 10, "lr": 0.01, "min_lr": 0.001,
 "weight_decay": 0.0, "checkpoint_every": 50, "seed": 5}
EOF
echo '{"dim": 32, "n_head": 4}' >"$T/bad.json"
expect_error 1 "bad.json: n_head: unknown key" "$XLEDIT" train --corpus "$T/corpus.txt" \
  --tokenizer "$T/tok/tokenizer.json" --config "$T/bad.json" --out "$T/bad"
[ -e "$T/bad" ] && fail "a bad config left an output folder"
expect_error 2 "tokenizer is required" "$XLEDIT" train --corpus "$T/corpus.txt" --out "$T/x"
expect_error 1 "no checkpoint" "$XLEDIT" train --corpus "$T/corpus.txt" \
  --tokenizer "$T/tok/tokenizer.json" --config "$T/cfg.json" --out "$T/fresh" --resume

"$XLEDIT" train --corpus "$T/corpus.txt" --tokenizer "$T/tok/tokenizer.json" --config "$T/cfg.json" \
  --out "$T/run" 2>"$T/train.log" || fail "train: $(cat "$T/train.log")"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json \
  train_config.json train_log.tsv checkpoint/state.ckpt; do
  [ -f "$T/run/$f" ] || fail "train output lacks $f"
done
grep -q '"LlamaForCausalLM"' "$T/run/config.json" || fail "config.json architectures"
grep -q '"num_key_value_heads": 2' "$T/run/config.json" || fail "config.json kv heads"
[ "$(wc -l <"$T/run/train_log.tsv")" -eq 121 ] || fail "train_log.tsv has $(wc -l <"$T/run/train_log.tsv") lines"
"$XLEDIT" info "$T/run" >"$T/info" || fail "info on the trained folder"
grep -qi "llama" "$T/info" || fail "info: $(cat "$T/info")"
"$XLEDIT" generate "$T/run" --text "The capital of Alvora is" -n 8 >"$T/gen" || fail "generate"
grep -q "Pellis" "$T/gen" || fail "the tiny model did not learn its sentence: $(cat "$T/gen")"
"$XLEDIT" facts-check "$T/run" --facts "$T/facts.jsonl" >"$T/facts.out" || fail "facts-check"
grep -q "^en .* 2 / 2 " "$T/facts.out" || fail "facts-check en: $(cat "$T/facts.out")"
grep -q "^all " "$T/facts.out" || fail "facts-check total line"
"$XLEDIT" facts-check "$T/run" --facts "$T/facts.jsonl" --json | grep -q '"recall"' || fail "facts-check --json"
echo '{"lang": "en", "prompt": "x"}' >"$T/badfacts.jsonl"
expect_error 1 "badfacts.jsonl:1: object" "$XLEDIT" facts-check "$T/run" --facts "$T/badfacts.jsonl"

# a folder that holds a run is not trained over; --resume of a finished run changes nothing
expect_error 1 "already holds" "$XLEDIT" train --corpus "$T/corpus.txt" \
  --tokenizer "$T/tok/tokenizer.json" --config "$T/cfg.json" --out "$T/run"
cp "$T/run/model.safetensors" "$T/first.safetensors"
"$XLEDIT" train --corpus "$T/corpus.txt" --tokenizer "$T/tok/tokenizer.json" --config "$T/cfg.json" \
  --out "$T/run" --resume 2>/dev/null || fail "resume of a finished run"
cmp -s "$T/run/model.safetensors" "$T/first.safetensors" || fail "resume of a finished run changed the weights"
# resume with other settings names the key
expect_error 1 "steps" "$XLEDIT" train --corpus "$T/corpus.txt" --tokenizer "$T/tok/tokenizer.json" \
  --config "$T/cfg.json" --out "$T/run" --resume --steps 200

[ "$fails" -eq 0 ] && echo "cli_train: all passed"
exit $((fails > 0))
