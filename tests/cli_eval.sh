#!/usr/bin/env bash
# cli_eval.sh XLEDIT SOURCE_DIR: `xledit eval` and `xledit report` end to end on stories260K:
# a run killed with SIGKILL (and a torn line added) then resumed writes byte-identical
# results.jsonl and pre.jsonl to an uninterrupted run; so does one stopped with SIGINT (exit
# 130); reports are written in every format and the HTML is well-formed XML (xmllint); usage
# and input errors give one line and the documented exit codes.
set -u
X=$1
SRC=$2
M="$SRC/../shared/data/external/stories260k/stories260K.bin"
export OMP_NUM_THREADS=1
T=$(mktemp -d /tmp/xle_cli_eval.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

cat > "$T/cases.jsonl" <<'EOF'
{"id":"c1","source":"test","langs":{"en":{"prompt":"Lily went to the park with her","subject":"Lily","target_new":"dog","target_true":"mom","rephrases":["Lily and her"],"locality":[{"prompt":"Tom liked to play with his","answer":"toys"}],"portability":[{"prompt":"The dog of Lily was","answer":"happy"}]},"de":{"prompt":"Lily ging mit ihrer","subject":"Lily","target_new":"Hund","target_true":"Mama","rephrases":["Lily und ihre"],"locality":[],"portability":[]},"hi":{"prompt":"लिली अपनी माँ के साथ","subject":"लिली","target_new":"कुत्ता","target_true":"माँ","rephrases":[],"locality":[],"portability":[]}}}
{"id":"c2","source":"test","langs":{"en":{"prompt":"Tom liked to play with his","subject":"Tom","target_new":"cat","target_true":"toys","rephrases":["Tom played with his"],"locality":[{"prompt":"Lily went to the park with her","answer":"mom"}],"portability":[]},"de":{"prompt":"Er spielte gern mit seinen","subject":"Tom","target_new":"Katze","target_true":"Sachen","rephrases":[],"locality":[],"portability":[]}}}
{"id":"c3","source":"test","langs":{"en":{"prompt":"The sun was hot and the sky was","subject":"the sky","target_new":"green","target_true":"blue","rephrases":[],"locality":[{"prompt":"Mom said they could have a","answer":"cake"}],"portability":[]},"hi":{"prompt":"सूरज गरम था और आसमान","subject":"आसमान","target_new":"हरा","target_true":"नीला","rephrases":[],"locality":[],"portability":[]}}}
EOF
for i in $(seq 1 60); do
    echo "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. Tom and his dog ran to the tree number $i."
    echo
done > "$T/corpus.txt"
"$X" stats "$M" --layers 1 --corpus "$T/corpus.txt" --out "$T/stats" > /dev/null || fail "stats"
echo '{"v_num_grad_steps": 8, "num_steps": 8}' > "$T/fast.json"
ARGS=(--data "$T/cases.jsonl" --methods rome,memit,ft-l --edit-langs en,de,hi,all --stats "$T/stats"
      --hparams "$T/fast.json" --context-templates none)
TOTAL=36 # 3 cases x 3 methods x 4 edit languages

# 1. uninterrupted
"$X" eval "$M" "${ARGS[@]}" --out "$T/a" > "$T/a.out" 2> "$T/a.err" || fail "eval: $(cat "$T/a.err")"
[ "$(wc -l < "$T/a/results.jsonl")" -eq $TOTAL ] || fail "expected $TOTAL result lines"
[ "$(wc -l < "$T/a/pre.jsonl")" -eq 3 ] || fail "expected 3 pre-edit lines"
grep -q "36 units: 0 resumed, 36 run now; 9 skipped" "$T/a.out" || fail "summary line: $(cat "$T/a.out")"
# off a terminal, stderr holds at most the plain progress lines (one per 30 s; cli_progress.sh)
! grep -qv "^xledit eval: [0-9]*/36 units" "$T/a.err" || fail "stderr beyond progress lines: $(cat "$T/a.err")"

# wait_lines DIR N PID: until DIR/results.jsonl has N lines or the process ended
wait_lines() {
    for _ in $(seq 1 3000); do
        [ -f "$1/results.jsonl" ] && [ "$(wc -l < "$1/results.jsonl")" -ge "$2" ] && return 0
        kill -0 "$3" 2> /dev/null || return 1
        sleep 0.02
    done
    return 1
}

# 2. killed with SIGKILL in the middle, a torn line appended, resumed
"$X" eval "$M" "${ARGS[@]}" --out "$T/b" > /dev/null 2>&1 &
pid=$!
wait_lines "$T/b" 7 $pid || fail "run ended before it could be killed"
kill -9 $pid
wait $pid 2> /dev/null
n=$(wc -l < "$T/b/results.jsonl")
[ "$n" -lt $TOTAL ] || fail "killed too late ($n lines)"
printf '{"case":"c2","case_index":1,"meth' >> "$T/b/results.jsonl"
"$X" eval "$M" "${ARGS[@]}" --out "$T/b" > "$T/b.out" 2>&1 && fail "a second run without --resume must be refused"
grep -q "^xledit eval: .*--resume" "$T/b.out" || fail "refusal message: $(cat "$T/b.out")"
"$X" eval "$M" "${ARGS[@]}" --out "$T/b" --resume > "$T/b.out" 2>&1 || fail "resume: $(cat "$T/b.out")"
grep -q "36 units: $n resumed" "$T/b.out" || fail "resume summary: $(cat "$T/b.out")"
cmp -s "$T/a/results.jsonl" "$T/b/results.jsonl" || fail "results.jsonl differs after kill -9 + resume"
cmp -s "$T/a/pre.jsonl" "$T/b/pre.jsonl" || fail "pre.jsonl differs after kill -9 + resume"
# the same content in any order too (what the task asks at the least)
diff <(sort "$T/a/results.jsonl") <(sort "$T/b/results.jsonl") > /dev/null || fail "sorted results differ"

# 3. stopped with SIGINT: exit 130 after the unit in progress, then resumed
"$X" eval "$M" "${ARGS[@]}" --out "$T/c" > /dev/null 2> "$T/c.err" &
pid=$!
wait_lines "$T/c" 3 $pid || fail "run ended before SIGINT"
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || fail "SIGINT: exit $rc, expected 130"
grep -q "interrupted after .* --resume" "$T/c.err" || fail "SIGINT message: $(cat "$T/c.err")"
tail -c 1 "$T/c/results.jsonl" | od -c | grep -q '\\n' || fail "SIGINT left a torn line"
"$X" eval "$M" "${ARGS[@]}" --out "$T/c" --resume --quiet || fail "resume after SIGINT"
cmp -s "$T/a/results.jsonl" "$T/c/results.jsonl" || fail "results.jsonl differs after SIGINT + resume"

# resuming with other arguments is refused, naming what differs
"$X" eval "$M" "${ARGS[@]}" --cases 2 --out "$T/c" --resume > /dev/null 2> "$T/c.err" && fail "other --cases accepted"
grep -q "run.json: cases:" "$T/c.err" || fail "message: $(cat "$T/c.err")"

# 4. reports
"$X" report "$T/b" --out "$T/rep" > /dev/null || fail "report"
for ext in txt md csv json html; do
    [ -s "$T/rep/report.$ext" ] || fail "report.$ext missing"
done
xmllint --noout "$T/rep/report.html" || fail "HTML is not well-formed"
grep -q '<svg' "$T/rep/report.html" || fail "no heatmap"
grep -q 'लिली' "$T/rep/report.html" || fail "Devanagari text missing from the HTML"
"$X" report "$T/b" | grep -q "rome rel_acc: Reliability" || fail "text report to stdout"
"$X" report "$T/b" --format csv | head -1 | grep -qx "method,metric,edit_lang,test_lang,mean,n" || fail "csv header"
rows=$("$X" report "$T/b" --format csv | wc -l)
[ "$rows" -eq $((1 + 3 * 18 * 4 * 3 + 18 * 3)) ] || fail "csv rows: $rows"
"$X" report "$T/b" --format json | grep -q '"edit_langs"' || fail "json report"
cmp -s <("$X" report "$T/a" --format md) <("$X" report "$T/b" --format md | sed "s#$T/b#$T/a#") ||
    fail "reports of the interrupted and uninterrupted runs differ"

# 5. errors: usage (2), bad input (1), one line each
"$X" eval "$M" --out "$T/d" > /dev/null 2>&1; [ $? -eq 2 ] || fail "missing --data should be a usage error"
"$X" eval "$M" --data "$T/cases.jsonl" --out "$T/d" --methods rome,bogus > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad method"
"$X" eval "$M" --data "$T/nope.jsonl" --out "$T/d" 2> "$T/e.err"; [ $? -eq 1 ] || fail "missing data file"
[ "$(wc -l < "$T/e.err")" -eq 1 ] && grep -q "^xledit eval: .*nope.jsonl" "$T/e.err" || fail "one-line error: $(cat "$T/e.err")"
"$X" eval "$M" "${ARGS[@]}" --test-langs en,fr --out "$T/d" 2> "$T/e.err"; [ $? -eq 1 ] || fail "unknown test language"
grep -q "fr" "$T/e.err" || fail "message should name fr"
"$X" report "$T" 2> "$T/e.err"; [ $? -eq 1 ] || fail "report of a non-run directory"
grep -q "^xledit report: .*run.json" "$T/e.err" || fail "report error: $(cat "$T/e.err")"
"$X" report "$T/b" --format pdf > /dev/null 2>&1; [ $? -eq 2 ] || fail "bad format"
echo "cli_eval: all passed"
