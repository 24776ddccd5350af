/* awq.c - AWQ (Lin et al., MLSys 2024) per group of linears sharing an input: the activation-
 * aware scale search and the clip search, both measured in the target grid (calib.h).
 *
 * Every loss is the output error of the linears on the calibration inputs, computed from the
 * inputs' Hessian H = 2/n sum x x^T as tr(dW H dW^T) (dW = W minus the effective quantized
 * weight in the original basis): the same number as the MSE of the outputs over the samples,
 * up to the constant 2/n, without keeping the samples. */
#include "calib/calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sm_awq_opts_default(sm_awq_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_grid = 20;
    o->clip_points = 10;
    o->force_alpha = -1.0;
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
static int scaled_loss(const double *H, int64_t cols, const float *W, int64_t rows, sm_type type, const float *s,
                       const float *imp, float *ws, float *deq, double *loss) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) ws[r * cols + c] = W[r * cols + c] * s[c];
    if (sm_awq_fake_quant(type, ws, rows, cols, imp, NULL, deq)) return -1;
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
            rc = scaled_loss(H, cols, g->W[k], g->rows[k], g->type[k], s, imp, ws, deq, &per[k]);
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
    const int64_t G = 32; /* AWQ's per-group max: ggml's (sub-)block of 32 columns */
    if (cols % G) return 0;
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
        if (sm_awq_fake_quant(type, wc, rows, cols, imp, NULL, deq)) {
            rc = -1;
            break;
        }
        /* the output error of each group alone: dw_g^T H_gg dw_g */
#pragma omp parallel for schedule(static) num_threads(sm_num_threads())
        for (int64_t i = 0; i < rows * ng; i++) {
            const int64_t g0 = (i % ng) * G;
            double d[32], e = 0;
            for (int64_t a = 0; a < G; a++) d[a] = (double)W[i * G + a] - deq[i * G + a];
            for (int64_t a = 0; a < G; a++) {
                const double *h = H + (g0 + a) * cols + g0;
                double acc = 0;
                for (int64_t b = 0; b < G; b++) acc += h[b] * d[b];
                e += d[a] * acc;
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
