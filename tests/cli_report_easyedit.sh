#!/usr/bin/env bash
# cli_report_easyedit.sh XLEDIT SRCDIR: `xledit report RUN --format easyedit` on a small run of
# the built-in model (3 cases in en/de/hi, ROME and FT-L, edit languages en, de, all), read back
# by tests/easyedit_summary.py the way EasyEdit's summary_metrics reads its results.json, whose
# means and counts must equal report.json's; the records carry EasyEdit's fields; a directory
# that is not a run is one error line.
set -u
X="$1"
SRC="$2"
M="$SRC/models/xledit-mini"
T="$(mktemp -d /tmp/xle_cli_easyedit.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { echo "cli_report_easyedit: no python3 (scripts/setup.sh installs it)"; exit 77; }

cat > "$T/cases.jsonl" <<'CASES'
{"id":"c1","source":"test","langs":{"en":{"prompt":"Lily went to the park with her","subject":"Lily","target_new":"dog","target_true":"mom","rephrases":["Lily and her","With her, Lily went to the"],"locality":[{"prompt":"Tom liked to play with his","answer":"toys"},{"prompt":"Mom said they could have a","answer":"cake"}],"portability":[{"prompt":"The dog of Lily was","answer":"happy"}]},"de":{"prompt":"Lily ging mit ihrer","subject":"Lily","target_new":"Hund","target_true":"Mama","rephrases":["Lily und ihre"],"locality":[],"portability":[]},"hi":{"prompt":"लिली अपनी माँ के साथ","subject":"लिली","target_new":"कुत्ता","target_true":"माँ","rephrases":[],"locality":[],"portability":[]}}}
{"id":"c2","source":"test","langs":{"en":{"prompt":"Tom liked to play with his","subject":"Tom","target_new":"cat","target_true":"toys","rephrases":["Tom played with his"],"locality":[{"prompt":"Lily went to the park with her","answer":"mom"}],"portability":[]},"de":{"prompt":"Tom spielte gern mit seinen","subject":"Tom","target_new":"Katze","target_true":"Sachen","rephrases":[],"locality":[],"portability":[]}}}
{"id":"c3","source":"test","langs":{"en":{"prompt":"The sun was hot and the sky was","subject":"the sky","target_new":"green","target_true":"blue","rephrases":[],"locality":[{"prompt":"Mom said they could have a","answer":"cake"}],"portability":[]},"hi":{"prompt":"सूरज गरम था और आसमान","subject":"आसमान","target_new":"हरा","target_true":"नीला","rephrases":[],"locality":[],"portability":[]}}}
CASES
echo '{"v_num_grad_steps": 6, "num_steps": 6}' > "$T/fast.json"
METHODS=rome,ft-l EDIT=en,de,all
[ "${XLE_SANITIZED:-OFF}" = "ON" ] && METHODS=rome EDIT=en # sanitizers: 3 units, not 18
"$X" eval "$M" --data "$T/cases.jsonl" --methods $METHODS --edit-langs $EDIT --hparams "$T/fast.json" --no-model-hparams \
  --context-templates none --out "$T/run" --quiet >/dev/null 2>"$T/eval.err" || fail "eval: $(cat "$T/eval.err")"
"$X" report "$T/run" --format easyedit --out "$T/rep" >/dev/null || fail "report --format easyedit --out"
"$X" report "$T/run" --format json --out "$T/rep" >/dev/null || fail "report --format json"
"$X" report "$T/run" --format easyedit > "$T/stdout.json" || fail "report --format easyedit to stdout"
cmp -s "$T/stdout.json" "$T/rep/report.easyedit.json" || fail "stdout and --out differ"
"$PY" "$SRC/tests/easyedit_summary.py" "$T/rep/report.easyedit.json" "$T/rep/report.json" ||
  fail "the EasyEdit-style summary differs from report.json"

# the fields EasyEdit's records have, and the case file's subject and old object
"$PY" - "$T/rep/report.easyedit.json" <<'PYCHECK' || fail "record fields"
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
r = d["rome/en/en"][0]
assert r["case_id"] == 0, r
rr = r["requested_rewrite"]
assert (rr["prompt"], rr["target_new"], rr["ground_truth"], rr["subject"]) == ("Lily went to the park with her", "dog", "mom", "Lily"), rr
assert rr["rephrase_prompt"] == ["Lily and her", "With her, Lily went to the"], rr
assert rr["locality"]["neighborhood"]["ground_truth"] == ["toys", "cake"], rr
assert len(r["pre"]["locality"]["neighborhood_output"]) == 2, r["pre"]
assert len(r["post"]["rewrite_acc"]) == 1 and "neighborhood_acc" in r["post"]["locality"], r["post"]
assert "one_hop_acc" in r["post"]["portability"], r["post"]
assert d["rome/en/hi"][0]["requested_rewrite"]["subject"] == "लिली"
assert {"rome"} <= set(k.split("/")[0] for k in d) <= {"rome", "ft-l"}
PYCHECK

"$X" report "$T" --format easyedit >"$T/out" 2>"$T/err" && fail "a directory without a run was accepted"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "want one error line: $(cat "$T/err")"

[ "$fails" -eq 0 ] || exit 1
echo "cli_report_easyedit: ok"
