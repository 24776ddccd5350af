/* convert.h - pipelines: HF checkpoint (or llama2.c) -> GGUF. */
#ifndef SMELT_CONVERT_H
#define SMELT_CONVERT_H

#include "core/core.h"
#include "formats/formats.h"
#include "formats/sink.h"
#include "quantize/quantize.h"

struct sm_quantize_opts;
struct sm_lora;

typedef struct sm_convert_opts {
    const char *outtype;  /* "f32", "f16", "bf16", "q8_0", "auto" (NULL = auto) */
    bool quiet;           /* no progress bar */
    const char *tokenizer;/* tokenizer file or directory (NULL: the model's own / beside it) */
    const char *name;     /* general.name (NULL: from the model directory / file name) */
    /* Quantize while converting (`smelt quantize HF_DIR ...`): the recipe decides each
     * tensor's type instead of outtype. NULL: plain conversion. */
    const struct sm_quantize_opts *quant;
    /* LoRA adapters merged on the fly (HF directories only): W' = W + s B A per row chunk. */
    struct sm_lora *const *loras;
    size_t n_loras;
    /* Where the output goes (format, split limits; sink.h). Zero: one GGUF file. */
    sm_sink_opts sink;
    /* GPTQ / AutoAWQ checkpoints: dequantize every linear into outtype (no transcoding) */
    bool gptq_dequantize;
} sm_convert_opts;

typedef struct sm_convert_report {
    int64_t n_tensors;
    uint64_t bytes_in, bytes_out;
    int64_t n_params;
    double seconds;
    sm_type outtype;      /* what "auto" resolved to (f32, f16, bf16 or q8_0) */
    int64_t n_quantized;  /* tensors written in a block-quantized type */
    int64_t n_fallback;   /* recipe fallbacks (rows not a multiple of the block) */
    uint64_t tensor_bytes;                 /* of bytes_out (the file), the tensors' data */
    int64_t n_by_type[SM_TYPE_GGML_COUNT]; /* tensors written per type */
    /* an HF GPTQ / AWQ checkpoint: its linears, of which transcoded into ggml blocks without
     * requantizing (Q4_0 / Q8_0 exactly, Q4_1 up to its f16 min) or dequantized into outtype;
     * the largest |transcoded value - checkpoint value| over all of them (0: every one exact) */
    int64_t n_gptq, n_gptq_transcoded, n_gptq_dequantized;
    double gptq_max_err;
} sm_convert_report;

/* Convert a Hugging Face model directory (config.json + safetensors / PyTorch weights +
 * tokenizer) or a llama2.c checkpoint file to a GGUF file llama.cpp loads, streaming tensor
 * by tensor in bounded memory. The output appears atomically, or not at all on failure.
 * rep may be NULL. */
int sm_convert(const char *model_path, const char *out_path, const sm_convert_opts *opts, sm_convert_report *rep);


/* ---- a Hugging Face directory read as its converted GGUF, without writing one ----
 * (hf_source.c) The tensors (in the converted file's order, data NULL), metadata and bytes of
 * the GGUF sm_convert writes of `dir` with the weights' own precision (outtype f32, f16 or
 * bf16 as the first matrix is stored). sm_hf_source_write writes tensor i into w (after
 * sm_sink_begin) converted to `to` exactly as from that file (dequantized, then
 * quantized without importance weights), in bounded chunks. */
typedef struct sm_hf_source sm_hf_source;
int sm_hf_source_open(const char *dir, sm_hf_source **out);
void sm_hf_source_close(sm_hf_source *h);
size_t sm_hf_source_n_tensors(const sm_hf_source *h);
const sm_tensor *sm_hf_source_tensor(const sm_hf_source *h, size_t i);
const char *sm_hf_source_outtype(const sm_hf_source *h);
/* The converted file's metadata as llama-quantize (sm_meta_set_quantized) keeps it. */
void sm_hf_source_set_quantized_metadata(const sm_hf_source *h, sm_meta *w, uint32_t file_type);
int sm_hf_source_write(sm_hf_source *h, sm_sink *w, size_t i, sm_type to);

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
    sm_sink_opts sink;              /* the output (sink.h); zero: one GGUF file */
    /* exact per-tensor types (a size-targeted mixture, calib.h sm_target_plan), applied after
     * the recipe and the rules: tensor plan_names[i] gets plan_types[i] */
    const char *const *plan_names; const sm_type *plan_types; size_t n_plan;
    /* called once before the header is written, to add metadata (NULL: none) */
    void (*add_metadata)(void *user, struct sm_meta *w);
    void *add_metadata_user;
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

/* The one quantize-to-file path's pieces (quantize_write.c), used by sm_quantize_gguf and by
 * GPTQ's GGUF output (calib/gptq_gguf.c):
 * - a tensor's type: the recipe's (sm_recipe_tensor_type), then plan_types[k] where
 *   plan_names[k] names it (an exact plan clears *fallback);
 * - one tensor t of the mapped GGUF g written through the sink in type `to`: kept (copied in
 *   bounded pieces, plain floats checked for NaN/Inf) or converted in bounded chunks of rows
 *   (checked finite, quantized with `imatrix` if not NULL); the source pages are released as
 *   they are written; prog (may be NULL) advances from done_before over t's bytes. */
/* The matrices of a tensor that llama-quantize quantizes one at a time: a 3-D expert tensor
 * [n_expert, rows, cols] has n_expert, any other one. */
int64_t sm_quantize_n_matrices(const sm_tensor *t);
sm_type sm_quantize_plan_type(sm_recipe_plan *plan, const sm_tensor *t, const char *const *plan_names,
                              const sm_type *plan_types, size_t n_plan, bool *fallback);
int sm_quantize_write_tensor(sm_sink *w, const sm_gguf *g, const sm_tensor *t, sm_type to, const float *imatrix,
                             sm_progress *prog, uint64_t done_before);

/* ---- LoRA adapters (PEFT) ----
 * An adapter directory holds adapter_config.json and adapter_model.safetensors (or .bin).
 * Keys: base_model.model.<module>.lora_A[.<adapter>].weight [r, in] and .lora_B [out, r],
 * .lora_magnitude_vector (DoRA), and modules_to_save replacements. Honoured: r, lora_alpha,
 * use_rslora (alpha/sqrt(r)), rank_pattern/alpha_pattern, fan_in_fan_out, use_dora,
 * modules_to_save. Merging: W' = W + weight * scale * B A (DoRA: then m * W'/||W'|| per row),
 * adapters applied in the order given, in float (products accumulated in double). */

typedef struct sm_lora sm_lora;

/* spec: "DIR" or "DIR:WEIGHT". */
int sm_lora_open(const char *spec, sm_lora **out);
void sm_lora_close(sm_lora *l);
const char *sm_lora_path(const sm_lora *l);
/* Check every adapter against a base checkpoint (HF names): modules exist, shapes fit. */
int sm_lora_check(sm_lora *const *ads, size_t n_ads, const sm_ckpt *base);
/* A modules_to_save replacement for this base tensor (last adapter wins), or NULL. */
const sm_tensor *sm_lora_replacement(sm_lora *const *ads, size_t n_ads, const char *base_name);
/* True if some adapter changes this base tensor (delta or replacement). */
bool sm_lora_touches(sm_lora *const *ads, size_t n_ads, const char *base_name);
/* Apply the adapters' deltas to rows [r0, r0+n) of base tensor `base_name`, whose full shape
 * is [rows, cols], held as floats in w (n x cols), in place. */
int sm_lora_apply(sm_lora *const *ads, size_t n_ads, const char *base_name, float *w, int64_t r0, int64_t n,
                  int64_t rows, int64_t cols);

/* `smelt lora merge`: write an HF directory (safetensors + copied config/tokenizer files).
 * out_type: SM_TYPE_INVALID = the base tensor's dtype, else F32/F16/BF16. */
int sm_lora_merge_hf(const char *base_dir, sm_lora *const *ads, size_t n_ads, const char *out_dir, sm_type out_type,
                     bool quiet);
/* `smelt lora export`: llama.cpp's GGUF LoRA adapter for the base model. */
int sm_lora_export_gguf(const char *base_dir, const sm_lora *ad, const char *out_path, const sm_sink_opts *sink);

#endif
