/*
 * progress.h: the one progress display of the xledit tool, for any work that takes more than a
 * few seconds. The library never prints: it reports (done, total) through a callback, and the
 * command feeds that to a cli_progress.
 *
 * On a terminal (stderr is a tty) a live line is rewritten in place (\r) at most every 0.25 s:
 *     eval: 12/96 units (12%)  3.4 units/min  ETA 4m10s
 * Otherwise (CI logs, pipes) a plain line every XLE_PROGRESS_INTERVAL seconds (default 30):
 *     xledit eval: 12/96 units (12.5%), 3.4 units/min, 3m32s elapsed, ETA 4m10s
 * and, if any was printed, a last one when the work ends. The rate and the ETA count only the
 * work done since the first update (resumed work is not counted as done at infinite speed).
 * XLE_PROGRESS=live|plain|off overrides the choice (tests use it; `off` silences it).
 *
 * Usage:
 *     cli_progress p;
 *     cli_progress_begin(&p, "stats", "tokens");
 *     ... cli_progress_update(&p, done, total) ...  (or pass cli_progress_callback, &p)
 *     cli_progress_end(&p);                          before printing results on stdout
 */
#ifndef XLE_CLI_PROGRESS_H
#define XLE_CLI_PROGRESS_H

#include <stdint.h>

typedef enum cli_progress_mode { CLI_PROGRESS_OFF, CLI_PROGRESS_LIVE, CLI_PROGRESS_PLAIN } cli_progress_mode;

typedef struct cli_progress {
    const char *what;       /* the line's label ("eval"); a string that outlives the display */
    const char *unit;       /* what is counted ("units", "tokens", "MB") */
    double scale;           /* raw counts per shown unit (1e6 to show bytes as MB); 1 by default */
    cli_progress_mode mode;
    double interval_s;      /* plain mode: seconds between lines */
    double t_first, t_last_line;
    int64_t first_done, done, total;
    int started;            /* an update has been seen */
    int live_shown;         /* a live line is on the terminal, not yet ended by a newline */
    int plain_lines;        /* plain lines printed so far */
    int64_t plain_done;     /* `done` as the last plain line showed it */
    char note[96];          /* shown after the ETA (cli_progress_note) */
} cli_progress;

/* Starts a display labelled `what` counting `unit`; picks the mode from stderr and the
 * environment. Nothing is printed until the first update. */
void cli_progress_begin(cli_progress *p, const char *what, const char *unit);
/* Silences the display (--quiet). */
void cli_progress_quiet(cli_progress *p);
/* Reports done out of total (total <= 0: unknown, no percentage or ETA). Prints when due. */
void cli_progress_update(cli_progress *p, int64_t done, int64_t total);
/* Sets a short text shown after the ETA from the next line on (e.g. "loss 2.31"); NULL clears. */
void cli_progress_note(cli_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An xle_progress_fn that updates the cli_progress in `user`; returns 0 (never interrupts:
 * commands that stop on Ctrl-C wrap it and return their flag). */
int cli_progress_callback(void *user, int64_t done, int64_t total);
/* Ends the display: the live line gets its newline (the last figures shown), and a plain
 * display that printed anything prints its last line. Safe to call twice or without updates. */
void cli_progress_end(cli_progress *p);

/* "1h02m", "4m10s", "12s": a duration for people. */
void cli_format_duration(double seconds, char *buf, int cap);

#endif
