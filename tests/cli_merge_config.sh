#!/usr/bin/env bash
# cli_merge_config.sh XLEDIT SRCDIR: `xledit merge --config` with mergekit recipes on the tiny
# fixture models: every supported merge_method gives the same model.safetensors bytes as the
# equivalent flags (mergekit's defaults: density 1, the method's normalization; the base listed
# among the models is skipped, global parameters as per-model defaults); the JSON spelling gives
# the YAML's bytes; per-model densities and per-layer lists (gradients) equal their flags
# (--density d1,d2, a:b:c); dtype is named in one note; what xledit cannot do as mergekit would
# (slerp, slices, filtered values, lists for lambda, LoRA, a missing weight, unknown keys) is one
# error line naming the file and key, with nothing written. Also dare-linear at density 1 equals
# task arithmetic.
set -u
X="$1"
SRC="$2"
FIX="$SRC/tests/fixtures/merge/models"
T="$(mktemp -d /tmp/xle_cli_merge_config.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
same() { cmp -s "$T/$1/model.safetensors" "$T/$2/model.safetensors" || fail "$3"; }

# recipe NAME: writes stdin to $T/NAME.yml, merges it into $T/NAME
recipe() { cat >"$T/$1.yml"; "$X" merge --config "$T/$1.yml" --seed 7 --out "$T/$1" >/dev/null 2>"$T/$1.err" ||
  fail "$1: $(cat "$T/$1.err")"; }
flags() { local out="$1"; shift; "$X" merge "$@" --seed 7 --out "$T/$out" >/dev/null 2>&1 || fail "flags $out"; }

recipe ties <<EOF2
merge_method: ties
base_model: $FIX/base
models:
  - model: $FIX/base
  - model: $FIX/a
    parameters: {weight: 0.7, density: 0.4}
  - model: $FIX/b
    parameters:
      weight: 0.3
      density: 0.4
parameters:
  normalize: true
  int8_mask: true
  lambda: 0.9
dtype: float32
tokenizer_source: base
EOF2
flags ties_f --method ties --base "$FIX/base" --models "$FIX/a" "$FIX/b" --weights 0.7,0.3 --density 0.4 --lambda 0.9
same ties ties_f "ties: recipe and flags differ"
[ "$(grep -c 'note:' "$T/ties.err")" -eq 1 ] && grep -q "dtype float32" "$T/ties.err" || fail "ties: note: $(cat "$T/ties.err")"

recipe dare_ties <<EOF2
merge_method: dare_ties
base_model: $FIX/base
parameters: {density: 0.5, weight: 1.0}
models:
  - model: $FIX/a
  - model: $FIX/b
    parameters: {weight: 0.5}
EOF2
flags dare_ties_f --method dare-ties --base "$FIX/base" --models "$FIX/a" "$FIX/b" --weights 1,0.5 --density 0.5
same dare_ties dare_ties_f "dare_ties: recipe and flags differ"

recipe dare_linear <<EOF2
merge_method: dare_linear
base_model: $FIX/base
models:
  - model: $FIX/a
    parameters: {weight: 0.6, density: 0.3}
  - model: $FIX/c
    parameters: {weight: 0.4, density: 0.3}
EOF2
flags dare_linear_f --method dare-linear --base "$FIX/base" --models "$FIX/a" "$FIX/c" --weights 0.6,0.4 --density 0.3
same dare_linear dare_linear_f "dare_linear: recipe and flags differ"

# task_arithmetic: density is mergekit's 1 (ignored by the method); linear: mergekit normalizes
recipe ta <<EOF2
merge_method: task_arithmetic
base_model: $FIX/base
models:
  - {model: $FIX/a, parameters: {weight: 1.0}}
  - {model: $FIX/b, parameters: {weight: -0.5}}
parameters: {lambda: 0.5}
EOF2
flags ta_f --method task-arithmetic --base "$FIX/base" --models "$FIX/a" "$FIX/b" --weights 1,-0.5 --lambda 0.5
same ta ta_f "task_arithmetic: recipe and flags differ"
recipe linear <<EOF2
merge_method: linear
models:
  - {model: $FIX/a, parameters: {weight: 1}}
  - {model: $FIX/b, parameters: {weight: 3}}
EOF2
flags linear_f --method linear --models "$FIX/a" "$FIX/b" --weights 1,3
same linear linear_f "linear: recipe and flags differ"

# each model its own density (mergekit's per-model density): --density takes one per model
for m in ties dare_ties dare_linear; do
  recipe "dens_$m" <<EOF2
merge_method: $m
base_model: $FIX/base
models:
  - {model: $FIX/a, parameters: {weight: 0.7, density: 0.5}}
  - {model: $FIX/b, parameters: {weight: 0.3, density: 0.2}}
  - {model: $FIX/c, parameters: {weight: 0.5}}
EOF2
  flags "dens_${m}_f" --method "${m/_/-}" --base "$FIX/base" --models "$FIX/a" "$FIX/b" "$FIX/c" --weights 0.7,0.3,0.5 \
    --density 0.5,0.2,1
  same "dens_$m" "dens_${m}_f" "$m with per-model densities: recipe and flags differ"
  flags "dens_${m}_one" --method "${m/_/-}" --base "$FIX/base" --models "$FIX/a" "$FIX/b" "$FIX/c" --weights 0.7,0.3,0.5 \
    --density 0.5
  cmp -s "$T/dens_$m/model.safetensors" "$T/dens_${m}_one/model.safetensors" && fail "$m: per-model densities ignored"
done
# per-layer value lists (mergekit's gradients): a:b:c in the flags; a global list is every model's
recipe grad <<EOF2
merge_method: dare_ties
base_model: $FIX/base
parameters: {density: [0.2, 0.9]}
models:
  - {model: $FIX/a, parameters: {weight: [1, 0.25, 0]}}
  - {model: $FIX/b, parameters: {weight: 0.5, density: [0.6, 0.3, 0.45]}}
EOF2
flags grad_f --method dare-ties --base "$FIX/base" --models "$FIX/a" "$FIX/b" --weights 1:0.25:0,0.5 --density 0.2:0.9,0.6:0.3:0.45
same grad grad_f "per-layer lists: recipe and flags differ"
flags grad_one --method dare-ties --base "$FIX/base" --models "$FIX/a" "$FIX/b" --weights 1,0.5 --density 0.2,0.6
cmp -s "$T/grad/model.safetensors" "$T/grad_one/model.safetensors" && fail "per-layer lists ignored"
jq -e '.densities == [[0.2, 0.9], [0.6, 0.3, 0.45]] and .weights == [[1, 0.25, 0], 0.5]' "$T/grad/merge_info.json" \
  >/dev/null || fail "merge_info.json: $(cat "$T/grad/merge_info.json")"
# flags that do not fit: one line naming the flag, exit 2, nothing written
for bad_density in 0.5,0.2 0.5,,0.2 0.5:1.5 0.5:; do
  "$X" merge --method ties --base "$FIX/base" --models "$FIX/a" "$FIX/b" "$FIX/c" --density "$bad_density" \
    --out "$T/bad_flag" >/dev/null 2>"$T/err"
  [ $? -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "--density" "$T/err" && [ ! -e "$T/bad_flag" ] ||
    fail "--density $bad_density: $(cat "$T/err")"
done

# the JSON spelling of a recipe
printf '{"merge_method": "dare_linear", "base_model": "%s", "models": [{"model": "%s", "parameters": {"weight": 0.6, "density": 0.3}}, {"model": "%s", "parameters": {"weight": 0.4, "density": 0.3}}]}\n' \
  "$FIX/base" "$FIX/a" "$FIX/c" >"$T/dl.json"
"$X" merge --config "$T/dl.json" --seed 7 --out "$T/dl_json" >/dev/null 2>&1 || fail "JSON recipe"
same dl_json dare_linear "JSON and YAML recipes differ"

# dare-linear: density 1 drops nothing and is task arithmetic; density < 1 is not
flags dl1 --method dare-linear --base "$FIX/base" --models "$FIX/a" "$FIX/b" --weights 1,-0.5 --lambda 0.5 --density 1
same dl1 ta_f "dare-linear at density 1 differs from task arithmetic"
cmp -s "$T/dare_linear/model.safetensors" "$T/dare_ties/model.safetensors" && fail "dare-linear equals dare-ties"

# refusals: one line naming the file and key, nothing written
bad() { # bad NAME PATTERN (recipe on stdin)
  cat >"$T/$1.yml"
  "$X" merge --config "$T/$1.yml" --out "$T/$1" >"$T/out" 2>"$T/err"
  [ $? -eq 1 ] || fail "$1: not refused"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$1: want one error line: $(cat "$T/err")"
  grep -q "$1.yml: $2" "$T/err" || fail "$1: message: $(cat "$T/err")"
  [ ! -e "$T/$1" ] || fail "$1: output written"
}
bad slerp "merge_method: 'slerp'" <<EOF2
merge_method: slerp
base_model: $FIX/base
models: [{model: $FIX/a, parameters: {weight: 1}}]
EOF2
bad slices "slices" <<EOF2
merge_method: linear
slices: [{sources: [{model: $FIX/a, layer_range: [0, 2]}]}]
EOF2
bad lambda_list "parameters.lambda: per-layer" <<EOF2
merge_method: ties
base_model: $FIX/base
models: [{model: $FIX/a, parameters: {weight: 1, density: 0.5}}]
parameters: {lambda: [0.5, 1]}
EOF2
bad filtered "models\[0\].parameters.weight\[0\]: filtered" <<EOF2
merge_method: ties
base_model: $FIX/base
models: [{model: $FIX/a, parameters: {weight: [{filter: mlp, value: 0.5}, {value: 1}]}}]
EOF2
bad density_range "models\[1\].parameters.density\[1\]: 1.5 is not in" <<EOF2
merge_method: dare_ties
base_model: $FIX/base
models:
  - {model: $FIX/a, parameters: {weight: 1, density: 0.5}}
  - {model: $FIX/b, parameters: {weight: 1, density: [0.3, 1.5]}}
EOF2
bad noweight "models\[0\].parameters.weight: required" <<EOF2
merge_method: ties
base_model: $FIX/base
models: [{model: $FIX/a}]
EOF2
bad lora "models\[0\].model" <<EOF2
merge_method: linear
models: [{model: "$FIX/a+some/lora", parameters: {weight: 1}}]
EOF2
bad unknown "merge_options" <<EOF2
merge_method: linear
models: [{model: $FIX/a, parameters: {weight: 1}}]
merge_options: {cuda: true}
EOF2
bad param "parameters.epsilon" <<EOF2
merge_method: ties
base_model: $FIX/base
models: [{model: $FIX/a, parameters: {weight: 1}}]
parameters: {epsilon: 0.1}
EOF2
bad syntax "line" <<EOF2
merge_method: [ties
EOF2
"$X" merge --config "$T/ties.yml" --method ties --out "$T/mixed" >/dev/null 2>"$T/err"
[ $? -eq 2 ] && grep -q "cannot be combined with --config" "$T/err" || fail "--config with --method: $(cat "$T/err")"

[ "$fails" -eq 0 ] || exit 1
echo "cli_merge_config: ok"
