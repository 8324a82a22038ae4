#!/usr/bin/env bash
# threads_experiment.sh MODEL [xledit bench options]: two threads against one on busy cores
# (docs/performance.md, "Threads on busy cores"). Starts one CPU-bound loop pinned on each of
# cores 0 and 1, then runs `xledit bench MODEL OPTIONS -t 1,2 -o jsonl` twice (rounds), printing
# per round the load average and tokens/s of every test with 1 and 2 threads. With
# BEFORE=path/to/other/xledit the two binaries alternate (before, after, before, after). Run as
# root to put the loops and xledit in their own scheduler autogroup at nice -10, so that other
# jobs on the machine take little of the two cores (otherwise they run at the caller's priority).
# NO_LOOPS=1 leaves the busy loops out (the control). CPU_TIME=1 runs -t 1 and -t 2 as separate
# processes and adds each one's CPU seconds (user + sys, /usr/bin/time), the measure that holds
# while other work shares the machine: two threads that waste no time spinning use about the
# CPU time of one. XLEDIT defaults to build/xledit. Needs jq.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 MODEL [xledit bench options]" >&2; exit 2; }
M="$1"; shift
XLEDIT="${XLEDIT:-build/xledit}"
if [ "$(id -u)" = 0 ]; then
  echo -10 >/proc/self/autogroup 2>/dev/null || true
  renice -n -10 $$ >/dev/null 2>&1 || true
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
if [ -z "${NO_LOOPS:-}" ]; then
  taskset -c 0 sh -c 'while :; do :; done' & pids+=($!)
  taskset -c 1 sh -c 'while :; do :; done' & pids+=($!)
  sleep 0.3
fi
run() {  # run NAME BINARY: one line, tokens/s of each test as "ppN/tgN tTHREADS=RATE"
  # the binaries' own wait settings (each sets them unless the environment does)
  local r
  r=$(env -u GOMP_SPINCOUNT -u OPENBLAS_THREAD_TIMEOUT "$2" bench "$M" "${opts[@]}" -t 1,2 -o jsonl |
      jq -r '"\(if .n_gen == 0 then "pp\(.n_prompt)" else "tg\(.n_gen)" end) t\(.n_threads)=\(.avg_ts * 100 | round / 100)"' |
      tr '\n' ' ')
  echo "$1 round $round load $(cut -d' ' -f1 /proc/loadavg): $r"
}
run_cpu() {  # run_cpu NAME BINARY: per thread count, tokens/s of each test and the CPU seconds
  local t r
  for t in 1 2; do
    r=$(env -u GOMP_SPINCOUNT -u OPENBLAS_THREAD_TIMEOUT /usr/bin/time -f "cpu %U %S" -o "$tmp_time" "$2" bench "$M" \
          "${opts[@]}" -t "$t" -o jsonl |
        jq -r '"\(if .n_gen == 0 then "pp\(.n_prompt)" else "tg\(.n_gen)" end)=\(.avg_ts * 100 | round / 100)"' | tr '\n' ' ')
    echo "$1 round $round load $(cut -d' ' -f1 /proc/loadavg) t$t: $r$(awk '{ printf "cpu_s %.2f", $2 + $3 }' "$tmp_time")"
  done
}
tmp_time=$(mktemp)
trap 'cleanup; rm -f "$tmp_time"' EXIT
opts=("$@")
for round in 1 2; do
  if [ -n "${CPU_TIME:-}" ]; then
    if [ -n "${BEFORE:-}" ]; then run_cpu before "$BEFORE"; fi
    run_cpu after "$XLEDIT"
    continue
  fi
  if [ -n "${BEFORE:-}" ]; then run before "$BEFORE"; fi
  run after "$XLEDIT"
done
