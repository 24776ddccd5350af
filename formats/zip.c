/* zip.c - read-only zip archive reader over an in-memory buffer (see zip_internal.h).
 *
 * Layout (PKWARE APPNOTE): local header + name + extra + bytes for each entry, then the central
 * directory (one record per entry), then optionally the zip64 end record and its locator, then
 * the end-of-central-directory record (EOCD, with a comment of up to 64 KiB). The central
 * directory is authoritative for sizes (PyTorch's writer leaves them zero in local headers and
 * appends data descriptors); the local header is cross-checked (same name and method) and gives
 * the data offset (it may carry a different extra field than the central record).
 *
 * Entries are stored (method 0, used in place) or deflated (method 8, inflated by zlib into a
 * buffer of exactly the recorded size). Every entry that is read is checked against its
 * CRC-32 (zlib's crc32, a pass over the bytes in 1 GiB steps). */
#include "zip_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

uint64_t sm_zip_max_inflate = SM_ZIP_MAX_INFLATE;

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define EOCD_SIZE 22u
#define LOCATOR64_SIZE 20u
#define EOCD64_MIN 56u
#define CENTRAL_SIZE 46u
#define LOCAL_SIZE 30u
#define U32_MAX_MARK 0xffffffffu

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* A printable copy of an entry name for messages (control bytes become '?'). */
static const char *printable(const uint8_t *s, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++) buf[k++] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    if (k + 4 >= cap && n > k) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = 0;
    return buf;
}

static int check_name(const sm_zip *z, size_t idx, uint64_t off, const uint8_t *s, size_t n) {
    char pb[160];
    if (n == 0) return sm_error("%s: central directory entry %zu (offset %llu): empty entry name", z->path, idx, (unsigned long long)off);
    if (n > SM_ZIP_MAX_NAME)
        return sm_error("%s: central directory entry %zu (offset %llu): entry name of %zu bytes exceeds the limit of %u", z->path,
                        idx, (unsigned long long)off, n, SM_ZIP_MAX_NAME);
    if (memchr(s, 0, n))
        return sm_error("%s: central directory entry %zu (offset %llu): entry name contains a NUL byte", z->path, idx,
                        (unsigned long long)off);
    printable(s, n, pb, sizeof pb);
    if (s[0] == '/' || s[0] == '\\' || (n >= 2 && s[1] == ':'))
        return sm_error("%s: entry '%s': absolute entry name refused", z->path, pb);
    if (memchr(s, '\\', n)) return sm_error("%s: entry '%s': backslash in entry name refused", z->path, pb);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j] != '/') j++;
        if (j - i == 2 && s[i] == '.' && s[i + 1] == '.')
            return sm_error("%s: entry '%s': '..' component in entry name refused", z->path, pb);
        i = j + 1;
    }
    return 0;
}

/* Values the central record marks as 0xffff... are in its zip64 extra field, in this order. */
static int zip64_extra(const sm_zip *z, const char *name, const uint8_t *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                       uint64_t *lho, uint32_t *disk) {
    size_t need = (*usize == U32_MAX_MARK) * 8 + (*csize == U32_MAX_MARK) * 8 + (*lho == U32_MAX_MARK) * 8 + (*disk == 0xffff) * 4;
    for (size_t i = 0; i + 4 <= xlen;) {
        uint16_t id = rd16(x + i), sz = rd16(x + i + 2);
        if (sz > xlen - i - 4) break;
        if (id == 1) {
            if (sz < need) break;
            const uint8_t *q = x + i + 4;
            if (*usize == U32_MAX_MARK) { *usize = rd64(q); q += 8; }
            if (*csize == U32_MAX_MARK) { *csize = rd64(q); q += 8; }
            if (*lho == U32_MAX_MARK) { *lho = rd64(q); q += 8; }
            if (*disk == 0xffff) *disk = rd32(q);
            return 0;
        }
        i += 4 + (size_t)sz;
    }
    return sm_error("%s: entry '%s': sizes or offset marked as zip64 but no valid zip64 extra field", z->path, name);
}

typedef struct span {
    uint64_t start, end;
    size_t idx;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_entry_name(const void *a, const void *b) {
    const sm_zip_entry *x = *(const sm_zip_entry *const *)a, *y = *(const sm_zip_entry *const *)b;
    return strcmp(x->name, y->name);
}

/* Find the EOCD: the last signature whose comment ends exactly at the end of the file. */
static int find_eocd(const sm_zip *z, uint64_t *out) {
    if (z->size < EOCD_SIZE)
        return sm_error("%s: %llu bytes: too short for a zip archive (truncated?)", z->path, (unsigned long long)z->size);
    uint64_t lo = z->size > EOCD_SIZE + 0xffffu ? z->size - EOCD_SIZE - 0xffffu : 0;
    for (uint64_t off = z->size - EOCD_SIZE;; off--) {
        const uint8_t *p = z->data + off;
        if (rd32(p) == SIG_EOCD && off + EOCD_SIZE + rd16(p + 20) == z->size) {
            *out = off;
            return 0;
        }
        if (off == lo) break;
    }
    return sm_error("%s: no zip end-of-central-directory record in the last %llu bytes (truncated or not a zip archive)",
                    z->path, (unsigned long long)(z->size - lo));
}

typedef struct cd_info {
    uint64_t n, cd_off, cd_size, end_limit;
} cd_info;

static int read_end_records(const sm_zip *z, uint64_t eocd, cd_info *ci) {
    const uint8_t *e = z->data + eocd;
    uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12), cd_off = rd32(e + 16), end_limit = eocd;
    if (eocd >= LOCATOR64_SIZE && rd32(e - LOCATOR64_SIZE) == SIG_LOCATOR64) {
        uint64_t loc = eocd - LOCATOR64_SIZE;
        const uint8_t *l = z->data + loc;
        uint64_t off64 = rd64(l + 8);
        if (rd32(l + 4) != 0 || rd32(l + 16) > 1)
            return sm_error("%s: offset %llu: multi-disk (split) zip archives are not supported", z->path, (unsigned long long)loc);
        if (off64 > loc || loc - off64 < EOCD64_MIN)
            return sm_error("%s: offset %llu: zip64 end record offset %llu is outside the archive", z->path,
                            (unsigned long long)loc, (unsigned long long)off64);
        const uint8_t *r = z->data + off64;
        uint64_t rec = rd64(r + 4);
        if (rd32(r) != SIG_EOCD64 || rec < EOCD64_MIN - 12 || rec > loc - off64 - 12)
            return sm_error("%s: offset %llu: expected a zip64 end-of-central-directory record", z->path, (unsigned long long)off64);
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        n_disk = rd64(r + 24);
        n = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
        end_limit = off64;
    } else if (n == 0xffff || cd_size == U32_MAX_MARK || cd_off == U32_MAX_MARK) {
        return sm_error("%s: offset %llu: end record has zip64 markers but there is no zip64 locator", z->path,
                        (unsigned long long)eocd);
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n)
        return sm_error("%s: offset %llu: multi-disk (split) zip archives are not supported", z->path, (unsigned long long)eocd);
    if (n > SM_ZIP_MAX_ENTRIES)
        return sm_error("%s: %llu entries, more than the %u allowed", z->path, (unsigned long long)n, SM_ZIP_MAX_ENTRIES);
    if (cd_off > end_limit || cd_size > end_limit - cd_off)
        return sm_error("%s: central directory (offset %llu, %llu bytes) extends past its end records at offset %llu (truncated?)",
                        z->path, (unsigned long long)cd_off, (unsigned long long)cd_size, (unsigned long long)end_limit);
    if (n * CENTRAL_SIZE > cd_size)
        return sm_error("%s: central directory of %llu bytes cannot hold %llu entries", z->path, (unsigned long long)cd_size,
                        (unsigned long long)n);
    ci->n = n;
    ci->cd_off = cd_off;
    ci->cd_size = cd_size;
    ci->end_limit = end_limit;
    return 0;
}

/* Cross-check an entry's local header; returns the offset of its bytes in *data_off. */
static int read_local(const sm_zip *z, const char *name, const uint8_t *cname, size_t nlen, uint16_t method, uint64_t lho,
                      uint64_t csize, uint64_t usize, uint64_t cd_off, uint64_t *data_off) {
    if (lho > cd_off || cd_off - lho < LOCAL_SIZE)
        return sm_error("%s: entry '%s': local header offset %llu is outside the archive's data area", z->path, name,
                        (unsigned long long)lho);
    const uint8_t *l = z->data + lho;
    if (rd32(l) != SIG_LOCAL)
        return sm_error("%s: entry '%s': offset %llu: expected a local file header signature", z->path, name, (unsigned long long)lho);
    uint16_t lflags = rd16(l + 6), lmethod = rd16(l + 8), lnlen = rd16(l + 26), lxlen = rd16(l + 28);
    uint32_t lcsize = rd32(l + 18), lusize = rd32(l + 22);
    uint64_t d = lho + LOCAL_SIZE + lnlen + lxlen;
    if (d > cd_off)
        return sm_error("%s: entry '%s': offset %llu: local header runs into the central directory", z->path, name,
                        (unsigned long long)lho);
    if (lnlen != nlen || memcmp(l + LOCAL_SIZE, cname, nlen) != 0)
        return sm_error("%s: entry '%s': offset %llu: local header names a different entry than the central directory", z->path,
                        name, (unsigned long long)lho);
    if (lmethod != method || (lflags & 1))
        return sm_error("%s: entry '%s': offset %llu: local header method/encryption differ from the central directory", z->path,
                        name, (unsigned long long)lho);
    for (int k = 0; k < 2; k++) {
        uint64_t size = k ? usize : csize;
        uint32_t v = k ? lusize : lcsize, lo32 = size < U32_MAX_MARK ? (uint32_t)size : U32_MAX_MARK;
        if (v != lo32 && v != U32_MAX_MARK && !((lflags & 8) && v == 0))
            return sm_error("%s: entry '%s': offset %llu: local header records %u %sbytes, the central directory %llu", z->path,
                            name, (unsigned long long)lho, v, k ? "" : "compressed ", (unsigned long long)size);
    }
    if (csize > cd_off - d)
        return sm_error("%s: entry '%s': its %llu bytes at offset %llu run past the data area into the central directory", z->path,
                        name, (unsigned long long)csize, (unsigned long long)d);
    *data_off = d;
    return 0;
}

static int read_central(sm_zip *z, const cd_info *ci, span *spans) {
    uint64_t p = ci->cd_off, end = ci->cd_off + ci->cd_size;
    char *names = z->names;
    for (size_t i = 0; i < ci->n; i++) {
        if (end - p < CENTRAL_SIZE)
            return sm_error("%s: offset %llu: central directory entry %zu is truncated", z->path, (unsigned long long)p, i);
        const uint8_t *c = z->data + p;
        if (rd32(c) != SIG_CENTRAL)
            return sm_error("%s: offset %llu: expected central directory entry %zu signature", z->path, (unsigned long long)p, i);
        uint16_t flags = rd16(c + 8), method = rd16(c + 10), nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        uint32_t crc = rd32(c + 16), disk = rd16(c + 34);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), lho = rd32(c + 42);
        uint64_t rec = (uint64_t)CENTRAL_SIZE + nlen + xlen + clen;
        if (rec > end - p)
            return sm_error("%s: offset %llu: central directory entry %zu is truncated", z->path, (unsigned long long)p, i);
        const uint8_t *cname = c + CENTRAL_SIZE;
        if (check_name(z, i, p, cname, nlen)) return -1;
        memcpy(names, cname, nlen);
        names[nlen] = 0;
        const char *name = names;
        names += nlen + 1;
        if ((usize == U32_MAX_MARK || csize == U32_MAX_MARK || lho == U32_MAX_MARK || disk == 0xffff) &&
            zip64_extra(z, name, cname + nlen, xlen, &usize, &csize, &lho, &disk))
            return -1;
        if (disk != 0) return sm_error("%s: entry '%s': multi-disk (split) zip archives are not supported", z->path, name);
        if (flags & 1) return sm_error("%s: entry '%s' is encrypted; not supported", z->path, name);
        if (method != 0 && method != 8)
            return sm_error("%s: entry '%s' is compressed with method %u; only stored (0) and deflated (8) entries are supported",
                            z->path, name, method);
        if (method == 0 && csize != usize)
            return sm_error("%s: entry '%s': stored entry with compressed size %llu != size %llu", z->path, name,
                            (unsigned long long)csize, (unsigned long long)usize);
        /* deflate expands at most 1032:1; a larger recorded size is a lie (or a bomb) */
        if (method == 8 && usize / 1032 > csize + 1)
            return sm_error("%s: entry '%s': %llu bytes cannot inflate from %llu deflated bytes (corrupted sizes)", z->path, name,
                            (unsigned long long)usize, (unsigned long long)csize);
        uint64_t d = 0;
        if (read_local(z, name, cname, nlen, method, lho, csize, usize, ci->cd_off, &d)) return -1;
        z->entries[i] = (sm_zip_entry){name, d, usize, crc, csize, method};
        spans[i] = (span){lho, d + csize, i};
        p += rec;
    }
    return 0;
}

int sm_zip_open(sm_zip *z, const void *data, uint64_t size, const char *path) {
    memset(z, 0, sizeof *z);
    z->data = data;
    z->size = size;
    z->path = path;
    uint64_t eocd = 0;
    cd_info ci = {0, 0, 0, 0};
    if (find_eocd(z, &eocd) || read_end_records(z, eocd, &ci)) return -1;
    size_t n = (size_t)ci.n;
    z->entries = calloc(n ? n : 1, sizeof *z->entries);
    z->by_name = calloc(n ? n : 1, sizeof *z->by_name);
    z->names = malloc((size_t)ci.cd_size + 1);
    span *spans = calloc(n ? n : 1, sizeof *spans);
    if (!z->entries || !z->by_name || !z->names || !spans) {
        free(spans);
        sm_zip_close(z);
        return sm_error("%s: out of memory for %zu zip entries", path, n);
    }
    if (read_central(z, &ci, spans)) goto fail;
    z->n_entries = n;
    qsort(spans, n, sizeof *spans, cmp_span);
    for (size_t i = 1; i < n; i++)
        if (spans[i].start < spans[i - 1].end) {
            sm_error("%s: entries '%s' and '%s' overlap (offsets %llu and %llu)", path, z->entries[spans[i - 1].idx].name,
                     z->entries[spans[i].idx].name, (unsigned long long)spans[i - 1].start, (unsigned long long)spans[i].start);
            goto fail;
        }
    free(spans);
    spans = NULL;
    {
        const sm_zip_entry **order = malloc((n ? n : 1) * sizeof *order);
        if (!order) {
            sm_error("%s: out of memory", path);
            goto fail;
        }
        for (size_t i = 0; i < n; i++) order[i] = &z->entries[i];
        qsort(order, n, sizeof *order, cmp_entry_name);
        int dup = 0;
        for (size_t i = 0; i < n; i++) {
            z->by_name[i] = (size_t)(order[i] - z->entries);
            if (i && strcmp(order[i]->name, order[i - 1]->name) == 0 && !dup++)
                sm_error("%s: duplicate entry name '%s'", path, order[i]->name);
        }
        free(order);
        if (dup) goto fail;
    }
    return 0;
fail:
    free(spans);
    sm_zip_close(z);
    return -1;
}

void sm_zip_close(sm_zip *z) {
    if (!z) return;
    free(z->entries);
    free(z->by_name);
    free(z->names);
    memset(z, 0, sizeof *z);
}

const sm_zip_entry *sm_zip_find(const sm_zip *z, const char *name) {
    size_t lo = 0, hi = z->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const sm_zip_entry *e = &z->entries[z->by_name[mid]];
        int c = strcmp(e->name, name);
        if (c == 0) return e;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

uint32_t sm_crc32_update(uint32_t crc, const void *data, uint64_t n) {
    const Bytef *p = data;
    uLong c = crc;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

uint32_t sm_crc32(const void *data, size_t n) { return sm_crc32_update(0, data, n); }

static int crc_mismatch(const sm_zip *z, const sm_zip_entry *e, uint32_t c) {
    return sm_error("%s: entry '%s': CRC-32 %08x does not match the recorded %08x (corrupted archive)", z->path, e->name, c,
                    e->crc32);
}

/* Inflate a deflated entry into out[e->size]: exactly that many bytes, then the end of the
 * deflate stream, within the entry's compressed bytes. */
static int inflate_entry(const sm_zip *z, const sm_zip_entry *e, uint8_t *out) {
    z_stream st;
    memset(&st, 0, sizeof st);
    if (inflateInit2(&st, -MAX_WBITS) != Z_OK) return sm_error("%s: entry '%s': cannot start zlib", z->path, e->name);
    const uint8_t *in = z->data + e->offset;
    uint64_t in_left = e->csize, out_done = 0;
    int zr = Z_OK;
    uint8_t spill;
    while (zr == Z_OK) {
        if (st.avail_in == 0 && in_left > 0) {
            st.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            st.next_in = (Bytef *)(uintptr_t)in;
            in += st.avail_in;
            in_left -= st.avail_in;
        }
        /* room for one byte past the end, so that a stream longer than recorded is seen */
        uint64_t room = e->size - out_done;
        if (room) {
            st.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
            st.next_out = out + out_done;
        } else {
            st.avail_out = 1;
            st.next_out = &spill;
        }
        uInt before = st.avail_out;
        zr = inflate(&st, Z_NO_FLUSH);
        out_done += before - st.avail_out;
        if (zr == Z_BUF_ERROR && st.avail_in == 0 && in_left == 0) break; /* input ran out */
        if (out_done > e->size) break;
    }
    inflateEnd(&st);
    if (zr == Z_STREAM_END && out_done == e->size) return 0;
    if (out_done > e->size || (zr == Z_STREAM_END && out_done != e->size))
        return sm_error("%s: entry '%s': inflates to %s%llu bytes, the central directory records %llu (corrupted archive)", z->path,
                        e->name, out_done > e->size ? "more than " : "", (unsigned long long)(out_done > e->size ? e->size : out_done),
                        (unsigned long long)e->size);
    if (zr == Z_DATA_ERROR || zr == Z_STREAM_ERROR || zr == Z_NEED_DICT)
        return sm_error("%s: entry '%s': invalid deflate data after %llu bytes (%s; corrupted archive)", z->path, e->name,
                        (unsigned long long)out_done, st.msg ? st.msg : "zlib error");
    if (zr == Z_MEM_ERROR) return sm_error("%s: entry '%s': out of memory inflating", z->path, e->name);
    return sm_error("%s: entry '%s': deflate data ends early, after %llu of %llu bytes (truncated archive)", z->path, e->name,
                    (unsigned long long)out_done, (unsigned long long)e->size);
}

int sm_zip_read(const sm_zip *z, const sm_zip_entry *e, const uint8_t **data, uint8_t **owned) {
    *data = NULL;
    *owned = NULL;
    if (e->method == 0) {
        /* in 64 MiB steps: a mapped archive's pages are released once summed, so checking a
         * storage of any size keeps no more than a step resident */
        const uint64_t step = (uint64_t)64 << 20;
        uint32_t c = 0;
        for (uint64_t at = 0; at < e->size; at += step) {
            const uint64_t n = e->size - at < step ? e->size - at : step;
            c = sm_crc32_update(c, z->data + e->offset + at, n);
            sm_mmap_release(z->map, z->data + e->offset + at, n);
        }
        if (c != e->crc32) return crc_mismatch(z, e, c);
        *data = z->data + e->offset;
        return 0;
    }
    if (e->size > sm_zip_max_inflate)
        return sm_error("%s: entry '%s': %llu bytes deflated, more than the %llu this reader inflates", z->path, e->name,
                        (unsigned long long)e->size, (unsigned long long)sm_zip_max_inflate);
    uint8_t *buf = malloc(e->size ? (size_t)e->size : 1);
    if (!buf) return sm_error("%s: entry '%s': out of memory for %llu inflated bytes", z->path, e->name, (unsigned long long)e->size);
    if (inflate_entry(z, e, buf)) {
        free(buf);
        return -1;
    }
    uint32_t c = sm_crc32_update(0, buf, e->size);
    if (c != e->crc32) {
        free(buf);
        return crc_mismatch(z, e, c);
    }
    *data = buf;
    *owned = buf;
    return 0;
}

int sm_zip_check_crc(const sm_zip *z, const sm_zip_entry *e) {
    const uint8_t *d;
    uint8_t *owned;
    int rc = sm_zip_read(z, e, &d, &owned);
    free(owned);
    return rc;
}
