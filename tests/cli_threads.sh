#!/usr/bin/env bash
# cli_threads.sh XLEDIT SRCDIR: the -t/--threads option of every command that computes: its
# --help shows it (and says how it meets OMP_NUM_THREADS); a bad value is one error line on
# stderr, exit 2, nothing on stdout; and stories260K's greedy ids (run.c's, from
# shared/data/external/stories260k) are the same with 1, 2, 3 and 4 threads, through the
# one-token steps and through a 100-token prompt (the batched products and attention), with
# -t and with OMP_NUM_THREADS; and the default wait policy (GOMP_SPINCOUNT, when strace is there).
set -u
XLEDIT="$1"
SRC="$2"
SHARED="${XLE_SHARED_DIR:-$SRC/../shared}"
STORIES="$SHARED/data/external/stories260k"
T="$(mktemp -d /tmp/xle_cli_threads.XXXXXX)"
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

computing="demo logits generate score stats edit patch eval merge train facts-check bench"

# --help of every computing command shows -t/--threads and OMP_NUM_THREADS
for c in $computing; do
  "$XLEDIT" $c --help >"$T/help" 2>"$T/err" || fail "$c --help: exit $?"
  grep -q -- "-t, --threads N" "$T/help" || fail "$c --help: no -t, --threads N"
  grep -q -- "OMP_NUM_THREADS" "$T/help" || fail "$c --help: no word on OMP_NUM_THREADS"
  awk '/^$/{exit} {print}' "$T/help" | grep -q -- "\[-t N" || fail "$c --help: the usage lines lack [-t N]"
done

# a bad thread count: one line naming the option, exit 2, no output (every kind on generate)
for c in $computing; do
  bads=(0 abc)
  [ "$c" = generate ] && bads=(0 -1 abc 1025 "" 2x)
  for bad in "${bads[@]}"; do
    "$XLEDIT" $c -t "$bad" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq 2 ] || fail "$c -t '$bad': exit $rc, expected 2"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$c -t '$bad': $(wc -l <"$T/err") lines on stderr"
    grep -q -- "-t/--threads" "$T/err" || fail "$c -t '$bad': the error does not name -t/--threads: $(cat "$T/err")"
    [ -s "$T/out" ] && fail "$c -t '$bad': wrote to stdout"
  done
  "$XLEDIT" $c --threads=0 >"$T/out" 2>"$T/err"
  [ $? -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$c --threads=0: not one usage error"
done

# greedy ids of stories260K in every thread count
want40=$(head -c 100000 "$STORIES/greedy200_ids.txt" | tr -s ' \n' ' ' | cut -d' ' -f1-40)
prompt=$(tr -s ' \n' ' ' <"$STORIES/greedy200_ids.txt" | cut -d' ' -f1-99 | tr ' ' ',')
want_after=$(tr -s ' \n' ' ' <"$STORIES/greedy200_ids.txt" | cut -d' ' -f100-199)
for m in stories260K.bin stories260K.gguf; do
  for t in 1 2 3 4; do
    got=$("$XLEDIT" generate "$STORIES/$m" --ids 1 -n 40 --print-ids -t $t 2>"$T/err") ||
      fail "generate $m -t $t: $(cat "$T/err")"
    [ "$got" = "$want40" ] || fail "generate $m -t $t: ids differ from run.c's: $got"
    got=$("$XLEDIT" generate "$STORIES/$m" --ids "1,$prompt" -n 100 --print-ids --threads $t 2>"$T/err") ||
      fail "generate $m (100-token prompt) -t $t: $(cat "$T/err")"
    [ "$got" = "$want_after" ] || fail "generate $m (100-token prompt) -t $t: ids differ from run.c's: $got"
  done
  got=$(OMP_NUM_THREADS=3 "$XLEDIT" generate "$STORIES/$m" --ids "1,$prompt" -n 100 --print-ids 2>"$T/err") ||
    fail "OMP_NUM_THREADS=3 generate $m: $(cat "$T/err")"
  [ "$got" = "$want_after" ] || fail "OMP_NUM_THREADS=3 generate $m: ids differ from run.c's"
done

# the wait policy: without GOMP_SPINCOUNT / OMP_WAIT_POLICY the program runs itself again once
# with GOMP_SPINCOUNT set (libgomp reads it at load time); a user's setting is left alone
if command -v strace >/dev/null; then
  args=(generate "$STORIES/stories260K.bin" --ids 1 -n 2 --print-ids)
  unset_all="-u GOMP_SPINCOUNT -u OMP_WAIT_POLICY -u OPENBLAS_THREAD_TIMEOUT -u GOTO_THREAD_TIMEOUT"
  env $unset_all strace -f -e trace=execve -o "$T/trace" "$XLEDIT" "${args[@]}" >/dev/null 2>&1
  [ "$(grep -c 'execve(' "$T/trace")" -eq 2 ] || fail "no re-exec: $(cat "$T/trace")"
  grep -q 'execve("/proc/self/exe"' "$T/trace" || fail "the re-exec is not of /proc/self/exe: $(cat "$T/trace")"
  for e in "GOMP_SPINCOUNT=5000 OPENBLAS_THREAD_TIMEOUT=20" "OMP_WAIT_POLICY=passive GOTO_THREAD_TIMEOUT=4"; do
    env $unset_all $e strace -f -e trace=execve -o "$T/trace" "$XLEDIT" "${args[@]}" >/dev/null 2>&1
    [ "$(grep -c 'execve(' "$T/trace")" -eq 1 ] || fail "$e: the program ran itself again"
  done
  env $unset_all GOMP_SPINCOUNT=5000 strace -f -e trace=execve -o "$T/trace" "$XLEDIT" "${args[@]}" >/dev/null 2>&1
  [ "$(grep -c 'execve(' "$T/trace")" -eq 2 ] || fail "OPENBLAS_THREAD_TIMEOUT unset: no re-exec"
fi

[ "$fails" -eq 0 ] && echo "cli_threads: all passed"
exit $((fails > 0))
