#!/usr/bin/env bash
# cli_eval_answers.sh XLEDIT SOURCE_DIR: `xledit eval` shows greedy answers whole, on the
# built-in multilingual model (models/xledit-mini) in English, French, Hindi and Tamil:
#  - every greedy_whole (pre.jsonl) / before_whole / after_whole (results.jsonl) starts with the
#    answer the metrics compare (greedy / before / after, as long as the expected answer);
#  - each pre-edit whole answer that grew (and 3 per language that did not) is where `xledit generate` (KV cache, a separate code path)
#    ends a word: its continuation of the same prompt starts with the answer, and the text
#    after it is empty or starts with a character that is not a letter, a mark (vowel sign,
#    virama) or a digit (Python's unicodedata, an independent implementation); answers cut
#    inside a word ("R", "l'A", a Tamil consonant without its vowel sign) come out longer;
#  - the HTML report's per-case table shows the whole answers;
#  - a run written before these fields existed (the fields taken out) resumes, its old lines
#    stay as they were, and its report shows the answers it has.
# (That the metrics are unchanged is checked bitwise in tests/test_eval_run.c.)
set -u
X=$1
SRC=$2
M="$SRC/models/xledit-mini"
export OMP_NUM_THREADS=1
command -v python3 > /dev/null || { echo "no python3: skipped"; exit 77; }
T=$(mktemp -d /tmp/xle_cli_answers.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}
CASES=2
[ "${XLE_SANITIZED:-OFF}" = "ON" ] && CASES=1 # sanitizers: one case (seconds, not minutes)
ARGS=(--data "$SRC/data/world/cases.jsonl" --cases $CASES --methods ft-l --edit-langs en
      --test-langs en,fr,hi,ta --context-templates none --quiet)
"$X" eval "$M" "${ARGS[@]}" --out "$T/run" > /dev/null 2> "$T/err" || fail "eval: $(cat "$T/err")"

# every whole answer starts with the cut one; each pre-edit question's prompt to a file
mkdir "$T/q"
python3 - "$T/run" "$T/q" > "$T/q/list" << 'EOF' || fail "whole answers: $(cat "$T/q/list")"
import json, sys
run, qdir = sys.argv[1], sys.argv[2]
bad, n, same = [], 0, {}
for line in open(run + "/pre.jsonl", encoding="utf-8"):
    for lang, half in json.loads(line)["langs"].items():
        for q in half["qa"]:
            if not q["ok"]:
                continue
            if not q["greedy_whole"].startswith(q["greedy"]):
                bad.append(("pre", lang, q["greedy"], q["greedy_whole"]))
            # every answer that grew, and the first 3 per language that did not (time)
            if q["greedy_whole"] == q["greedy"]:
                same[lang] = same.get(lang, 0) + 1
                if same[lang] > 3:
                    continue
            with open("%s/%d.prompt" % (qdir, n), "w", encoding="utf-8") as f:
                f.write(q["prompt"])
            with open("%s/%d.json" % (qdir, n), "w", encoding="utf-8") as f:
                json.dump([lang, q["greedy"], q["greedy_whole"]], f)
            print(n, len(q["argmax"]) + 12)  # tokens enough for the whole answer and more
            n += 1
for line in open(run + "/results.jsonl", encoding="utf-8"):
    for lang, t in json.loads(line)["tests"].items():
        for p in t["probes"]:
            for cut, whole in (("before", "before_whole"), ("after", "after_whole")):
                if not p[whole].startswith(p[cut]):
                    bad.append(("results", lang, p[cut], p[whole]))
if bad:
    print("whole answers not starting with the cut ones:", bad)
    sys.exit(1)
EOF

# each pre-edit whole answer against `xledit generate`'s continuation of the same prompt
while read -r i n; do
    "$X" generate "$M" -f "$T/q/$i.prompt" -n "$n" > "$T/q/$i.gen" 2> "$T/err" || fail "generate: $(cat "$T/err")"
done < "$T/q/list"
python3 - "$T/q" > "$T/verdict" << 'EOF' || fail "$(cat "$T/verdict")"
import glob, json, sys, unicodedata
n_checked = n_longer = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
    lang, greedy, whole = json.load(open(path, encoding="utf-8"))
    gen = open(path[:-5] + ".gen", encoding="utf-8").read()
    gen = gen[:-1] if gen.endswith("\n") else gen  # the line end generate prints
    g, w = gen.lstrip(" "), whole.lstrip(" ")
    if "\ufffd" in whole:
        sys.exit("U+FFFD in %r" % whole)
    if not g.startswith(w):
        sys.exit("%s: generate says %r, the whole answer is %r" % (lang, g, w))
    if len(g) > len(w) and unicodedata.category(g[len(w)])[0] in "LMN":
        sys.exit("%s: %r ends inside a word or a character cluster of %r" % (lang, w, g))
    n_checked += 1
    n_longer += len(whole) > len(greedy)
if n_checked < 12:
    sys.exit("only %d answers checked" % n_checked)
# the fixture has answers cut inside a word ('R' for Rome, "l'A" for l'Algérie, Tamil)
if n_longer < 2:
    sys.exit("only %d answers were cut inside a word (fixture)" % n_longer)
print(n_checked, n_longer)
EOF
read -r n_checked n_longer < "$T/verdict"

# the report's per-case table shows the whole answer after the edit, marked as exact match says
"$X" report "$T/run" --format html --out "$T/rep" > /dev/null 2> "$T/err" || fail "report: $(cat "$T/err")"
python3 - "$T/run" "$T/rep/report.html" << 'EOF' || fail "report table"
import html, json, re, sys
page = open(sys.argv[2], encoding="utf-8").read()
cells = {html.unescape(c) for c in re.findall('<span class="mark">\u2717</span>(.*?)</td>', page)}
shown = 0
for line in open(sys.argv[1] + "/results.jsonl", encoding="utf-8"):
    for lang, t in json.loads(line)["tests"].items():
        if t["metrics"]["rel_em"] != 0:
            continue  # only failing languages are listed
        for p in t["probes"]:
            if p["after_whole"] != p["after"] and p["kind"] != "loc":
                if p["after_whole"] not in cells:
                    sys.exit("report: no cell %r" % p["after_whole"])
                shown += 1
if not shown:
    print("report: no whole answer longer than the cut one among the failures (fixture)")
    sys.exit(1)
EOF

# a run made before the whole answers existed: fields taken out, its last unit redone
mkdir "$T/old"
for f in "$T/run/run.json" "$T/run/"templates-*.txt; do [ -f "$f" ] && cp "$f" "$T/old/"; done
python3 - "$T/run" "$T/old" << 'EOF' || fail "making the old run"
import json, sys
src, dst = sys.argv[1], sys.argv[2]
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in ("greedy_whole", "before_whole", "after_whole")}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
for name, keep in (("pre.jsonl", None), ("results.jsonl", -1)):
    lines = open(src + "/" + name, encoding="utf-8").read().splitlines()
    lines = lines[:keep] if keep else lines
    with open(dst + "/" + name, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps(strip(json.loads(l)), ensure_ascii=False, separators=(",", ":")) + "\n")
EOF
cp "$T/old/results.jsonl" "$T/old_kept.jsonl"
"$X" eval "$M" "${ARGS[@]}" --out "$T/old" --resume > /dev/null 2> "$T/err" || fail "resume of an old run: $(cat "$T/err")"
python3 - "$T/run" "$T/old" "$T/old_kept.jsonl" << 'EOF' || fail "resumed old run"
import json, sys
new = [json.loads(l) for l in open(sys.argv[1] + "/results.jsonl", encoding="utf-8")]
old = [json.loads(l) for l in open(sys.argv[2] + "/results.jsonl", encoding="utf-8")]
kept = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
assert len(old) == len(new), (len(old), len(new))
assert old[:len(kept)] == kept, "the old lines changed"
last_new, last_old = new[-1], old[-1]
for lang, t in last_old["tests"].items():
    assert t["metrics"] == last_new["tests"][lang]["metrics"], "metrics of the redone unit differ"
    for p, q in zip(t["probes"], last_new["tests"][lang]["probes"]):
        assert p["before_whole"] is None, "before_whole from an old pre.jsonl line"
        assert p["after_whole"] == q["after_whole"] and p["after"] == q["after"]
EOF
"$X" report "$T/old" --format html --out "$T/oldrep" > /dev/null 2> "$T/err" || fail "report of the old run: $(cat "$T/err")"
echo "ok: $n_checked answers checked against generate ($n_longer cut inside a word)"
