#!/usr/bin/env bash
# merge_experiment.sh: the study's merge experiment (Banerjee et al. 2024, TIES-merged
# language-specific models) replayed on xledit's built-in model, end to end:
#
#   1. world corpus -> Hindi, Tamil and Kannada text (lines by script)
#   2. three fine-tunes of the base (xledit train --init), one per language
#   3. TIES merge of the three (density 0.2, lambda 1.0)
#   4. fact recall per language of the five models (xledit facts-check)
#   5. MEMIT key statistics per model (xledit stats, 100,000 tokens of the world corpus)
#   6. ELFI/ELFO evaluation with ROME and MEMIT on the first N cases of data/world/cases.jsonl,
#      edited in en, hi, ta, kn and all at once, tested in all eight languages (xledit eval)
#   7. a report per model (xledit report) and one summary table (summary.md, summary.csv)
#
# usage: scripts/merge_experiment.sh [--cases N] [--out DIR] [--base MODEL] [--xledit BIN]
#                                    [--ft-steps N]
#   --cases N      evaluation cases (default 10)
#   --out DIR      where everything goes (default out/merge-experiment)
#   --base MODEL   the model to specialise (default models/xledit-mini)
#   --xledit BIN   the xledit binary (default build/xledit)
#   --ft-steps N   fine-tuning steps (default: scripts/merge-experiment-finetune.json's)
#
# Every step is seeded (world corpus seed 1, fine-tuning seed 1, eval --seed 1; TIES and
# greedy decoding are deterministic), so a rerun gives the same numbers. A stopped run
# continues when started again with the same arguments: finished steps are skipped, a
# fine-tune resumes from its checkpoint, stats and eval resume from where they stopped.
# One thread per process (OMP_NUM_THREADS=1): on a busy 2-core machine more threads are
# slower (docs/training.md); set THREADS to change it. Results: docs/merging.md, "The merge
# experiment".
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
XLEDIT="$ROOT/build/xledit"
OUT="out/merge-experiment"
BASE="$ROOT/models/xledit-mini"
CASES=10
FT_STEPS=""
usage() { sed -n '/^# usage:/,/^#   --ft-steps/p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) CASES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --base) BASE="$2"; shift 2 ;;
    --xledit) XLEDIT="$2"; shift 2 ;;
    --ft-steps) FT_STEPS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "merge_experiment: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
case "$CASES" in ''|*[!0-9]*|0) echo "merge_experiment: --cases: expected a positive count" >&2; exit 2 ;; esac
case "$FT_STEPS" in *[!0-9]*) echo "merge_experiment: --ft-steps: expected a count" >&2; exit 2 ;; esac
[ -x "$XLEDIT" ] || { echo "merge_experiment: no xledit binary at $XLEDIT (build first, or --xledit)" >&2; exit 2; }
[ -f "$BASE/config.json" ] || { echo "merge_experiment: $BASE: not a model folder (--base)" >&2; exit 2; }
command -v jq >/dev/null || { echo "merge_experiment: needs jq (scripts/setup.sh installs it)" >&2; exit 2; }

export OMP_NUM_THREADS="${THREADS:-1}" OPENBLAS_NUM_THREADS=1 LC_ALL=C.UTF-8
DATA="$ROOT/data/world"
FT_CONFIG="$ROOT/scripts/merge-experiment-finetune.json"
LANGS=(hi ta kn)
MODELS=(base hi ta kn merged)
EDIT_LANGS="en,hi,ta,kn,all"
TEST_LANGS="en,de,fr,it,es,hi,ta,kn"
mkdir -p "$OUT"/{models,facts,stats,runs,reports}
OUT="$(cd "$OUT" && pwd)"
TIMES="$OUT/timings.tsv"
[ -f "$TIMES" ] || printf 'step\tseconds\n' >"$TIMES"
T_ALL=$(date +%s)

# phase NAME CMD...: runs CMD, appends its wall time to timings.tsv
phase() {
  local name="$1" t0
  shift
  echo "== $name" >&2
  t0=$(date +%s)
  "$@"
  printf '%s\t%d\n' "$name" $(( $(date +%s) - t0 )) >>"$TIMES"
}
model_dir() { if [ "$1" = base ]; then echo "$BASE"; else echo "$OUT/models/$1"; fi; }

# ---- 1. corpus: the world's text, and each language's lines (by script; the name lines that
# list an entity in every language are left out, as they hold Latin letters)
corpus() {
  [ -f "$OUT/corpus.txt" ] || "$XLEDIT" world corpus --data "$DATA" --out "$OUT/corpus.txt"
  [ -f "$OUT/facts.jsonl" ] || {
    "$XLEDIT" world facts --data "$DATA" --out "$OUT/facts-all.jsonl"
    # one prompt per fact and language (training template 0): 1,218 facts x 8 languages
    # FACTS_EVERY=N keeps every Nth of them (the test's miniature run; default all); the lines
    # cycle through the 8 languages, so N must be coprime with 8 for every language to keep some
    jq -c 'select(.template == 0)' "$OUT/facts-all.jsonl" | awk -v n="${FACTS_EVERY:-1}" '(NR - 1) % n == 0' \
      >"$OUT/facts.jsonl.tmp"
    mv "$OUT/facts.jsonl.tmp" "$OUT/facts.jsonl"
  }
  local -A range=([hi]='\x{0900}-\x{097F}' [ta]='\x{0B80}-\x{0BFF}' [kn]='\x{0C80}-\x{0CFF}')
  for l in "${LANGS[@]}"; do
    [ -f "$OUT/corpus.$l.txt" ] && continue
    grep -P "[${range[$l]}]" "$OUT/corpus.txt" | grep -Pv '[A-Za-z]' >"$OUT/corpus.$l.txt.tmp"
    mv "$OUT/corpus.$l.txt.tmp" "$OUT/corpus.$l.txt"
  done
  wc -l "$OUT"/corpus.{hi,ta,kn}.txt >&2
}

# ---- 2. fine-tunes
finetune() {
  local l="$1" dir="$OUT/models/$1" extra=()
  [ -f "$dir/model.safetensors" ] && { echo "   $l: done" >&2; return; }
  [ -f "$dir/checkpoint/state.ckpt" ] && extra+=(--resume)
  [ -n "$FT_STEPS" ] && extra+=(--steps "$FT_STEPS")
  "$XLEDIT" train --init "$BASE" --corpus "$OUT/corpus.$l.txt" --config "$FT_CONFIG" --out "$dir" "${extra[@]}"
}

# ---- 3. TIES merge (merge writes to a temporary name and renames at the end)
merge() {
  [ -f "$OUT/models/merged/config.json" ] && { echo "   merged: done" >&2; return; }
  "$XLEDIT" merge --method ties --base "$BASE" --models "$OUT/models/hi" "$OUT/models/ta" "$OUT/models/kn" \
    --density 0.2 --lambda 1.0 --out "$OUT/models/merged"
}

# ---- 4. fact recall
facts() {
  local m="$1" f="$OUT/facts/$1.json"
  [ -f "$f" ] && return
  "$XLEDIT" facts-check "$(model_dir "$m")" --facts "$OUT/facts.jsonl" --json >"$f.tmp"
  mv "$f.tmp" "$f"
}

# ---- 5. key statistics at the layers that need them: MEMIT's, and ROME's when it whitens its
# key with C⁻¹ (mom2_adjustment). Without the base model's edit-hparams/ (xle_edit_hparams_default):
# EasyEdit's MEMIT layers 4-8 of 32 scaled to the depth, rounded half away from zero; ROME's
# default needs none.
stats_layers() {
  local n lo hi
  # the base model's own overrides (models/xledit-mini/edit-hparams: both at layer 0)
  if [ -f "$BASE/edit-hparams/memit.json" ]; then
    local files=("$BASE/edit-hparams/memit.json")
    [ -f "$BASE/edit-hparams/rome.json" ] && files+=("$BASE/edit-hparams/rome.json")
    jq -rs '[.[0].layers[], (.[1:][] | select(.mom2_adjustment == true) | .layers[])] | unique
            | map(tostring) | join(",")' "${files[@]}"
    return
  fi
  n=$(jq .num_hidden_layers "$(model_dir "$1")/config.json")
  lo=$(( (4 * n + 16) / 32 )); hi=$(( (8 * n + 16) / 32 ))
  [ "$hi" -ge "$n" ] && hi=$((n - 1))
  [ "$lo" -ge "$n" ] && lo=$((n - 1))
  if [ "$lo" = "$hi" ]; then echo "$lo"; else echo "$lo-$hi"; fi
}
stats() {
  "$XLEDIT" stats "$(model_dir "$1")" --layers "$(stats_layers "$1")" --corpus "$OUT/corpus.txt" \
    --max-tokens 100000 --out "$OUT/stats/$1" >/dev/null
}

# ---- 6. evaluation (every model is edited at the layers the base model's folder names in
# edit-hparams/, when it has them: the fine-tunes and the merge share its architecture)
HPARAMS=()
for meth in rome memit; do
  [ -f "$BASE/edit-hparams/$meth.json" ] && HPARAMS+=(--hparams "$meth=$BASE/edit-hparams/$meth.json")
done
# (always --resume: it starts a new run or continues a stopped one)
evaluate() {
  "$XLEDIT" eval "$(model_dir "$1")" --data "$DATA/cases.jsonl" --out "$OUT/runs/$1" --methods rome,memit \
    --edit-langs "$EDIT_LANGS" --test-langs "$TEST_LANGS" --cases "$CASES" --stats "$OUT/stats/$1" \
    --seed 1 --resume "${HPARAMS[@]}" >&2
}

# ---- 7. reports and the summary
report() { "$XLEDIT" report "$OUT/runs/$1" --format all --out "$OUT/reports/$1"; }

# The numbers of one (model, method, metric) from a report.json, as a JSON array: ELFI, ELFO,
# ΔELFI, ΔELFO (each pooled over units minus the unedited model's value in the same test
# language; null for locality, which has no pre-edit value), all, the cells en->hi, en->ta,
# en->kn, hi->en, ta->en, kn->en, and the pre-edit values in en, hi, ta, kn.
SUMMARY_JQ='
. as $r
| ($r.edit_langs | index("en")) as $een | ($r.test_langs | index("en")) as $ten
| ($r.methods[] | select(.method == $meth) | .metrics[$metric]) as $x
| def delta($same): [range(0; $r.edit_langs | length) as $e | range(0; $r.test_langs | length) as $t
      | select($r.edit_langs[$e] != "all" and (($r.edit_langs[$e] == $r.test_langs[$t]) == $same))
      | select($x.mean[$e][$t] != null and $x.pre[$t] != null)
      | {n: $x.n[$e][$t], d: ($x.mean[$e][$t] - $x.pre[$t])}]
    | if length == 0 then null else (map(.n * .d) | add) / (map(.n) | add) end;
  [$x.elfi, $x.elfo, delta(true), delta(false), $x.all]
  + (["hi", "ta", "kn"] | map(. as $l | $x.mean[$een][$r.test_langs | index($l)]))
  + (["hi", "ta", "kn"] | map(. as $l | $x.mean[$r.edit_langs | index($l)][$ten]))
  + (["en", "hi", "ta", "kn"] | map(. as $l | $x.pre[$r.test_langs | index($l)]))'

# summary.md (tables), summary.csv (the same numbers, unrounded) and recall.csv
summary() {
  local md="$OUT/summary.md" csv="$OUT/summary.csv" recall="$OUT/recall.csv"
  {
    echo "# Merge experiment: summary"
    echo
    echo "Base: \`$BASE\`; cases: $CASES (the first of data/world/cases.jsonl); edit languages"
    echo "$EDIT_LANGS; test languages $TEST_LANGS. Values x100. Δ: minus the unedited model's"
    echo "value in the same test language (locality has none)."
    echo
    echo "## Fact recall (greedy, training template 0, 1,218 facts per language)"
    echo
    echo "| model | en | de | fr | it | es | hi | ta | kn | all |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    for m in "${MODELS[@]}"; do
      jq -r --arg m "$m" '"| \($m) | " + ([.langs.en, .langs.de, .langs.fr, .langs.it, .langs.es, .langs.hi,
          .langs.ta, .langs.kn, .] | map(.recall * 1000 | round / 10 | tostring) | join(" | ")) + " |"' \
        "$OUT/facts/$m.json"
    done
    for meth in rome memit; do
      for metric in rel_acc gen_acc loc_acc port_acc; do
        echo
        echo "## $meth $metric"
        echo
        echo "| model | ELFI | ELFO | ΔELFI | ΔELFO | all | en→hi | en→ta | en→kn | hi→en | ta→en | kn→en | pre en | pre hi | pre ta | pre kn |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        for m in "${MODELS[@]}"; do
          jq -r --arg meth "$meth" --arg metric "$metric" "$SUMMARY_JQ"' | map(if . == null then "-"
              else (. * 1000 | round / 10 | tostring) end) | "| '"$m"' | " + join(" | ") + " |"' \
            "$OUT/reports/$m/report.json"
        done
      done
    done
  } >"$md.tmp"
  {
    echo "model,method,metric,elfi,elfo,delta_elfi,delta_elfo,all,en_hi,en_ta,en_kn,hi_en,ta_en,kn_en,pre_en,pre_hi,pre_ta,pre_kn"
    for m in "${MODELS[@]}"; do
      for meth in rome memit; do
        for metric in rel_acc gen_acc loc_acc port_acc eff_succ para_succ nbhd_succ; do
          jq -r --arg meth "$meth" --arg metric "$metric" "$SUMMARY_JQ"' | map(if . == null then ""
              else (. * 10000 | round / 10000 | tostring) end) | ["'"$m"'", $meth, $metric] + . | join(",")' \
            "$OUT/reports/$m/report.json"
        done
      done
    done
  } >"$csv.tmp"
  {
    echo "model,en,de,fr,it,es,hi,ta,kn,all"
    for m in "${MODELS[@]}"; do
      jq -r --arg m "$m" '[$m] + ([.langs.en, .langs.de, .langs.fr, .langs.it, .langs.es, .langs.hi,
        .langs.ta, .langs.kn, .] | map(.recall * 10000 | round / 10000 | tostring)) | join(",")' "$OUT/facts/$m.json"
    done
  } >"$recall.tmp"
  mv "$md.tmp" "$md"
  mv "$csv.tmp" "$csv"
  mv "$recall.tmp" "$recall"
}

phase corpus corpus
for l in "${LANGS[@]}"; do phase "finetune-$l" finetune "$l"; done
phase merge merge
for m in "${MODELS[@]}"; do phase "facts-$m" facts "$m"; done
for m in "${MODELS[@]}"; do phase "stats-$m" stats "$m"; done
for m in "${MODELS[@]}"; do phase "eval-$m" evaluate "$m"; done
for m in "${MODELS[@]}"; do phase "report-$m" report "$m"; done
phase summary summary
printf 'total (this invocation)\t%d\n' $(( $(date +%s) - T_ALL )) >>"$TIMES"

cat "$OUT/summary.md"
echo >&2
echo "merge_experiment: done in $(( $(date +%s) - T_ALL )) s" >&2
echo "  models:   $OUT/models/{hi,ta,kn,merged}" >&2
echo "  reports:  $OUT/reports/<model>/report.{txt,md,csv,json,html}" >&2
echo "  summary:  $OUT/summary.md, $OUT/summary.csv, $OUT/recall.csv; timings: $TIMES" >&2
