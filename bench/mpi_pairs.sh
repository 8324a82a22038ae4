#!/usr/bin/env bash
# mpi_pairs.sh XLEDIT MODEL CASES.jsonl STATS_DIR [PAIRS]: 1 rank x 2 threads (A) against
# 2 ranks x 1 thread (B, mpirun --bind-to core) on the same evaluation, alternating A B, PAIRS
# pairs (default 3); prints each run's load average, wall, user and system seconds, and
# whether the two runs' results are identical (docs/performance.md, "Several processes").
set -u
X=$1 M=$2 DATA=$3 STATS=$4 PAIRS=${5:-3}
export XLE_PROGRESS=off OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset OMP_NUM_THREADS
T=$(mktemp -d /tmp/xle_mpi_pairs.XXXXXX)
trap 'rm -rf "$T"' EXIT
ARGS=(--data "$DATA" --cases 2 --methods rome,memit --edit-langs en,hi,all --context-templates none
      --stats "$STATS" --quiet)
for i in $(seq 1 "$PAIRS"); do
    for k in A B; do
        rm -rf "$T/$k"
        load=$(cut -d' ' -f1 /proc/loadavg)
        if [ $k = A ]; then
            /usr/bin/time -f "%e %U %S" -o "$T/t" "$X" eval "$M" "${ARGS[@]}" --out "$T/$k" -t 2
        else
            /usr/bin/time -f "%e %U %S" -o "$T/t" mpirun --bind-to core -np 2 "$X" eval "$M" "${ARGS[@]}" --out "$T/$k" -t 1
        fi
        echo "pair $i $k load $load wall/user/sys $(cat "$T/t")"
    done
    cmp -s "$T/A/results.jsonl" "$T/B/results.jsonl" && echo "pair $i: results identical" || echo "pair $i: results differ"
done
