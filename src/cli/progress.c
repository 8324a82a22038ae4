/*
 * progress.c: the progress display of the xledit tool (progress.h): a live line with rate and
 * ETA on a terminal, a plain line every ~30 s in logs and pipes.
 */
#include "cli/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define LIVE_REDRAW_S 0.25     /* a terminal line redrawn more often only flickers */
#define PLAIN_INTERVAL_S 30.0  /* one line per half minute keeps a CI log readable */

static double monotonic_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_format_duration(double seconds, char *buf, int cap) {
    long t = seconds > 0 ? (long)(seconds < 3.6e8 ? seconds + 0.5 : 3.6e8) : 0; /* < 100000 h */
    if (t >= 3600) snprintf(buf, (size_t)cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, (size_t)cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, (size_t)cap, "%lds", t);
}

void cli_progress_begin(cli_progress *p, const char *what, const char *unit) {
    memset(p, 0, sizeof *p);
    p->what = what;
    p->unit = unit;
    p->scale = 1;
    p->mode = isatty(STDERR_FILENO) ? CLI_PROGRESS_LIVE : CLI_PROGRESS_PLAIN;
    const char *force = getenv("XLE_PROGRESS");
    if (force && !strcasecmp(force, "live")) p->mode = CLI_PROGRESS_LIVE;
    else if (force && !strcasecmp(force, "plain")) p->mode = CLI_PROGRESS_PLAIN;
    else if (force && (!strcasecmp(force, "off") || !strcmp(force, "0"))) p->mode = CLI_PROGRESS_OFF;
    p->interval_s = PLAIN_INTERVAL_S;
    const char *interval = getenv("XLE_PROGRESS_INTERVAL");
    if (interval && *interval) {
        char *end;
        double v = strtod(interval, &end);
        if (!*end && v >= 0 && v < 1e9) p->interval_s = v;
    }
}

void cli_progress_quiet(cli_progress *p) {
    p->mode = CLI_PROGRESS_OFF;
}

void cli_progress_note(cli_progress *p, const char *fmt, ...) {
    if (!fmt) {
        p->note[0] = 0;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note, sizeof p->note, fmt, ap);
    va_end(ap);
}

/* "3.4 units/min", "120 tokens/s": the rate in the unit that gives a readable number. */
static void format_rate(const cli_progress *p, double per_s, char *buf, size_t cap) {
    if (per_s >= 10) snprintf(buf, cap, "%.0f %s/s", per_s, p->unit);
    else if (per_s >= 1) snprintf(buf, cap, "%.1f %s/s", per_s, p->unit);
    else if (per_s * 60 >= 1) snprintf(buf, cap, "%.1f %s/min", per_s * 60, p->unit);
    else snprintf(buf, cap, "%.2f %s/h", per_s * 3600, p->unit);
}

/* A count in the shown unit: "12", "340.5" (MB). */
static void format_count(const cli_progress *p, int64_t n, char *buf, size_t cap) {
    if (p->scale == 1) snprintf(buf, cap, "%lld", (long long)n);
    else snprintf(buf, cap, "%.1f", (double)n / p->scale);
}

/* The figures of one line: counts, percentage, rate, elapsed/ETA; `sep` between fields. */
static void format_line(const cli_progress *p, double now, int plain, char *buf, size_t cap) {
    char done[32], total[32], rate[48] = "", el[48], eta[48];
    format_count(p, p->done, done, sizeof done);
    double elapsed = now - p->t_first;
    double per_s = elapsed > 0 ? (double)(p->done - p->first_done) / p->scale / elapsed : 0;
    if (p->done > p->first_done && elapsed > 0) format_rate(p, per_s, rate, sizeof rate);
    cli_format_duration(elapsed, el, sizeof el);
    const char *sep = plain ? ", " : "  ";
    size_t n = 0;
    if (p->total > 0) {
        format_count(p, p->total, total, sizeof total);
        double pct = 100.0 * (double)p->done / (double)p->total;
        n += (size_t)snprintf(buf + n, cap - n, plain ? "%s/%s %s (%.1f%%)" : "%s/%s %s (%.0f%%)",
                              done, total, p->unit, pct);
    } else {
        n += (size_t)snprintf(buf + n, cap - n, "%s %s", done, p->unit);
    }
    if (n < cap && rate[0]) n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep, rate);
    int finished = p->total > 0 && p->done >= p->total;
    if (n < cap && (plain || finished))
        n += (size_t)snprintf(buf + n, cap - n, "%s%s %s", sep, el, finished ? "in all" : "elapsed");
    if (n < cap && !finished && p->total > 0 && per_s > 0) {
        cli_format_duration((double)(p->total - p->done) / p->scale / per_s, eta, sizeof eta);
        n += (size_t)snprintf(buf + n, cap - n, "%sETA %s", sep, eta);
    }
    if (n < cap && p->note[0]) snprintf(buf + n, cap - n, "%s%s", sep, p->note);
}

static int terminal_columns(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col;
    return 100;
}

static void print_live(cli_progress *p, double now) {
    char line[320];
    int n = snprintf(line, sizeof line, "%s: ", p->what);
    format_line(p, now, 0, line + n, sizeof line - (size_t)n);
    /* a line longer than the terminal wraps, and \r then returns to its last row only */
    int cols = terminal_columns() - 1;
    if ((int)strlen(line) > cols) line[cols] = 0;
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->live_shown = 1;
    p->t_last_line = now;
}

static void print_plain(cli_progress *p, double now) {
    char line[320];
    format_line(p, now, 1, line, sizeof line);
    fprintf(stderr, "xledit %s: %s\n", p->what, line);
    fflush(stderr);
    p->plain_lines++;
    p->plain_done = p->done;
    p->t_last_line = now;
}

void cli_progress_update(cli_progress *p, int64_t done, int64_t total) {
    if (p->mode == CLI_PROGRESS_OFF) return;
    double now = monotonic_s();
    if (!p->started) {
        p->started = 1;
        p->first_done = done;
        p->t_first = now;
        p->t_last_line = now;
    }
    p->done = done;
    p->total = total;
    int finished = total > 0 && done >= total;
    if (p->mode == CLI_PROGRESS_LIVE) {
        if (finished || !p->live_shown || now - p->t_last_line >= LIVE_REDRAW_S) print_live(p, now);
    } else if (now - p->t_last_line >= p->interval_s) {
        print_plain(p, now);
    }
}

int cli_progress_callback(void *user, int64_t done, int64_t total) {
    cli_progress_update(user, done, total);
    return 0;
}

void cli_progress_end(cli_progress *p) {
    if (p->mode == CLI_PROGRESS_OFF || !p->started) return;
    double now = monotonic_s();
    if (p->mode == CLI_PROGRESS_LIVE && p->live_shown) {
        print_live(p, now);
        fputc('\n', stderr);
        p->live_shown = 0;
    } else if (p->mode == CLI_PROGRESS_PLAIN && p->plain_lines > 0 && p->plain_done != p->done) {
        print_plain(p, now);
    }
    p->started = 0;
}
