/* quantize.h - ggml-compatible codecs, recipes and importance weights.
 *
 * Every block type's bytes are identical to ggml's reference quantizer on the same floats
 * (without importance weights) and to ggml's weighted search with them. */
#ifndef SMELT_QUANTIZE_H
#define SMELT_QUANTIZE_H

#include "core/core.h"

/* True if sm_quantize_rows can produce `type` (F32/F16/BF16 included). */
bool sm_quantize_supported(sm_type type);
/* True if the codec needs importance weights to be any good (ggml: IQ2/IQ1 families). */
bool sm_quantize_requires_imatrix(sm_type type);

/* Quantize nrows rows of n_per_row floats into dst (sm_type_row_bytes(type, n_per_row)
 * bytes per row). imatrix: NULL or n_per_row importance weights. Uses all threads; the
 * output does not depend on the thread count. Returns bytes written, 0 on error.
 * Errors (sm_error): a row length that is not a whole number of blocks; for block types a
 * NaN/Inf input (named by row and column; ggml would assert), an importance weight that is
 * negative or not finite, or values so large that a block's f16 scale overflows. F32, F16
 * and BF16 are plain conversions (NaN/Inf pass through, as in ggml). dst must be 2-byte
 * aligned (GGUF tensor data is). Q8_0 ignores imatrix, as ggml does. */
size_t sm_quantize_rows(sm_type type, const float *src, void *dst, int64_t nrows, int64_t n_per_row,
                        const float *imatrix);
/* Dequantize n elements (a whole number of blocks) of any supported type to float. */
int sm_dequantize_row(sm_type type, const void *src, float *dst, int64_t n);

#endif
