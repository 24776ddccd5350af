/* matmul.c - Y = W · X for weights in any supported storage type, activations
 * feature-major (see kernels.h).
 *
 * Batches of 8 or more tokens: each thread walks its share of output rows in chunks of
 * CHUNK_ROWS rows (whose outputs stay in L2) and the features in blocks of KB: it converts
 * the chunk's weights for the block to float (once per weight element, into L2), then for
 * each panel of tpw tokens and KSUB features (in L1) runs the ISA's register tile for every
 * group of mr rows of the chunk, accumulating into y in place.
 *
 * Smaller batches: each thread converts one weight row at a time and takes dot products
 * with every token.
 *
 * Either way an output element is produced by one thread with a fixed summation order, so
 * the thread count never changes a result. */
#include "kernels_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "quantize/quantize.h"

#define KB 256          /* features converted at a time: a multiple of every block type's size */
#define KSUB 128        /* features per pass over a panel */
#define CHUNK_ROWS 96   /* rows per chunk: a multiple of every ISA's mr */
#define GEMM_MIN_TOKENS 8
#define MIN_WORK_PER_THREAD (1 << 20) /* multiply-adds: below this a thread costs more than it helps */

const sm_gemm_isa *sm_gemm_current(void) {
#if defined(__x86_64__)
    switch (sm_isa_active()) {
    case SM_ISA_AVX512: return &sm_gemm_avx512;
    case SM_ISA_AVX2: return &sm_gemm_avx2;
    default: break;
    }
#endif
    return &sm_gemm_scalar;
}

/* Block types the runtime can multiply with (through the codecs' dequantizers). */
static bool block_type_ok(sm_type t) {
    switch (t) {
    case SM_TYPE_Q8_0: case SM_TYPE_Q4_0: case SM_TYPE_Q4_1: case SM_TYPE_Q5_0: case SM_TYPE_Q5_1:
    case SM_TYPE_Q2_K: case SM_TYPE_Q3_K: case SM_TYPE_Q4_K: case SM_TYPE_Q5_K: case SM_TYPE_Q6_K:
    case SM_TYPE_IQ4_NL: case SM_TYPE_IQ4_XS: case SM_TYPE_IQ2_XXS: case SM_TYPE_IQ2_XS: case SM_TYPE_IQ2_S:
    case SM_TYPE_IQ3_XXS: case SM_TYPE_IQ3_S: case SM_TYPE_IQ1_S: case SM_TYPE_IQ1_M: case SM_TYPE_TQ1_0:
    case SM_TYPE_TQ2_0: case SM_TYPE_MXFP4:
        return true;
    default:
        return false;
    }
}

bool sm_matmul_supported(sm_type type, int64_t n_in) {
    if (n_in <= 0) return false;
    if (type == SM_TYPE_F32 || type == SM_TYPE_F16 || type == SM_TYPE_BF16) return true;
    const sm_type_info *ti = sm_type_get(type);
    return ti && block_type_ok(type) && n_in % ti->block_size == 0;
}

static int convert(const sm_gemm_isa *isa, sm_type type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case SM_TYPE_F32: memcpy(dst, src, (size_t)n * sizeof(float)); return 0;
    case SM_TYPE_F16: isa->f16_to_f32(src, dst, n); return 0;
    case SM_TYPE_BF16: isa->bf16_to_f32(src, dst, n); return 0;
    default:
        if (isa->dequant && isa->dequant(type, src, dst, n) == 0) return 0;
        return sm_dequantize_row(type, src, dst, n);
    }
}

int sm_row_to_f32(sm_type type, const void *src, float *dst, int64_t n) {
    if (!sm_matmul_supported(type, n)) return sm_error("no float conversion for %s rows of %lld", sm_type_name(type), (long long)n);
    return convert(sm_gemm_current(), type, src, dst, n);
}

/* Per-thread scratch buffers that only grow (64-byte aligned), freed when the thread ends
 * (OpenMP teams shrink and grow with the thread count). */
typedef struct scratch { float *p; size_t cap; } scratch;
typedef struct thread_scratch { scratch row, cols, act[2]; } thread_scratch;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p) {
    thread_scratch *ts = p;
    free(ts->row.p);
    free(ts->cols.p);
    free(ts->act[0].p);
    free(ts->act[1].p);
    free(ts);
}

static void scratch_key_init(void) { pthread_key_create(&g_scratch_key, scratch_free); }

static thread_scratch *my_scratch(void) {
    pthread_once(&g_scratch_once, scratch_key_init);
    thread_scratch *ts = pthread_getspecific(g_scratch_key);
    if (!ts) {
        ts = calloc(1, sizeof *ts);
        if (ts && pthread_setspecific(g_scratch_key, ts)) {
            free(ts);
            ts = NULL;
        }
    }
    return ts;
}

static float *scratch_get(scratch *s, size_t n) {
    if (s->cap < n) {
        free(s->p);
        s->p = NULL;
        s->cap = 0;
        size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
        if (posix_memalign((void **)&s->p, 64, bytes) != 0) return NULL;
        s->cap = n;
    }
    return s->p;
}

typedef struct job {
    const sm_gemm_isa *isa;
    const sm_matmul_op *ops;
    int n_ops;
    int64_t n_rows;     /* sum of the products' rows */
    int64_t n_in, n_tok, ldx;
    const float *x;     /* feature-major activations (gemm) */
    const float *cols;  /* token-major copy of the activations (dot products) */
    const char *act[2]; /* the tokens' activations as Q8_0 and Q8_K blocks (int_dot), or NULL */
} job;

/* F32 weights aligned for float loads are read in place. */
static bool direct(const sm_matmul_op *op) {
    return op->wtype == SM_TYPE_F32 && ((uintptr_t)op->w % sizeof(float)) == 0 && op->w_stride % sizeof(float) == 0;
}

/* Rows [r0, r1) of product `op`, batched. Returns -1 only if a dequantizer fails. */
static int gemm_rows(const job *J, const sm_matmul_op *op, int64_t r0, int64_t r1) {
    const sm_gemm_isa *isa = J->isa;
    const int mr = isa->mr, tpw = isa->tpw;
    const bool in_place = direct(op);
    thread_scratch *ts = my_scratch();
    float *wbuf = in_place || !ts ? NULL : scratch_get(&ts->row, (size_t)CHUNK_ROWS * KB);
    if (!in_place && !wbuf) return sm_error("out of memory for matrix product scratch");
    for (int64_t c0 = r0; c0 < r1; c0 += CHUNK_ROWS) {
        const int64_t cn = r1 - c0 < CHUNK_ROWS ? r1 - c0 : CHUNK_ROWS;
        for (int64_t k0 = 0; k0 < J->n_in; k0 += KB) {
            const int64_t kb = J->n_in - k0 < KB ? J->n_in - k0 : KB;
            const char *wr = (const char *)op->w + (size_t)c0 * op->w_stride + (size_t)sm_type_row_bytes(op->wtype, k0);
            const float *wp;
            int64_t ldw;
            if (in_place) {
                wp = (const float *)(const void *)wr;
                ldw = (int64_t)(op->w_stride / sizeof(float));
            } else {
                for (int64_t r = 0; r < cn; r++)
                    if (convert(isa, op->wtype, wr + (size_t)r * op->w_stride, wbuf + (size_t)r * KB, kb)) return -1;
                wp = wbuf;
                ldw = KB;
            }
            /* a panel's KSUB features (KSUB*tpw floats) stay in L1 while every row block of
             * the chunk passes over them */
            for (int64_t s0 = 0; s0 < kb; s0 += KSUB) {
                const int64_t ks = kb - s0 < KSUB ? kb - s0 : KSUB;
                const bool first = k0 + s0 == 0 && !op->accumulate;
                for (int64_t t0 = 0; t0 < J->n_tok; t0 += tpw) {
                    const int valid = (int)(J->n_tok - t0 < tpw ? J->n_tok - t0 : tpw);
                    const float *xp = J->x + (k0 + s0) * J->ldx + t0;
                    for (int64_t b0 = 0; b0 < cn; b0 += mr) {
                        const int m = (int)(cn - b0 < mr ? cn - b0 : mr);
                        isa->tile(m, wp + b0 * ldw + s0, ldw, xp, J->ldx, ks, valid, op->y + (c0 + b0) * op->ldy + t0,
                                  op->ldy, first);
                    }
                }
            }
        }
    }
    return 0;
}

/* Rows [r0, r1) of product `op` as dot products with the token-major columns. F16 and BF16
 * rows are converted inside the dot product; block types a row at a time into L1. */
static int gemv_rows(const job *J, const sm_matmul_op *op, int64_t r0, int64_t r1) {
    const sm_type act = op->int_dot ? sm_qdot_act_type(op->wtype) : SM_TYPE_INVALID;
    const char *xq = act == SM_TYPE_INVALID ? NULL : J->act[act == SM_TYPE_Q8_K];
    if (xq) { /* integer dot products with the quantized activations */
        const size_t tb = sm_act_bytes(act, J->n_in);
        for (int64_t r = r0; r < r1; r++) {
            const void *wr = (const char *)op->w + (size_t)r * op->w_stride;
            for (int64_t t = 0; t < J->n_tok; t++) {
                const float d = J->isa->qdot8(op->wtype, wr, xq + (size_t)t * tb, J->n_in);
                op->y[r * op->ldy + t] = op->accumulate ? op->y[r * op->ldy + t] + d : d;
            }
        }
        return 0;
    }
    if (op->wtype == SM_TYPE_F16 || op->wtype == SM_TYPE_BF16) {
        float (*dot)(const void *, const float *, int64_t) = op->wtype == SM_TYPE_F16 ? J->isa->dot_f16 : J->isa->dot_bf16;
        for (int64_t r = r0; r < r1; r++) {
            const void *wr = (const char *)op->w + (size_t)r * op->w_stride;
            for (int64_t t = 0; t < J->n_tok; t++) {
                const float d = dot(wr, J->cols + t * J->n_in, J->n_in);
                op->y[r * op->ldy + t] = op->accumulate ? op->y[r * op->ldy + t] + d : d;
            }
        }
        return 0;
    }
    const bool in_place = direct(op);
    /* one token (generation): block rows dequantized in registers, never stored */
    if (J->n_tok == 1 && !in_place && J->isa->qdot) {
        int64_t r = r0;
        for (float d; r < r1; r++) {
            if (J->isa->qdot(op->wtype, (const char *)op->w + (size_t)r * op->w_stride, J->cols, J->n_in, &d)) break;
            op->y[r * op->ldy] = op->accumulate ? op->y[r * op->ldy] + d : d;
        }
        if (r == r1) return 0;
        r0 = r; /* a type without a vector form: the rows the general path does */
    }
    thread_scratch *ts = my_scratch();
    float *row = in_place || !ts ? NULL : scratch_get(&ts->row, (size_t)J->n_in);
    if (!in_place && !row) return sm_error("out of memory for matrix product scratch");
    for (int64_t r = r0; r < r1; r++) {
        const char *wr = (const char *)op->w + (size_t)r * op->w_stride;
        const float *wf;
        if (in_place) {
            wf = (const float *)(const void *)wr;
        } else {
            if (convert(J->isa, op->wtype, wr, row, J->n_in)) return -1;
            wf = row;
        }
        for (int64_t t = 0; t < J->n_tok; t++) {
            const float d = J->isa->dot(wf, J->cols + t * J->n_in, J->n_in);
            op->y[r * op->ldy + t] = op->accumulate ? op->y[r * op->ldy + t] + d : d;
        }
    }
    return 0;
}

/* Rows [lo, hi) of all products together (row r of op i is global row offset_i + r). */
static int rows(const job *J, int64_t lo, int64_t hi) {
    int64_t off = 0;
    for (int i = 0; i < J->n_ops; off += J->ops[i++].n_out) {
        const int64_t a = lo > off ? lo - off : 0, b = hi - off < J->ops[i].n_out ? hi - off : J->ops[i].n_out;
        if (a >= b) continue;
        if ((J->n_tok >= GEMM_MIN_TOKENS ? gemm_rows(J, &J->ops[i], a, b) : gemv_rows(J, &J->ops[i], a, b))) return -1;
    }
    return 0;
}

/* Thread i of n gets global rows [lo, hi), split in whole register tiles. */
static void share(const job *J, int i, int n, int64_t *lo, int64_t *hi) {
    const int64_t unit = J->isa->mr;
    const int64_t units = (J->n_rows + unit - 1) / unit;
    *lo = units * i / n * unit;
    *hi = units * (i + 1) / n * unit;
    if (*hi > J->n_rows) *hi = J->n_rows;
    if (*lo > J->n_rows) *lo = J->n_rows;
}

/* The activations of a small batch as Q8_0 and/or Q8_K blocks, for the products that ask for
 * integer dots (each token's column on its own: a batch's size never changes a token's bits).
 * A format stays NULL where no product needs it or a token has a non-finite activation. */
static int quantize_acts(job *J, thread_scratch *ts) {
    for (int k = 0; k < 2; k++) {
        const sm_type act = k ? SM_TYPE_Q8_K : SM_TYPE_Q8_0;
        bool want = false;
        for (int i = 0; i < J->n_ops; i++) want |= J->ops[i].int_dot && sm_qdot_act_type(J->ops[i].wtype) == act;
        if (!want) continue;
        const size_t tb = sm_act_bytes(act, J->n_in);
        char *buf = (char *)scratch_get(&ts->act[k], (tb * (size_t)J->n_tok) / sizeof(float) + 1);
        if (!buf) return sm_error("out of memory for matrix product scratch");
        bool finite = true;
        for (int64_t t = 0; t < J->n_tok && finite; t++)
            finite = sm_quantize_act(act, J->cols + t * J->n_in, J->n_in, buf + (size_t)t * tb) == 0;
        J->act[k] = finite ? buf : NULL;
    }
    return 0;
}

static int run(const sm_matmul_op *ops, int n_ops, int64_t n_in, const float *x, int64_t ldx, int64_t n_tok,
               bool parallel) {
    job J = {.isa = sm_gemm_current(), .ops = ops, .n_ops = n_ops, .n_in = n_in, .n_tok = n_tok, .ldx = ldx, .x = x};
    for (int i = 0; i < n_ops; i++) {
        if (!sm_matmul_supported(ops[i].wtype, n_in))
            return sm_error("matrix product: weights of type %s with rows of %lld are not supported",
                            sm_type_name(ops[i].wtype), (long long)n_in);
        if (ops[i].n_out > 0) J.n_rows += ops[i].n_out;
    }
    if (J.n_rows <= 0 || n_tok <= 0) return 0;
    if (n_tok < GEMM_MIN_TOKENS) { /* a few tokens: gather each token's features contiguously */
        thread_scratch *ts = my_scratch();
        float *cols = ts ? scratch_get(&ts->cols, (size_t)(n_tok * n_in)) : NULL;
        if (!cols) return sm_error("out of memory for matrix product scratch");
        for (int64_t k = 0; k < n_in; k++)
            for (int64_t t = 0; t < n_tok; t++) cols[t * n_in + k] = x[k * ldx + t];
        J.cols = cols;
        if (quantize_acts(&J, ts)) return -1;
    }
    int n_threads = 1;
#ifdef _OPENMP
    if (parallel && !omp_in_parallel()) n_threads = omp_get_max_threads();
    if (n_threads > (J.n_rows + J.isa->mr - 1) / J.isa->mr) n_threads = (int)((J.n_rows + J.isa->mr - 1) / J.isa->mr);
    const double work = (double)J.n_rows * (double)n_in * (double)n_tok;
    if (n_threads > work / MIN_WORK_PER_THREAD) n_threads = (int)(work / MIN_WORK_PER_THREAD);
#endif
    if (n_threads <= 1) return rows(&J, 0, J.n_rows);
    int failed = 0;
#pragma omp parallel num_threads(n_threads) reduction(| : failed)
    {
        int i = 0, n = 1;
#ifdef _OPENMP
        i = omp_get_thread_num();
        n = omp_get_num_threads();
#endif
        int64_t lo, hi;
        share(&J, i, n, &lo, &hi);
        if (lo < hi) failed |= rows(&J, lo, hi) != 0;
    }
    return failed ? -1 : 0;
}

void sm_vec_exp(float *x, int64_t n) { sm_gemm_current()->exp(x, n); }
void sm_vec_silu_mul(float *g, const float *u, int64_t n) { sm_gemm_current()->silu_mul(g, u, n); }

int sm_matmul(sm_type wtype, const void *w, size_t w_stride, int64_t n_out, int64_t n_in, const float *x,
              int64_t ldx, int64_t n_tok, float *y, int64_t ldy) {
    const sm_matmul_op op = {wtype, w, w_stride, n_out, y, ldy, false, false};
    return run(&op, 1, n_in, x, ldx, n_tok, true);
}

int sm_matmul_serial(sm_type wtype, const void *w, size_t w_stride, int64_t n_out, int64_t n_in, const float *x,
                     int64_t ldx, int64_t n_tok, float *y, int64_t ldy) {
    const sm_matmul_op op = {wtype, w, w_stride, n_out, y, ldy, false, false};
    return run(&op, 1, n_in, x, ldx, n_tok, false);
}

int sm_matmul_many(const sm_matmul_op *ops, int n_ops, int64_t n_in, const float *x, int64_t ldx, int64_t n_tok) {
    return run(ops, n_ops, n_in, x, ldx, n_tok, true);
}
