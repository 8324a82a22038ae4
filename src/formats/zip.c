/*
 * zip.c: the zip central directory (PKWARE APPNOTE 4.3.12-4.3.16, zip64 4.3.14-4.3.15 and the
 * 0x0001 extra field) read from a memory mapping, for torch.save archives. Hand-written
 * rather than libzip: torch.save stores every member uncompressed and 64-byte aligned so that
 * tensors can be used in place, and libzip has no public call giving a member's data offset;
 * here each stored member becomes a pointer into the mapping. CRCs are not checked (that
 * would read every byte of a multi-gigabyte checkpoint at load); the data.pkl parser checks
 * what it reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/torchbin.h"

#define ZIP_EOCD_SIG 0x06054b50u
#define ZIP64_LOCATOR_SIG 0x07064b50u
#define ZIP64_EOCD_SIG 0x06064b50u
#define ZIP_CENTRAL_SIG 0x02014b50u
#define ZIP_LOCAL_SIG 0x04034b50u
#define ZIP_MAX_NAME 4096

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

void xle_zip_free(xle_zip *z) {
    if (!z) return;
    for (int i = 0; i < z->n; i++) free(z->members[i].name);
    free(z->members);
    free(z);
}

static int cmp_member(const void *a, const void *b) {
    return strcmp(((const xle_zip_member *)a)->name, ((const xle_zip_member *)b)->name);
}

const xle_zip_member *xle_zip_find(const xle_zip *z, const char *name) {
    xle_zip_member key = {.name = (char *)name};
    return bsearch(&key, z->members, (size_t)z->n, sizeof key, cmp_member);
}

/* The end-of-central-directory record: the last signature whose comment ends the file. */
static const uint8_t *find_eocd(const uint8_t *base, size_t size) {
    if (size < 22) return NULL;
    size_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
    for (size_t at = size - 22 + 1; at-- > lowest;)
        if (rd32(base + at) == ZIP_EOCD_SIG && at + 22 + rd16(base + at + 20) == size) return base + at;
    return NULL;
}

typedef struct cd_span {
    uint64_t offset, bytes, count;
} cd_span;

static xle_status read_directory_span(const char *path, const uint8_t *base, size_t size,
                                      cd_span *cd, xle_error *err) {
    const uint8_t *e = find_eocd(base, size);
    if (!e)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: not a zip archive (no end of central directory; "
                        "torch.save files before PyTorch 1.6 are not supported)", path);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: multi-disk archives are not supported", path);
    cd->count = rd16(e + 10);
    cd->bytes = rd32(e + 12);
    cd->offset = rd32(e + 16);
    if (cd->count != 0xFFFF && cd->bytes != 0xFFFFFFFFu && cd->offset != 0xFFFFFFFFu) return XLE_OK;
    size_t at = (size_t)(e - base);
    if (at < 20 || rd32(e - 20) != ZIP64_LOCATOR_SIG)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: zip64 end-of-directory locator missing", path);
    uint64_t z64 = rd64(e - 20 + 8);
    if (z64 > size || size - z64 < 56 || rd32(base + z64) != ZIP64_EOCD_SIG)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: zip64 end of central directory: bad offset", path);
    const uint8_t *r = base + z64;
    if (rd32(r + 16) != 0 || rd32(r + 20) != 0)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: multi-disk archives are not supported", path);
    cd->count = rd64(r + 32);
    cd->bytes = rd64(r + 40);
    cd->offset = rd64(r + 48);
    return XLE_OK;
}

/* Replaces the 0xFFFFFFFF fields of a central header by the zip64 extra field's values. */
static int apply_zip64_extra(const uint8_t *extra, size_t len, uint64_t *usize, uint64_t *csize,
                             uint64_t *local) {
    while (len >= 4) {
        uint16_t id = rd16(extra), n = rd16(extra + 2);
        if ((size_t)n > len - 4) return 0;
        if (id == 0x0001) {
            const uint8_t *p = extra + 4;
            size_t left = n;
            uint64_t *fields[3] = {usize, csize, local};
            for (int i = 0; i < 3; i++) {
                if (*fields[i] != 0xFFFFFFFFu) continue;
                if (left < 8) return 0;
                *fields[i] = rd64(p);
                p += 8;
                left -= 8;
            }
            return 1;
        }
        extra += 4 + n;
        len -= 4 + (size_t)n;
    }
    return *usize != 0xFFFFFFFFu && *csize != 0xFFFFFFFFu && *local != 0xFFFFFFFFu;
}

/* One central directory entry at *at; advances *at. */
static xle_status read_member(const char *path, const uint8_t *base, size_t size, uint64_t cd_end,
                              uint64_t *at, xle_zip_member *m, xle_error *err) {
    if (cd_end - *at < 46 || rd32(base + *at) != ZIP_CENTRAL_SIG)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: central directory entry at %llu: bad header",
                        path, (unsigned long long)*at);
    const uint8_t *c = base + *at;
    uint16_t flags = rd16(c + 8), nlen = rd16(c + 28), elen = rd16(c + 30), clen = rd16(c + 32);
    uint64_t csize = rd32(c + 20), usize = rd32(c + 24), local = rd32(c + 42);
    if (cd_end - *at - 46 < (uint64_t)nlen + elen + clen)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: central directory entry at %llu: runs past "
                        "the directory", path, (unsigned long long)*at);
    if (nlen == 0 || nlen > ZIP_MAX_NAME || memchr(c + 46, 0, nlen))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: entry at %llu: bad name", path,
                        (unsigned long long)*at);
    if (!(m->name = malloc((size_t)nlen + 1))) return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    memcpy(m->name, c + 46, nlen);
    m->name[nlen] = 0;
    *at += 46u + nlen + elen + clen;
    if (!apply_zip64_extra(c + 46 + nlen, elen, &usize, &csize, &local))
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: %s: zip64 extra field missing or short", path, m->name);
    if (flags & 1)
        return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: zip: %s: encrypted members are not supported", path, m->name);
    m->method = rd16(c + 10);
    m->size = usize;
    if (local > size || size - local < 30 || rd32(base + local) != ZIP_LOCAL_SIG)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: %s: local header: bad offset", path, m->name);
    uint64_t data = local + 30 + rd16(base + local + 26) + rd16(base + local + 28);
    if (data > size || size - data < csize)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: %s: data runs past the end of the file", path, m->name);
    if (m->method == 0) {
        if (csize != usize)
            return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: %s: stored member with compressed size "
                            "%llu != size %llu", path, m->name, (unsigned long long)csize,
                            (unsigned long long)usize);
        m->data = base + data;
    }
    return XLE_OK;
}

xle_status xle_zip_parse(const char *path, const uint8_t *base, size_t size, xle_zip **out,
                         xle_error *err) {
    *out = NULL;
    cd_span cd = {0, 0, 0};
    xle_status st = read_directory_span(path, base, size, &cd, err);
    if (st != XLE_OK) return st;
    if (cd.offset > size || size - cd.offset < cd.bytes || cd.count > cd.bytes / 46)
        return xle_fail(err, XLE_ERR_FORMAT, "%s: zip: central directory: %llu entries in %llu "
                        "bytes at %llu do not fit the file", path, (unsigned long long)cd.count,
                        (unsigned long long)cd.bytes, (unsigned long long)cd.offset);
    xle_zip *z = calloc(1, sizeof *z);
    if (z) z->members = calloc(cd.count ? (size_t)cd.count : 1, sizeof *z->members);
    if (!z || !z->members) {
        xle_zip_free(z);
        return xle_fail(err, XLE_ERR_NOMEM, "%s: out of memory", path);
    }
    uint64_t at = cd.offset, end = cd.offset + cd.bytes;
    for (uint64_t i = 0; i < cd.count && st == XLE_OK; i++) {
        st = read_member(path, base, size, end, &at, &z->members[i], err);
        z->n++;
    }
    if (st == XLE_OK) {
        qsort(z->members, (size_t)z->n, sizeof *z->members, cmp_member);
        for (int i = 1; i < z->n && st == XLE_OK; i++)
            if (strcmp(z->members[i - 1].name, z->members[i].name) == 0)
                st = xle_fail(err, XLE_ERR_FORMAT, "%s: zip: %s: appears twice", path, z->members[i].name);
    }
    if (st != XLE_OK) {
        xle_zip_free(z);
        return st;
    }
    *out = z;
    return XLE_OK;
}
