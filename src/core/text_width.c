/*
 * text_width.c: how wide UTF-8 text is on a terminal, for tables that line up in every script.
 * A byte count pads Devanagari, Tamil or Kannada by two or three times too little (three bytes
 * per code point, several code points per visible character); here a grapheme cluster counts
 * as terminals draw it: its base character (2 columns for East Asian wide ones), plus one per
 * spacing vowel sign, nothing for non-spacing marks: what the C library's wcswidth says, without
 * depending on the process's locale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "xledit.h"

/* The code point at s (*len bytes, >= 1) or -1 for a byte that does not start valid UTF-8. */
static utf8proc_int32_t next_cp(const char *s, utf8proc_ssize_t *len) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, -1, &cp);
    if (k <= 0) {
        *len = 1;
        return -1;
    }
    *len = k;
    return cp;
}

/* Columns of one code point: an invalid byte prints as one replacement character, a control
 * character as nothing. A spacing vowel sign (category Mc: Devanagari ि, Tamil ா) takes a cell
 * of its own on terminals (xterm, VTE, Konsole, and tmux, less and readline through the C
 * library's wcwidth), though utf8proc gives it 0; non-spacing marks (virama, nukta) take none. */
static int cp_width(utf8proc_int32_t cp) {
    if (cp < 0) return 1;
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
    if (utf8proc_category(cp) == UTF8PROC_CATEGORY_MC) return 1;
    int w = utf8proc_charwidth(cp);
    return w > 0 ? w : 0;
}

int xle_text_width(const char *s) {
    int w = 0;
    while (*s) {
        utf8proc_ssize_t k;
        w += cp_width(next_cp(s, &k));
        s += k;
    }
    return w;
}

size_t xle_text_fit(const char *s, int cols) {
    size_t fit = 0, pos = 0;
    int w = 0;
    utf8proc_int32_t prev = -1, state = 0;
    while (s[pos]) {
        utf8proc_ssize_t k;
        utf8proc_int32_t cp = next_cp(s + pos, &k);
        int brk = 1; /* a cluster ends before cp: everything up to here is whole */
        if (pos > 0 && prev >= 0 && cp >= 0) brk = utf8proc_grapheme_break_stateful(prev, cp, &state);
        else state = 0;
        if (brk) fit = pos;
        w += cp_width(cp);
        if (w > cols) return fit;
        prev = cp;
        pos += (size_t)k;
    }
    return pos;
}

size_t xle_text_cell(char *out, size_t cap, const char *s, int cols, int align_right) {
    if (cap == 0) return 0;
    size_t len = strlen(s);
    int w = xle_text_width(s);
    const char *ellipsis = "";
    if (w > cols) { /* cut between clusters, room for the ellipsis */
        len = xle_text_fit(s, cols > 0 ? cols - 1 : 0);
        ellipsis = cols > 0 ? "\xE2\x80\xA6" : ""; /* U+2026 */
        char *head = strndup(s, len);
        w = (head ? xle_text_width(head) : cols - 1) + (cols > 0);
        free(head);
    }
    int pad = cols > w ? cols - w : 0;
    int n = snprintf(out, cap, "%*s%.*s%s%*s", align_right ? pad : 0, "", (int)len, s, ellipsis,
                     align_right ? 0 : pad, "");
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
