#!/usr/bin/env bash
# cli_model.sh XLEDIT SRCDIR: the model commands on real files: --help of every command (exit 0,
# usage on stdout, nothing on stderr), `info` on stories260K (.bin and .gguf) and on every
# fixture family (architecture, sizes, stored types, RoPE convention and scaling, window,
# tying, tokenizer), `info --json` as one object, `generate` reproducing run.c's greedy ids,
# `logits --json` shape, `score`, and `convert` round trips (GGUF byte-identical, llama2.c to a
# HF folder that generates the same ids), llama.cpp's -p/-f/stdin prompt flags and sampler
# options. The logits JSON is parsed with jansson and compared
# with the golden logits in test_golden.c (test_cli_logits_json).
set -u
XLEDIT="$1"
SRC="$2"
SHARED="${XLE_SHARED_DIR:-$SRC/../shared}"
STORIES="$SHARED/data/external/stories260k"
FIX="$SRC/tests/fixtures/models"
T="$(mktemp -d /tmp/xle_cli_model.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# --help of the tool and of every command it lists
"$XLEDIT" --help >"$T/help" 2>"$T/err" || fail "xledit --help exits non-zero"
[ -s "$T/err" ] && fail "xledit --help wrote to stderr"
cmds=$(awk '/^  [a-z]/{print $1}' "$T/help")
[ "$(echo "$cmds" | wc -w)" -ge 10 ] || fail "xledit --help lists too few commands: $cmds"
for c in $cmds; do
  "$XLEDIT" "$c" --help >"$T/out" 2>"$T/err"
  rc=$?
  [ "$rc" -eq 0 ] || fail "$c --help: exit $rc"
  [ -s "$T/err" ] && fail "$c --help wrote to stderr: $(head -c 200 "$T/err")"
  head -1 "$T/out" | grep -q "^usage: xledit $c" || fail "$c --help: no usage line: $(head -1 "$T/out")"
done

# info: expect_info MODEL PATTERN... (each pattern must match a line)
expect_info() {
  local model="$1"; shift
  "$XLEDIT" info "$model" >"$T/info" 2>"$T/err" || { fail "info $model: $(cat "$T/err")"; return; }
  for p in "$@"; do grep -q -- "$p" "$T/info" || fail "info $model: no line matching '$p'"; done
}
expect_info "$STORIES/stories260K.bin" "^format  *llama2c" "^architecture  *llama" \
  "^heads  *8 (kv heads 4, head dim 8)" "^vocab  *512" "^context  *512" "stored as F32 x47" \
  "^rope  *interleaved" "^embeddings  *tied" "^tokenizer  *SentencePiece BPE, 512 tokens, from tok512.bin"
expect_info "$STORIES/stories260K.gguf" "^format  *gguf" "^context  *128" "stored as F32 x48" \
  "^rope  *interleaved" "^embeddings  *separate" \
  "^tokenizer  *SentencePiece BPE, 512 tokens, from tokenizer.ggml.\* of the GGUF file (model \"llama\")"
expect_info "$FIX/llama_gqa/hf_bf16_sharded" "^format  *hf-safetensors" "^architecture  *llama" \
  "^heads  *4 (kv heads 2, head dim 8)" "BF16 in memory; stored as BF16 x21" "^rope  *rotate-half" \
  "^tokenizer  *none"
expect_info "$FIX/llama_gqa/hf_bin_f32" "^format  *hf-pytorch-bin" "stored as F32 x21"
expect_info "$FIX/llama_gqa/hf_bin_bf16_sharded" "^format  *hf-pytorch-bin" "stored as BF16 x21"
expect_info "$FIX/llama_gqa/llama_gqa_q8_0.gguf" "stored as Q8_0 x16, F32 x5" "^rope  *interleaved"
expect_info "$FIX/mistral_window/hf_f32" "^architecture  *mistral" "^sliding window 4" "^rope  *rotate-half"
expect_info "$FIX/mistral_window/mistral_window_f32.gguf" "^architecture  *llama" "^sliding window 4" \
  "^rope  *interleaved"
expect_info "$FIX/qwen2_bias/hf_f32" "^architecture  *qwen2" "^embeddings  *tied" "^sliding window none" \
  "^rope theta  *1e+06"
expect_info "$FIX/qwen2_bias/qwen2_bias_q8_0.gguf" "^architecture  *qwen2" "^rope  *rotate-half" \
  "stored as Q8_0 x15, F32 x11"
expect_info "$FIX/llama3_scaled/hf_f32" "^heads  *4 (kv heads 2, head dim 16)" "scaling llama3$"
expect_info "$FIX/llama3_scaled/llama3_scaled_f32.gguf" "(rope_freqs.weight)" "^rope  *interleaved"

# info --json: one line, one object, the path escaped
mkdir -p "$T/we\"ird"
cp -r "$FIX/qwen2_bias/hf_f32/." "$T/we\"ird/"
"$XLEDIT" info --json "$T/we\"ird" >"$T/json" 2>"$T/err" || fail "info --json: $(cat "$T/err")"
[ "$(wc -l <"$T/json")" -eq 1 ] || fail "info --json: not one line"
grep -q '^{"path": ".*we\\"ird", "format": "hf-safetensors", "architecture": "qwen2"' "$T/json" ||
  fail "info --json: $(head -c 300 "$T/json")"
grep -q '"rope_interleaved": false' "$T/json" || fail "info --json: rope_interleaved"
grep -q '"norm_eps": 1e-6' "$T/json" || fail "info --json: norm_eps"

# generate: run.c's first 40 greedy ids from BOS, from both files
want=$(tr -s ' \n' ' ' <"$STORIES/greedy200_ids.txt" | cut -d' ' -f1-40)
for m in stories260K.bin stories260K.gguf; do
  got=$("$XLEDIT" generate "$STORIES/$m" --ids 1 -n 40 --print-ids 2>"$T/err") || fail "generate $m: $(cat "$T/err")"
  [ "$got" = "$want" ] || fail "generate $m: $got"
done

# logits: all positions, V floats each
"$XLEDIT" logits "$FIX/qwen2_bias/hf_f32" --ids 1,5,7 --all-positions --json >"$T/logits" 2>"$T/err" ||
  fail "logits: $(cat "$T/err")"
grep -q '"positions": \[0, 1, 2\], "vocab_size": 300, "logits": \[\[' "$T/logits" || fail "logits JSON layout"
[ "$(grep -o ',' "$T/logits" | wc -l)" -ge $((3 * 299)) ] || fail "logits: too few values"

# score: a finite negative log-probability
lp=$("$XLEDIT" score "$STORIES/stories260K.bin" --ids 1,403,407 --target-ids 261,378 2>"$T/err") ||
  fail "score: $(cat "$T/err")"
case "$lp" in -[0-9]*) ;; *) fail "score printed '$lp'" ;; esac

# convert: an unedited GGUF comes back byte-identical; llama2.c becomes a HF folder that
# generates the same ids; an existing non-empty output is refused and left alone
"$XLEDIT" convert "$FIX/llama_gqa/llama_gqa_q8_0.gguf" --out "$T/copy.gguf" >/dev/null 2>"$T/err" ||
  fail "convert gguf: $(cat "$T/err")"
cmp -s "$FIX/llama_gqa/llama_gqa_q8_0.gguf" "$T/copy.gguf" || fail "convert gguf: bytes differ"
"$XLEDIT" convert "$STORIES/stories260K.gguf" --out "$T/stories.gguf" >/dev/null 2>"$T/err" ||
  fail "convert stories gguf: $(cat "$T/err")"
cmp -s "$STORIES/stories260K.gguf" "$T/stories.gguf" || fail "convert stories gguf (tokenizer arrays): bytes differ"
"$XLEDIT" convert "$STORIES/stories260K.bin" --out "$T/hf" >/dev/null 2>"$T/err" || fail "convert llama2c: $(cat "$T/err")"
[ -f "$T/hf/config.json" ] && [ -f "$T/hf/model.safetensors" ] && [ -f "$T/hf/tokenizer.bin" ] ||
  fail "convert llama2c: files missing"
got=$("$XLEDIT" generate "$T/hf" --ids 1 -n 40 --print-ids 2>"$T/err") || fail "generate hf: $(cat "$T/err")"
[ "$got" = "$want" ] || fail "llama2.c converted to HF generates $got"
"$XLEDIT" convert "$FIX/qwen2_bias/hf_f32" --out "$T/hf" >"$T/out" 2>"$T/err"
[ $? -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || fail "convert onto a non-empty folder: $(cat "$T/err")"
"$XLEDIT" info "$T/hf" | grep -q "^architecture  *llama" || fail "refused convert changed the folder"
ls "$T" | grep -q 'tmp-' && fail "temporary output left behind: $(ls "$T")"

# a HF folder that ships only SentencePiece's tokenizer.model (as some Llama-2-derived models do)
mkdir -p "$T/spm_only"
cp "$T/hf/config.json" "$T/hf/model.safetensors" "$T/spm_only/"
cp "$SHARED/data/external/llama2-tokenizer/tokenizer.model" "$T/spm_only/"
"$XLEDIT" info "$T/spm_only" | grep -q "32000 tokens, from tokenizer.model" ||
  fail "tokenizer.model beside a HF folder not loaded: $("$XLEDIT" info "$T/spm_only" | grep tokenizer)"

# llama.cpp's prompt flags: -p/--prompt is --text; -f FILE (one trailing newline dropped) and
# -f - (stdin) give the same prompt; the prompt given twice, a missing file, a bad --top-p fail
MINI="$SRC/models/xledit-mini"
printf 'The capital of France is\n' >"$T/prompt.txt"
"$XLEDIT" generate "$MINI" --text "The capital of France is" -n 6 --print-ids >"$T/g_text" || fail "generate --text"
"$XLEDIT" generate "$MINI" -p "The capital of France is" -n 6 --print-ids >"$T/g_p" || fail "generate -p"
"$XLEDIT" generate "$MINI" --prompt "The capital of France is" -n 6 --print-ids >"$T/g_prompt" || fail "generate --prompt"
"$XLEDIT" generate "$MINI" -f "$T/prompt.txt" -n 6 --print-ids >"$T/g_f" || fail "generate -f"
"$XLEDIT" generate "$MINI" -f - -n 6 --print-ids <"$T/prompt.txt" >"$T/g_stdin" || fail "generate -f -"
for v in g_p g_prompt g_f g_stdin; do
  cmp -s "$T/g_text" "$T/$v" || fail "generate: $v differs from --text: $(cat "$T/$v") vs $(cat "$T/g_text")"
done
"$XLEDIT" score "$MINI" --text "The capital of France is" --target " Paris" >"$T/s_text" || fail "score --text"
"$XLEDIT" score "$MINI" -p "The capital of France is" --target " Paris" >"$T/s_p" || fail "score -p"
"$XLEDIT" score "$MINI" -f - --target " Paris" <"$T/prompt.txt" >"$T/s_stdin" || fail "score -f -"
cmp -s "$T/s_text" "$T/s_p" && cmp -s "$T/s_text" "$T/s_stdin" || fail "score: -p / -f - differ from --text"
"$XLEDIT" generate "$MINI" -p x --text y >/dev/null 2>"$T/err"; rc=$?
[ "$rc" -eq 2 ] && grep -q "give the prompt once" "$T/err" || fail "two prompts: exit $rc, $(cat "$T/err")"
"$XLEDIT" generate "$MINI" -f "$T/missing.txt" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "missing.txt: cannot open" "$T/err" ||
  fail "missing -f file: exit $rc, $(cat "$T/err")"
"$XLEDIT" generate "$MINI" -p x --top-p 0 >/dev/null 2>"$T/err"; rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--top-p" "$T/err" || fail "--top-p 0: exit $rc"
"$XLEDIT" generate "$MINI" -p x --repeat-penalty -1 >/dev/null 2>"$T/err"; rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--repeat-penalty" "$T/err" || fail "--repeat-penalty -1: exit $rc"
"$XLEDIT" generate "$MINI" -p "The capital of France is" -n 6 --temp 0.7 --top-p 0.9 --repeat-penalty 1.1 \
  --seed 5 >/dev/null || fail "generate with --top-p and --repeat-penalty"

# --chat: the prompt in the folder's chat template (here Mistral's [INST], on the built-in
# model) gives the ids of the rendered text tokenized without BOS, special tokens parsed
mkdir -p "$T/chat"
cp "$MINI/config.json" "$MINI/model.safetensors" "$MINI/tokenizer.json" "$T/chat/"
cp "$SRC/tests/fixtures/chat/mistral.json" "$T/chat/tokenizer_config.json"
ids=$("$XLEDIT" tokenize "$T/chat" --text "<s>[INST] The capital of France is [/INST]" --no-bos --parse-special |
  awk '{print $1}' | paste -sd, -)
[ "${ids%%,*}" = 1 ] || fail "tokenize --parse-special: <s> is not id 1: $ids"
"$XLEDIT" generate "$T/chat" --chat -p "The capital of France is" -n 4 --print-ids >"$T/c_chat" || fail "generate --chat"
"$XLEDIT" generate "$T/chat" --ids "$ids" -n 4 --print-ids >"$T/c_ids" || fail "generate --ids"
cmp -s "$T/c_chat" "$T/c_ids" || fail "generate --chat: $(cat "$T/c_chat") vs the rendered ids: $(cat "$T/c_ids")"
tid=$("$XLEDIT" tokenize "$T/chat" --text "Paris" --no-bos | awk '{print $1}' | paste -sd, -)
"$XLEDIT" score "$T/chat" --chat -p "The capital of France is" --target "Paris" >"$T/sc_chat" || fail "score --chat"
"$XLEDIT" score "$T/chat" --ids "$ids" --target-ids "$tid" >"$T/sc_ids" || fail "score --ids"
cmp -s "$T/sc_chat" "$T/sc_ids" || fail "score --chat: $(cat "$T/sc_chat") vs $(cat "$T/sc_ids")"
# eval --chat scores every question as score --chat does: with no edit (ft-l, 0 steps) the
# efficacy magnitude P(new) - P(true), P = exp(mean log-prob), equals the one from two score runs
head -1 "$SRC/data/world/cases.jsonl" > "$T/case.jsonl"
echo '{"num_steps": 0}' > "$T/zero.json"
"$XLEDIT" eval "$T/chat" --chat --data "$T/case.jsonl" --methods ft-l --edit-langs en --test-langs en \
  --hparams "$T/zero.json" --context-templates none --out "$T/evchat" --quiet || fail "eval --chat"
p=$(sed -n 's/.*"en":{"prompt":"\([^"]*\)".*/\1/p' "$T/case.jsonl")
new=$(sed -n 's/.*"en":{[^}]*"target_new":"\([^"]*\)".*/\1/p' "$T/case.jsonl")
old=$(sed -n 's/.*"en":{[^}]*"target_true":"\([^"]*\)".*/\1/p' "$T/case.jsonl")
lp() { "$XLEDIT" score "$T/chat" --chat -p "$p" --target "$1" --json |
  sed 's/.*"logprob": \([^,]*\), "per_token": \[\([^]]*\)\].*/\1 \2/' | awk '{print $1 / (NF - 1)}'; }
want=$(awk -v a="$(lp "$new")" -v b="$(lp "$old")" 'BEGIN { printf "%.9g", exp(a) - exp(b) }')
got=$(sed -n 's/.*"eff_mag":\([^,]*\),.*/\1/p' "$T/evchat/results.jsonl")
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; m = w < 0 ? -w : w; exit !(w != 0 && d <= 1e-4 * m) }' ||
  fail "eval --chat: eff_mag $got, score --chat gives $want"
grep -q '"chat_template": "mistral"' "$T/evchat/run.json" || fail "eval --chat: run.json does not record the template"
"$XLEDIT" eval "$T/chat" --data "$T/case.jsonl" --methods ft-l --edit-langs en --test-langs en \
  --hparams "$T/zero.json" --context-templates none --out "$T/evchat" --resume >/dev/null 2>"$T/err" &&
  fail "eval --resume without --chat must be refused"
grep -q "chat_template" "$T/err" || fail "resume refusal does not name chat_template: $(cat "$T/err")"
"$XLEDIT" eval "$T/chat" --chat --data "$T/case.jsonl" --methods ike --out "$T/evike" >/dev/null 2>"$T/err" &&
  fail "eval --chat with ike must be refused"
grep -q "ike with a chat template is not supported" "$T/err" || fail "ike refusal: $(cat "$T/err")"
"$XLEDIT" generate "$MINI" --chat -p x >/dev/null 2>"$T/err"; rc=$?
[ "$rc" -eq 1 ] && grep -q "tokenizer_config.json: chat_template: missing" "$T/err" ||
  fail "--chat without a template: exit $rc, $(cat "$T/err")"

if [ "$fails" -ne 0 ]; then
  echo "$fails failures" >&2
  exit 1
fi
echo "cli_model: all passed"
