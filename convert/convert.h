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
