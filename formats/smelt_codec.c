/* smelt_codec.c - one .smelt chunk: split into byte planes, each plane a zstd frame or stored.
 *
 * A chunk of n raw bytes with P planes is stored as P little-endian u32 lengths followed by the
 * planes in order. Plane k holds n/P bytes once decoded; its stored length equals n/P when it
 * is stored verbatim, and is smaller when it is one zstd frame (the encoder stores a plane
 * verbatim whenever zstd does not make it smaller, so the two cases never collide).
 *
 * Plane layouts (docs/smelt-format.md):
 *   none  one plane, the bytes as they are
 *   b2    2-byte elements (F16): plane 0 the low bytes, plane 1 the high bytes
 *   b4    4-byte elements (F32): plane k byte k of each element (little-endian)
 *   bf16  2-byte BF16 elements regrouped by field (as ZipNN does): plane 0 the 8 exponent bits
 *         (h >> 7 & 0xff), plane 1 the sign and the 7 mantissa bits (h >> 8 & 0x80 | h & 0x7f)
 */
#include "formats/smelt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_literalCompressionMode (zstd >= 1.5.1; stable in use since) */
#include <zstd.h>

static const char *const PLANE_NAMES[] = {"none", "b2", "b4", "bf16"};

smelt_planes smelt_planes_for(sm_type t, uint64_t nbytes) {
    switch (t) {
    case SM_TYPE_BF16: return nbytes % 2 ? SMELT_PLANES_NONE : SMELT_PLANES_BF16;
    case SM_TYPE_F16: return nbytes % 2 ? SMELT_PLANES_NONE : SMELT_PLANES_B2;
    case SM_TYPE_F32: return nbytes % 4 ? SMELT_PLANES_NONE : SMELT_PLANES_B4;
    default: return SMELT_PLANES_NONE;
    }
}

int smelt_n_planes(smelt_planes p) { return p == SMELT_PLANES_B4 ? 4 : p == SMELT_PLANES_NONE ? 1 : 2; }

const char *smelt_planes_name(smelt_planes p) { return PLANE_NAMES[p]; }

smelt_planes smelt_planes_from_name(const char *s) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, PLANE_NAMES[i])) return (smelt_planes)i;
    return (smelt_planes)-1;
}

size_t smelt_chunk_bound(smelt_planes p, size_t n) {
    const int np = smelt_n_planes(p);
    return 4 * (size_t)np + (size_t)np * ZSTD_compressBound(n / (size_t)np + 1);
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* raw bytes -> planes (dst: n bytes, plane k at dst + k*n/P) */
static void split(smelt_planes p, const uint8_t *src, size_t n, uint8_t *dst) {
    switch (p) {
    case SMELT_PLANES_NONE: memcpy(dst, src, n); break;
    case SMELT_PLANES_B2: {
        const size_t m = n / 2;
        for (size_t i = 0; i < m; i++) dst[i] = src[2 * i], dst[m + i] = src[2 * i + 1];
        break;
    }
    case SMELT_PLANES_BF16: {
        const size_t m = n / 2;
        for (size_t i = 0; i < m; i++) {
            const unsigned lo = src[2 * i], hi = src[2 * i + 1];
            dst[i] = (uint8_t)(hi << 1 | lo >> 7);
            dst[m + i] = (uint8_t)((hi & 0x80) | (lo & 0x7f));
        }
        break;
    }
    case SMELT_PLANES_B4: {
        const size_t m = n / 4;
        for (size_t i = 0; i < m; i++)
            dst[i] = src[4 * i], dst[m + i] = src[4 * i + 1], dst[2 * m + i] = src[4 * i + 2],
            dst[3 * m + i] = src[4 * i + 3];
        break;
    }
    }
}

/* planes (pl[k], n/P bytes each) -> raw bytes */
static void merge(smelt_planes p, const uint8_t *const *pl, size_t n, uint8_t *dst) {
    switch (p) {
    case SMELT_PLANES_NONE: if (dst != pl[0]) memcpy(dst, pl[0], n); break;
    case SMELT_PLANES_B2: {
        const size_t m = n / 2;
        const uint8_t *a = pl[0], *b = pl[1];
        for (size_t i = 0; i < m; i++) dst[2 * i] = a[i], dst[2 * i + 1] = b[i];
        break;
    }
    case SMELT_PLANES_BF16: {
        const size_t m = n / 2;
        const uint8_t *ep = pl[0], *sp = pl[1];
        for (size_t i = 0; i < m; i++) {
            const unsigned e = ep[i], sm = sp[i];
            dst[2 * i] = (uint8_t)((e & 1) << 7 | (sm & 0x7f));
            dst[2 * i + 1] = (uint8_t)((sm & 0x80) | e >> 1);
        }
        break;
    }
    case SMELT_PLANES_B4: {
        const size_t m = n / 4;
        const uint8_t *a = pl[0], *b = pl[1], *c = pl[2], *d = pl[3];
        for (size_t i = 0; i < m; i++)
            dst[4 * i] = a[i], dst[4 * i + 1] = b[i], dst[4 * i + 2] = c[i], dst[4 * i + 3] = d[i];
        break;
    }
    }
}

/* Byte planes of floats are nearly all literals: zstd's entropy stage (Huffman-coded literals)
 * does the work and its matches only cost bits and time. So at levels up to 3 a float plane is
 * coded with the fastest match finder (level -1000: it skips ahead almost at once) and literal
 * compression forced on (negative levels turn it off by default): measured on tiny-llama-kjv's
 * BF16 exponent plane in 128 KiB pieces, 32.96% of its size at 670 MB/s per core, against
 * 35.17% at 192 MB/s for level 1 with minimum match 7 (the choice before) and 36.1% at 99 MB/s
 * for level 3. Other data, and float planes at levels above 3, use the level as given. */
#define FLOAT_PLANE_LEVEL (-1000)
static bool fast_plane(smelt_planes p, int level) { return p != SMELT_PLANES_NONE && level <= 3; }

/* A mantissa plane is close to uniform noise: zstd would spend time to save nothing. A plane
 * (of a float layout) whose order-0 entropy, estimated on every 4th byte, is above 7.9 bits per
 * byte (less than 1.25% to gain) is stored without trying. Deterministic: the bytes decide, not
 * the timing. (The sample is biased low by about 255 / (2 N ln 2) bits for N samples: 0.006 for
 * a 128 KiB plane; a plane it misjudges is only tried with zstd, and stored if not smaller.) */
static bool incompressible(const uint8_t *x, size_t m) {
    if (m < 4096) return false;
    uint32_t h[256] = {0};
    size_t n = 0;
    for (size_t i = 0; i < m; i += 4, n++) h[x[i]]++;
    double e = 0;
    for (int k = 0; k < 256; k++)
        if (h[k]) e -= (double)h[k] * log2((double)h[k] / (double)n);
    return e > 7.9 * (double)n;
}

int smelt_chunk_encode(void *cctx, int level, smelt_planes p, const uint8_t *src, size_t n, uint8_t *scratch,
                       uint8_t *out, size_t *out_n) {
    const int np = smelt_n_planes(p);
    const size_t m = n / (size_t)np;
    split(p, src, n, scratch);
    size_t pos = 4 * (size_t)np;
    for (int k = 0; k < np; k++) {
        const uint8_t *plane = scratch + (size_t)k * m;
        const size_t cap = ZSTD_compressBound(m);
        if (p != SMELT_PLANES_NONE && incompressible(plane, m)) {
            memcpy(out + pos, plane, m);
            put32(out + 4 * k, (uint32_t)m);
            pos += m;
            continue;
        }
        size_t z = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
        const bool fast = fast_plane(p, level);
        if (!ZSTD_isError(z)) z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, fast ? FLOAT_PLANE_LEVEL : level);
        if (!ZSTD_isError(z) && fast) z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
        if (!ZSTD_isError(z) && p != SMELT_PLANES_NONE) z = ZSTD_CCtx_setParameter(cctx, ZSTD_c_minMatch, 7);
        if (!ZSTD_isError(z)) z = ZSTD_compress2(cctx, out + pos, cap, plane, m);
        if (ZSTD_isError(z)) return sm_error("zstd: %s", ZSTD_getErrorName(z));
        if (z >= m) { /* not smaller: stored */
            memcpy(out + pos, plane, m);
            z = m;
        }
        put32(out + 4 * k, (uint32_t)z);
        pos += z;
    }
    *out_n = pos;
    return 0;
}

int smelt_chunk_decode(void *dctx, smelt_planes p, const uint8_t *src, size_t stored, uint8_t *dst, size_t n,
                       uint8_t *scratch) {
    const int np = smelt_n_planes(p);
    if (n % (size_t)np) return sm_error("chunk of %zu bytes does not split into %d planes", n, np);
    const size_t m = n / (size_t)np;
    if (stored < 4 * (size_t)np) return sm_error("chunk of %zu bytes is shorter than its %d plane lengths", stored, np);
    size_t pos = 4 * (size_t)np;
    /* stored planes are read in place; zstd planes are decoded into scratch (one plane: into dst) */
    const uint8_t *pl[SMELT_MAX_PLANES];
    for (int k = 0; k < np; k++) {
        const size_t len = get32(src + 4 * k);
        if (len > m) return sm_error("plane %d claims %zu stored bytes, more than its %zu raw bytes", k, len, m);
        if (len > stored - pos)
            return sm_error("plane %d (%zu bytes at chunk offset %zu) runs past the chunk's %zu bytes", k, len, pos,
                            stored);
        if (len == m) {
            pl[k] = src + pos;
        } else {
            uint8_t *plane = p == SMELT_PLANES_NONE ? dst : scratch + (size_t)k * m;
            const unsigned long long cs = ZSTD_getFrameContentSize(src + pos, len);
            if (cs != m)
                return sm_error("plane %d (chunk offset %zu): not a zstd frame of %zu bytes", k, pos, m);
            const size_t r = ZSTD_decompressDCtx(dctx, plane, m, src + pos, len);
            if (ZSTD_isError(r)) return sm_error("plane %d (chunk offset %zu): zstd: %s", k, pos, ZSTD_getErrorName(r));
            if (r != m) return sm_error("plane %d (chunk offset %zu): zstd gave %zu bytes, expected %zu", k, pos, r, m);
            pl[k] = plane;
        }
        pos += len;
    }
    if (pos != stored) return sm_error("chunk holds %zu bytes after its planes' %zu", stored - pos, pos);
    merge(p, pl, n, dst);
    return 0;
}

void smelt_hex64(uint64_t v, char buf[17]) {
    static const char H[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4) buf[i] = H[v & 15];
    buf[16] = 0;
}

const char *smelt_kind_of(const uint8_t *p, uint64_t n) {
    if (n >= 4 && !memcmp(p, "GGUF", 4)) return "gguf";
    if (n >= 9 && p[8] == '{') return "safetensors";
    return "other";
}

void smelt_file_clear(smelt_file *f) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        free((char *)f->tensors[i].view.name);
        free(f->tensors[i].chunks);
    }
    free(f->tensors);
    free(f->rest.chunks);
    free(f->name);
    free(f->kind);
    memset(f, 0, sizeof *f);
}
