#!/usr/bin/env bash
# cli_mpi_stats.sh XLEDIT SRCDIR: `mpirun -np N xledit stats` on the built-in model
# (docs/scale.md). With 2 and 3 ranks (oversubscribed) the cache is the one process's:
# stats.json equal (same count, tokens, documents, options), and every entry of Σ k kᵀ within
# 1e-12 of it relative to sqrt(S_ii S_jj) (the Cauchy-Schwarz bound on |S_ij|; only the order
# of summation differs). A partial cache left by an interrupted one-process run (SIGINT) is
# finished by 2 ranks with the same result.
# Skips (exit 77) without mpirun or MPI in the build; root: see tests/mpi_common.sh.
set -u
XLEDIT="$1"
SRC="$2"
MODEL="$SRC/models/xledit-mini"
NAME=cli_mpi_stats
# shellcheck source=tests/mpi_common.sh
source "$SRC/tests/mpi_common.sh"

"$XLEDIT" world corpus --data "$SRC/data/world" --out "$T/corpus.txt" > /dev/null || fail "world corpus"
# 7 batches of 4096 tokens at layers 0 and 2 (3 under the sanitizers)
TOKENS=28000
if [ "${XLE_SANITIZED:-OFF}" = "ON" ]; then TOKENS=12000; fi
ARGS=(--layers 0,2 --corpus "$T/corpus.txt" --max-tokens $TOKENS)
"$XLEDIT" stats "$MODEL" "${ARGS[@]}" --out "$T/one" > /dev/null || fail "1-process stats"

# within DIR_A DIR_B LAYER: the largest |a_ij - b_ij| / sqrt(a_ii a_jj) is at most 1e-12
within() {
    local d
    d=$(jq .options.dim "$1/stats.json")
    paste <(od -A n -t f8 -v -w8 "$1/layer-$3.f64") <(od -A n -t f8 -v -w8 "$2/layer-$3.f64") |
        awk -v d="$d" '{ a[NR - 1] = $1; b[NR - 1] = $2 }
            END {
                if (NR != d * d) { print "size " NR " != " d "x" d; exit 1 }
                worst = 0
                for (i = 0; i < NR; i++) {
                    r = int(i / d); c = i % d
                    s = sqrt(a[r * d + r] * a[c * d + c]); if (s == 0) s = 1
                    e = a[i] - b[i]; if (e < 0) e = -e
                    if (e / s > worst) worst = e / s
                }
                if (worst > 1e-12) { print "largest relative difference " worst; exit 1 }
            }'
}
same_cache() { # DIR_A DIR_B WHAT
    cmp -s <(jq -S . "$1/stats.json") <(jq -S . "$2/stats.json") ||
        fail "$3: stats.json differs: $(diff <(jq -S . "$1/stats.json") <(jq -S . "$2/stats.json") | tr '\n' ' ')"
    for l in 0 2; do
        msg=$(within "$1" "$2" $l) || fail "$3: layer $l: $msg"
    done
}

for np in 2 3; do
    "${MPIRUN[@]}" -np $np "$XLEDIT" stats "$MODEL" "${ARGS[@]}" --out "$T/np$np" > "$T/np$np.out" 2>&1 ||
        fail "mpirun -np $np stats: $(tail -5 "$T/np$np.out")"
    grep -qx "$T/np$np" "$T/np$np.out" || fail "$np ranks: rank 0 prints the folder once: $(cat "$T/np$np.out")"
    [ "$(grep -c "^$T/np$np\$" "$T/np$np.out")" -eq 1 ] || fail "$np ranks: the folder printed more than once"
    same_cache "$T/one" "$T/np$np" "$np ranks"
done

# a partial cache (one process, Ctrl-C after its first batch) finished by 2 ranks
XLE_PROGRESS=plain XLE_PROGRESS_INTERVAL=0 "$XLEDIT" stats "$MODEL" "${ARGS[@]}" --out "$T/part" > /dev/null 2> "$T/part.err" &
pid=$!
for _ in $(seq 1 3000); do
    grep -q "tokens" "$T/part.err" 2> /dev/null && break
    kill -0 $pid 2> /dev/null || break
    sleep 0.02
done
kill -INT $pid 2> /dev/null
wait $pid
rc=$?
pid=""
if [ $rc -eq 0 ]; then
    echo "note: the one-process run finished before SIGINT; the partial-cache case was not exercised"
else
    [ "$(jq .complete "$T/part/stats.json")" = false ] || fail "interrupted stats: stats.json is not partial"
    "${MPIRUN[@]}" -np 2 "$XLEDIT" stats "$MODEL" "${ARGS[@]}" --out "$T/part" > "$T/part.out" 2>&1 ||
        fail "2 ranks finishing a partial cache: $(tail -5 "$T/part.out")"
    same_cache "$T/one" "$T/part" "partial cache finished by 2 ranks"
fi
echo "cli_mpi_stats: ok"
