#!/usr/bin/env bash
# compare_llamacpp.sh MODEL.gguf [-t N] [-p N] [-n N] [-r N] [--pairs K]: xledit against
# llama.cpp on the same GGUF file with the same thread count: `xledit bench` and llama.cpp's
# `llama-bench` (both -o jsonl, the same -p/-n/-r/-t) run alternately, K pairs (default 3),
# the 1-minute load average noted before each run. Prints every pair's tokens per second and
# the ratio xledit / llama.cpp for the prompt (ppN) and generation (tgN) tests, then the
# median ratios. Defaults: -t = the CPUs this process may run on, -p 512 -n 128 -r 3.
# Environment: XLEDIT (default build/xledit), LLAMA_BENCH (default: llama-bench on PATH; build
# llama.cpp from source, docs/performance.md). Needs jq.
set -eu
usage() { echo "usage: $0 MODEL.gguf [-t N] [-p N] [-n N] [-r N] [--pairs K]" >&2; exit 2; }
[ $# -ge 1 ] || usage
MODEL="$1"; shift
[ -f "$MODEL" ] || { echo "$0: $MODEL: no such file" >&2; exit 1; }
XLEDIT="${XLEDIT:-build/xledit}"
LLAMA_BENCH="${LLAMA_BENCH:-llama-bench}"
threads=$(nproc) p=512 n=128 r=3 pairs=3
while [ $# -gt 0 ]; do
  case "$1" in
    -t) threads="$2"; shift 2 ;;
    -p) p="$2"; shift 2 ;;
    -n) n="$2"; shift 2 ;;
    -r) r="$2"; shift 2 ;;
    --pairs) pairs="$2"; shift 2 ;;
    *) usage ;;
  esac
done
for v in "$threads" "$p" "$n" "$r" "$pairs"; do
  case "$v" in ''|*[!0-9]*) echo "$0: '$v' is not a count" >&2; exit 2 ;; esac
done
command -v "$LLAMA_BENCH" >/dev/null || { echo "$0: $LLAMA_BENCH not found (set LLAMA_BENCH)" >&2; exit 1; }
[ -x "$XLEDIT" ] || { echo "$0: $XLEDIT not found (set XLEDIT)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/compare_llamacpp.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# rate FILE N_PROMPT N_GEN: avg_ts of that test in a jsonl file
rate() { jq -r "select(.n_prompt == $2 and .n_gen == $3) | .avg_ts" "$1"; }
load() { cut -d' ' -f1 /proc/loadavg; }

echo "model $MODEL, threads $threads, pp$p tg$n, $r repetitions per run, $pairs pairs"
echo "$("$XLEDIT" --version) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), llama-bench $LLAMA_BENCH"
printf "%-5s %-6s %-6s %12s %12s %7s %12s %12s %7s\n" pair load_x load_l "xle pp$p" "llama pp$p" ratio \
  "xle tg$n" "llama tg$n" ratio
for i in $(seq 1 "$pairs"); do
  lx=$(load)
  "$XLEDIT" bench "$MODEL" -p "$p" -n "$n" -r "$r" -t "$threads" -o jsonl >"$tmp/x$i" 2>"$tmp/xerr" ||
    { echo "$0: xledit bench failed: $(tail -1 "$tmp/xerr")" >&2; exit 1; }
  ll=$(load)
  "$LLAMA_BENCH" -m "$MODEL" -p "$p" -n "$n" -r "$r" -t "$threads" -o jsonl >"$tmp/l$i" 2>"$tmp/lerr" ||
    { echo "$0: llama-bench failed: $(tail -1 "$tmp/lerr")" >&2; exit 1; }
  xp=$(rate "$tmp/x$i" "$p" 0) lp=$(rate "$tmp/l$i" "$p" 0)
  xg=$(rate "$tmp/x$i" 0 "$n") lg=$(rate "$tmp/l$i" 0 "$n")
  rp=$(awk -v a="$xp" -v b="$lp" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')
  rg=$(awk -v a="$xg" -v b="$lg" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')
  echo "$rp" >>"$tmp/rp"; echo "$rg" >>"$tmp/rg"
  printf "%-5s %-6s %-6s %12.2f %12.2f %7s %12.2f %12.2f %7s\n" "$i" "$lx" "$ll" "${xp:-0}" "${lp:-0}" "$rp" \
    "${xg:-0}" "${lg:-0}" "$rg"
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "median ratio xledit / llama.cpp: pp$p $(median "$tmp/rp"), tg$n $(median "$tmp/rg")"
