#!/usr/bin/env bash
# cli_families_gguf.sh XLEDIT SOURCE_DIR: the GGUF twins of the GPT-2, Gemma, Gemma-2 and BLOOM fixtures
# (tests/fixtures/families/*/gguf_*.gguf, docs/families.md 9) through the CLI: `info` names the
# architecture, `stats` and `edit --method rome --out x.gguf` run on F32 and Q8_0 sources, and
# the edited file loads again as the same architecture. (What a saved edit holds is checked
# tensor by tensor in test_families_gguf.)
set -u
X=$1
SRC=$2
export OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/xle_cli_families_gguf.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

WORDS=(the cat sat on mat sun is hot sky blue it sofa "isn't" cats there a an sea rest ice
       heat eats tea note stone 42 7 "," . "?" zebra quiz jump fox box)
RANDOM=17
for i in $(seq 1 40); do
    line=""
    for j in $(seq 1 24); do line="$line ${WORDS[RANDOM % ${#WORDS[@]}]}"; done
    echo "$line"
done > "$T/corpus.txt"
KINDS="f32 q8_0"
[ "${XLE_SANITIZED:-OFF}" = "ON" ] && KINDS=q8_0 # sanitizers: the quantized twins (fused q/k/v row views)
echo '{"v_num_grad_steps": 4, "num_steps": 4, "layers": [1]}' > "$T/fast.json"

for f in gpt2 gemma gemma2 bloom; do
    for k in $KINDS; do
        M="$SRC/tests/fixtures/families/$f/gguf_$k.gguf"
        "$X" info "$M" | grep -q "^architecture   $f\$" || fail "$f $k: info: $("$X" info "$M" 2>&1)"
        "$X" stats "$M" --layers 1 --corpus "$T/corpus.txt" --out "$T/stats-$f-$k" > /dev/null 2> "$T/err" ||
            fail "$f $k: stats: $(cat "$T/err")"
        "$X" edit "$M" --method rome --prompt "the cat sat on the" --subject "the cat" --target " mat" \
            --hparams "$T/fast.json" --context-templates none --stats "$T/stats-$f-$k" \
            --out "$T/edited-$f-$k.gguf" --quiet > /dev/null 2> "$T/err" || fail "$f $k: edit: $(cat "$T/err")"
        "$X" info "$T/edited-$f-$k.gguf" | grep -q "^architecture   $f\$" ||
            fail "$f $k: the edited file does not load"
    done
done
echo ok
