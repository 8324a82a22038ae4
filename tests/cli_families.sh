#!/usr/bin/env bash
# cli_families.sh XLEDIT SOURCE_DIR: the tools end to end on the families beyond Llama
# (docs/families.md), on the tiny random GPT-2 of tests/fixtures/families/gpt2 (HF folder with a
# byte-level BPE tokenizer.json): key statistics, `xledit eval` with ROME, MEMIT and FT-L
# (every unit runs, and ROME's edit of c1 makes the target more likely than the true answer,
# which it is not before), `xledit edit` writing an HF folder that keeps GPT-2's
# layout and reloads; `xledit merge` of GPT-2 models (TIES of the edit onto the base) writes a
# GPT-2 folder that loads, and refuses another family in one line; the same statistics, eval
# and edit on the tiny BLOOM of tests/fixtures/families/bloom.
set -u
X=$1
SRC=$2
M="$SRC/tests/fixtures/families/gpt2/hf_f32"
export OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/xle_cli_families.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

cat > "$T/cases.jsonl" <<'EOF'
{"id":"c1","source":"test","langs":{"en":{"prompt":"the cat sat on the","subject":"the cat","target_new":"mat","target_true":"hat","rephrases":["a cat is on the"],"locality":[{"prompt":"the rat is in","answer":"there"}],"portability":[]}}}
{"id":"c2","source":"test","langs":{"en":{"prompt":"42 cats are at the","subject":"42 cats","target_new":"sea","target_true":"inn","rephrases":[],"locality":[],"portability":[]}}}
EOF
for i in $(seq 1 30); do
    echo "the cat is on the mat, isn't it? $i cats sat there on the sea near the inn"
    echo
done > "$T/corpus.txt"
# The model has 2 layers: GPT-2 XL's ROME layer 17 of 48 scales to its last layer, where an edit
# at the subject cannot reach the last token; layer 0 can (through layer 1's attention).
echo '{"v_num_grad_steps": 20, "num_steps": 10, "layers": [0], "v_weight_decay": 0.01}' > "$T/hp.json"

"$X" stats "$M" --layers 0 --corpus "$T/corpus.txt" --out "$T/stats" > /dev/null 2> "$T/err" ||
    fail "stats: $(cat "$T/err")"
"$X" eval "$M" --data "$T/cases.jsonl" --methods rome,memit,ft-l --edit-langs en --stats "$T/stats" \
    --hparams "$T/hp.json" --context-templates none --out "$T/eval" > "$T/out" 2> "$T/err" ||
    fail "eval: $(cat "$T/err")"
grep -q "6 units: 0 resumed, 6 run now; 0 skipped (unusable edit half), 0 failed" "$T/out" ||
    fail "eval summary: $(cat "$T/out")"
[ "$(grep -c '"status":"ok"' "$T/eval/results.jsonl")" -eq 6 ] || fail "not every unit ok"
grep '"case":"c1"' "$T/eval/pre.jsonl" | grep -q '"eff_succ":0.0' || fail "c1 already holds before the edit"
grep '"case":"c1"' "$T/eval/results.jsonl" | grep '"method":"rome"' | grep -q '"eff_succ":1.0' ||
    fail "ROME did not make c1's target more likely than the true answer"

# xledit edit: an HF folder in GPT-2's layout (Conv1D c_proj [d_ff, d], fused c_attn, no lm_head)
"$X" edit "$M" --method rome --prompt "the cat sat on the" --subject "the cat" --target mat \
    --hparams "$T/hp.json" --context-templates none --out "$T/edited" --quiet > /dev/null 2> "$T/err" ||
    fail "edit: $(cat "$T/err")"
"$X" info "$T/edited" > "$T/info" 2> "$T/err" || fail "info of the edited model: $(cat "$T/err")"
grep -qi "gpt2\|gpt-2" "$T/info" || fail "info does not name the family: $(cat "$T/info")"
cmp -s "$M/config.json" "$T/edited/config.json" || fail "config.json changed"

# merge: GPT-2 models are merged by name in their stored layout (docs/merging.md): TIES of the
# edited model onto the base writes a GPT-2 folder that loads; another family is one line, exit 1,
# no output folder
"$X" merge --models "$T/edited" "$M" --base "$M" --method ties --density 0.5 --out "$T/merged" > /dev/null \
    2> "$T/err" || fail "merge of GPT-2 models: $(cat "$T/err")"
"$X" info "$T/merged" > "$T/info" 2> "$T/err" && grep -qi "gpt2\|gpt-2" "$T/info" ||
    fail "info of the merged model: $(cat "$T/err" "$T/info")"
cmp -s "$M/config.json" "$T/merged/config.json" || fail "merge: config.json changed"
"$X" merge --models "$SRC/tests/fixtures/families/gemma/hf_f32" --base "$M" --method ties --out "$T/mixed" \
    > /dev/null 2> "$T/err"
[ $? -eq 1 ] || fail "merge of GPT-2 and Gemma: expected exit 1"
[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "architecture: Gemma does not match" "$T/err" ||
    fail "merge refusal: $(cat "$T/err")"
[ ! -e "$T/mixed" ] || fail "a refused merge left an output"
# BLOOM (tests/fixtures/families/bloom: ALiBi, embedding LayerNorm, per-head fused
# query_key_value, BLOOM's Split pre-tokenizer): the same statistics, eval and edit
B="$SRC/tests/fixtures/families/bloom/hf_f32"
# c1's subject is its whole prompt here: in this random BLOOM, layer 1's attention carries too
# little from "cat" to the last token for a layer-0 edit at "cat" to move the prediction
# (ROME's v* loss stays near 10 after 20 steps); at the last token it does
sed 's/"subject":"the cat"/"subject":"the cat sat on the"/' "$T/cases.jsonl" > "$T/bcases.jsonl"
"$X" stats "$B" --layers 0 --corpus "$T/corpus.txt" --out "$T/bstats" > /dev/null 2> "$T/err" ||
    fail "bloom stats: $(cat "$T/err")"
"$X" eval "$B" --data "$T/bcases.jsonl" --methods rome,memit,ft-l --edit-langs en --stats "$T/bstats" \
    --hparams "$T/hp.json" --context-templates none --out "$T/beval" > "$T/out" 2> "$T/err" ||
    fail "bloom eval: $(cat "$T/err")"
grep -q "6 units: 0 resumed, 6 run now; 0 skipped (unusable edit half), 0 failed" "$T/out" ||
    fail "bloom eval summary: $(cat "$T/out")"
[ "$(grep -c '"status":"ok"' "$T/beval/results.jsonl")" -eq 6 ] || fail "bloom: not every unit ok"
grep '"case":"c1"' "$T/beval/pre.jsonl" | grep -q '"eff_succ":0.0' || fail "bloom: c1 already holds before the edit"
grep '"case":"c1"' "$T/beval/results.jsonl" | grep '"method":"rome"' | grep -q '"eff_succ":1.0' ||
    fail "bloom: ROME did not make c1's target more likely than the true answer"
"$X" edit "$B" --method rome --prompt "the cat sat on the" --subject "the cat" --target mat \
    --hparams "$T/hp.json" --context-templates none --out "$T/bedited" --quiet > /dev/null 2> "$T/err" ||
    fail "bloom edit: $(cat "$T/err")"
"$X" info "$T/bedited" > "$T/info" 2> "$T/err" || fail "info of the edited BLOOM: $(cat "$T/err")"
grep -qi "bloom" "$T/info" || fail "info does not name BLOOM: $(cat "$T/info")"
cmp -s "$B/config.json" "$T/bedited/config.json" || fail "bloom: config.json changed"
echo "cli_families: ok"
