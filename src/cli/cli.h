/*
 * cli.h: the subcommands of the xledit tool. Each lives in its own cmd_<name>.c and returns a
 * process exit code (0 ok, 1 failure, 2 usage error). Errors are printed as one line on stderr:
 * "xledit <cmd>: <message>".
 */
#ifndef XLE_CLI_H
#define XLE_CLI_H

#include <stdio.h>

#include "xledit.h"

typedef int (*xle_cmd_fn)(int argc, char **argv);

int cmd_demo(int argc, char **argv);    /* cmd_demo.c */
int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_stats(int argc, char **argv);   /* cmd_edit.c */
int cmd_edit(int argc, char **argv);    /* cmd_edit.c */
int cmd_patch(int argc, char **argv);   /* cmd_edit.c */
int cmd_convert(int argc, char **argv); /* cmd_edit.c */
int cmd_import(int argc, char **argv);   /* cmd_import.c */
int cmd_validate(int argc, char **argv); /* cmd_import.c */
int cmd_eval(int argc, char **argv);     /* cmd_eval.c */
int cmd_report(int argc, char **argv);   /* cmd_report.c */
int cmd_merge(int argc, char **argv);    /* cmd_merge.c */
int cmd_train_tokenizer(int argc, char **argv); /* cmd_train.c */
int cmd_train(int argc, char **argv);           /* cmd_train.c */
int cmd_facts_check(int argc, char **argv);     /* cmd_train.c */
int cmd_world(int argc, char **argv);           /* cmd_world.c */
int cmd_bench(int argc, char **argv);           /* cmd_bench.c */
int cmd_trace(int argc, char **argv);           /* cmd_trace.c */

/* Prints "xledit <cmd>: <err->msg>" to stderr and returns 1. */
int cli_report(const char *cmd, const xle_error *err);
/* Prints a usage error to stderr and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses "1,2,3" into a malloc'd array; returns 0 on error. */
int cli_parse_ids(const char *s, int32_t **ids, int *n);
/* Token ids from exactly one of --ids (ids_arg) or --text (text, via the model's tokenizer;
 * add_bos as in xle_tokenize). Returns 0 and a malloc'd *ids, or the exit code to return. */
int cli_prompt_ids(const char *cmd, xle_model *model, const char *ids_arg, const char *text,
                   int add_bos, int32_t **ids, int *n);
/* --chat: the chat template of the model folder model_path (its tokenizer_config.json).
 * Returns 0 and *out (xle_chat_template_free), or the exit code after one line. */
int cli_chat_template_load(const char *cmd, const char *model_path, xle_chat_template **out);
/* Returns 1 (after printing one line) if an id is outside the model's vocabulary. */
int cli_check_ids(const char *cmd, const xle_model *model, const int32_t *ids, int n, const char *opt);

/* -t/--threads N, taken by every command that computes: parses N (1..CLI_MAX_THREADS) and
 * computes with N threads from now on; returns 0, or the usage error's exit code. */
#define CLI_MAX_THREADS 1024
int cli_threads_option(const char *cmd, const char *arg);
/* The default thread count, set by main before any command: OMP_NUM_THREADS when it is set
 * (OpenMP has read it), else every CPU in this process's affinity mask. */
void cli_threads_default(void);
/* How idle threads wait. libgomp spins GOMP_SPINCOUNT times (300,000 by default,
 * milliseconds) before it sleeps, OpenBLAS's threads yield in a loop for 2^28 cycles (0.1 s);
 * on cores shared with other processes a spinning thread uses up its share of the core and is
 * then descheduled for a whole time slice while its team waits for it at the next barrier
 * (docs/performance.md, "Threads on busy cores": two threads were 300x slower than one). When
 * the user has set neither, this sets GOMP_SPINCOUNT=CLI_GOMP_SPINCOUNT (spin ~50-100 us, then
 * sleep: long enough to bridge the serial work between two products of a generated token, so
 * that the second thread is awake for every product instead of waking from sleep for each;
 * docs/performance.md, "Quantized GGUF") and OPENBLAS_THREAD_TIMEOUT=CLI_OPENBLAS_THREAD_TIMEOUT (2^14 cycles, ~6 us)
 * and runs the program again from the start (both libraries read them only at load time).
 * Called first thing in main. */
#define CLI_GOMP_SPINCOUNT "1000"
#define CLI_OPENBLAS_THREAD_TIMEOUT "14"
void cli_threads_wait_policy(char **argv);
/* The -t/--threads paragraph of every computing command's --help. */
void cli_threads_help(FILE *out);

/* --precision exact|bf16 of the commands that run inference (logits, score, generate, bench):
 * parses arg into *out; returns 0, or the usage error's exit code. */
int cli_precision_option(const char *cmd, const char *arg, xle_precision *out);
/* The --precision paragraph of their --help; dflt is the command's default. */
void cli_precision_help(FILE *out, xle_precision dflt);

/* The key-statistics directory: `given` when set, else the per-model cache
 * $XDG_CACHE_HOME/xledit/stats/<fingerprint> (or ~/.cache/...). */
int cli_stats_dir(xle_model *model, const char *given, char *out, size_t cap);

/* Several processes (src/cli/mpi.c, docs/scale.md). cli_mpi_start fills comm: a single
 * process (size 1) unless an MPI launcher started this one and xledit was built with MPI; it
 * warns when ranks x threads exceed the CPUs. Returns 1 when there are several processes, 0
 * for one, -1 after printing why MPI cannot be used. cli_mpi_finish ends MPI; with failed set
 * (this process is stopping on an error) it ends the whole job, since the others may be
 * waiting for it. */
int cli_mpi_start(const char *cmd, xle_comm *comm);
void cli_mpi_finish(const xle_comm *comm, int failed);

/* mkdir -p of the folder holding path (nothing when it has none); 0 or -1 with errno. */
int cli_make_parent_dirs(const char *path);

#endif
