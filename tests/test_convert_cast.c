/* test_convert_cast.c - the converter's row casts (cv_cast_row, SIMD where the CPU has it)
 * give exactly the bytes of core's scalar conversions (round to nearest even, ggml's NaN
 * rules) for every pair of F32 / F16 / BF16, over every half-precision value, the rounding
 * midpoints between them, and pseudo-random bit patterns including NaN, infinities and
 * subnormals; lengths that are not multiples of the vector width exercise the tails. */
#include "convert/convert_internal.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* The scalar reference for one value of `from` (given as float) into `to`. */
static void ref1(sm_type to, float f, uint8_t *out) {
    uint16_t h;
    if (to == SM_TYPE_F32) memcpy(out, &f, 4);
    else if (to == SM_TYPE_F16) h = sm_f32_to_f16(f), memcpy(out, &h, 2);
    else h = sm_f32_to_bf16(f), memcpy(out, &h, 2);
}

static float src_value(sm_type from, const uint8_t *p) {
    uint16_t h;
    float f;
    if (from == SM_TYPE_F32) return memcpy(&f, p, 4), f;
    memcpy(&h, p, 2);
    return from == SM_TYPE_F16 ? sm_f16_to_f32(h) : sm_bf16_to_f32(h);
}

static void check_pair(sm_type from, sm_type to, const float *vals, size_t n) {
    const size_t in = sm_type_get(from)->block_bytes, out = sm_type_get(to)->block_bytes;
    uint8_t *src = malloc(n * in), *got = malloc(n * out), *want = malloc(n * out);
    for (size_t i = 0; i < n; i++) ref1(from, vals[i], src + i * in); /* the values as `from` holds them */
    for (size_t i = 0; i < n; i++) ref1(to, src_value(from, src + i * in), want + i * out);
    size_t bad = 0;
    /* whole array, then odd lengths and offsets for the tails */
    CHECK_OK(cv_cast_row(from, src, to, got, (int64_t)n));
    for (size_t i = 0; i < n * out; i++) bad += got[i] != want[i];
    for (size_t len = 1; len < 20; len++) {
        memset(got, 0xee, n * out);
        CHECK_OK(cv_cast_row(from, src + 3 * in, to, got, (int64_t)len));
        bad += memcmp(got, want + 3 * out, len * out) != 0;
    }
    CHECK_MSG(bad == 0, "%s -> %s: %zu differences", sm_type_name(from), sm_type_name(to), bad);
    free(src);
    free(got);
    free(want);
}

static void exact(void) {
    /* every f16 value, the midpoints above each (ties), and random patterns */
    const size_t n_rand = 1 << 20;
    size_t n = 0;
    float *v = malloc((2 * 65536 + n_rand) * sizeof *v);
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sm_f16_to_f32((uint16_t)h);
        v[n++] = f;
        v[n++] = u2f(f2u(f) + 0x1000u); /* halfway to the next f16 (for normal values) */
    }
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n_rand; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint32_t u = (uint32_t)s;
        if (i % 4 == 1) u = (u & 0x807fffffu) | ((uint32_t)(101 + (s >> 40) % 42) << 23); /* around the f16 range */
        if (i % 4 == 2) u = (u & 0x8000ffffu) | (f2u(v[(s >> 32) % (2 * 65536)]) & 0x7fff0000u); /* near bf16 ties */
        v[n++] = u2f(u);
    }
    static const sm_type T[3] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) check_pair(T[a], T[b], v, n);
    free(v);
}

static void other_dtypes(void) {
    /* dtypes without a SIMD kernel go through floats */
    const double d[5] = {1.5, -2.25, 65504.0, 1e-8, 3.0e38};
    uint16_t out[5];
    CHECK_OK(cv_cast_row(SM_TYPE_F64, d, SM_TYPE_F16, out, 5));
    for (int i = 0; i < 5; i++) CHECK(out[i] == sm_f32_to_f16((float)d[i]));
    const uint8_t e4m3[3] = {0x38, 0x7e, 0xb8};
    float f[3];
    CHECK_OK(cv_cast_row(SM_TYPE_F8_E4M3, e4m3, SM_TYPE_F32, f, 3));
    CHECK(f[0] == 1.0f && f[1] == 448.0f && f[2] == -1.0f);
}

void run_tests(void) {
    TEST(exact);
    TEST(other_dtypes);
}
