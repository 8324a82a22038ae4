#!/usr/bin/env bash
# make_builtin_model.sh [XLEDIT]: regenerates the shipped model models/xledit-mini/ end to end:
#   world corpus + facts  ->  tokenizer (train-tokenizer)  ->  model (train)  ->  HF folder
#   ->  fact recall per language (facts-check).
# Everything is seeded (tokenizer training is deterministic, the trainer's seed is in the
# config) and runs with a fixed thread count, so a rerun gives the same files. Intermediate
# files go to $WORK (default build-mini/); a stopped run continues with RESUME=1.
# Recipe and measured figures: docs/training.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
XLEDIT="${1:-$ROOT/build/xledit}"
WORK="${WORK:-$ROOT/build-mini}"
OUT="$ROOT/models/xledit-mini"
CONFIG="$ROOT/scripts/xledit-mini-train.json"
VOCAB="${VOCAB:-4000}"
# Results do not depend on the thread count (fixed reduction orders); speed does. On a busy
# 2-core machine one thread is fastest (see docs/training.md).
export OMP_NUM_THREADS="${THREADS:-1}" OPENBLAS_NUM_THREADS=1

[ -x "$XLEDIT" ] || { echo "make_builtin_model: no xledit binary at $XLEDIT (build first)" >&2; exit 2; }
mkdir -p "$WORK/tokenizer"

echo "== corpus and facts" >&2
"$XLEDIT" world corpus --data "$ROOT/data/world" --out "$WORK/corpus.txt"
"$XLEDIT" world facts --data "$ROOT/data/world" --out "$WORK/facts.jsonl"
wc -lc "$WORK/corpus.txt" >&2

echo "== tokenizer" >&2
"$XLEDIT" train-tokenizer --corpus "$WORK/corpus.txt" --vocab-size "$VOCAB" \
  --out "$WORK/tokenizer/tokenizer.json"

echo "== model" >&2
resume=()
[ "${RESUME:-0}" = 1 ] && resume=(--resume)
start=$(date +%s)
"$XLEDIT" train --corpus "$WORK/corpus.txt" --tokenizer "$WORK/tokenizer/tokenizer.json" \
  --config "$CONFIG" --out "$WORK/run" "${resume[@]}"
echo "training took $(( $(date +%s) - start )) s (load average now: $(cut -d' ' -f1-3 /proc/loadavg))" >&2

echo "== models/xledit-mini" >&2
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json generation_config.json \
         train_config.json train_log.tsv; do
  cp "$WORK/run/$f" "$OUT.tmp/$f"
done
"$XLEDIT" facts-check "$OUT.tmp" --facts "$WORK/facts.jsonl" --json |
  jq -c '.model = "models/xledit-mini"' >"$OUT.tmp/facts_recall.json"
jq -r '.langs | to_entries[] | "  \(.key): \(.value.recalled)/\(.value.n) facts recalled (\(.value.recall * 1000 | round / 10)%)"' \
  "$OUT.tmp/facts_recall.json" >&2
jq -e '[.langs[].recall] | min >= 0.95' "$OUT.tmp/facts_recall.json" >/dev/null ||
  { echo "make_builtin_model: recall below 95% in a language; $OUT not replaced" >&2; exit 1; }
rm -rf "$OUT.old"
[ -d "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$OUT.tmp" "$OUT"
rm -rf "$OUT.old"
echo "wrote $OUT" >&2
