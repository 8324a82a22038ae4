#!/usr/bin/env bash
# scripts/fuzz.sh BUILD_FUZZ XLEDIT [SECONDS] [TARGET...]: makes the seed corpora of the
# libFuzzer targets (fuzz/) from real files and runs each target for SECONDS (default 6), with
# its corpus in BUILD_FUZZ/fuzz-corpus/TARGET (kept between runs: a long run continues where
# the last one stopped). BUILD_FUZZ is a build folder configured with
#   CC=clang cmake -S . -B BUILD_FUZZ -DXLE_FUZZ=ON && cmake --build BUILD_FUZZ --target fuzzers
# XLEDIT is a built xledit (any build) used to make seeds: a small model trained here (2 layers,
# dim 32) with its statistics caches and patches, and a run folder. A crash leaves its input
# in BUILD_FUZZ/fuzz-crashes/ and makes the script fail. docs/fuzzing.md says how to run long.
set -euo pipefail
BUILD="$(cd "$1" && pwd)"
XLEDIT="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
SECONDS_EACH="${3:-6}"
shift $(($# < 3 ? $# : 3))
SRC="$(cd "$(dirname "$0")/.." && pwd)"
SHARED="$SRC/../shared/data/external"
CORPUS="$BUILD/fuzz-corpus"
SEEDS="$BUILD/fuzz-seeds"
CRASHES="$BUILD/fuzz-crashes"
mkdir -p "$CORPUS" "$SEEDS" "$CRASHES"
SEP=$'\n--8<--\n'

# seed TARGET NAME FILE...: one seed, the files joined by the multi-file separator
seed() {
  local target="$1" name="$2"; shift 2
  mkdir -p "$SEEDS/$target"
  local out="$SEEDS/$target/$name" first=1
  : >"$out"
  for f in "$@"; do
    [ "$first" -eq 1 ] || printf '%s' "$SEP" >>"$out"
    first=0
    cat "$f" >>"$out"
  done
}

make_seeds() {
  local T="$SEEDS/work"
  rm -rf "$SEEDS" && mkdir -p "$T"
  local M="$SRC/models/xledit-mini" FIX="$SRC/tests/fixtures/models"
  # model files
  for g in "$FIX"/qwen2_bias/qwen2_bias_q8_0.gguf "$FIX"/llama_gqa/llama_gqa_q8_0.gguf \
           "$FIX"/llama_gqa/llama_gqa_f16.gguf "$FIX"/llama3_scaled/llama3_scaled_f32.gguf; do
    seed fuzz_gguf "$(basename "$g")" "$g"
  done
  [ -f "$SHARED/llamacpp-vocab/ggml-vocab-llama-spm.gguf" ] &&
    seed fuzz_gguf vocab-llama-spm.gguf "$SHARED/llamacpp-vocab/ggml-vocab-llama-spm.gguf"
  for d in "$FIX"/llama_gqa/hf_bf16 "$FIX"/qwen2_bias/hf_f32 "$FIX"/mistral_window/hf_f32; do
    local n; n="$(basename "$(dirname "$d")")_$(basename "$d")"
    seed fuzz_safetensors "$n" "$d/model.safetensors"
    seed fuzz_hf_folder "$n" "$d/config.json" "$d/model.safetensors"
  done
  for b in "$FIX"/llama_gqa/hf_bin_f32/pytorch_model.bin "$FIX"/llama_gqa/hf_bin_bf16_sharded/*.bin \
           "$SRC"/tests/fixtures/torchbin/*.bin; do
    seed fuzz_torchbin "$(basename "$(dirname "$b")")_$(basename "$b")" "$b"
  done
  if [ -f "$SHARED/stories260k/stories260K.bin" ]; then
    seed fuzz_llama2c stories260K "$SHARED/stories260k/stories260K.bin" "$SHARED/stories260k/tok512.bin"
    seed fuzz_tokenizer_llama2c tok512 "$SHARED/stories260k/tok512.bin"
  fi
  # tokenizers (large vocabularies cut to their first entries: smaller inputs, faster runs)
  seed fuzz_tokenizer_json xledit-mini "$M/tokenizer.json"
  seed fuzz_tokenizer_any tokenizer.json "$M/tokenizer.json"
  if [ -d "$SHARED/llama2-tokenizer" ]; then
    seed fuzz_tokenizer_spm llama2 "$SHARED/llama2-tokenizer/tokenizer.model"
    seed fuzz_tokenizer_llama2c llama2 "$SHARED/llama2-tokenizer/tokenizer.bin"
    seed fuzz_tokenizer_any tokenizer.model "$SHARED/llama2-tokenizer/tokenizer.model"
  fi
  if [ -d "$SHARED/qwen-tiktoken" ]; then
    head -n 400 "$SHARED/qwen-tiktoken/qwen.tiktoken" >"$T/qwen400.tiktoken"
    seed fuzz_tokenizer_tiktoken qwen400 "$T/qwen400.tiktoken"
    seed fuzz_tokenizer_any qwen400.tiktoken "$T/qwen400.tiktoken"
  fi
  if [ -d "$SHARED/llama3-tokenizer" ]; then
    head -n 400 "$SHARED/llama3-tokenizer/tokenizer.model" >"$T/llama3_400.tiktoken"
    seed fuzz_tokenizer_tiktoken llama3_400 "$T/llama3_400.tiktoken"
  fi
  # cases and datasets (the first records)
  head -n 2 "$SRC/data/world/cases.jsonl" >"$T/cases.jsonl"
  seed fuzz_cases world2 "$T/cases.jsonl"
  local B="$SHARED/bmike53"
  if [ -d "$B" ]; then
    jq '.[0:2]' "$B/CounterFact/counterfact_test_hi.json" >"$T/bm_cf.json"
    jq '.[0:2]' "$B/zsRE/zsre_test_ta.json" >"$T/bm_zsre.json"
    seed fuzz_import_bmike53 counterfact "$T/bm_cf.json"
    seed fuzz_import_bmike53 zsre "$T/bm_zsre.json"
    seed fuzz_import_zsre bmike53_zsre "$T/bm_zsre.json"
    seed fuzz_import_counterfact bmike53_cf "$T/bm_cf.json"
    seed fuzz_import_knowedit bmike53_zsre "$T/bm_zsre.json"
  fi
  if [ -d "$SHARED/mzsre" ]; then
    jq '.[0:2]' "$SHARED/mzsre/mzsre_test_duplicate_ende.json" >"$T/mzsre.json"
    seed fuzz_import_mzsre ende "$T/mzsre.json"
    seed fuzz_import_zsre mzsre "$T/mzsre.json"
  fi
  if [ -d "$SHARED/bizsre" ]; then
    jq '.[0:2]' "$SHARED/bizsre/bizsre_test.json" >"$T/bizsre.json"
    seed fuzz_import_bizsre first2 "$T/bizsre.json"
  fi
  if [ -d "$SHARED/counterfact-en" ]; then
    jq '.[0:2]' "$SHARED/counterfact-en/counterfact-edit.json" >"$T/cfe.json"
    seed fuzz_import_counterfact_edit first2 "$T/cfe.json"
    seed fuzz_import_counterfact cfe "$T/cfe.json"
    seed fuzz_import_knowedit cfe "$T/cfe.json"
  fi
  # settings files
  for f in "$M"/edit-hparams/*.json "$M/train_config.json" "$SRC"/tests/fixtures/edit/hparams_*.json; do
    seed fuzz_hparams "$(basename "$f")" "$f"
  done
  # a small model with a tokenizer, its statistics caches and patches, and a run folder
  "$XLEDIT" world corpus --data "$SRC/data/world" --out "$T/world.txt" >/dev/null
  head -n 1500 "$T/world.txt" >"$T/corpus.txt"
  mkdir -p "$T/tok"
  "$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 600 --out "$T/tok/tokenizer.json" >/dev/null
  printf '{"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 64, "max_seq_len": 64,
           "steps": 3, "batch_tokens": 256, "save_bf16": false, "seed": 1}\n' >"$T/tiny.json"
  rm -rf "$BUILD/fuzz-model"
  XLE_PROGRESS=off "$XLEDIT" train --corpus "$T/corpus.txt" --tokenizer "$T/tok/tokenizer.json" \
    --config "$T/tiny.json" --out "$BUILD/fuzz-model" >/dev/null
  local FM="$BUILD/fuzz-model"
  seed fuzz_hf_folder tiny "$FM/config.json" "$FM/model.safetensors" "$FM/tokenizer.json" \
    "$FM/tokenizer_config.json" "$FM/generation_config.json"
  seed fuzz_tokenizer_json tiny "$FM/tokenizer.json"
  XLE_PROGRESS=off "$XLEDIT" stats "$FM" --layers 0,1 --corpus "$T/corpus.txt" --max-tokens 3000 \
    --out "$T/stats" >/dev/null
  seed fuzz_stats_cache complete "$T/stats/stats.json" "$T/stats/layer-0.f64" "$T/stats/layer-1.f64"
  local edit=(--prompt "The capital city of France is" --subject France --target Luanda --stats "$T/stats"
              --no-model-hparams --quiet)
  "$XLEDIT" edit "$FM" --method rome --layers 1 "${edit[@]}" --patch "$T/rome.xlpatch" >/dev/null
  "$XLEDIT" edit "$FM" --method memit --layers 0,1 "${edit[@]}" --patch "$T/memit.xlpatch" >/dev/null
  seed fuzz_patch rome "$T/rome.xlpatch"
  seed fuzz_patch memit "$T/memit.xlpatch"
  seed fuzz_safetensors patch "$T/rome.xlpatch"
  local R="$SRC/fuzz/seeds/run_dir"
  for d in "$R"/*/; do
    seed fuzz_run_dir "$(basename "$d")" "$d/run.json" "$d/results.jsonl" "$d/pre.jsonl" "$d/templates-rome.txt"
  done
  rm -rf "$T"
}

make_seeds
export XLE_FUZZ_MODEL="$BUILD/fuzz-model"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in "$BUILD"/fuzz/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f")"); done
fi
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$CORPUS/$t"
  start=$(date +%s)
  # -timeout: one input may take 10 s (a loaded machine); -rss_limit_mb: a parser must not
  # allocate what the file does not hold
  if "$BUILD/fuzz/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
       -artifact_prefix="$CRASHES/$t-" -print_final_stats=1 "$CORPUS/$t" "$SEEDS/$t" \
       >"$BUILD/fuzz-$t.log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/fuzz-$t.log")
    echo "$t: ${execs:-?} inputs in $(($(date +%s) - start)) s, no crash"
  else
    echo "$t: FAILED (see $BUILD/fuzz-$t.log; input in $CRASHES/)" >&2
    tail -n 30 "$BUILD/fuzz-$t.log" >&2
    failed=1
  fi
done
exit $failed
