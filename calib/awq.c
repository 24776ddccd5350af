/* awq.c - AWQ (Lin et al., MLSys 2024) per group of linears sharing an input: the activation-
 * aware scale search and the clip search, both measured in the target grid (calib.h).
 *
 * Every loss is the output error of the linears on the calibration inputs, computed from the
 * inputs' Hessian H = 2/n sum x x^T as tr(dW H dW^T) (dW = W minus the effective quantized
 * weight in the original basis): the same number as the MSE of the outputs over the samples,
 * up to the constant 2/n, without keeping the samples. */
#include "calib/calib.h"
#include "calib/calib_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sm_awq_opts_default(sm_awq_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_grid = 20;
    o->clip_points = 10;
    o->force_alpha = -1.0;
    o->int_bits = 4;
    o->int_group = 128;
}

int sm_awq_int_quant(const float *W, int64_t rows, int64_t cols, int bits, int group, float *deq, uint8_t *codes,
                     uint16_t *scales, int32_t *zeros) {
    const int64_t gs = group == -1 ? cols : group;
    if (bits < 2 || bits > 8 || gs <= 0 || cols % gs)
        return sm_error("awq: the %d-bit grid with groups of %d does not fit rows of %lld", bits, group, (long long)cols);
    const int64_t ng = cols / gs;
    const float max_int = (float)((1 << bits) - 1);
    int bad = 0;
#pragma omp parallel for schedule(static) num_threads(sm_num_threads()) reduction(| : bad)
    for (int64_t k = 0; k < rows * ng; k++) {
        const int64_t r = k / ng, g = k % ng;
        const float *w = W + r * cols + g * gs;
        float mx = -INFINITY, mn = INFINITY;
        for (int64_t c = 0; c < gs; c++) {
            mx = fmaxf(mx, w[c]);
            mn = fminf(mn, w[c]);
        }
        /* AutoAWQ: scale = max(max - min, 1e-5) / max_int, zero = clamp(-round(min / scale)); the
         * scale is stored in f16, so the codes are fitted to the f16 value */
        const float d = fmaxf(mx - mn, 1e-5f) / max_int;
        const uint16_t h = sm_f32_to_f16(d);
        const float s = sm_f16_to_f32(h);
        if (!isfinite(s) || !(s > 0) || !isfinite(mx - mn)) {
            bad = 1;
            continue;
        }
        const float z = fminf(fmaxf(-nearbyintf(mn / s), 0.0f), max_int);
        if (scales) scales[g * rows + r] = h;
        if (zeros) zeros[g * rows + r] = (int32_t)z;
        for (int64_t c = 0; c < gs; c++) {
            const float q = fminf(fmaxf(nearbyintf(w[c] / s) + z, 0.0f), max_int);
            if (codes) codes[r * cols + g * gs + c] = (uint8_t)q;
            deq[r * cols + g * gs + c] = s * (q - z); /* as the checkpoint decodes: scale * (code - zero) */
        }
    }
    return bad ? sm_error("awq: a group's range is not finite or its scale is beyond f16") : 0;
}

int sm_awq_grid_quant(const sm_awq_opts *o, sm_type type, const float *W, int64_t rows, int64_t cols, const float *imp,
                      float *deq) {
    if (type == SM_TYPE_INVALID) return sm_awq_int_quant(W, rows, cols, o->int_bits, o->int_group, deq, NULL, NULL, NULL);
    return sm_awq_fake_quant(type, W, rows, cols, imp, NULL, deq);
}

int sm_awq_fake_quant(sm_type type, const float *W, int64_t rows, int64_t cols, const float *imp, void *packed,
                      float *deq) {
    const uint64_t rb = sm_type_row_bytes(type, cols);
    void *buf = packed ? packed : malloc((size_t)(rb * (uint64_t)rows));
    if (!buf) return sm_error("out of memory");
    int rc = sm_quantize_rows(type, W, buf, rows, cols, imp) == 0 ? -1 : 0;
    for (int64_t r = 0; r < rows && !rc; r++)
        rc = sm_dequantize_row(type, (const char *)buf + (uint64_t)r * rb, deq + r * cols, cols);
    if (!packed) free(buf);
    return rc;
}

void sm_awq_scales(const double *xmean, int64_t cols, double alpha, float *s) {
    double mx = 0, mn = INFINITY;
    for (int64_t c = 0; c < cols; c++) {
        double v = pow(xmean[c], alpha);
        if (!(v >= 1e-4)) v = 1e-4; /* AutoAWQ: clamp(min=1e-4); also catches NaN */
        s[c] = (float)v;
        if (v > mx) mx = v;
        if (v < mn) mn = v;
    }
    const double norm = sqrt(mx * mn);
    for (int64_t c = 0; c < cols; c++) s[c] = (float)(s[c] / norm);
}

/* The importance of a scaled input column: diag H / s^2 (H of the unscaled inputs). */
static void scaled_importance(const double *H, int64_t cols, const float *s, float *imp) {
    for (int64_t c = 0; c < cols; c++) imp[c] = (float)(H[c * cols + c] / ((double)s[c] * s[c]));
}

/* Loss of one linear when its columns are scaled by s, fake-quantized and scaled back. */
static int scaled_loss(const sm_awq_opts *o, const double *H, int64_t cols, const float *W, int64_t rows, sm_type type,
                       const float *s, const float *imp, float *ws, float *deq, double *loss) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) ws[r * cols + c] = W[r * cols + c] * s[c];
    if (sm_awq_grid_quant(o, type, ws, rows, cols, imp, deq)) return -1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) deq[r * cols + c] /= s[c];
    return sm_gptq_proxy_loss(H, cols, W, deq, rows, loss);
}

int sm_awq_search_scale(const double *H, const double *xmean, int64_t cols, const sm_awq_group *g,
                        const sm_awq_opts *o, float *s_best, sm_awq_search_report *rep) {
    memset(rep, 0, sizeof *rep);
    if (g->n < 1 || g->n > 3) return sm_error("awq: %d linears in a group", g->n);
    const int n_grid = o->n_grid > 0 ? o->n_grid : 20;
    int64_t max_rows = 0;
    for (int k = 0; k < g->n; k++)
        if (g->rows[k] > max_rows) max_rows = g->rows[k];
    float *s = malloc(sizeof(float) * (size_t)cols), *imp = malloc(sizeof(float) * (size_t)cols);
    float *ws = malloc(sizeof(float) * (size_t)(max_rows * cols)), *deq = malloc(sizeof(float) * (size_t)(max_rows * cols));
    int rc = 0;
    if (!s || !imp || !ws || !deq) rc = sm_error("out of memory");
    rep->alpha = -1;
    for (int i = 0; i < n_grid && !rc; i++) {
        const double alpha = o->force_alpha >= 0 ? o->force_alpha : (double)i / n_grid;
        if (o->force_alpha >= 0 && i > 0) break;
        sm_awq_scales(xmean, cols, alpha, s);
        scaled_importance(H, cols, s, imp);
        double total = 0, per[3] = {0};
        for (int k = 0; k < g->n && !rc; k++) {
            rc = scaled_loss(o, H, cols, g->W[k], g->rows[k], g->type[k], s, imp, ws, deq, &per[k]);
            total += per[k];
        }
        if (rc) break;
        if (i == 0) {
            rep->loss_alpha0 = total;
            memcpy(rep->loss_lin_alpha0, per, sizeof per);
        }
        if (rep->alpha < 0 || total < rep->loss) {
            rep->alpha = alpha;
            rep->loss = total;
            memcpy(rep->loss_lin, per, sizeof per);
            memcpy(s_best, s, sizeof(float) * (size_t)cols);
        }
    }
    free(s);
    free(imp);
    free(ws);
    free(deq);
    return rc;
}

int sm_awq_clip(const double *H, int64_t cols, float *W, int64_t rows, sm_type type, const sm_awq_opts *o) {
    /* AWQ's per-group max: ggml's (sub-)block of 32 columns, or the integer grid's group */
    const int64_t G = type != SM_TYPE_INVALID ? 32 : o->int_group == -1 ? cols : o->int_group;
    if (G <= 0 || cols % G) return 0;
    const int64_t ng = cols / G;
    const int points = o->clip_points > 0 ? o->clip_points : 10, n_grid = o->n_grid > 0 ? o->n_grid : 20;
    float *wc = malloc(sizeof(float) * (size_t)(rows * cols)), *deq = malloc(sizeof(float) * (size_t)(rows * cols));
    float *mx = malloc(sizeof(float) * (size_t)(rows * ng)), *imp = malloc(sizeof(float) * (size_t)cols);
    double *best = malloc(sizeof(double) * (size_t)(rows * ng));
    int *best_i = calloc((size_t)(rows * ng), sizeof(int));
    int rc = 0;
    if (!wc || !deq || !mx || !imp || !best || !best_i) rc = sm_error("out of memory");
    for (int64_t c = 0; c < cols && !rc; c++) imp[c] = (float)H[c * cols + c];
    for (int64_t i = 0; i < rows * ng && !rc; i++) {
        float m = 0;
        for (int64_t c = 0; c < G; c++) m = fmaxf(m, fabsf(W[i * G + c]));
        mx[i] = m;
    }
    for (int p = 0; p < points && !rc; p++) {
        const float shrink = 1.0f - (float)p / (float)n_grid;
#pragma omp parallel for schedule(static) num_threads(sm_num_threads())
        for (int64_t i = 0; i < rows * ng; i++) {
            const float t = mx[i] * shrink;
            for (int64_t c = 0; c < G; c++) wc[i * G + c] = fminf(fmaxf(W[i * G + c], -t), t);
        }
        if (sm_awq_grid_quant(o, type, wc, rows, cols, imp, deq)) {
            rc = -1;
            break;
        }
        /* the output error of each group alone: dw_g^T H_gg dw_g */
#pragma omp parallel for schedule(static) num_threads(sm_num_threads())
        for (int64_t i = 0; i < rows * ng; i++) {
            const int64_t g0 = (i % ng) * G;
            const float *w = W + i * G, *q = deq + i * G;
            double e = 0;
            for (int64_t a = 0; a < G; a++) {
                const double *h = H + (g0 + a) * cols + g0;
                double acc = 0;
                for (int64_t b = 0; b < G; b++) acc += h[b] * ((double)w[b] - q[b]);
                e += ((double)w[a] - q[a]) * acc;
            }
            if (p == 0 || e < best[i]) {
                best[i] = e;
                best_i[i] = p;
            }
        }
    }
    for (int64_t i = 0; i < rows * ng && !rc; i++) {
        const float t = mx[i] * (1.0f - (float)best_i[i] / (float)n_grid);
        for (int64_t c = 0; c < G; c++) W[i * G + c] = fminf(fmaxf(W[i * G + c], -t), t);
    }
    free(wc);
    free(deq);
    free(mx);
    free(imp);
    free(best);
    free(best_i);
    return rc;
}

const float *sm_awq_fold_scale(const char *name, const sm_gptq_linear *lin) {
    if (strncmp(name, "blk.", 4)) return NULL;
    const char *dot = strchr(name + 4, '.');
    if (!dot) return NULL;
    dot++;
    if (!strcmp(dot, "attn_norm.weight")) return lin[SM_LIN_Q].awq_col_scale;
    if (!strcmp(dot, "ffn_norm.weight")) return lin[SM_LIN_GATE].awq_col_scale;
    if (!strcmp(dot, "attn_v.bias")) return lin[SM_LIN_V].awq_row_scale;
    if (!strcmp(dot, "ffn_up.bias")) return lin[SM_LIN_UP].awq_row_scale;
    return NULL;
}
