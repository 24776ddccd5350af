/* rope_permute.c - q/k row order: Hugging Face rotate_half -> ggml's interleaved rope.
 *
 * HF Llama rotates pairs (i, i + d/2) of each head; ggml's "normal" rope rotates pairs
 * (2i, 2i + 1). llama.cpp's converter (LlamaModel.permute) therefore reorders the rows of
 * q_proj (with n_head) and k_proj (with n_head_kv): reshape(n_head, 2, d/2, ...) then swap the
 * two middle axes. Output row h*d + 2i + j is input row h*d + j*d/2 + i (j = 0, 1). */
#include "model.h"

#include <string.h>

void sm_permute_rope_rows_raw(const void *src, void *dst, int64_t n_rows, size_t row_bytes, int64_t n_heads) {
    const uint8_t *s = src;
    uint8_t *d = dst;
    const int64_t hd = n_rows / n_heads, half = hd / 2;
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(d + (size_t)(h * hd + 2 * i + j) * row_bytes, s + (size_t)(h * hd + j * half + i) * row_bytes,
                       row_bytes);
}

void sm_permute_rope_rows(const float *src, float *dst, int64_t n_rows, int64_t row_len, int64_t n_heads) {
    sm_permute_rope_rows_raw(src, dst, n_rows, (size_t)row_len * sizeof(float), n_heads);
}
