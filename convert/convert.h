/* convert.h - pipelines: HF checkpoint (or llama2.c) -> GGUF. */
#ifndef SMELT_CONVERT_H
#define SMELT_CONVERT_H

#include "core/core.h"

typedef struct sm_convert_opts {
    const char *outtype;  /* "f32", "f16", "bf16", "q8_0", "auto" (NULL = auto) */
    bool quiet;           /* no progress bar */
} sm_convert_opts;

typedef struct sm_convert_report {
    int64_t n_tensors;
    uint64_t bytes_in, bytes_out;
    int64_t n_params;
    double seconds;
} sm_convert_report;

int sm_convert(const char *model_path, const char *out_path, const sm_convert_opts *opts, sm_convert_report *rep);

#endif

/* ---- quantization of a whole model (GGUF in, GGUF out) ---- */

typedef struct sm_quantize_opts {
    const char *recipe;             /* "Q4_K_M", "Q8_0", ... (sm_recipe_find) */
    const char *imatrix_path;       /* NULL: none */
    bool allow_requantize;          /* accept already-quantized input tensors */
    bool pure;                      /* no mixture: the recipe's type everywhere it applies */
    bool quiet;
    const char *output_type;        /* NULL: by the recipe (--output-tensor-type) */
    const char *token_embd_type;    /* NULL: by the recipe (--token-embedding-type) */
    const char *const *tensor_types; size_t n_tensor_types; /* "REGEX=TYPE" */
    const char *const *keep;         size_t n_keep;         /* "REGEX" */
} sm_quantize_opts;

typedef struct sm_quantize_report {
    int64_t n_tensors, n_quantized, n_fallback, n_params;
    uint64_t bytes_in, bytes_out;
    double seconds;
    int64_t n_by_type[SM_TYPE_GGML_COUNT]; /* tensors written per output type */
} sm_quantize_report;

/* Quantize a GGUF model (F32/F16/BF16; quantized tensors only with allow_requantize) into a
 * new GGUF, streaming tensor by tensor. Output bytes do not depend on the thread count. */
int sm_quantize_gguf(const char *in_path, const char *out_path, const sm_quantize_opts *opts,
                     sm_quantize_report *rep);
