#!/usr/bin/env bash
# cli_bench.sh XLEDIT SRCDIR: `xledit bench` on stories260K with tiny sizes: -o jsonl is one JSON
# object per test (llama-bench's order: prompts, then generations; each -t value a test) with
# llama-bench's fields and types; avg_ts / stddev_ts are the mean and sample standard deviation
# of samples_ts, and each samples_ts is (n_prompt + n_gen) / samples_ns; -o json is the same as
# one array, -o text a markdown table; the default thread count is the CPUs of the affinity mask
# (taskset), OMP_NUM_THREADS replaces it, -t wins over both; bad options are one error line and
# exit 2, a bad model one line and exit 1. Needs jq.
set -u
XLEDIT="$1"
SRC="$2"
SHARED="${XLE_SHARED_DIR:-$SRC/../shared}"
M="$SHARED/data/external/stories260k/stories260K.gguf"
T="$(mktemp -d /tmp/xle_cli_bench.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

"$XLEDIT" bench "$M" -p 8,4 -n 3 -r 3 -t 1,2 -o jsonl >"$T/out" 2>"$T/err" || fail "bench -o jsonl: $(cat "$T/err")"
[ -s "$T/err" ] && fail "bench -o jsonl wrote to stderr (not a terminal): $(head -c 300 "$T/err")"
[ "$(wc -l <"$T/out")" -eq 6 ] || fail "bench -o jsonl: $(wc -l <"$T/out") lines, expected 6 (3 tests x 2 thread counts)"
# each line one object with the fields and their JSON types
jq -e -s 'length == 6 and all(.[];
    (.n_prompt | type == "number") and (.n_gen | type == "number") and (.n_threads | type == "number")
    and (.avg_ts | type == "number") and (.stddev_ts | type == "number")
    and (.avg_ns | type == "number") and (.stddev_ns | type == "number")
    and (.samples_ns | type == "array" and length == 3) and (.samples_ts | type == "array" and length == 3)
    and (.model_filename | type == "string") and (.model_type | type == "string")
    and (.model_size | type == "number") and (.model_n_params == 292800)
    and (.test_time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"))
    and (.build_commit | type == "string" and length > 0) and .backends == "CPU")' "$T/out" >/dev/null ||
  fail "bench -o jsonl: fields or types wrong: $(head -c 600 "$T/out")"
# the tests in llama-bench's order
order=$(jq -r '"\(.n_prompt)/\(.n_gen)/\(.n_threads)"' "$T/out" | tr '\n' ' ')
[ "$order" = "8/0/1 8/0/2 4/0/1 4/0/2 0/3/1 0/3/2 " ] || fail "bench: tests in the order $order"
# the statistics are those of the samples
jq -e -s 'all(.[];
    . as $t | ($t.samples_ts | add / length) as $m
    | ($t.samples_ts | map((. - $m) * (. - $m)) | add / 2 | sqrt) as $sd
    | ([range(0; 3)] | map(($t.samples_ts[.] - 1e9 * ($t.n_prompt + $t.n_gen) / $t.samples_ns[.]) | fabs)
       | max) as $rate_err
    | (($m - $t.avg_ts) | fabs) <= 1e-6 * $m and $rate_err <= 1e-6 * $m
      and (($sd - $t.stddev_ts) | fabs) <= 1e-6 * $m
      and ((($t.samples_ns | add / length) - $t.avg_ns) | fabs) <= 1)' "$T/out" >/dev/null ||
  fail "bench: avg_ts/stddev_ts/avg_ns are not the samples' mean and standard deviation"

# -o json: one array of the same objects; -o text: a markdown table
"$XLEDIT" bench "$M" -p 4 -n 2 -r 2 -t 1 -o json >"$T/json" 2>"$T/err" || fail "bench -o json: $(cat "$T/err")"
jq -e 'type == "array" and length == 2 and .[0].n_prompt == 4 and .[1].n_gen == 2' "$T/json" >/dev/null ||
  fail "bench -o json: $(head -c 300 "$T/json")"
"$XLEDIT" bench "$M" -p 4 -n 2 -r 2 -t 1 >"$T/md" 2>"$T/err" || fail "bench (text): $(cat "$T/err")"
grep -q "^| model  *| *size | *params | backend  *| threads | *test | *t/s |$" "$T/md" || fail "bench text: no header"
grep -q "| *pp4 | *[0-9.]* ± [0-9.]* |$" "$T/md" || fail "bench text: no pp4 row"
grep -q "| *tg2 | *[0-9.]* ± [0-9.]* |$" "$T/md" || fail "bench text: no tg2 row"

# default threads: the affinity mask (OMP_NUM_THREADS unset: CI exports it); OMP_NUM_THREADS replaces it; -t wins
threads() { jq -r .n_threads "$T/t"; }
if command -v taskset >/dev/null; then
  env -u OMP_NUM_THREADS taskset -c 0 "$XLEDIT" bench "$M" -p 2 -n 0 -r 1 -o jsonl >"$T/t" 2>&1 || fail "taskset bench: $(cat "$T/t")"
  [ "$(threads)" = 1 ] || fail "bench under taskset -c 0: default n_threads $(threads), expected 1"
fi
OMP_NUM_THREADS=3 "$XLEDIT" bench "$M" -p 2 -n 0 -r 1 -o jsonl >"$T/t" 2>&1 || fail "OMP_NUM_THREADS=3 bench: $(cat "$T/t")"
[ "$(threads)" = 3 ] || fail "bench with OMP_NUM_THREADS=3: n_threads $(threads)"
OMP_NUM_THREADS=3 "$XLEDIT" bench "$M" -p 2 -n 0 -r 1 -t 1 -o jsonl >"$T/t" 2>&1 || fail "bench -t 1: $(cat "$T/t")"
[ "$(threads)" = 1 ] || fail "bench -t 1 with OMP_NUM_THREADS=3: n_threads $(threads)"

# bad options: one line, exit 2, nothing on stdout; a bad model: one line, exit 1
expect_usage() {
  "$XLEDIT" bench "$@" >"$T/out" 2>"$T/err"
  rc=$?
  [ "$rc" -eq 2 ] || fail "bench $*: exit $rc, expected 2"
  [ "$(wc -l <"$T/err")" -eq 1 ] || fail "bench $*: $(wc -l <"$T/err") lines on stderr"
  [ -s "$T/out" ] && fail "bench $*: wrote to stdout"
}
expect_usage "$M" -p abc
expect_usage "$M" -p 8,
expect_usage "$M" -p -1
expect_usage "$M" -n 1,x
expect_usage "$M" -t 0
expect_usage "$M" -t 1,0
expect_usage "$M" -r 0
expect_usage "$M" -r 2,3
expect_usage "$M" -o xml
expect_usage "$M" -p 0 -n 0
expect_usage "$M" --bogus
expect_usage "$M" --precision fp8
expect_usage "$M" --precision
expect_usage "$M" -p
expect_usage
"$XLEDIT" bench "$T/missing.gguf" -p 2 -n 0 -r 1 >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "missing.gguf" "$T/err" ||
  fail "bench on a missing file: exit $rc, $(cat "$T/err")"
[ -s "$T/out" ] && fail "bench on a missing file wrote to stdout"

[ "$fails" -eq 0 ] && echo "cli_bench: all passed"
exit $((fails > 0))
