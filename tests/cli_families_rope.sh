#!/usr/bin/env bash
# cli_families_rope.sh XLEDIT SOURCE_DIR: GPT-J, Gemma and Gemma-2 end to end through the CLI
# on the tiny fixtures of tests/fixtures/families (docs/families.md 8): `info`, `stats`, `eval`
# with ROME, MEMIT, FT-L and IKE (every unit ok), and `edit --method rome` writing a folder that
# loads again as the same architecture.
set -u
X=$1
SRC=$2
export OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/xle_cli_families_rope.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

cat > "$T/cases.jsonl" <<'CASES'
{"id":"c1","source":"test","langs":{"en":{"prompt":"the cat sat on the","subject":"the cat","target_new":"mat","target_true":"sofa","rephrases":["on the mat the cat"],"locality":[{"prompt":"it is on the","answer":"cat"}],"portability":[]}}}
{"id":"c2","source":"test","langs":{"en":{"prompt":"the sun is hot and the sky is","subject":"the sky","target_new":"green","target_true":"blue","rephrases":[],"locality":[],"portability":[]}}}
CASES
# varied text (words drawn with a fixed seed), so that the keys of GPT-J's 128-wide MLP span it
WORDS=(the cat sat on mat sun is hot sky blue it sofa "isn't" cats there a an sea rest ice
       heat eats tea note stone 42 7 "," . "?" zebra quiz jump fox box)
RANDOM=17
for i in $(seq 1 80); do
    line=""
    for j in $(seq 1 24); do line="$line ${WORDS[RANDOM % ${#WORDS[@]}]}"; done
    echo "$line"
done > "$T/corpus.txt"
# layer 1: GPT-J's layer-0 MLP reads the token embeddings alone (its block is parallel), so
# its keys span only as many directions as the corpus has distinct tokens
echo '{"v_num_grad_steps": 8, "num_steps": 8, "layers": [1]}' > "$T/fast.json"

for f in gptj gemma gemma2; do
    M="$SRC/tests/fixtures/families/$f/hf_f32"
    "$X" info "$M" | grep -q "^architecture   $f\$" || fail "$f: info: $("$X" info "$M" 2>&1)"
    "$X" stats "$M" --layers 1 --corpus "$T/corpus.txt" --out "$T/stats-$f" > /dev/null 2> "$T/err" ||
        fail "$f: stats: $(cat "$T/err")"
    "$X" eval "$M" --data "$T/cases.jsonl" --out "$T/run-$f" --methods rome,memit,ft-l,ike \
        --stats "$T/stats-$f" --hparams "$T/fast.json" --context-templates none > /dev/null 2> "$T/err" ||
        fail "$f: eval: $(cat "$T/err")"
    [ "$(grep -c '"status":"ok"' "$T/run-$f/results.jsonl")" -eq 8 ] ||
        fail "$f: expected 8 ok units: $(cut -c1-200 "$T/run-$f/results.jsonl")"
    "$X" edit "$M" --method rome --prompt "the cat sat on the" --subject "the cat" --target " mat" \
        --hparams "$T/fast.json" --context-templates none --stats "$T/stats-$f" --out "$T/edited-$f" \
        --quiet > /dev/null 2> "$T/err" || fail "$f: edit: $(cat "$T/err")"
    "$X" info "$T/edited-$f" | grep -q "^architecture   $f\$" || fail "$f: the edited folder does not load"
done
echo "cli_families_rope: ok"
