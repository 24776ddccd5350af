/* test_kernels.c - matrix products against a double-precision reference (on the values the
 * codecs' dequantizers give) for every ISA and storage type, odd shapes and strides, and
 * bit-identical results for any thread count; the vector math against libm; every SIMD
 * tail (lengths 1..70 at every alignment offset) against the same ISA's full-width path,
 * and the exact kernels (conversions, casts, GPTQ's axpy) bit for bit across ISAs; the one
 * ISA selector (sm_isa_set / SMELT_ISA). */
#include "testlib.h"

#include "convert/convert_internal.h"
#include "kernels/kernels.h"
#include "kernels/kernels_internal.h"
#include "quantize/gptq_internal.h"
#include "quantize/quantize.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Weights of `type` for n_out x n_in random floats; *wf gets the values they represent. */
static void *make_weights(sm_type type, int64_t n_out, int64_t n_in, size_t stride, float **wf) {
    float *src = malloc(sizeof(float) * (size_t)(n_out * n_in));
    for (int64_t i = 0; i < n_out * n_in; i++) src[i] = frand();
    unsigned char *w = calloc((size_t)n_out, stride);
    *wf = malloc(sizeof(float) * (size_t)(n_out * n_in));
    for (int64_t r = 0; r < n_out; r++) {
        unsigned char *row = w + (size_t)r * stride;
        if (type == SM_TYPE_F32 || type == SM_TYPE_F16 || type == SM_TYPE_BF16)
            sm_f32_to_plain(type, src + r * n_in, row, n_in);
        else
            CHECK(sm_quantize_rows(type, src + r * n_in, row, 1, n_in, NULL) == sm_type_row_bytes(type, n_in));
        CHECK_OK(sm_row_to_f32(type, row, *wf + r * n_in, n_in));
    }
    free(src);
    return w;
}

static void check_product(sm_type type, int64_t n_out, int64_t n_in, int64_t n_tok, size_t pad) {
    size_t stride = (size_t)sm_type_row_bytes(type, n_in) + pad;
    float *wf;
    void *w = make_weights(type, n_out, n_in, stride, &wf);
    /* feature-major: x[k*ldx + t], y[r*ldy + t] */
    const int64_t ldx = n_tok + 3, ldy = n_tok + 5;
    float *x = malloc(sizeof(float) * (size_t)(n_in * ldx));
    for (int64_t i = 0; i < n_in * ldx; i++) x[i] = frand();
    float *y = malloc(sizeof(float) * (size_t)(n_out * ldy));
    float *y1 = malloc(sizeof(float) * (size_t)(n_out * ldy));
    for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
        sm_isa_set((sm_isa)isa);
        memset(y, 0xff, sizeof(float) * (size_t)(n_out * ldy));
        omp_set_num_threads(1);
        CHECK_OK(sm_matmul(type, w, stride, n_out, n_in, x, ldx, n_tok, y1, ldy));
        omp_set_num_threads(3);
        CHECK_OK(sm_matmul(type, w, stride, n_out, n_in, x, ldx, n_tok, y, ldy));
        double worst = 0;
        int same = 1;
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t r = 0; r < n_out; r++) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < n_in; k++) {
                    ref += (double)wf[r * n_in + k] * x[k * ldx + t];
                    mag += fabs((double)wf[r * n_in + k] * x[k * ldx + t]);
                }
                double e = fabs(y[r * ldy + t] - ref) / (mag + 1e-30);
                if (e > worst) worst = e;
                if (memcmp(&y[r * ldy + t], &y1[r * ldy + t], sizeof(float))) same = 0;
            }
        CHECK_MSG(worst < 1e-5, "%s %s %lldx%lld tok %lld: relative error %g", sm_type_name(type),
                  sm_isa_name((sm_isa)isa), (long long)n_out, (long long)n_in, (long long)n_tok, worst);
        CHECK_MSG(same, "%s %s: 1 vs 3 threads differ", sm_type_name(type), sm_isa_name((sm_isa)isa));
        /* the serial entry point gives the same bits */
        CHECK_OK(sm_matmul_serial(type, w, stride, n_out, n_in, x, ldx, n_tok, y, ldy));
        for (int64_t r = 0; r < n_out; r++) same &= !memcmp(y + r * ldy, y1 + r * ldy, sizeof(float) * (size_t)n_tok);
        CHECK_MSG(same, "%s %s: serial differs", sm_type_name(type), sm_isa_name((sm_isa)isa));
    }
    sm_isa_set(sm_cpu_isa());
    omp_set_num_threads(2);
    free(w);
    free(wf);
    free(x);
    free(y);
    free(y1);
}

static void plain_types(void) {
    const sm_type types[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16};
    const int64_t toks[] = {1, 3, 8, 67, 130};
    /* n_tok 67 and 130 leave partial panels for every ISA; 200 rows leave partial tiles */
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 5; j++) {
            check_product(types[i], 37, 100, toks[j], 0);
            check_product(types[i], 200, 300, toks[j], 6);
        }
    check_product(SM_TYPE_F32, 13, 1, 9, 2); /* odd: n_in 1, unaligned rows */
}

/* sm_matmul_many: stored outputs equal single products bit for bit; an accumulating one is
 * the old values plus the product; any thread count gives the same bits. */
static void many(void) {
    const int64_t n_in = 256, toks[2] = {5, 40};
    float *wf[3];
    const sm_type types[3] = {SM_TYPE_F32, SM_TYPE_Q8_0, SM_TYPE_BF16};
    const int64_t rows[3] = {13, 64, 7};
    void *w[3];
    for (int i = 0; i < 3; i++) w[i] = make_weights(types[i], rows[i], n_in, (size_t)sm_type_row_bytes(types[i], n_in), &wf[i]);
    for (int ti = 0; ti < 2; ti++) {
        const int64_t n = toks[ti];
        float *x = malloc(sizeof(float) * (size_t)(n_in * n)), *y[3], *single[3], *again = malloc(sizeof(float) * 64 * (size_t)n);
        for (int64_t i = 0; i < n_in * n; i++) x[i] = frand();
        sm_matmul_op ops[3];
        for (int i = 0; i < 3; i++) {
            y[i] = malloc(sizeof(float) * (size_t)(rows[i] * n));
            single[i] = malloc(sizeof(float) * (size_t)(rows[i] * n));
            for (int64_t j = 0; j < rows[i] * n; j++) y[i][j] = i == 1 ? 0.5f : NAN;
            CHECK_OK(sm_matmul(types[i], w[i], (size_t)sm_type_row_bytes(types[i], n_in), rows[i], n_in, x, n, n,
                               single[i], n));
            ops[i] = (sm_matmul_op){types[i], w[i], (size_t)sm_type_row_bytes(types[i], n_in), rows[i], y[i], n, i == 1, false};
        }
        omp_set_num_threads(3);
        CHECK_OK(sm_matmul_many(ops, 3, n_in, x, n, n));
        CHECK(!memcmp(y[0], single[0], sizeof(float) * (size_t)(rows[0] * n)));
        CHECK(!memcmp(y[2], single[2], sizeof(float) * (size_t)(rows[2] * n)));
        double worst = 0;
        for (int64_t j = 0; j < rows[1] * n; j++) worst = fmax(worst, fabs(y[1][j] - (0.5 + single[1][j])));
        CHECK_MSG(worst < 1e-4, "accumulate: %g", worst);
        /* one thread: the same bits */
        memcpy(again, y[1], sizeof(float) * 64 * (size_t)n);
        for (int64_t j = 0; j < rows[1] * n; j++) y[1][j] = 0.5f;
        omp_set_num_threads(1);
        CHECK_OK(sm_matmul_many(ops, 3, n_in, x, n, n));
        CHECK(!memcmp(again, y[1], sizeof(float) * 64 * (size_t)n));
        omp_set_num_threads(2);
        for (int i = 0; i < 3; i++) free(y[i]), free(single[i]);
        free(x);
        free(again);
    }
    for (int i = 0; i < 3; i++) free(w[i]), free(wf[i]);
}

/* sm_vec_exp and sm_vec_silu_mul against libm, every ISA, odd lengths (masked tails) */
static void vector_math(void) {
    enum { N = 1003 };
    float x[N], e[N], g[N], u[N];
    for (int i = 0; i < N; i++) {
        x[i] = i < 8 ? (float[]){0.0f, -0.0f, 1.0f, -87.0f, 88.0f, -30.5f, 1e-8f, -1e-8f}[i] : 90.0f * frand();
        u[i] = frand();
    }
    for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
        sm_isa_set((sm_isa)isa);
        memcpy(e, x, sizeof x);
        sm_vec_exp(e, N);
        memcpy(g, x, sizeof x);
        sm_vec_silu_mul(g, u, N);
        double worst_e = 0, worst_s = 0;
        for (int i = 0; i < N; i++) {
            const double want = exp((double)x[i]);
            if (want > 1e-37 && want < 1e38) worst_e = fmax(worst_e, fabs(e[i] / want - 1));
            const double ws = (double)x[i] / (1 + exp(-(double)x[i])) * u[i];
            worst_s = fmax(worst_s, fabs(g[i] - ws) / (fabs(ws) + 1e-30));
        }
        CHECK_MSG(worst_e < 5e-7, "%s exp: relative error %g", sm_isa_name((sm_isa)isa), worst_e);
        CHECK_MSG(worst_s < 1e-6, "%s silu: relative error %g", sm_isa_name((sm_isa)isa), worst_s);
    }
    sm_isa_set(sm_cpu_isa());
}

/* ---- tails: every length 1..TMAX at every start offset 0..OFFS-1 (floats from a 64-byte
 * boundary), on every ISA this CPU has ---- */
enum { TMAX = 70, OFFS = 16, LONG = 128 /* a multiple of every vector width */, BUF = OFFS + LONG + 16 };
#define SENTINEL 0x7fa5a5a5u /* a NaN payload no kernel writes */

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static void fill_sentinel(float *b) { for (int i = 0; i < BUF; i++) b[i] = u2f(SENTINEL); }
/* 1 if b[0, o) and b[o + n, BUF) still hold the sentinel */
static int untouched(const float *b, int o, int n) {
    for (int i = 0; i < BUF; i++)
        if ((i < o || i >= o + n) && f2u(b[i]) != SENTINEL) return 0;
    return 1;
}

static float g_x[LONG], g_u[LONG];

static void tail_data(void) {
    for (int i = 0; i < LONG; i++) {
        g_x[i] = i < 10 ? (float[]){0.0f, -0.0f, 1.0f, -87.0f, 88.0f, -30.5f, 1e-8f, -1e-8f, -100.0f, 0.5f}[i]
                        : 90.0f * frand();
        g_u[i] = frand();
    }
}

/* exp and silu: element i of an n-element call at offset o has the bits of element i of a
 * LONG-element call (full vectors only), and nothing outside [0, n) is written. */
static void tails_elementwise(void) {
    tail_data();
    _Alignas(64) static float a[BUF], b[BUF];
    for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
        sm_isa_set((sm_isa)isa);
        const sm_gemm_isa *k = sm_gemm_current();
        float fe[LONG], fs[LONG];
        memcpy(fe, g_x, sizeof fe);
        k->exp(fe, LONG);
        memcpy(fs, g_x, sizeof fs);
        k->silu_mul(fs, g_u, LONG);
        int bad_e = 0, bad_s = 0, spill = 0;
        for (int n = 1; n <= TMAX; n++)
            for (int o = 0; o < OFFS; o++) {
                fill_sentinel(a);
                memcpy(a + o, g_x, sizeof(float) * (size_t)n);
                k->exp(a + o, n);
                bad_e += memcmp(a + o, fe, sizeof(float) * (size_t)n) != 0;
                spill += !untouched(a, o, n);
                fill_sentinel(a);
                fill_sentinel(b);
                memcpy(a + o, g_x, sizeof(float) * (size_t)n);
                memcpy(b + o, g_u, sizeof(float) * (size_t)n);
                k->silu_mul(a + o, b + o, n);
                bad_s += memcmp(a + o, fs, sizeof(float) * (size_t)n) != 0;
                spill += !untouched(a, o, n);
            }
        CHECK_MSG(!bad_e, "%s exp: %d of %d (length, offset) cases differ from the full-width bits",
                  sm_isa_name((sm_isa)isa), bad_e, TMAX * OFFS);
        CHECK_MSG(!bad_s, "%s silu_mul: %d of %d (length, offset) cases differ from the full-width bits",
                  sm_isa_name((sm_isa)isa), bad_s, TMAX * OFFS);
        CHECK_MSG(!spill, "%s exp/silu: %d calls wrote outside their range", sm_isa_name((sm_isa)isa), spill);
        /* the public entry points dispatch to the same code */
        memcpy(a, g_x, sizeof(float) * 37);
        sm_vec_exp(a, 37);
        CHECK(!memcmp(a, fe, sizeof(float) * 37));
    }
    sm_isa_set(sm_cpu_isa());
}

/* dot, dot_f16, dot_bf16: the sum over an n-element range at offset o is the sum the same
 * ISA gives for the zero-padded LONG-element array; within 1e-6 (relative to sum |a*b|) of
 * a double reference on every ISA; the half forms equal dot on the converted values. */
static void tails_reductions(void) {
    tail_data();
    _Alignas(64) static float a[BUF], b[BUF], pa[LONG], pb[LONG], conv[LONG];
    _Alignas(64) static uint16_t h[BUF], ph[LONG];
    for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
        sm_isa_set((sm_isa)isa);
        const sm_gemm_isa *k = sm_gemm_current();
        int bad_pad = 0, bad_half = 0;
        double worst = 0;
        for (int n = 1; n <= TMAX; n++)
            for (int o = 0; o < OFFS; o++) {
                memset(pa, 0, sizeof pa);
                memset(pb, 0, sizeof pb);
                for (int i = 0; i < n; i++) pa[i] = g_x[i] / 90.0f, pb[i] = g_u[i];
                fill_sentinel(a);
                fill_sentinel(b);
                memcpy(a + o, pa, sizeof(float) * (size_t)n);
                memcpy(b + o, pb, sizeof(float) * (size_t)n);
                const float d = k->dot(a + o, b + o, n), dp = k->dot(pa, pb, LONG);
                bad_pad += f2u(d) != f2u(dp);
                double ref = 0, mag = 0;
                for (int i = 0; i < n; i++) ref += (double)pa[i] * pb[i], mag += fabs((double)pa[i] * pb[i]);
                worst = fmax(worst, fabs(d - ref) / (mag + 1e-30));
                for (int bf = 0; bf < 2; bf++) {
                    memset(ph, 0, sizeof ph);
                    for (int i = 0; i < n; i++) ph[i] = bf ? sm_f32_to_bf16(pa[i]) : sm_f32_to_f16(pa[i]);
                    for (int i = 0; i < BUF; i++) h[i] = 0x7e55;
                    memcpy(h + o, ph, 2 * (size_t)n);
                    float (*dh)(const void *, const float *, int64_t) = bf ? k->dot_bf16 : k->dot_f16;
                    const float x = dh(h + o, b + o, n), xp = dh(ph, pb, LONG);
                    for (int i = 0; i < LONG; i++) conv[i] = bf ? sm_bf16_to_f32(ph[i]) : sm_f16_to_f32(ph[i]);
                    bad_pad += f2u(x) != f2u(xp);
                    bad_half += f2u(x) != f2u(k->dot(conv, pb, n));
                }
            }
        CHECK_MSG(!bad_pad, "%s dots: %d results differ from the zero-padded full-width sum", sm_isa_name((sm_isa)isa),
                  bad_pad);
        CHECK_MSG(!bad_half, "%s: %d half-precision dots differ from dot on the converted values",
                  sm_isa_name((sm_isa)isa), bad_half);
        CHECK_MSG(worst < 1e-6, "%s dot: relative error %g", sm_isa_name((sm_isa)isa), worst);
    }
    sm_isa_set(sm_cpu_isa());
}

/* The exact kernels give the same bits on every ISA, at every length and offset: F16/BF16
 * to float over all 65536 values, the converter's casts between F32/F16/BF16 (NaN, inf,
 * subnormal and rounding-midpoint inputs), GPTQ's axpy. */
static void tails_exact(void) {
    /* all halves */
    static uint16_t all[65536];
    static float want[65536], got[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    for (int bf = 0; bf < 2; bf++) {
        for (int i = 0; i < 65536; i++) want[i] = bf ? sm_bf16_to_f32(all[i]) : sm_f16_to_f32(all[i]);
        for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
            sm_isa_set((sm_isa)isa);
            const sm_gemm_isa *k = sm_gemm_current();
            (bf ? k->bf16_to_f32 : k->f16_to_f32)(all, got, 65536);
            CHECK_MSG(!memcmp(got, want, sizeof got), "%s %s_to_f32 differs from core's conversion",
                      sm_isa_name((sm_isa)isa), bf ? "bf16" : "f16");
            _Alignas(64) static float out[BUF];
            int bad = 0, spill = 0;
            for (int n = 1; n <= TMAX; n++)
                for (int o = 0; o < OFFS; o++) {
                    const uint16_t *src = all + 0x7c00 - n / 2 - 8 + o; /* large finite, inf and NaN halves among them */
                    fill_sentinel(out);
                    (bf ? k->bf16_to_f32 : k->f16_to_f32)(src, out + o, n);
                    bad += memcmp(out + o, want + (src - all), sizeof(float) * (size_t)n) != 0;
                    spill += !untouched(out, o, n);
                }
            CHECK_MSG(!bad && !spill, "%s %s_to_f32 tails: %d differ, %d wrote outside", sm_isa_name((sm_isa)isa),
                      bf ? "bf16" : "f16", bad, spill);
        }
    }
    /* casts: sources with specials, every pair of plain types, every length and offset */
    enum { CN = TMAX + OFFS };
    static float src32[CN];
    static uint16_t src16[CN];
    for (int i = 0; i < CN; i++) {
        const uint32_t specials[] = {0x7fc00000u, 0xff800000u, 0x7f800000u, 0x00000001u, 0x477ff000u,
                                     0x477fefffu, 0x38800000u, 0x3f808000u, 0x3f818000u, 0x80000000u, 0x7f800001u};
        src32[i] = i % 7 == 3 ? u2f(specials[(i / 7) % 11]) : 1000.0f * frand();
        src16[i] = (uint16_t)(i % 9 == 4 ? 0x7c01 + i : (uint16_t)(rng >> 20) ^ (uint16_t)(i * 2654435761u));
        frand();
    }
    const sm_type plain[3] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16};
    static uint8_t ref[4 * CN + 64], out[4 * CN + 64];
    int bad = 0;
    for (int fi = 0; fi < 3; fi++)
        for (int ti = 0; ti < 3; ti++) {
            if (fi == ti) continue;
            const size_t in = fi ? 2 : 4, ob = ti ? 2 : 4;
            const uint8_t *s = fi ? (const uint8_t *)src16 : (const uint8_t *)src32;
            for (int n = 1; n <= TMAX; n++)
                for (int o = 0; o < OFFS; o++) {
                    sm_isa_set(SM_ISA_SCALAR);
                    memset(ref, 0xa5, sizeof ref);
                    CHECK_OK(cv_cast_row(plain[fi], s + o * in, plain[ti], ref + o * ob, n));
                    for (int isa = SM_ISA_AVX2; isa <= (int)sm_cpu_isa(); isa++) {
                        sm_isa_set((sm_isa)isa);
                        memset(out, 0xa5, sizeof out);
                        CHECK_OK(cv_cast_row(plain[fi], s + o * in, plain[ti], out + o * ob, n));
                        bad += memcmp(out, ref, sizeof out) != 0;
                    }
                }
        }
    CHECK_MSG(!bad, "%d casts differ from the scalar bytes", bad);
    /* GPTQ's axpy: fma per element on every ISA */
    {
        static double x[BUF], y[BUF], y0[BUF];
        for (int i = 0; i < BUF; i++) x[i] = frand(), y0[i] = frand();
        int bad_axpy = 0;
        for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
            sm_isa_set((sm_isa)isa);
            const gq_kernels *kr = gq_kernels_get();
            for (int n = 1; n <= TMAX; n++)
                for (int o = 0; o < OFFS; o++) {
                    memcpy(y, y0, sizeof y);
                    kr->axpy(n, -0.37, x + o, y + o);
                    for (int i = 0; i < BUF; i++) {
                        const double w = i >= o && i < o + n ? fma(-0.37, x[i], y0[i]) : y0[i];
                        bad_axpy += memcmp(&w, &y[i], sizeof w) != 0;
                    }
                }
        }
        CHECK_MSG(!bad_axpy, "GPTQ axpy: %d elements differ from fma", bad_axpy);
    }
    sm_isa_set(sm_cpu_isa());
}

/* Batches of >= 8 tokens: a token's outputs do not depend on the batch it is in (where it
 * falls in a panel, how many tokens the panel holds), on every ISA. */
static void batch_position(void) {
    enum { NO = 7, NI = 40, NT = TMAX + OFFS };
    float *wf;
    void *w = make_weights(SM_TYPE_F32, NO, NI, sizeof(float) * NI, &wf);
    static float x[NI * NT], full[NO * NT], y[NO * NT];
    for (int i = 0; i < NI * NT; i++) x[i] = frand();
    for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
        sm_isa_set((sm_isa)isa);
        CHECK_OK(sm_matmul(SM_TYPE_F32, w, sizeof(float) * NI, NO, NI, x, NT, NT, full, NT));
        int bad = 0;
        for (int n = 8; n <= TMAX; n++)
            for (int o = 0; o < OFFS; o++) {
                CHECK_OK(sm_matmul(SM_TYPE_F32, w, sizeof(float) * NI, NO, NI, x + o, NT, n, y, NT));
                for (int r = 0; r < NO; r++) bad += memcmp(y + r * NT, full + r * NT + o, sizeof(float) * (size_t)n) != 0;
            }
        CHECK_MSG(!bad, "%s: %d output rows of a sub-batch differ from the full batch", sm_isa_name((sm_isa)isa), bad);
    }
    sm_isa_set(sm_cpu_isa());
    free(w);
    free(wf);
}

/* One selector: sm_isa_set caps at what the CPU (and SMELT_ISA) allow and every consumer
 * follows it; names parse. */
static void isa_selector(void) {
    const sm_isa cap = sm_cpu_isa();
    CHECK(cap <= sm_cpu_isa_hw());
    const char *env = getenv("SMELT_ISA");
    sm_isa want;
    if (env && !sm_isa_parse(env, &want)) CHECK(cap == (want < sm_cpu_isa_hw() ? want : sm_cpu_isa_hw()));
    CHECK(sm_isa_active() == cap);
    CHECK(sm_isa_set(SM_ISA_AVX512) == cap);
    CHECK(sm_isa_set(SM_ISA_SCALAR) == SM_ISA_SCALAR && sm_isa_active() == SM_ISA_SCALAR);
    CHECK(sm_gemm_current() == &sm_gemm_scalar);
    CHECK(gq_kernels_get() == &gq_kernels_scalar);
#if defined(__x86_64__)
    if (cap >= SM_ISA_AVX2) {
        CHECK(sm_isa_set(SM_ISA_AVX2) == SM_ISA_AVX2);
        CHECK(sm_gemm_current() == &sm_gemm_avx2);
        CHECK(gq_kernels_get() == &gq_kernels_avx2);
    }
#endif
    sm_isa_set(cap);
    CHECK(!sm_isa_parse("avx2", &want) && want == SM_ISA_AVX2);
    CHECK(!sm_isa_parse("scalar", &want) && want == SM_ISA_SCALAR);
    CHECK(!sm_isa_parse("avx512", &want) && want == SM_ISA_AVX512);
    CHECK(sm_isa_parse("AVX2", &want) == -1 && sm_isa_parse("sse", &want) == -1);
    fprintf(stderr, "  isa: %s (cpu: %s)\n", sm_isa_name(sm_isa_active()), sm_isa_name(sm_cpu_isa_hw()));
}

/* every block type the runtime multiplies with (rows of 2 super-blocks + odd shapes) */
static void block_types(void) {
    const sm_type types[] = {SM_TYPE_Q8_0, SM_TYPE_Q4_0, SM_TYPE_Q4_1, SM_TYPE_Q5_0, SM_TYPE_Q5_1, SM_TYPE_Q2_K,
                             SM_TYPE_Q3_K, SM_TYPE_Q4_K, SM_TYPE_Q5_K, SM_TYPE_Q6_K, SM_TYPE_IQ4_NL, SM_TYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        CHECK(sm_matmul_supported(types[i], 512));
        check_product(types[i], 29, 512, 3, 0);
        check_product(types[i], 29, 768, 70, 2);
    }
    check_product(SM_TYPE_Q8_0, 7, 96, 9, 0); /* a partial feature block */
}

/* The vectorised dequantizers (kernels/dequant_impl.h) give the codecs' scalar values bit for
 * bit on every ISA: quantized rows at several magnitudes, and raw random blocks (every nibble,
 * 6-bit scale and min pattern) whose f16 scales are made finite. */
static void vector_dequant(void) {
    static const struct { sm_type t; int bytes; int half[2]; } T[] = {
        {SM_TYPE_Q8_0, 34, {0, -1}}, {SM_TYPE_Q4_0, 18, {0, -1}}, {SM_TYPE_Q4_K, 144, {0, 2}}, {SM_TYPE_Q6_K, 210, {208, -1}},
    };
    const int64_t n = 1024;
    float *src = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    unsigned char *q = malloc((size_t)sm_type_row_bytes(SM_TYPE_F32, n));
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        const int64_t nb = (int64_t)sm_type_row_bytes(T[i].t, n) / T[i].bytes;
        for (int trial = 0; trial < 8; trial++) {
            if (trial < 4) {
                const float scale = trial == 0 ? 1e-3f : trial == 1 ? 1.0f : trial == 2 ? 300.0f : 1e-6f;
                for (int64_t k = 0; k < n; k++) src[k] = frand() * scale * (k % 7 == 0 ? 4.0f : 1.0f);
                CHECK(sm_quantize_rows(T[i].t, src, q, 1, n, NULL) > 0);
            } else {
                for (int64_t k = 0; k < nb * T[i].bytes; k++) q[k] = (unsigned char)(frand() * 256.0f);
                for (int64_t b = 0; b < nb; b++)
                    for (int h = 0; h < 2 && T[i].half[h] >= 0; h++) q[b * T[i].bytes + T[i].half[h] + 1] &= 0xbb; /* exponent < 31 */
                if (trial == 7) /* an infinite and a NaN scale: the same NaNs as the codec's */
                    for (int h = 0; h < 2 && T[i].half[h] >= 0; h++) {
                        q[T[i].half[h]] = 0x00, q[T[i].half[h] + 1] = 0x7c;
                        q[T[i].bytes + T[i].half[h]] = 0x01, q[T[i].bytes + T[i].half[h] + 1] = 0xfe;
                    }
            }
            CHECK_OK(sm_dequantize_row(T[i].t, q, ref, n));
            for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
                sm_isa_set((sm_isa)isa);
                memset(got, 0xff, sizeof(float) * n);
                CHECK_OK(sm_row_to_f32(T[i].t, q, got, n));
                CHECK_MSG(!memcmp(got, ref, sizeof(float) * n), "%s dequantized on %s differs from the codec (trial %d)",
                          sm_type_name(T[i].t), sm_isa_name((sm_isa)isa), trial);
                /* one token takes the fused dequantize-and-dot path, two dequantize the row and
                 * take float dots: the same bits (x feature-major, token 0 in both) */
                float x2[2 * 1024], y1, y2[2];
                for (int64_t k = 0; k < n; k++) x2[2 * k] = x2[2 * k + 1] = src[k % 97] + 0.25f;
                float x1[1024];
                for (int64_t k = 0; k < n; k++) x1[k] = x2[2 * k];
                CHECK_OK(sm_matmul(T[i].t, q, 0, 1, n, x1, 1, 1, &y1, 1));
                CHECK_OK(sm_matmul(T[i].t, q, 0, 1, n, x2, 2, 2, y2, 2));
                CHECK_MSG(!memcmp(&y1, &y2[0], sizeof y1) || (y1 != y1 && y2[0] != y2[0]), "%s on %s: fused dot %.9g, dequantize + dot %.9g",
                          sm_type_name(T[i].t), sm_isa_name((sm_isa)isa), (double)y1, (double)y2[0]);
            }
            sm_isa_set(sm_cpu_isa());
        }
    }
    free(src), free(ref), free(got), free(q);
}

static void unsupported(void) {
    float x[4] = {0}, y[4];
    CHECK_FAILS_WITH(sm_matmul(SM_TYPE_I32, x, 16, 1, 4, x, 4, 1, y, 1), "not supported");
    CHECK(!sm_matmul_supported(SM_TYPE_Q4_K, 100));
    CHECK(!sm_matmul_supported(SM_TYPE_Q8_K, 256) && !sm_matmul_supported(SM_TYPE_IQ2_XS, 100));
    CHECK(sm_matmul_supported(SM_TYPE_IQ2_XXS, 256) && sm_matmul_supported(SM_TYPE_MXFP4, 32));
}

void run_tests(void) {
    TEST(plain_types);
    TEST(block_types);
    TEST(vector_dequant);
    TEST(many);
    TEST(vector_math);
    TEST(tails_elementwise);
    TEST(tails_reductions);
    TEST(tails_exact);
    TEST(batch_position);
    TEST(isa_selector);
    TEST(unsupported);
}
