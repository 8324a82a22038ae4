#!/usr/bin/env bash
# cli_errors.sh XLEDIT SRCDIR: corrupt and inconsistent model files given to the model commands
# (info, logits, generate, score, convert) end with exit code 1 (not a signal), nothing on
# stdout, and exactly one line on stderr, "xledit <cmd>: ...", that names the bad file and the
# field; convert leaves no output behind. Every corrupt file is made here from a good fixture.
# (tests/test_corrupt.c covers many more cases through the library, under ASan/UBSan.)
set -u
XLEDIT="$1"
SRC="$2"
SHARED="${XLE_SHARED_DIR:-$SRC/../shared}"
STORIES="$SHARED/data/external/stories260k"
FIX="$SRC/tests/fixtures/models"
T="$(mktemp -d /tmp/xle_cli_errors.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# expect_model_error MODEL FILE_PATTERN FIELD_PATTERN: every model command fails cleanly
expect_model_error() {
  local model="$1" file="$2" field="$3"
  for cmd in info logits generate score convert; do
    case "$cmd" in
      info) args=() ;;
      logits | generate) args=(--ids 1,2) ;;
      score) args=(--ids 1 --target-ids 2) ;;
      convert) args=(--out "$T/converted") ;;
    esac
    "$XLEDIT" "$cmd" "$model" "${args[@]}" >"$T/out" 2>"$T/err"
    local rc=$?
    [ "$rc" -eq 1 ] || fail "$cmd $model: exit $rc (want 1): $(head -c 300 "$T/err")"
    [ -s "$T/out" ] && fail "$cmd $model: wrote to stdout"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$cmd $model: want one error line, got: $(cat "$T/err")"
    grep -q "^xledit $cmd: .*$file" "$T/err" || fail "$cmd $model: error does not name '$file': $(cat "$T/err")"
    grep -q -- "$field" "$T/err" || fail "$cmd $model: error does not name '$field': $(cat "$T/err")"
    [ -e "$T/converted" ] && { fail "$cmd $model: output left behind"; rm -rf "$T/converted"; }
    ls "$T" | grep -q 'tmp-' && fail "$cmd $model: temporary output left behind"
  done
}

GGUF="$FIX/llama_gqa/llama_gqa_f32.gguf"
size=$(stat -c %s "$GGUF")

# GGUF truncated in the header, the metadata, the tensor infos and the tensor data
head -c 20 "$GGUF" >"$T/t20.gguf"
expect_model_error "$T/t20.gguf" "t20.gguf" "n_kv"
head -c 300 "$GGUF" >"$T/t300.gguf"
expect_model_error "$T/t300.gguf" "t300.gguf" "n_tensors: 21 does not fit"
head -c 1200 "$GGUF" >"$T/t1200.gguf"
expect_model_error "$T/t1200.gguf" "t1200.gguf" "truncated\|past the end"
head -c $((size - 100)) "$GGUF" >"$T/tdata.gguf"
expect_model_error "$T/tdata.gguf" "tdata.gguf" "output.weight: offset"
# a hyperparameter that contradicts the tensors (embedding_length 32 -> 64: u32 at its value)
cp "$GGUF" "$T/dim.gguf"
off=$(grep -abo 'llama.embedding_length' "$T/dim.gguf" | head -1 | cut -d: -f1)
printf '\x40' | dd of="$T/dim.gguf" bs=1 seek=$((off + 22 + 4)) conv=notrunc status=none
expect_model_error "$T/dim.gguf" "dim.gguf" "token_embd.weight: shape"
# an unsupported tensor type (F32 -> I32, same size)
cp "$GGUF" "$T/type.gguf"
off=$(grep -abo 'blk.0.attn_q.weight' "$T/type.gguf" | head -1 | cut -d: -f1)
printf '\x1a' | dd of="$T/type.gguf" bs=1 seek=$((off + 19 + 4 + 16)) conv=notrunc status=none
expect_model_error "$T/type.gguf" "type.gguf" "blk.0.attn_q.weight: type I32"
# an empty file and a file that is no model at all
: >"$T/empty.gguf"
expect_model_error "$T/empty.gguf" "empty.gguf" "empty"
echo "hello" >"$T/hello.bin"
expect_model_error "$T/hello.bin" "hello.bin" "header"
expect_model_error "$T/absent.gguf" "absent.gguf" "no such file"

# HF folders
hf() { rm -rf "$T/$1"; cp -r "$FIX/$2" "$T/$1"; }
hf cfg64 llama_gqa/hf_f32
sed -i 's/"hidden_size": 32/"hidden_size": 64/' "$T/cfg64/config.json"
expect_model_error "$T/cfg64" "model.safetensors" "model.embed_tokens.weight: shape \[300, 32\] does not match config.json"
hf badjson llama_gqa/hf_f32
head -c 100 "$FIX/llama_gqa/hf_f32/config.json" >"$T/badjson/config.json"
expect_model_error "$T/badjson" "config.json" "invalid JSON"
hf nokey llama_gqa/hf_f32
sed -i '/"num_hidden_layers"/d' "$T/nokey/config.json"
expect_model_error "$T/nokey" "config.json" "num_hidden_layers: missing"
hf heads llama_gqa/hf_f32
sed -i 's/"num_attention_heads": 4/"num_attention_heads": 3/' "$T/heads/config.json"
expect_model_error "$T/heads" "config.json" "num_key_value_heads: 2 does not divide num_attention_heads 3"
hf neg llama_gqa/hf_f32
sed -i 's/"intermediate_size": 64/"intermediate_size": -64/' "$T/neg/config.json"
expect_model_error "$T/neg" "config.json" "intermediate_size"
hf nan llama_gqa/hf_f32
sed -i 's/"rms_norm_eps": 1e-05/"rms_norm_eps": NaN/' "$T/nan/config.json"
expect_model_error "$T/nan" "config.json" "invalid JSON"
hf zero llama_gqa/hf_f32
sed -i 's/"rms_norm_eps": 1e-05/"rms_norm_eps": 0/' "$T/zero/config.json"
expect_model_error "$T/zero" "config.json" "rms_norm_eps"
hf trunc llama_gqa/hf_f32
head -c 40000 "$FIX/llama_gqa/hf_f32/model.safetensors" >"$T/trunc/model.safetensors"
expect_model_error "$T/trunc" "model.safetensors" "data_offsets"
hf shard llama_gqa/hf_bf16_sharded
rm "$T/shard/model-00002-of-00002.safetensors"
expect_model_error "$T/shard" "model.safetensors.index.json" "shard model-00002-of-00002.safetensors is missing"
hf noweights llama_gqa/hf_f32
rm "$T/noweights/model.safetensors"
expect_model_error "$T/noweights" "noweights" "model.safetensors: missing"
mkdir -p "$T/notamodel"
expect_model_error "$T/notamodel" "config.json" "cannot open"

# llama2.c
head -c 1000000 "$STORIES/stories260K.bin" >"$T/short.bin"
expect_model_error "$T/short.bin" "short.bin" "size: 1000000 bytes"
cp "$STORIES/stories260K.bin" "$T/heads.bin"
printf '\x07' | dd of="$T/heads.bin" bs=1 seek=12 conv=notrunc status=none
expect_model_error "$T/heads.bin" "heads.bin" "n_heads: 7 does not divide dim 64"

# the source files of a refused run are untouched (spot check: the GGUF fixture)
[ "$(stat -c %s "$GGUF")" -eq "$size" ] || fail "fixture changed"

if [ "$fails" -ne 0 ]; then
  echo "$fails failures" >&2
  exit 1
fi
echo "cli_errors: all passed"
