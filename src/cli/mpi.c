/*
 * mpi.c: the xle_comm transport (include/xledit.h) on MPI, for `mpirun -np N xledit eval|stats`
 * (docs/scale.md). MPI is started only when a launcher started this process (mpirun, srun,
 * mpiexec: they set PMI/PMIx variables); run by hand, or built without MPI (XLE_MPI off), the
 * tool is one process exactly as before and nothing here touches MPI.
 *
 * Waiting never spins a core: a rank that waits for a message or a collective polls every
 * millisecond or so and sleeps in between (MPI's own blocking calls busy-poll, which would take
 * a core from the ranks that compute, and on process 0 from its own main thread).
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <limits.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#if XLE_MPI
#include <mpi.h>

#define MSG_TAG 7

/* Sleeps a little more each time up to 2 ms: a fast answer is noticed at once, a long wait
 * costs almost no CPU. */
static void pause_briefly(int *round) {
    long ns = *round < 50 ? 20000L : *round < 200 ? 200000L : 2000000L;
    (*round)++;
    struct timespec t = {0, ns};
    nanosleep(&t, NULL);
}

/* Waits for a request to complete without spinning. */
static int wait_quietly(MPI_Request *req, MPI_Status *status) {
    int done = 0, round = 0;
    for (;;) {
        if (MPI_Test(req, &done, status) != MPI_SUCCESS) return 1;
        if (done) return 0;
        pause_briefly(&round);
    }
}

static int comm_send(void *user, int dest, const void *data, size_t n) {
    (void)user;
    if (n > INT_MAX) return 1;
    MPI_Request req;
    if (MPI_Isend(data, (int)n, MPI_BYTE, dest, MSG_TAG, MPI_COMM_WORLD, &req) != MPI_SUCCESS) return 1;
    return wait_quietly(&req, MPI_STATUS_IGNORE);
}

static int comm_recv(void *user, int *source, char **data, size_t *n) {
    (void)user;
    MPI_Status st;
    int found = 0, round = 0, count = 0;
    for (;;) {
        if (MPI_Iprobe(MPI_ANY_SOURCE, MSG_TAG, MPI_COMM_WORLD, &found, &st) != MPI_SUCCESS) return 1;
        if (found) break;
        pause_briefly(&round);
    }
    MPI_Get_count(&st, MPI_BYTE, &count);
    *data = malloc((size_t)count + 1);
    if (!*data) return 1;
    if (MPI_Recv(*data, count, MPI_BYTE, st.MPI_SOURCE, MSG_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        free(*data);
        *data = NULL;
        return 1;
    }
    (*data)[count] = 0;
    *source = st.MPI_SOURCE;
    *n = (size_t)count;
    return 0;
}

static int comm_bcast(void *user, void *data, size_t n) {
    (void)user;
    if (n > INT_MAX) return 1;
    MPI_Request req;
    if (MPI_Ibcast(data, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD, &req) != MPI_SUCCESS) return 1;
    return wait_quietly(&req, MPI_STATUS_IGNORE);
}

/* In chunks: MPI counts are ints, and a 7B model's f x f sums are 10^8 doubles per layer. */
static int comm_sum_f64(void *user, double *data, size_t n) {
    (void)user;
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const size_t chunk = (size_t)1 << 24;
    for (size_t at = 0; at < n; at += chunk) {
        int k = (int)(n - at < chunk ? n - at : chunk);
        MPI_Request req;
        int rc = rank == 0 ? MPI_Ireduce(MPI_IN_PLACE, data + at, k, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD, &req)
                           : MPI_Ireduce(data + at, NULL, k, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS || wait_quietly(&req, MPI_STATUS_IGNORE)) return 1;
    }
    return 0;
}

static int launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

/* CPUs this process may run on, and ranks on this node. */
static int cpus_here(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int cli_mpi_start(const char *cmd, xle_comm *comm) {
    memset(comm, 0, sizeof *comm);
    comm->size = 1;
    if (!launched_by_mpi()) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "xledit %s: MPI could not start\n", cmd);
        return -1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &comm->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &comm->size);
    if (provided < MPI_THREAD_SERIALIZED && comm->size > 1) {
        if (comm->rank == 0)
            fprintf(stderr, "xledit %s: this MPI does not allow a helper thread (MPI_THREAD_SERIALIZED)\n", cmd);
        MPI_Finalize();
        return -1;
    }
    comm->send = comm_send;
    comm->recv = comm_recv;
    comm->bcast = comm_bcast;
    comm->sum_f64 = comm_sum_f64;
    /* ranks x threads against the CPUs of a node, and threads against what a rank is bound to */
    MPI_Comm node;
    int local = 1, local_rank = 0;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_free(&node);
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = omp_get_max_threads(), bound = cpus_here();
    if (local_rank == 0 && online > 0 && (long)local * threads > online)
        fprintf(stderr, "xledit %s: warning: %d ranks x %d threads on this node exceed its %ld CPUs "
                "(fewer ranks, or -t / OMP_NUM_THREADS per rank)\n", cmd, local, threads, online);
    else if (comm->rank == 0 && threads > bound)
        fprintf(stderr, "xledit %s: warning: %d threads per rank but each rank may use %d CPU%s "
                "(mpirun binds ranks: add --map-by slot:PE=%d or --bind-to none)\n", cmd, threads, bound,
                bound == 1 ? "" : "s", threads);
    return comm->size > 1;
}

void cli_mpi_finish(const xle_comm *comm, int failed) {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    MPI_Finalized(&down);
    if (!up || down) return;
    if (failed && comm->size > 1) MPI_Abort(MPI_COMM_WORLD, failed); /* the others may be waiting */
    MPI_Finalize();
}

#else /* XLE_MPI off: one process */

int cli_mpi_start(const char *cmd, xle_comm *comm) {
    (void)cmd;
    memset(comm, 0, sizeof *comm);
    comm->size = 1;
    const char *size = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (size && atoi(size) > 1) { /* every rank would write the same folder */
        fprintf(stderr, "xledit %s: started by an MPI launcher with %s ranks, but this xledit was "
                "built without MPI (XLE_MPI off)\n", cmd, size);
        return -1;
    }
    return 0;
}

void cli_mpi_finish(const xle_comm *comm, int failed) { (void)comm, (void)failed; }

#endif
