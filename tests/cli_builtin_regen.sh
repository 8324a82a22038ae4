#!/usr/bin/env bash
# cli_builtin_regen.sh XLEDIT SRCDIR: the shipped model (models/xledit-mini) is what its recipe
# (scripts/make_builtin_model.sh) makes. The full 2,300-step run takes about an hour here, so
# this test replays its deterministic parts and its start:
#   - the world corpus renders, and the tokenizer trained from it (vocabulary 4000) is
#     byte-identical to the shipped tokenizer.json;
#   - the first 3 training steps with the shipped config, from the same seed, log the same
#     learning rate, loss (6 decimals), gradient norm and token count as the shipped
#     train_log.tsv, here with 2 threads where the shipped model was trained with 1 (the
#     trainer's reductions have a fixed order, so the thread count must not matter);
#   - the shipped train_config.json is the recipe's config (same hyperparameters).
# docs/training.md gives the full run's time and the shipped weights' sha256.
set -u
XLEDIT="$1"
SRC="$2"
MODEL="$SRC/models/xledit-mini"
T="$(mktemp -d /tmp/xle_cli_regen.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

[ -f "$MODEL/model.safetensors" ] || { echo "FAIL: $MODEL: no shipped model" >&2; exit 1; }

"$XLEDIT" world corpus --data "$SRC/data/world" --out "$T/corpus.txt" 2>/dev/null || fail "world corpus"
"$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 4000 --out "$T/tokenizer.json" \
  2>/dev/null || fail "train-tokenizer"
cmp -s "$T/tokenizer.json" "$MODEL/tokenizer.json" || fail "retrained tokenizer differs from the shipped one"

OMP_NUM_THREADS=2 "$XLEDIT" train --corpus "$T/corpus.txt" --tokenizer "$T/tokenizer.json" \
  --config "$SRC/scripts/xledit-mini-train.json" --steps 3 --out "$T/run" 2>/dev/null || fail "train 3 steps"
head -4 "$T/run/train_log.tsv" | cut -f1-5 >"$T/replayed"
head -4 "$MODEL/train_log.tsv" | cut -f1-5 >"$T/shipped"
[ "$(wc -l <"$T/replayed")" -eq 4 ] || fail "replayed log has $(wc -l <"$T/replayed") lines"
cmp -s "$T/replayed" "$T/shipped" || fail "first steps differ from the shipped log: $(diff "$T/shipped" "$T/replayed" | tr '\n' ' ')"

# The recipe's config and the shipped one agree on everything but the step count override.
jq -S 'del(.steps)' "$T/run/train_config.json" >"$T/k_replayed" || fail "replayed train_config.json: not JSON"
jq -S 'del(.steps)' "$MODEL/train_config.json" >"$T/k_shipped" || fail "shipped train_config.json: not JSON"
cmp -s "$T/k_replayed" "$T/k_shipped" || fail "train_config.json differs from the recipe's: $(diff "$T/k_shipped" "$T/k_replayed" | tr '\n' ' ')"
[ "$(jq .steps "$MODEL/train_config.json")" = 2300 ] || fail "shipped train_config.json: steps is not 2300"

if [ "$fails" -ne 0 ]; then echo "cli_builtin_regen: $fails failure(s)" >&2; exit 1; fi
echo "cli_builtin_regen: ok"
