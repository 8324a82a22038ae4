#!/usr/bin/env bash
# compare_types.sh FILE.gguf...: the docs/performance.md table of xledit against llama.cpp, one
# file after the other: bench/compare_llamacpp.sh on each (-t 2 -p 512 -n 32 -r 3, 3 alternating
# pairs, load noted before every run), then the peak RSS (/usr/bin/time -v, "Maximum resident
# set size") of one generation run of each program on each file (-p 0 -n 16 -r 1), and, with
# SPIN_COUNTS="1000 10000", extra xledit tg runs under those GOMP_SPINCOUNT values alternated
# with the default (how much idle threads' sleeping between products costs on a quiet machine).
# Environment: XLEDIT, LLAMA_BENCH as compare_llamacpp.sh; THREADS (2), PAIRS (3), GEN (32),
# REPS (3), PROMPT (512). Output: everything on stdout, meant to be kept as the log of the measurement.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 FILE.gguf..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
XLEDIT="${XLEDIT:-build/xledit}"
LLAMA_BENCH="${LLAMA_BENCH:-llama-bench}"
THREADS="${THREADS:-2}" PROMPT="${PROMPT:-512}" PAIRS="${PAIRS:-3}" GEN="${GEN:-32}" REPS="${REPS:-3}"
load() { cut -d' ' -f1 /proc/loadavg; }
peak_rss_mib() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk '/Maximum resident set size/ { printf "%.0f", $NF / 1024 }'; }
echo "start $(date -u +%H:%M:%S) load $(load)"
for f in "$@"; do
  echo "== $f ($(du -m "$f" | cut -f1) MiB) $(date -u +%H:%M:%S)"
  XLEDIT="$XLEDIT" LLAMA_BENCH="$LLAMA_BENCH" "$here/compare_llamacpp.sh" "$f" -t "$THREADS" -p "$PROMPT" -n "$GEN" \
    -r "$REPS" --pairs "$PAIRS"
done
echo "== peak RSS MiB, generation run (-p 0 -n 16 -r 1 -t $THREADS) $(date -u +%H:%M:%S)"
for f in "$@"; do
  lx=$(load); x=$(peak_rss_mib "$XLEDIT" bench "$f" -p 0 -n 16 -r 1 -t "$THREADS")
  ll=$(load); l=$(peak_rss_mib "$LLAMA_BENCH" -m "$f" -p 0 -n 16 -r 1 -t "$THREADS")
  echo "$f xledit $x (load $lx) llama.cpp $l (load $ll) ratio $(awk -v a="$x" -v b="$l" 'BEGIN { printf "%.3f", a / b }')"
done
for s in ${SPIN_COUNTS:-}; do
  for f in "$@"; do
    echo "== GOMP_SPINCOUNT $s vs default, tg$GEN, $f $(date -u +%H:%M:%S)"
    for i in $(seq 1 "$PAIRS"); do
      l1=$(load); a=$("$XLEDIT" bench "$f" -p 0 -n "$GEN" -r "$REPS" -t "$THREADS" -o jsonl | jq -r .avg_ts)
      l2=$(load); b=$(GOMP_SPINCOUNT="$s" "$XLEDIT" bench "$f" -p 0 -n "$GEN" -r "$REPS" -t "$THREADS" -o jsonl | jq -r .avg_ts)
      echo "pair $i default $a (load $l1) spin$s $b (load $l2)"
    done
  done
done
echo "end $(date -u +%H:%M:%S) load $(load)"
