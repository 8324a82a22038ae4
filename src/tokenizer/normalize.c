/*
 * normalize.c: Unicode NFC (Qwen2's normalizer) with a map from normalized bytes back to input
 * offsets. The text is cut before every ASCII byte (no composition reaches across an ASCII
 * character: none composes with what precedes it, and reordering stops at a starter), each
 * piece is normalized with utf8proc, and a piece that changed maps all its bytes to its start,
 * so the token covering its first byte covers it whole. Unchanged text maps byte to byte.
 * Invalid UTF-8 is left as it is.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/tokenizer_internal.h"

int xle_tok_nfc(const char *text, size_t len, int32_t base, char **out, size_t *out_len,
                int32_t **orig) {
    /* NFC never grows a string by more than 3x (utf8proc's bound for composition is lower) */
    size_t cap = len + 16;
    char *s = malloc(cap);
    int32_t *m = malloc((cap + 1) * sizeof *m);
    if (!s || !m) goto oom;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && (uint8_t)text[j] >= 0x80) j++;
        /* text[i, j): one ASCII byte and the non-ASCII run after it, or a leading non-ASCII run */
        int plain = 1;
        for (size_t k = i; k < j && plain; k++) plain = (uint8_t)text[k] < 0x80;
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t nl = -1;
        if (!plain)
            nl = utf8proc_map((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(j - i), &nfc,
                              UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        int changed = nl >= 0 && ((size_t)nl != j - i || memcmp(nfc, text + i, j - i) != 0);
        size_t add = changed ? (size_t)nl : j - i;
        if (n + add > cap) {
            while (n + add > cap) cap *= 2;
            char *s2 = realloc(s, cap);
            int32_t *m2 = s2 ? realloc(m, (cap + 1) * sizeof *m) : NULL;
            if (s2) s = s2;
            if (!m2) {
                free(nfc);
                goto oom;
            }
            m = m2;
        }
        if (changed) {
            memcpy(s + n, nfc, add);
            for (size_t k = 0; k < add; k++) m[n + k] = base + (int32_t)i;
        } else {
            memcpy(s + n, text + i, add);
            for (size_t k = 0; k < add; k++) m[n + k] = base + (int32_t)(i + k);
        }
        free(nfc);
        n += add;
        i = j;
    }
    m[n] = base + (int32_t)len;
    *out = s;
    *out_len = n;
    *orig = m;
    return 0;
oom:
    free(s);
    free(m);
    return -1;
}
