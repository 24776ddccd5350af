/* imatrix.h - importance matrices in llama.cpp's file formats.
 *
 * An importance matrix holds, for every linear layer's weight, the sum over calibration tokens
 * of the squared input activation per input column (`sums`) and how many tokens were summed
 * (`counts`, one per expert matrix; 1 matrix for dense models). Two file formats, both read and
 * written: GGUF (`<name>.in_sum2` F32 [n_mat][n_per_row], `<name>.counts` F32 [n_mat][1],
 * general.type = "imatrix", imatrix.datasets / chunk_count / chunk_size), and the legacy `.dat`
 * (int32 n_entries; per entry int32 name_len, name, int32 ncall, int32 nval,
 * float values[nval] = mean * ncall; then optional int32 chunk_count, int32 len, dataset). */
#ifndef SMELT_IMATRIX_H
#define SMELT_IMATRIX_H

#include "core/core.h"

typedef struct sm_imatrix_entry {
    char *name;          /* weight tensor name, e.g. "blk.0.attn_q.weight" */
    int64_t n_values;    /* n_mat * n_per_row */
    int64_t n_mat;       /* number of matrices (experts); 1 for dense */
    float *sums;         /* n_values: GGUF in_sum2, or legacy values (mean * ncall) */
    int64_t *counts;     /* n_mat token counts (legacy: {ncall}) */
    float *weights;      /* n_values: the importance used for quantization (mean square) */
} sm_imatrix_entry;

typedef struct sm_imatrix {
    size_t n_entries;
    sm_imatrix_entry *entries; /* sorted by name */
    size_t n_datasets;
    char **datasets;
    int32_t chunk_count, chunk_size;
    bool legacy;
} sm_imatrix;

/* Read either format (detected by the GGUF magic). Weights are computed as llama-quantize
 * does: GGUF sums / count per matrix (1 where count is 0); legacy values / ncall. */
int sm_imatrix_load(const char *path, sm_imatrix *out);
/* The importance weights for a tensor with rows of n_per_row (matrix `mat` for experts),
 * or NULL (with an sm_error) if there is no entry or its size differs. */
const float *sm_imatrix_find(const sm_imatrix *m, const char *tensor_name, int64_t n_per_row, int64_t mat);
/* Add an entry (copies; name must be new); used by the calibration collector and tests. */
int sm_imatrix_add(sm_imatrix *m, const char *name, int64_t n_mat, int64_t n_per_row, const float *sums,
                   const int64_t *counts);
int sm_imatrix_add_dataset(sm_imatrix *m, const char *dataset);
/* Write in llama.cpp's GGUF imatrix format, or legacy .dat. Atomic. */
int sm_imatrix_save_gguf(const sm_imatrix *m, const char *path);
int sm_imatrix_save_dat(const sm_imatrix *m, const char *path);
void sm_imatrix_free(sm_imatrix *m);

#endif
