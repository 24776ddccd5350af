/* quantize_write.c - what every quantize-to-file path shares (quantize_gguf.c, and
 * calib/gptq_gguf.c for the tensors GPTQ does not touch): the type the plan gives a tensor
 * (the recipe, then an exact per-tensor plan), and one tensor of a mapped GGUF written through
 * the sink in that type: kept (copied in bounded pieces, a plain float type scanned for NaN/Inf)
 * or converted in bounded chunks of rows (dequantized, checked finite, quantized with the
 * optional importance weights), the source's pages released as each piece is written. */
#include "convert/convert_internal.h"

#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_FLOATS ((int64_t)4 << 20) /* 16 MiB of floats per chunk */
#define COPY_BYTES ((uint64_t)16 << 20)   /* a tensor kept in its type is copied this much at a time */

sm_type sm_quantize_plan_type(sm_recipe_plan *plan, const sm_tensor *t, const char *const *plan_names,
                            const sm_type *plan_types, size_t n_plan, bool *fallback) {
    bool fb = false;
    sm_type to = sm_recipe_tensor_type(plan, t->name, t->n_dims, t->shape, t->type, &fb);
    for (size_t k = 0; k < n_plan; k++)
        if (!strcmp(plan_names[k], t->name)) to = plan_types[k], fb = false;
    if (fallback) *fallback = fb;
    return to;
}

int64_t sm_quantize_n_matrices(const sm_tensor *t) { return t->n_dims == 3 && t->shape[0] > 0 ? t->shape[0] : 1; }

/* Quantize one tensor's rows [r0, r0+n) from its source bytes into dst. */
static int convert_rows(const sm_tensor *t, sm_type to, int64_t r0, int64_t n, float *f32, void *dst,
                        const float *imatrix) {
    int64_t row = sm_tensor_row_len(t);
    uint64_t src_row_bytes = sm_type_row_bytes(t->type, row);
    const uint8_t *src = (const uint8_t *)t->data + (uint64_t)r0 * src_row_bytes;
    for (int64_t r = 0; r < n; r++)
        if (sm_dequantize_row(t->type, src + (uint64_t)r * src_row_bytes, f32 + r * row, row))
            return sm_error_ctx("tensor %s row %lld", t->name, (long long)(r0 + r));
    for (int64_t i = sm_allow_nonfinite() ? n * row : 0; i < n * row; i++)
        if (!isfinite(f32[i]))
            return sm_error("tensor %s: row %lld holds a non-finite value (column %lld)", t->name,
                            (long long)(r0 + i / row), (long long)(i % row));
    if (to == SM_TYPE_F32 || to == SM_TYPE_F16 || to == SM_TYPE_BF16) return sm_f32_to_plain(to, f32, dst, n * row);
    if (sm_quantize_rows(to, f32, dst, n, row, imatrix) == 0) return sm_error_ctx("tensor %s", t->name);
    return 0;
}

/* kept in its type: copied in bounded pieces, each released once written; a plain float type is
 * scanned for NaN/Inf on the way (quantized ones are not decoded). 16 MiB is a whole number of
 * elements of every plain type. */
static int copy_tensor(sm_sink *w, const sm_gguf *g, const sm_tensor *t) {
    const uint64_t esize = sm_type_get(t->type)->block_bytes;
    const int64_t row_len = sm_tensor_row_len(t);
    for (uint64_t at = 0; at < t->nbytes; at += COPY_BYTES) {
        const uint64_t n = t->nbytes - at < COPY_BYTES ? t->nbytes - at : COPY_BYTES;
        const uint8_t *piece = (const uint8_t *)t->data + at;
        const int64_t bad = sm_allow_nonfinite() ? -1 : sm_first_nonfinite(t->type, piece, (int64_t)(n / esize));
        if (bad >= 0) {
            sm_nonfinite_error(t->type, piece + (size_t)bad * esize, (int64_t)(at / esize) + bad, row_len);
            return sm_error_ctx("tensor %s", t->name);
        }
        if (sm_sink_write(w, piece, n)) return -1;
        sm_gguf_release(g, piece, n);
    }
    return 0;
}

int sm_quantize_write_tensor(sm_sink *w, const sm_gguf *g, const sm_tensor *t, sm_type to, const float *imatrix,
                    sm_progress *prog, uint64_t done_before) {
    if (to == t->type) return copy_tensor(w, g, t);
    /* an expert tensor is quantized one expert (matrix) at a time, each with its own importance
     * row (llama-quantize's per-expert loop); a dense tensor is one matrix */
    const int64_t row = sm_tensor_row_len(t), nrows = sm_tensor_nrows(t), mat_rows = nrows / sm_quantize_n_matrices(t);
    int64_t chunk = CHUNK_FLOATS / row;
    if (chunk < 1) chunk = 1;
    if (chunk > mat_rows) chunk = mat_rows;
    const uint64_t out_row = sm_type_row_bytes(to, row), src_row = sm_type_row_bytes(t->type, row);
    float *f32 = malloc((size_t)(chunk * row) * sizeof(float));
    void *q = malloc((size_t)(out_row * (uint64_t)chunk));
    int rc = !f32 || !q ? sm_error("out of memory for tensor %s", t->name) : 0;
    for (int64_t r0 = 0, n; r0 < nrows && !rc; r0 += n) {
        const int64_t mat = r0 / mat_rows, mat_end = (mat + 1) * mat_rows;
        n = mat_end - r0 < chunk ? mat_end - r0 : chunk;
        rc = convert_rows(t, to, r0, n, f32, q, imatrix ? imatrix + mat * row : NULL);
        sm_gguf_release(g, (const uint8_t *)t->data + (uint64_t)r0 * src_row, (uint64_t)n * src_row);
        if (!rc) rc = sm_sink_write(w, q, out_row * (uint64_t)n);
        if (!rc && prog) sm_progress_update(prog, done_before + t->nbytes * (uint64_t)(r0 + n) / (uint64_t)nrows);
    }
    free(f32);
    free(q);
    return rc;
}
