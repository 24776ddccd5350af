/* convert_internal.h - the pieces of `smelt convert` (convert/ only).
 *
 * source.c opens what the user pointed at (HF directory or llama2.c file) with its
 * hyperparameters and vocabulary; plan.c decides every output tensor (name, type, shape,
 * permutation) and checks the checkpoint against the configuration; tensor_io.c streams one
 * tensor into the GGUF writer in bounded chunks; convert.c ties them together. */
#ifndef SMELT_CONVERT_INTERNAL_H
#define SMELT_CONVERT_INTERNAL_H

#include "convert/convert.h"
#include "formats/formats.h"
#include "model/model.h"

typedef struct cv_source {
    bool llama2c;
    sm_ckpt *ckpt;
    sm_hparams hp;
    sm_vocab vocab;
    bool have_vocab;
    char name[128];     /* general.name */
    char *name_or_path; /* config.json's _name_or_path (NULL: none) and the directory's name: the */
    char dir_name[256]; /* general.* name keys come from them (model_name.c; dir_name "": none) */
    bool gptq;          /* an HF GPTQ checkpoint (gptq_source.c) */
    sm_gptq_hf_config gptq_cfg;
    float *longrope[2]; /* longrope: the long and short rope factors from config.json (model/longrope.c) */
} cv_source;

int cv_source_open(const char *path, const sm_convert_opts *o, cv_source *s);
void cv_source_close(cv_source *s);

/* One output tensor. */
typedef struct cv_item {
    const sm_tensor *src;   /* NULL for a generated tensor */
    const float *gen;       /* generated F32 data (owned by the plan) */
    char name[64];
    sm_type type;           /* output type */
    int n_dims;
    int64_t shape[SM_MAX_DIMS];
    int64_t permute_heads;  /* rope row permutation with this many heads (0: none) */
    uint64_t nbytes;        /* output bytes */
    const float *imatrix;   /* importance weights for the codec (NULL: none) */
    sm_lora *const *loras;  /* adapters that change this tensor (NULL: none) */
    size_t n_loras;
    /* a linear of an HF GPTQ checkpoint (src is then its qweight): qweight, qzeros, scales,
     * g_idx (may be NULL), dequantized, or repacked as they are into Q4_0 / Q8_0 / Q4_1 blocks */
    const sm_tensor *gptq[4];
    const sm_gptq_hf_config *gptq_cfg;
    bool gptq_transcoded;   /* written as the checkpoint's codes in Q4_0 / Q8_0 / Q4_1 blocks */
    double gptq_err;        /* Q4_1: the largest |block value - checkpoint value| (0: exact) */
    float *owned_gen;       /* gen when the plan computed it for this item (a shifted norm): freed with the plan */
    /* a stack of experts (ffn_*_exps, shape [n_experts, rows, cols]; src NULL): each expert's [rows, cols]
     * tensor, written one after the other (plan.c keeps them) */
    const sm_tensor *const *experts;
    int64_t n_experts;
} cv_item;

typedef struct cv_plan {
    cv_item *items;
    size_t n;
    sm_type outtype;        /* the resolved --outtype */
    int64_t n_params;
    uint64_t bytes_in;      /* source bytes the tensors occupy */
    float *rope_freqs;
    int ftype;              /* general.file_type */
    struct sm_imatrix *im;  /* loaded --imatrix (owned) */
    int64_t n_fallback;     /* recipe fallbacks */
    const sm_tensor **expert_src; /* SM_FEAT_MOE: [n_layer][3 stacks][n_expert] source tensors of the stacks */
} cv_plan;

/* Types from o->outtype ("f32", "f16", "bf16", "q8_0", "auto" or NULL = auto), or from the
 * recipe in o->quant; LoRA adapters in o->loras are checked and attached to their tensors. */
int cv_plan_build(const cv_source *s, const sm_convert_opts *o, cv_plan *p);
/* The converted file's metadata (general.*, the architecture's keys, tokenizer) into w. */
void cv_set_metadata(const cv_source *s, const cv_plan *p, const sm_convert_opts *o, sm_meta *w);
void cv_plan_free(cv_plan *p);

/* Streams tensors into a writer (after sm_sink_begin) with bounded buffers, writing on
 * a thread of its own, and hands consumed pages of the source's file mappings back to the
 * kernel so resident memory stays flat. cv_write_item queues a tensor's bytes; cv_io_finish
 * waits until everything queued is written, frees io and reports the first failure. */
typedef struct cv_io cv_io;
cv_io *cv_io_new(sm_sink *w, sm_progress *prog);
int cv_write_item(cv_io *io, const cv_item *it);
int cv_io_finish(cv_io *io);

/* n values of a plain float type (F32, F16, BF16, F64, F8) into F32 / F16 / BF16, rounding to
 * nearest even; the same bytes whichever kernel runs. */
int cv_cast_row(sm_type from, const void *src, sm_type to, void *dst, int64_t n);

/* Apply --pure, --output-tensor-type, --token-embedding-type, --keep and --tensor-type to a
 * recipe plan (quantize_gguf.c; shared by both quantization paths). */
struct sm_recipe_plan;
int cv_recipe_configure(struct sm_recipe_plan *plan, const sm_quantize_opts *o);

/* The keys llama-quantize adds when it quantizes with an importance matrix (after the
 * source's metadata): quantize.imatrix.file (the path as given), .dataset (the first dataset),
 * .entries_count and, when known, .chunks_count (u32); strings cut to 127 bytes as it does. */
struct sm_imatrix;
void cv_set_imatrix_keys(sm_meta *w, const char *path, const struct sm_imatrix *im);
/* The order llama-quantize writes tensors in (llama_model_loader's weights map): by block
 * number ("blk.%d.", -1 for the others), then by name; strcmp-like. */
int cv_llama_quantize_order(const char *a, const char *b);

/* HF GPTQ checkpoints (gptq_source.c). cv_gptq_part: 1 for a GPTQ linear's qweight (it
 * becomes the linear's item), 2 for its qzeros / scales / g_idx (consumed with it), 0 for any
 * other tensor. cv_gptq_plan_item fills the item of the linear whose qweight is t: GGUF name,
 * shape [out, in], parts, type (Q4_0 for symmetric 4-bit groups of multiples of 32 in input
 * order with F16 scales, Q8_0 for the same in 8 bits: the same values, block for block; Q4_1 for
 * 4-bit codes with zero points, gptq_err its largest difference; else, or with `dequantize`,
 * outtype, from the dequantized weights), and the name map's flags. cv_gptq_fill writes the item's bytes
 * (it->nbytes, rope permutation applied). */
int cv_gptq_part(const char *name);
int cv_gptq_plan_item(const cv_source *s, const sm_tensor *t, sm_type outtype, bool dequantize, cv_item *it,
                      int *map_flags);
int cv_gptq_fill(const cv_item *it, void *dst);

/* "tiny-llama-kjv" -> "Tiny Llama Kjv" (gguf-py Metadata.id_to_title). */
void cv_id_to_title(const char *id, char *out, size_t cap);
/* "4.2M" for 4196608 (gguf-py model_weight_count_rounded_notation, min_digits 2). */
void cv_size_label(int64_t n_params, char *out, size_t cap);

/* A model id's components as gguf-py's Metadata.get_model_id_components gives them (each NULL
 * for Python's None): name (the id without "org/"), organization, basename, finetune, version,
 * size_label. total_params decides whether a size in the id is the model's size (negative: a
 * LoRA adapter's). */
typedef struct cv_model_id {
    char *name, *organization, *basename, *finetune, *version, *size_label;
} cv_model_id;
int cv_model_id_components(const char *id, int64_t total_params, cv_model_id *m);
/* Metadata.apply_metadata_heuristic without a model card: the components of name_or_path (used
 * when it has at most one '/'), then of dir_name for the fields still unset; name and
 * organization through id_to_title. */
int cv_model_meta(const char *name_or_path, const char *dir_name, int64_t total_params, cv_model_id *m);
void cv_model_id_free(cv_model_id *m);

#endif
