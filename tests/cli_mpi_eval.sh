#!/usr/bin/env bash
# cli_mpi_eval.sh XLEDIT SRCDIR: `mpirun -np N xledit eval` on the built-in model
# (docs/scale.md).
# - 2 and 3 ranks (oversubscribed: CI has 2 cores) write the run one process writes: every
#   unit's results line and every case's pre line equal as parsed JSON (jq -S, order aside),
#   and the finished files byte-identical (rank 0 puts them in unit order at the end); the
#   report is identical.
# - a rank killed with SIGKILL mid-run (mpirun then ends the job) leaves a run that --resume
#   completes across rank counts: killed at 3 ranks, resumed at 2 (and killed again if still
#   running), finished by one process; every unit once, nothing lost or duplicated, equal to
#   the uninterrupted run.
# Skips (exit 77) when mpirun is missing or xledit was built without MPI. CI runs as root;
# OpenMPI refuses root unless told (tests/mpi_common.sh sets the OMPI_ALLOW_RUN_AS_ROOT*).
set -u
XLEDIT="$1"
SRC="$2"
MODEL="$SRC/models/xledit-mini"
NAME=cli_mpi_eval
# shellcheck source=tests/mpi_common.sh
source "$SRC/tests/mpi_common.sh"

"$XLEDIT" world cases --data "$SRC/data/world" --out "$T/cases.jsonl" --n 3 > /dev/null || fail "world cases"
"$XLEDIT" world corpus --data "$SRC/data/world" --out "$T/corpus.txt" > /dev/null || fail "world corpus"
"$XLEDIT" stats "$MODEL" --layers 0 --corpus "$T/corpus.txt" --max-tokens 4000 --out "$T/stats" > /dev/null ||
    fail "stats"
# 3 cases x 2 methods x 3 edit languages = 18 units, tested in 2 languages (under the
# sanitizers 2 x 2 x 2 = 8). No context templates: sampling them costs most of a run this small
# (each process would otherwise load the ones rank 0 sampled and saved in the run folder).
CASES=3 EDIT=en,de,all TOTAL=18
if [ "${XLE_SANITIZED:-OFF}" = "ON" ]; then CASES=2 EDIT=en,all TOTAL=8; fi
ARGS=(--data "$T/cases.jsonl" --cases $CASES --methods rome,memit --edit-langs $EDIT --test-langs en,hi
      --stats "$T/stats" --context-templates none --quiet)
# Each run lives in DIR/run so that reports (which name their folder) can be compared.
run_in() {
    mkdir -p "$1"
    shift
    "$@"
}

# one process, no launcher: the reference
run_in "$T/one" "$XLEDIT" eval "$MODEL" "${ARGS[@]}" --out "$T/one/run" > /dev/null || fail "1-process eval"
[ "$(wc -l < "$T/one/run/results.jsonl")" -eq $TOTAL ] || fail "1 process: expected $TOTAL lines"

# canon FILE: one line per JSON object, keys sorted, lines sorted (order aside)
canon() { jq -cS . "$1" | sort; }
same_run() { # DIR_A DIR_B WHAT
    cmp -s <(canon "$1/results.jsonl") <(canon "$2/results.jsonl") || fail "$3: results differ from 1 process (as parsed JSON)"
    cmp -s <(canon "$1/pre.jsonl") <(canon "$2/pre.jsonl") || fail "$3: pre-edit lines differ from 1 process"
    cmp -s "$1/results.jsonl" "$2/results.jsonl" || fail "$3: results.jsonl not in unit order"
    cmp -s "$1/pre.jsonl" "$2/pre.jsonl" || fail "$3: pre.jsonl not in case order"
}
report_of() { (cd "$1" && "$XLEDIT" report run --format "$2"); }

for np in 2 3; do
    run_in "$T/np$np" "${MPIRUN[@]}" -np $np "$XLEDIT" eval "$MODEL" "${ARGS[@]}" --out "$T/np$np/run" \
        > "$T/np$np.out" 2>&1 || fail "mpirun -np $np eval: $(tail -5 "$T/np$np.out")"
    same_run "$T/one/run" "$T/np$np/run" "$np ranks"
    for f in text json; do
        cmp -s <(report_of "$T/one" $f) <(report_of "$T/np$np" $f) || fail "$np ranks: the $f report differs"
    done
done

# wait_lines FILE N PID: until FILE has N lines or PID ended
wait_lines() {
    for _ in $(seq 1 3000); do
        [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ] && return 0
        kill -0 "$3" 2> /dev/null || return 1
        sleep 0.02
    done
    return 1
}
# kill_a_rank MPIRUN_PID: SIGKILL to the last rank mpirun started
kill_a_rank() {
    local ranks
    ranks=$(pgrep -P "$1" | tail -n 1)
    [ -n "$ranks" ] || return 1
    kill -9 $ranks
}

# killed at 3 ranks
mkdir -p "$T/k"
"${MPIRUN[@]}" -np 3 "$XLEDIT" eval "$MODEL" "${ARGS[@]}" --out "$T/k/run" > "$T/k1.out" 2>&1 &
pid=$!
wait_lines "$T/k/run/results.jsonl" 3 $pid || fail "3-rank run ended before a rank could be killed"
kill_a_rank $pid || fail "no rank to kill"
wait $pid && fail "mpirun exited 0 after a rank was killed"
pid=""
n1=$(wc -l < "$T/k/run/results.jsonl")
[ "$n1" -lt $TOTAL ] || fail "killed too late ($n1 lines)"
printf '{"case":"world-x","case_index":1,"meth' >> "$T/k/run/results.jsonl" # a torn line, as a kill mid-write leaves
# resumed at 2 ranks, killed again if it is still running after one more line
"${MPIRUN[@]}" -np 2 "$XLEDIT" eval "$MODEL" "${ARGS[@]}" --out "$T/k/run" --resume > "$T/k2.out" 2>&1 &
pid=$!
if wait_lines "$T/k/run/results.jsonl" $((n1 + 1)) $pid && kill -0 $pid 2> /dev/null; then
    kill_a_rank $pid
fi
wait $pid
pid=""
n2=$(wc -l < "$T/k/run/results.jsonl")
[ "$n2" -gt "$n1" ] || fail "the 2-rank resume added nothing ($n1 -> $n2 lines): $(tail -3 "$T/k2.out")"
# finished by one process
"$XLEDIT" eval "$MODEL" "${ARGS[@]}" --out "$T/k/run" --resume > "$T/k3.out" 2>&1 ||
    fail "1-process resume: $(cat "$T/k3.out")"
[ "$(wc -l < "$T/k/run/results.jsonl")" -eq $TOTAL ] || fail "after the resumes: $(wc -l < "$T/k/run/results.jsonl") lines, expected $TOTAL"
units=$(jq -r '"\(.case_index) \(.method) \(.edit_lang)"' "$T/k/run/results.jsonl" | sort -u | wc -l)
[ "$units" -eq $TOTAL ] || fail "after the resumes: $units distinct units, expected $TOTAL"
[ "$(wc -l < "$T/k/run/pre.jsonl")" -eq $CASES ] || fail "after the resumes: pre.jsonl has a case twice or none"
same_run "$T/one/run" "$T/k/run" "killed at 3 ranks, resumed at 2 and 1"
cmp -s <(report_of "$T/one" text) <(report_of "$T/k" text) || fail "resumed run: the report differs"
echo "cli_mpi_eval: ok"
