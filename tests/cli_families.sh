#!/usr/bin/env bash
# cli_families.sh XLEDIT SOURCE_DIR: the tools end to end on the families beyond Llama
# (docs/families.md), on the tiny random GPT-2 of tests/fixtures/families/gpt2 (HF folder with a
# byte-level BPE tokenizer.json): key statistics, `xledit eval` with ROME, MEMIT and FT-L
# (every unit runs, and ROME's edit of c1 makes the target more likely than the true answer,
# which it is not before), `xledit edit` writing an HF folder that keeps GPT-2's
# layout and reloads; `xledit merge` refuses GPT-2 models in one line.
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

# merge: GPT-2 models are refused for now (their Conv1D and fused tensors need the layout
# conversion the streaming merge writer does not do yet: docs/families.md): one line, exit 1, no
# output folder
"$X" merge --models "$T/edited" "$M" --base "$M" --method ties --out "$T/merged" > /dev/null 2> "$T/err"
[ $? -eq 1 ] || fail "merge of GPT-2 models: expected exit 1"
[ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "GPT-2" "$T/err" || fail "merge refusal: $(cat "$T/err")"
[ ! -e "$T/merged" ] || fail "a refused merge left an output"
echo "cli_families: ok"
