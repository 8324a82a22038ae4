#!/usr/bin/env bash
# cli_merge_experiment.sh XLEDIT SRCDIR: scripts/merge_experiment.sh in miniature (a tiny base
# trained here for a few steps, 3 fine-tuning steps per language, 1 case), so that every piece
# of the pipeline runs: the per-language corpora hold exactly their language's sentences, the
# fine-tunes differ from the base, the merge is TIES with the documented settings, the summary
# has every model and agrees with the reports' CSV cells, and a second invocation redoes
# nothing and writes the same summary. The real experiment (minutes) is run by hand. Skipped
# (77) under the sanitizers.
set -u
XLEDIT="$1"
SRC="$2"
command -v jq >/dev/null || { echo "cli_merge_experiment: skipped (no jq; scripts/setup.sh installs it)"; exit 0; }
# Release only: under the sanitizers the pipeline took 280-330 s of the suite's ~1,000, and each
# command it runs (train, merge, facts-check, eval, report) is tested sanitized on its own.
if [ "${XLE_SANITIZED:-OFF}" = "ON" ]; then
  echo "cli_merge_experiment: skipped under the sanitizers (Release only)"
  exit 77
fi
T="$(mktemp -d /tmp/xle_cli_merge_exp.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
export OMP_NUM_THREADS=1

# a tiny base that speaks the world's languages a little
"$XLEDIT" world corpus --data "$SRC/data/world" --out "$T/corpus.txt" >"$T/world.log" 2>&1 || fail "world corpus"
mkdir -p "$T/tok"
"$XLEDIT" train-tokenizer --corpus "$T/corpus.txt" --vocab-size 1000 --out "$T/tok/tokenizer.json" 2>/dev/null ||
  fail "train-tokenizer"
cat >"$T/base.json" <<'EOF'
{"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn_dim": 64, "max_seq_len": 64,
 "steps": 20, "batch_tokens": 512, "lr": 0.01, "min_lr": 0.001, "warmup_steps": 5, "checkpoint_every": 0}
EOF
"$XLEDIT" train --corpus "$T/corpus.txt" --tokenizer "$T/tok/tokenizer.json" --config "$T/base.json" \
  --out "$T/base" 2>"$T/log" || fail "train base: $(cat "$T/log")"

run() {
  FACTS_EVERY=7 bash "$SRC/scripts/merge_experiment.sh" --base "$T/base" --cases 1 --ft-steps 3 --out "$T/exp" \
    --xledit "$XLEDIT" >"$T/run.out" 2>"$T/run.err"
}
run || fail "merge_experiment.sh: $(tail -5 "$T/run.err")"
E="$T/exp"

# per-language corpora: every world sentence of the language, nothing else
for l in hi ta kn; do
  want=$(grep -o "$l [0-9]*" "$T/world.log" | awk '{print $2}')
  got=$(wc -l <"$E/corpus.$l.txt")
  [ -n "$want" ] && [ "$got" -eq "$want" ] || fail "corpus.$l.txt: $got lines, the world has $want $l sentences"
done
LC_ALL=C.UTF-8 grep -qP '[A-Za-z\x{0B80}-\x{0BFF}\x{0C80}-\x{0CFF}]' "$E/corpus.hi.txt" && fail "corpus.hi.txt holds other scripts"
LC_ALL=C.UTF-8 grep -qvP '[\x{0B80}-\x{0BFF}]' "$E/corpus.ta.txt" && fail "corpus.ta.txt has a line without Tamil"

# models
for l in hi ta kn; do
  [ -f "$E/models/$l/model.safetensors" ] || { fail "no fine-tuned $l model"; continue; }
  [ "$(awk 'END {print $1}' "$E/models/$l/train_log.tsv")" = 3 ] || fail "$l: not 3 steps"
  cmp -s "$E/models/$l/model.safetensors" "$T/base/model.safetensors" && fail "$l: same weights as the base"
done
jq -e '.method == "ties" and (.density - 0.2 | fabs) < 1e-6 and .lambda == 1' "$E/models/merged/merge_info.json" >/dev/null ||
  fail "merge_info.json: $(cat "$E/models/merged/merge_info.json" 2>/dev/null)"

# summary: 5 models in every table; csv cells equal the reports' own CSV
[ "$(grep -c '^| merged |' "$E/summary.md")" -eq 9 ] || fail "summary.md: want 9 tables with a merged row"
[ "$(wc -l <"$E/summary.csv")" -eq 71 ] || fail "summary.csv: $(wc -l <"$E/summary.csv") lines, want 71"
[ "$(wc -l <"$E/recall.csv")" -eq 6 ] || fail "recall.csv: $(wc -l <"$E/recall.csv") lines, want 6"
for m in base hi merged; do
  for cell in "rome rel_acc en hi 9" "memit gen_acc kn en 12" "rome port_acc en kn 11"; do
    set -- $cell
    want=$(awk -F, -v me="$1" -v mt="$2" -v e="$3" -v t="$4" \
      '$1 == me && $2 == mt && $3 == e && $4 == t {printf "%.4f", $5}' "$E/reports/$m/report.csv")
    got=$(awk -F, -v m="$m" -v me="$1" -v mt="$2" -v c="$5" '$1 == m && $2 == me && $3 == mt {printf "%.4f", $c}' \
      "$E/summary.csv")
    [ -n "$want" ] && [ "$want" = "$got" ] || fail "$m $1 $2 $3->$4: summary $got, report $want"
  done
done
r=$(jq -r '.langs.hi.recall' "$E/facts/hi.json")
got=$(awk -F, '$1 == "hi" {print $7}' "$E/recall.csv")
awk -v a="$r" -v b="$got" 'BEGIN {exit !(a - b < 1e-4 && b - a < 1e-4)}' || fail "recall.csv hi/hi $got, facts $r"

# a second invocation redoes nothing and gives the same numbers
cp "$E/summary.csv" "$T/summary1.csv"
cp "$E/runs/merged/results.jsonl" "$T/results1.jsonl"
run || fail "second run: $(tail -5 "$T/run.err")"
cmp -s "$E/summary.csv" "$T/summary1.csv" || fail "second run: summary.csv changed"
cmp -s "$E/runs/merged/results.jsonl" "$T/results1.jsonl" || fail "second run: results changed"
[ "$(grep -c "10 units: 10 resumed, 0 run now" "$T/run.err")" -eq 5 ] ||
  fail "second run re-evaluated units: $(grep 'run now' "$T/run.err")"

# bad arguments
bash "$SRC/scripts/merge_experiment.sh" --cases 0 --xledit "$XLEDIT" >/dev/null 2>"$T/err" && fail "--cases 0 accepted"
grep -q "cases" "$T/err" || fail "--cases 0: $(cat "$T/err")"
bash "$SRC/scripts/merge_experiment.sh" --base "$T/none" --xledit "$XLEDIT" >/dev/null 2>"$T/err" && fail "missing base accepted"
grep -q "not a model folder" "$T/err" || fail "missing base: $(cat "$T/err")"

[ "$fails" -eq 0 ] && echo "cli_merge_experiment: all passed"
exit $((fails > 0))
