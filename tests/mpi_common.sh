# mpi_common.sh: the preamble the MPI tests share (tests/cli_mpi_*.sh), sourced after they set
# NAME (the test's name), XLEDIT and SRC. It skips the test (exit 77) when mpirun is missing or
# xledit was built without MPI, lets OpenMPI run as root (CI runs as root; OpenMPI refuses it
# unless told), turns LeakSanitizer off (below), and gives the test:
#   MPIRUN  mpirun with the options every test uses (oversubscribed: CI has 2 cores)
#   T       a temporary folder, removed at exit
#   pid     a background job's process id, killed at exit when set
#   fail    prints FAIL: MESSAGE and exits 1
if ! command -v mpirun > /dev/null; then
    echo "$NAME: SKIPPED: no mpirun (scripts/setup.sh installs openmpi-bin)"
    exit 77
fi
if [ "${XLE_MPI:-ON}" != "ON" ]; then
    echo "$NAME: SKIPPED: xledit was built without MPI (XLE_MPI=${XLE_MPI:-})"
    exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under the sanitizers: Open MPI (libmpi, libopen-pal, PMIx, hwloc) allocates for the life of
# the process and frees little at MPI_Finalize, which LeakSanitizer would report as leaks of
# these tests; leak checking is off for them only (ASan's other checks stay on). The code they
# share with one process (the run, the statistics pass) is leak-checked by test_eval_run,
# test_edit_text and cli_eval.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export OMP_NUM_THREADS=1 XLE_PROGRESS=off
MPIRUN=(mpirun --oversubscribe --bind-to none)
T="$(mktemp -d "/tmp/xle_$NAME.XXXXXX")"
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2> /dev/null; rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
