#!/usr/bin/env bash
# cli_tour.sh XLEDIT SRCDIR: the README's tour, run as written. The fenced block under
# "## A tour" is read from README.md (so the two cannot drift apart) and run with bash -e in a
# fresh folder that looks like the repository's root (models/, data/, scripts/ linked, build/
# linking the folder of XLEDIT) with an empty statistics cache; then its outputs are checked:
# the edit says Rome, the revert gives back the original bytes, the report and the merged,
# fine-tuned and trained models exist and load. Release only: under the sanitizers the tour
# (edits, an evaluation, two trainings) would take many minutes, so the test is skipped (77).
set -u
XLEDIT="$1"
SRC="$2"
BUILD="$(cd "$(dirname "$XLEDIT")" && pwd)"
if grep -q '^XLE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "cli_tour: skipped under the sanitizers (Release only)"
  exit 77
fi
T="$(mktemp -d /tmp/xle_cli_tour.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# the block: from the first ``` after "## A tour" to the next ```
awk '/^## A tour/ {in_section = 1; next}
     in_section && /^```/ { if (in_block) exit; in_block = 1; next }
     in_block { print }' "$SRC/README.md" >"$T/tour.sh"
[ "$(grep -c '^xledit ' "$T/tour.sh")" -ge 15 ] || fail "README tour block not found or too short: $(cat "$T/tour.sh")"
grep -q '^export PATH=' "$T/tour.sh" || fail "the tour does not say where the binary is"

mkdir -p "$T/root"
for d in models data scripts; do ln -s "$SRC/$d" "$T/root/$d"; done
ln -s "$BUILD" "$T/root/build"
export XDG_CACHE_HOME="$T/cache" HOME="$T/home" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
mkdir -p "$HOME"
start=$(date +%s)
(cd "$T/root" && PATH="/usr/bin:/bin" bash -e -x ./../tour.sh) >"$T/tour.log" 2>&1 || {
  fail "the tour stopped: $(grep '^+ ' "$T/tour.log" | tail -1)"
  tail -20 "$T/tour.log" >&2
}
echo "cli_tour: the tour ran in $(( $(date +%s) - start )) s"
R="$T/root"
grep -q "after:  The capital of France is Rome" "$T/tour.log" || fail "the edit does not say Rome"
cmp -s "$R/restored/model.safetensors" "$SRC/models/xledit-mini/model.safetensors" || fail "restored/ is not the original"
[ -s "$R/run/report.html" ] || fail "no run/report.html"
[ -f "$R/merged/merge_info.json" ] || fail "no merged model"
for m in edited restored tuned merged model; do
  "$XLEDIT" info "$R/$m" >/dev/null 2>&1 || fail "$m/ does not load"
done
[ -f "$R/tok/tokenizer.json" ] && [ -f "$R/tok/tokenizer_config.json" ] || fail "no tok/tokenizer.json"
ls "$R" | grep -q 'tmp' && fail "temporaries left: $(ls "$R")"

[ "$fails" -eq 0 ] && echo "cli_tour: all checks passed"
exit $((fails > 0))
