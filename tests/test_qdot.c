/* test_qdot.c - matrix-vector products with 8-bit activations and integer dot products
 * (sm_matmul_op.int_dot): against a double-precision reference computed here from the codecs'
 * dequantized weights and activations quantized the way ggml's quantize_row_q8_0_ref /
 * quantize_row_q8_K_ref do (written out again below); bit-identical results on every ISA
 * (scalar, AVX2, AVX-512 with and without VNNI), thread count and batch position; random block
 * bytes (extreme values: int8 -128, Q6_K scale -128) without saturation; the exact float path
 * for non-finite activations, batches of 8 or more, types without an integer dot, and by
 * default. */
#include "testlib.h"

#include "kernels/kernels.h"
#include "kernels/kernels_internal.h"
#include "quantize/quantize.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* ggml's activation quantization, written independently: the values x is multiplied as */
static void q8_reference(sm_type act, const float *x, int64_t n, float *xd) {
    const int bs = act == SM_TYPE_Q8_0 ? 32 : 256;
    for (int64_t b = 0; b < n; b += bs) {
        float amax = 0, max = 0;
        for (int j = 0; j < bs; j++)
            if (fabsf(x[b + j]) > amax) amax = fabsf(x[b + j]), max = x[b + j];
        for (int j = 0; j < bs; j++) {
            if (amax == 0) {
                xd[b + j] = 0;
            } else if (act == SM_TYPE_Q8_0) {
                const float d = amax / 127, id = 1.0f / d;
                xd[b + j] = roundf(x[b + j] * id) * sm_f16_to_f32(sm_f32_to_f16(d));
            } else {
                const float iscale = -127.0f / max;
                const float q = nearbyintf(iscale * x[b + j]);
                xd[b + j] = (q > 127 ? 127 : q) * (1.0f / iscale);
            }
        }
    }
}

static const sm_type TYPES[] = {SM_TYPE_Q4_0, SM_TYPE_Q8_0, SM_TYPE_Q4_K, SM_TYPE_Q5_K, SM_TYPE_Q6_K};
#define N_TYPES (int)(sizeof TYPES / sizeof TYPES[0])

/* n_out rows of `type`: quantized random floats, or (raw) random block bytes with the f16
 * scales kept finite */
static unsigned char *make_rows(sm_type type, int64_t n_out, int64_t n_in, bool raw) {
    const size_t rb = (size_t)sm_type_row_bytes(type, n_in);
    unsigned char *w = malloc(rb * (size_t)n_out);
    if (!raw) {
        float *src = malloc(sizeof(float) * (size_t)(n_out * n_in));
        for (int64_t i = 0; i < n_out * n_in; i++) src[i] = frand() * (i % 11 == 0 ? 3.0f : 1.0f);
        CHECK(sm_quantize_rows(type, src, w, n_out, n_in, NULL) == rb * (size_t)n_out);
        free(src);
        return w;
    }
    for (size_t i = 0; i < rb * (size_t)n_out; i++) w[i] = (unsigned char)(frand() * 256.0f);
    const sm_type_info *ti = sm_type_get(type);
    const size_t bb = ti->block_bytes;
    /* the f16 scales' offsets in a block: exponent below 31 (finite), small */
    const int half[2] = {type == SM_TYPE_Q6_K ? 208 : 0, type == SM_TYPE_Q4_K || type == SM_TYPE_Q5_K ? 2 : -1};
    for (size_t b = 0; b < rb * (size_t)n_out / bb; b++)
        for (int h = 0; h < 2; h++)
            if (half[h] >= 0) w[b * bb + half[h] + 1] &= 0x3b;
    return w;
}

/* y[r*ldy + t] for x feature-major (x[k*n_tok + t]) */
static void product(sm_type type, const void *w, int64_t n_out, int64_t n_in, const float *x, int64_t n_tok, float *y,
                    bool int_dot) {
    const sm_matmul_op op = {type, w, (size_t)sm_type_row_bytes(type, n_in), n_out, y, n_tok, false, int_dot};
    CHECK_OK(sm_matmul_many(&op, 1, n_in, x, n_tok, n_tok));
}

/* activations: mixed magnitudes per block, one all-zero block, one block of tiny values */
static void make_acts(float *x, int64_t n_in, int64_t n_tok) {
    for (int64_t k = 0; k < n_in; k++)
        for (int64_t t = 0; t < n_tok; t++) {
            const float scale = k / 32 % 3 == 0 ? 10.0f : k / 32 % 3 == 1 ? 0.01f : 1.0f;
            x[k * n_tok + t] = k >= 64 && k < 96 ? 0.0f : k >= 96 && k < 128 ? frand() * 1e-30f : frand() * scale;
        }
}

static void reference(void) {
    for (int i = 0; i < N_TYPES; i++)
        for (int raw = 0; raw < 2; raw++) {
            const sm_type t = TYPES[i], act = sm_qdot_act_type(t);
            const int64_t n_in = 768, n_out = 19, n_tok = 3;
            unsigned char *w = make_rows(t, n_out, n_in, raw);
            float *x = malloc(sizeof(float) * n_in * n_tok), *y = malloc(sizeof(float) * n_out * n_tok);
            float *wf = malloc(sizeof(float) * n_in), *xt = malloc(sizeof(float) * n_in), *xd = malloc(sizeof(float) * n_in);
            make_acts(x, n_in, n_tok);
            product(t, w, n_out, n_in, x, n_tok, y, true);
            for (int64_t tok = 0; tok < n_tok; tok++) {
                for (int64_t k = 0; k < n_in; k++) xt[k] = x[k * n_tok + tok];
                q8_reference(act, xt, n_in, xd);
                for (int64_t r = 0; r < n_out; r++) {
                    CHECK_OK(sm_dequantize_row(t, w + (size_t)r * sm_type_row_bytes(t, n_in), wf, n_in));
                    double s = 0, mag = 0;
                    for (int64_t k = 0; k < n_in; k++) s += (double)wf[k] * xd[k], mag += fabs((double)wf[k] * xd[k]);
                    const double got = y[r * n_tok + tok];
                    CHECK_MSG(fabs(got - s) <= 2e-6 * mag + 1e-30, "%s%s row %lld token %lld: %.9g, reference %.9g",
                              sm_type_name(t), raw ? " (random bytes)" : "", (long long)r, (long long)tok, got, s);
                }
            }
            free(w), free(x), free(y), free(wf), free(xt), free(xd);
        }
}

/* every ISA's form of the dot, and sm_matmul on every ISA, thread count and batch position:
 * the same bits */
static void same_bits(void) {
    for (int i = 0; i < N_TYPES; i++)
        for (int raw = 0; raw < 2; raw++) {
            const sm_type t = TYPES[i], act = sm_qdot_act_type(t);
            const int64_t n_in = act == SM_TYPE_Q8_0 ? 224 : 1280, n_out = 29, n_tok = 3;
            unsigned char *w = make_rows(t, n_out, n_in, raw);
            float *x = malloc(sizeof(float) * n_in * n_tok), *ref = malloc(sizeof(float) * n_out * n_tok);
            float *y = malloc(sizeof(float) * n_out * n_tok), *x1 = malloc(sizeof(float) * n_in), y1[29];
            make_acts(x, n_in, n_tok);
            /* the forms directly, on one row and token 0 */
            for (int64_t k = 0; k < n_in; k++) x1[k] = x[k * n_tok];
            void *xq = malloc(sm_act_bytes(act, n_in));
            CHECK_OK(sm_quantize_act(act, x1, n_in, xq));
            for (int64_t r = 0; r < n_out; r++) {
                const void *wr = w + (size_t)r * sm_type_row_bytes(t, n_in);
                const float s = sm_qdot8_scalar(t, wr, xq, n_in);
#if defined(__x86_64__)
                __builtin_cpu_init();
                if (sm_cpu_isa_hw() >= SM_ISA_AVX2) {
                    const float a = sm_qdot8_avx2(t, wr, xq, n_in);
                    CHECK_MSG(!memcmp(&a, &s, sizeof s), "%s row %lld: avx2 %.9g, scalar %.9g", sm_type_name(t), (long long)r, (double)a, (double)s);
                }
                if (sm_cpu_isa_hw() >= SM_ISA_AVX512 && __builtin_cpu_supports("avx512vnni")) {
                    const float v = sm_qdot8_avx512vnni(t, wr, xq, n_in);
                    CHECK_MSG(!memcmp(&v, &s, sizeof s), "%s row %lld: vnni %.9g, scalar %.9g", sm_type_name(t), (long long)r, (double)v, (double)s);
                }
#endif
            }
            free(xq);
            sm_isa_set(SM_ISA_SCALAR);
            omp_set_num_threads(1);
            product(t, w, n_out, n_in, x, n_tok, ref, true);
            for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++)
                for (int th = 1; th <= 3; th++) {
                    sm_isa_set((sm_isa)isa);
                    omp_set_num_threads(th);
                    product(t, w, n_out, n_in, x, n_tok, y, true);
                    CHECK_MSG(!memcmp(y, ref, sizeof(float) * n_out * n_tok), "%s on %s, %d threads: not the scalar bits",
                              sm_type_name(t), sm_isa_name((sm_isa)isa), th);
                    product(t, w, n_out, n_in, x1, 1, y1, true); /* token 0 alone */
                    for (int64_t r = 0; r < n_out; r++)
                        CHECK_MSG(!memcmp(&y1[r], &ref[r * n_tok], sizeof(float)), "%s on %s: a batch of 1 differs from 3",
                                  sm_type_name(t), sm_isa_name((sm_isa)isa));
                }
            sm_isa_set(sm_cpu_isa());
            omp_set_num_threads(2);
            free(w), free(x), free(ref), free(y), free(x1);
        }
}

/* where the float path stays: without int_dot, non-finite activations, >= 8 tokens, other types */
static void float_path(void) {
    const int64_t n_in = 512, n_out = 7;
    const sm_type types[] = {SM_TYPE_Q4_K, SM_TYPE_Q8_0, SM_TYPE_Q5_0, SM_TYPE_Q2_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const sm_type t = types[i];
        const bool has = sm_qdot_act_type(t) != SM_TYPE_INVALID;
        unsigned char *w = make_rows(t, n_out, n_in, false);
        for (int64_t n_tok = 1; n_tok <= 9; n_tok += 8)
            for (int bad = 0; bad < 2; bad++) {
                float *x = malloc(sizeof(float) * n_in * n_tok), *a = malloc(sizeof(float) * n_out * n_tok),
                      *b = malloc(sizeof(float) * n_out * n_tok);
                make_acts(x, n_in, n_tok);
                if (bad) x[300 * n_tok] = INFINITY;
                product(t, w, n_out, n_in, x, n_tok, a, false);
                product(t, w, n_out, n_in, x, n_tok, b, true);
                const bool same = !memcmp(a, b, sizeof(float) * n_out * n_tok);
                const bool int_path = has && n_tok < 8 && !bad;
                CHECK_MSG(same != int_path, "%s, %lld tokens%s: %s", sm_type_name(t), (long long)n_tok,
                          bad ? ", an infinite activation" : "", int_path ? "the integer path gave the float bits" : "not the float path");
                free(x), free(a), free(b);
            }
        free(w);
    }
    CHECK(sm_qdot_act_type(SM_TYPE_Q4_0) == SM_TYPE_Q8_0 && sm_qdot_act_type(SM_TYPE_Q6_K) == SM_TYPE_Q8_K);
    CHECK(sm_qdot_act_type(SM_TYPE_F16) == SM_TYPE_INVALID && sm_qdot_act_type(SM_TYPE_IQ4_XS) == SM_TYPE_INVALID);
}

void run_tests(void) {
    TEST(reference);
    TEST(same_bits);
    TEST(float_path);
}
