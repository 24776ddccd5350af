/* model.h - architecture knowledge: hyperparameters from config.json / GGUF, the HF -> GGUF
 * tensor name map, tokenization, and the runtime (forward pass, calibration hooks).
 *
 * Adding an architecture = one row in the architecture table (model/arch.c: names, rope,
 * hyperparameter keys, block feature flags). The decoder block's tensors (HF and GGUF names,
 * shapes, convert-time transforms, when each is present) are one table for every
 * architecture (model/tensor_names.c); the block itself is one description (model/block_desc.c,
 * kernels.h sm_block_desc) that every backend executes: the CPU (model/forward.c), the CUDA
 * forward and the CUDA calibration pass (kernels/cuda/block_exec.cu). A new block operation adds
 * a feature flag, its rows in the tensor table, its step in the description and its operation
 * in each executor. */
#ifndef SMELT_MODEL_H
#define SMELT_MODEL_H

#include "core/core.h"
#include "formats/formats.h"

typedef struct sm_hparams {
    char hf_arch[64];      /* "LlamaForCausalLM" (empty when not from HF) */
    char arch[32];         /* GGUF general.architecture: "llama", "qwen2" */
    char name[128];        /* general.name */
    int64_t n_vocab, n_embd, n_ff, n_layer, n_head, n_head_kv, head_dim, n_ctx_train;
    float rope_theta, rms_eps;
    bool tied_embeddings;  /* output shares token_embd */
    bool qkv_bias;         /* attn_q/k/v have biases (Qwen2) */
    /* rope scaling: type "" (none), "linear", "yarn", "llama3" ... */
    char rope_scaling_type[16];
    float rope_scaling_factor;
    int64_t rope_scaling_orig_ctx;
    float rope_llama3_low_freq, rope_llama3_high_freq; /* llama3 only */
    bool rope_hf_layout;   /* q/k weights are in HF rotate_half layout (need the permute) */
    /* ---- added with the converter (model/arch.c) ---- */
    bool attn_out_bias;    /* attn_output has a bias (Llama attention_bias) */
    bool mlp_bias;         /* ffn_gate/up/down have biases (Llama mlp_bias) */
    bool explicit_head_dim;/* config.json gave head_dim (llama.cpp then writes key/value_length) */
    bool llama_keys;       /* write <arch>.vocab_size and .rope.dimension_count (llama.cpp's LlamaModel) */
    int64_t sliding_window;/* Mistral/Qwen2 sliding_window (0: none); llama.cpp's llama/qwen2 ignore it */
    /* yarn extras, each written only when its bit in rope_yarn_set is on (1 ext, 2 attn, 4 fast, 8 slow) */
    unsigned rope_yarn_set;
    float rope_yarn_ext_factor, rope_yarn_attn_factor, rope_yarn_beta_fast, rope_yarn_beta_slow;
    unsigned features;     /* SM_FEAT_*: the decoder block's operations beyond Llama's (from the table) */
    int gguf_keys;         /* SM_KEYS_* (from the table) */
    /* ---- Gemma 2 (0 where the architecture has none) ---- */
    float attn_softcap;    /* attention-logit soft-capping: s = cap * tanh(s / cap) */
    float final_softcap;   /* final-logit soft-capping */
    float attn_scale;      /* q scale before q.k (0: 1/sqrt(head_dim)); Gemma 2 query_pre_attn_scalar^-0.5 */
    float rope_theta_swa;  /* SM_FEAT_SWA_ROPE: the sliding layers' rope base (unscaled; Gemma 3 rope_local_base_freq) */
    int swa_pattern;       /* SM_FEAT_SWA: layer l uses the sliding window when l % swa_pattern < swa_pattern - 1;
                              0: every layer (Phi-3), which no backend applies (llama.cpp switches Phi-3's window
                              off): contexts beyond the window are refused */
    /* ---- Phi-3 / Phi-4-mini (model/longrope.c) ---- */
    int64_t n_rot;         /* rotated dimensions of each head (partial_rotary_factor; 0: the whole head) */
    float rope_attn_factor;/* longrope: cos and sin multiplied by it (phi3.rope.scaling.attn_factor; 0: 1) */
    /* ---- mixture of experts (SM_FEAT_MOE; 0 otherwise) ---- */
    int64_t n_expert;      /* experts per layer (<arch>.expert_count) */
    int64_t n_expert_used; /* experts each token is routed to (<arch>.expert_used_count) */
    int64_t n_ff_exp;      /* an expert's FFN width (qwen3moe.expert_feed_forward_length; Mixtral: n_ff) */
} sm_hparams;

/* Decoder-block features beyond Llama's (RMSNorm, GQA attention with rope, SiLU-gated FFN),
 * set per architecture in model/arch.c's table and read by every backend's block. */
enum {
    SM_FEAT_QK_NORM = 1u << 0, /* per-head RMSNorm of q and k (weights [head_dim]) before rope: Qwen3 */
    SM_FEAT_FUSED = 1u << 16,  /* q/k/v in one attn_qkv and gate/up in one ffn_up ([2*n_ff], gate rows first): Phi-3 */
    /* Gemma 2: */
    SM_FEAT_GELU_TANH = 1u << 8,   /* FFN gate activation GELU (tanh approximation) instead of SiLU */
    SM_FEAT_EMBD_SCALE = 1u << 9,  /* embeddings multiplied by sqrt(n_embd) */
    SM_FEAT_POST_NORMS = 1u << 10, /* RMSNorms after attention (post_attention_norm) and FFN (post_ffw_norm)
                                      before their residual adds; the FFN's pre-norm is HF pre_feedforward_layernorm */
    SM_FEAT_SOFTCAP = 1u << 11,    /* attention-logit and final-logit soft-capping (hp attn/final_softcap) */
    SM_FEAT_SWA = 1u << 12,        /* sliding-window attention on the layers of hp->swa_pattern (hp->sliding_window) */
    SM_FEAT_NORM_SHIFT = 1u << 13, /* HF RMSNorm multiplies by (1 + w): every *norm.weight gets + 1 at convert
                                      (llama.cpp's Gemma converters), and when the runtime reads the HF checkpoint */
    /* Gemma 3: */
    SM_FEAT_SWA_ROPE = 1u << 14, /* the sliding-window layers rotate with hp->rope_theta_swa, without rope scaling */
    SM_FEAT_VLM_TEXT = 1u << 17, /* the text model of a vision-language checkpoint: HF names under "language_model."
                                    are the text model's; vision_tower.* / multi_modal_projector.* are skipped */
    SM_FEAT_SPM_NO_SPACE_PREFIX = 1u << 15, /* a SentencePiece tokenizer gets add_space_prefix false (Gemma's
                                               converters: add_add_space_prefix(False)) */
    /* Mixtral, Qwen3-MoE: */
    SM_FEAT_MOE = 1u << 18, /* the FFN is a routed mixture of experts: router ffn_gate_inp [n_expert, n_embd], softmax
                               over the experts, the n_expert_used most probable ones (weights renormalised to sum 1,
                               as llama.cpp's llama and qwen3moe graphs do), each a SiLU-gated FFN of n_ff_exp stored
                               stacked in ffn_{gate,up,down}_exps [n_expert, rows, cols]; their weighted sum */
    SM_FEAT_TOKCFG_SPACE_PREFIX = 1u << 20, /* tokenizer_config.json's add_prefix_space becomes add_space_prefix
                                               (LlamaModel.set_vocab; other converters ignore it) */
    SM_FEAT_MOE_BSM = 1u << 19, /* HF names block_sparse_moe.gate / .experts.E.w1,w2,w3 (Mixtral) instead of
                                   mlp.gate / mlp.experts.E.{gate,up,down}_proj (Qwen3-MoE); names only */
};

/* Layer l attends within hp->sliding_window (SM_FEAT_SWA's pattern; llama.cpp's set_swa_pattern). */
static inline bool sm_swa_layer(const sm_hparams *hp, int64_t l) {
    return (hp->features & SM_FEAT_SWA) && hp->swa_pattern > 0 && l % hp->swa_pattern < hp->swa_pattern - 1;
}

/* The architecture's tokenizer rules (SM_FEAT_SPM_NO_SPACE_PREFIX) on a vocabulary read from an HF
 * directory, for the converter and the runtime alike. */
void sm_vocab_apply_arch(const sm_hparams *hp, sm_vocab *v);

typedef enum sm_rope_kind {
    SM_ROPE_NORM, /* ggml "normal": rotates adjacent pairs (2i, 2i+1) - GGUF llama, llama2.c */
    SM_ROPE_NEOX, /* rotate_half: pairs (i, i + head_dim/2) - HF checkpoints, GGUF qwen2/qwen3 */
} sm_rope_kind;

/* One row of the architecture table (model/arch.c). Nothing outside arch.c compares
 * architecture names: everything else reads these fields (through sm_hparams or a lookup). */
typedef struct sm_arch_info {
    const char *hf_name;       /* config.json "architectures"[0]; NULL: a GGUF-only name */
    const char *gguf_arch;     /* general.architecture */
    sm_rope_kind gguf_rope;    /* the rope llama.cpp applies to this GGUF architecture */
    bool permute_qk;           /* convert: q/k rows rotate_half -> ggml's interleaved layout */
    bool llama_keys;           /* GGUF carries <arch>.vocab_size and .rope.dimension_count */
    bool qkv_bias;             /* q/k/v projections always have biases */
    const char *bias_key;      /* config key switching q/k/v/o biases on ("attention_bias"), or NULL */
    bool mlp_bias_key;         /* config "mlp_bias" switches FFN biases on */
    bool sliding_window_key;   /* config sliding_window / use_sliding_window recorded (no GGUF key) */
    int64_t default_ctx;       /* transformers' default max_position_embeddings */
    const char *tokenizer_pre; /* tokenizer.ggml.pre llama.cpp gives the family's BPE tokenizer
                                  (smelt recognises it from tokenizer.json's structure) */
    unsigned features;         /* SM_FEAT_* */
    int gguf_keys;             /* SM_KEYS_*: which converter class's <arch>.* keys (and their order) */
} sm_arch_info;

/* The converter class whose set_gguf_parameters an architecture's GGUF keys follow. */
enum {
    SM_KEYS_TEXT = 0,   /* TextModel (+ LlamaModel's keys where llama_keys) */
    SM_KEYS_PHI3 = 1,   /* Phi3MiniModel: its own order, sliding_window, orig ctx */
    SM_KEYS_GEMMA2 = 2, /* Gemma2Model: no rope keys; key/value_length, soft-capping, sliding_window */
    SM_KEYS_GEMMA3 = 3, /* Gemma3Model: TextModel's, rope.freq_base_swa, then final soft-capping, sliding_window */
    SM_KEYS_QWEN_MOE = 4, /* Qwen2MoeModel: TextModel's (expert counts included), then expert_feed_forward_length */
};

/* The row for a config.json architecture / a GGUF general.architecture, or NULL. */
const sm_arch_info *sm_arch_by_hf(const char *hf_name);
const sm_arch_info *sm_arch_by_gguf(const char *gguf_arch);

/* Supported HF architectures, comma-separated, for error messages. */
const char *sm_supported_archs(void);
/* The GGUF architectures the runtime reads, comma-separated. */
const char *sm_supported_gguf_archs(void);
int sm_hparams_from_hf_config(const char *config_json_path, sm_hparams *hp);
int sm_hparams_from_gguf(const sm_gguf *g, sm_hparams *hp);
/* Writes general.architecture and the <arch>.* keys llama.cpp reads. */
void sm_hparams_to_meta(const sm_hparams *hp, sm_meta *w);

/* A vision tower / multimodal projector tensor of a vision-language checkpoint (SM_FEAT_VLM_TEXT),
 * which the text model skips. */
bool sm_is_vision_tensor(const sm_hparams *hp, const char *hf_name);
/* What the converter must do to a tensor besides renaming it. */
enum {
    SM_MAP_PERMUTE_Q = 1 << 0, /* rows permuted from rotate_half to ggml rope layout, n_head */
    SM_MAP_PERMUTE_K = 1 << 1, /* same with n_head_kv */
    SM_MAP_KEEP_F32 = 1 << 2,  /* norms and 1-D tensors stay F32 */
    SM_MAP_NORM_SHIFT = 1 << 3,/* a norm weight stored as w where the model uses 1 + w: + 1 (SM_FEAT_NORM_SHIFT) */
    SM_MAP_EXPERT = 1 << 4,    /* one expert's matrix of a stacked GGUF tensor (ffn_*_exps): the expert's index is
                                  flags >> SM_MAP_EXPERT_SHIFT */
};
#define SM_MAP_EXPERT_SHIFT 16
/* Map an HF tensor name to its GGUF name. Returns 1 and fills gguf_name/flags on a match,
 * 0 for a tensor to skip silently (e.g. rotary_emb.inv_freq), -1 (error) for an unknown name. */
int sm_map_hf_name(const sm_hparams *hp, const char *hf_name, char *gguf_name, size_t cap, int *flags);
/* SM_FEAT_MOE: the three expert stacks of a layer in the order llama.cpp's converter writes them
 * (that of their HF names: Mixtral's w1, w2, w3; Qwen3-MoE's down_proj, gate_proj, up_proj): the
 * GGUF stem ("ffn_gate_exps"), the HF stem with "*" for the expert ("block_sparse_moe.experts.*.w1")
 * and one expert's [rows, cols]. -1 for a model without experts. */
typedef struct sm_moe_stack { const char *gguf, *hf; int64_t rows, cols; } sm_moe_stack;
int sm_moe_stacks(const sm_hparams *hp, sm_moe_stack out[3]);
/* The inverse (GGUF -> HF name), for LoRA and exports; 0 if none. */
int sm_map_gguf_name(const sm_hparams *hp, const char *gguf_name, char *hf_name, size_t cap);
/* ---- added with the converter ---- */

/* Hyperparameters of a llama2.c checkpoint (arch "llama", rms eps 1e-5, rope theta 10000,
 * rope already in ggml's layout). */
int sm_hparams_from_llama2c(const sm_llama2c_config *cfg, sm_hparams *hp);
/* The tensors a model with these hyperparameters has, in GGUF names with outermost-first
 * shapes (generated tensors such as rope_freqs excluded): fills entry i and returns 1, or
 * returns 0 when i is past the end. */
int sm_arch_tensor(const sm_hparams *hp, size_t i, char *name, size_t cap, int *n_dims, int64_t shape[SM_MAX_DIMS]);
/* llama3 rope scaling: the head_dim/2 frequency factors llama.cpp reads from rope_freqs.weight
 * (computed as convert_hf_to_gguf.py does). 0 if hp has llama3 scaling, else -1. */
int sm_rope_llama3_factors(const sm_hparams *hp, float *out, int64_t n);
/* longrope (Phi-3 128k, Phi-4-mini; model/longrope.c): from config.json's rope_scaling (cfg, already
 * parsed; path for messages), the original context and llama.cpp's attention factor into hp, and
 * the n_rot/2 long and short frequency factors into long_f / short_f (either may be NULL: checked
 * only). -1 with a message naming the config key when the variant cannot be run as llama.cpp does. */
int sm_longrope_from_config(const cJSON *cfg, const char *path, sm_hparams *hp, float *long_f, float *short_f);
/* The same, reading config_json_path (hp from sm_hparams_from_hf_config). */
int sm_rope_longrope_factors(const char *config_json_path, const sm_hparams *hp, float *long_f, float *short_f);
/* sm_hparams_to_meta plus general.file_type (when >= 0) where llama.cpp's converter puts it,
 * so that the key order matches convert_hf_to_gguf.py's. */
void sm_hparams_to_meta_ftype(const sm_hparams *hp, int file_type, sm_meta *w);
/* GGUF general.file_type (llama_ftype) for an output type: 0 f32, 1 f16, 7 q8_0, 32 bf16; -1 if none. */
int sm_ftype_for_type(sm_type t);

/* w + 1 of a norm weight as llama.cpp's converter computes it (torch, in the source dtype):
 * n values of src (F32, F16 or BF16) to F32. */
int sm_norm_shift_to_f32(sm_type src_type, const void *src, float *out, int64_t n);

/* Permute rows of a [n_rows, row_len] F32 matrix from HF rotate_half order to ggml's
 * interleaved rope order (what llama.cpp's converter does), for n_heads heads. */
void sm_permute_rope_rows(const float *src, float *dst, int64_t n_rows, int64_t row_len, int64_t n_heads);
/* Same permutation on raw rows of any element size (bytes per row). */
void sm_permute_rope_rows_raw(const void *src, void *dst, int64_t n_rows, size_t row_bytes, int64_t n_heads);

/* ======================================================================================
 * Tokenizer: llama.cpp's tokenization (llama-vocab.cpp) for SentencePiece vocabularies
 * (tokenizer.ggml.model "llama") and GPT-2 byte-level BPE ("gpt2" with the gpt-2, llama3 and
 * qwen2 pre-tokenizer families), and the way back (ids -> bytes).
 * ==================================================================================== */

typedef struct sm_tokenizer sm_tokenizer;

/* Build a tokenizer from a vocabulary (copied: v may be freed afterwards). Fails with a clear
 * error on a vocabulary it cannot tokenize with exactly llama.cpp's results: an unknown BPE
 * pre-tokenizer, a merge whose parts or result are not tokens, special ids out of range. */
int sm_tokenizer_new(const sm_vocab *v, sm_tokenizer **out);
void sm_tokenizer_free(sm_tokenizer *t);
int32_t sm_tokenizer_n_vocab(const sm_tokenizer *t);
/* The BOS / EOS ids in use (llama.cpp's defaults for SPM when the vocabulary has none: 1, 2);
 * -1 if none. */
int32_t sm_tokenizer_bos(const sm_tokenizer *t);
int32_t sm_tokenizer_eos(const sm_tokenizer *t);

/* sm_tokenize flags (llama_tokenize's add_special and parse_special). */
enum {
    /* Add BOS (and EOS) where the vocabulary asks for them (tokenizer.ggml.add_bos_token ...). */
    SM_TOK_ADD_SPECIAL = 1 << 0,
    /* Text equal to a CONTROL token (e.g. "<s>", "<|eot_id|>") becomes that token. Without it only
     * USER_DEFINED tokens are matched in the text, as llama.cpp does. */
    SM_TOK_PARSE_SPECIAL = 1 << 1,
};
/* Tokenize len bytes of text (any bytes; invalid UTF-8 is handled as llama.cpp does). *ids is
 * malloc'ed (free() it; non-NULL even when *n_ids is 0). Same ids as llama.cpp's
 * llama_tokenize(text, add_special, parse_special) for the same vocabulary. */
int sm_tokenize(const sm_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n_ids);

/* The bytes token `id` stands for: a byte token gives its byte, an SPM piece has U+2581 turned
 * back into spaces, a byte-level BPE piece is mapped back to bytes, CONTROL / UNKNOWN /
 * USER_DEFINED tokens give their text, UNUSED tokens nothing. Writes min(length, cap) bytes (no
 * NUL) and returns the full length, like snprintf; -1 (error) for an id out of range. */
int sm_token_to_piece(const sm_tokenizer *t, int32_t id, char *buf, size_t cap);
/* Text of an id sequence: the pieces concatenated, CONTROL and UNKNOWN tokens (BOS, EOS...)
 * left out, and with the dummy-prefix space that SPM tokenization adds at the start removed
 * (as SentencePiece's decode does), so that detokenize(tokenize(x)) == x for valid UTF-8 x.
 * *text is malloc'ed and NUL-terminated. */
int sm_detokenize(const sm_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);

/* ======================================================================================
 * Runtime: load a model and run its forward pass (model/weights.c, model/forward.c)
 * ==================================================================================== */

/* A decoder-only transformer ready to evaluate: Llama / Mistral / Qwen2 / Qwen3 (RMSNorm, GQA
 * attention with RoPE, SiLU-gated FFN, optional q/k/v biases, optional per-head q/k norms,
 * optional tied output).
 * Weights stay where they are (mmapped GGUF / safetensors / llama2.c file) in their stored
 * type; only 1-D tensors (norms, biases) are copied to float. */
typedef struct sm_model sm_model;

/* Open `path`: a GGUF file, a Hugging Face model directory (config.json + weights +
 * tokenizer files; a GPTQ checkpoint's qweight/qzeros/scales/g_idx linears are dequantized
 * to float at load) or a llama2.c checkpoint. vocab_path (may be NULL) names a tokenizer to
 * use instead of the model's own (a SentencePiece .model file); a llama2.c checkpoint
 * without one looks for tokenizer.model beside it, and has no vocabulary if none is there. */
int sm_model_load(const char *path, const char *vocab_path, sm_model **out);
void sm_model_free(sm_model *m);
const sm_hparams *sm_model_hparams(const sm_model *m);
/* NULL when the model has no vocabulary. */
const sm_vocab *sm_model_vocab(const sm_model *m);
/* The model's tokenizer; -1 (with the reason: no vocabulary, or one the tokenizer refused)
 * when there is none. */
int sm_model_tokenizer(const sm_model *m, const sm_tokenizer **out);
sm_rope_kind sm_model_rope(const sm_model *m);
/* Bytes of weights the model reads per token (for reports). */
uint64_t sm_model_weight_bytes(const sm_model *m);

/* An evaluation context: the KV cache (float) for up to n_ctx positions and scratch for
 * batches of up to n_batch tokens. One context serves one sequence at a time. */
typedef struct sm_context sm_context;
int sm_context_new(const sm_model *m, int64_t n_ctx, int64_t n_batch, sm_context **out);
/* A context for sm_model_eval_block only, with the KV cache of one layer: blocks evaluated one
 * after another (layer-by-layer calibration) share it, so its memory does not grow with the
 * number of layers. sm_model_eval refuses it. */
int sm_context_new_block(const sm_model *m, int64_t n_ctx, int64_t n_batch, sm_context **out);

/* A context on `device`. SM_DEVICE_CUDA copies the weights to the GPU as float (dequantized
 * on the host, one tensor at a time) and fails with a message when no device is usable or
 * smelt was built without CUDA; the caller decides whether to fall back to the CPU. */
int sm_context_new_on(const sm_model *m, sm_device device, int64_t n_ctx, int64_t n_batch, sm_context **out);
void sm_context_free(sm_context *c);
int64_t sm_context_n_ctx(const sm_context *c);
/* Forget every cached position (a new sequence starts at position 0). */
void sm_context_clear(sm_context *c);
/* Batches of fewer than 8 tokens (generation) multiply Q4_0, Q8_0, Q4_K, Q5_K and Q6_K weights
 * with activations quantized to 8 bits per block and integer dot products, as llama.cpp does
 * (kernels.h: sm_matmul_op.int_dot): faster, the same bits on every ISA and thread count, but
 * not the exact float results. Off (exact float) unless set; CPU contexts only. */
void sm_context_set_int_dot(sm_context *c, bool on);

/* Run tokens[0..n) at positions pos0..pos0+n-1 (pos0 <= positions already cached: later
 * cached positions are dropped; pos0 + n <= n_ctx). Any n works; the context splits it into
 * batches of n_batch. If logits is non-NULL it receives the logits of tokens
 * out_first..n-1, (n - out_first) rows of n_vocab floats. On the CPU, results are
 * bit-identical for any thread count. Returns 0, -1 on error, or the positive value an
 * activation observer (sm_context_set_observer) stopped the evaluation with. */
int sm_model_eval(const sm_model *m, sm_context *c, const int32_t *tokens, int64_t n, int64_t pos0,
                  int64_t out_first, float *logits);

/* ======================================================================================
 * Calibration hooks (calibration section; model/forward.c, model/block.c): activation
 * capture and decoder-block-at-a-time evaluation for importance matrices and GPTQ.
 * ==================================================================================== */

/* The inputs the linear layers of a decoder read. Every linear of one group reads the same
 * input. */
typedef enum sm_linear_input {
    SM_IN_ATTN,      /* attn_norm(x): input of attn_q, attn_k, attn_v */
    SM_IN_ATTN_OUT,  /* the attention's output: input of attn_output */
    SM_IN_FFN,       /* ffn_norm(x): input of ffn_gate, ffn_up */
    SM_IN_FFN_DOWN,  /* silu(gate) * up: input of ffn_down */
    SM_IN_OUTPUT,    /* output_norm(x): input of output (the head; layer -1) */
    SM_IN_COUNT
} sm_linear_input;

/* The linear layers of a decoder block, and the input each reads. */
typedef enum sm_linear {
    SM_LIN_Q, SM_LIN_K, SM_LIN_V, SM_LIN_O, SM_LIN_GATE, SM_LIN_UP, SM_LIN_DOWN, SM_LIN_COUNT
} sm_linear;
sm_linear_input sm_linear_input_of(sm_linear l);
/* GGUF base name: "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down". */
const char *sm_linear_gguf_name(sm_linear l);
/* The stored GGUF tensor (the stem between "blk.N." and ".weight") holding linear l of model m,
 * and l's first row in it: a fused block (SM_FEAT_FUSED) keeps q, k, v in attn_qkv (rows in
 * that order) and gate, up in ffn_up (gate rows first); otherwise sm_linear_gguf_name, row 0. */
const char *sm_model_linear_tensor(const sm_model *m, sm_linear l, int64_t *row0);

/* An activation observer: called during evaluation on the CPU with the input x of a group of
 * linears, n_tok tokens of `cols` features each, in the runtime's feature-major layout:
 * feature f of token t is x[f*ld + t]. layer is -1 for SM_IN_OUTPUT, which is observed only
 * for the tokens whose logits are computed. Return 0 to go on, a positive value to stop the
 * evaluation right there (the evaluating call then returns that value; later layers of the
 * batch are not computed), or -1 to fail with an error set. */
typedef int (*sm_observer_fn)(void *user, int64_t layer, sm_linear_input which, const float *x, int64_t ld,
                              int64_t cols, int64_t n_tok);
/* Install (fn non-NULL) or remove (fn NULL) the context's observer. Only CPU contexts
 * support observers (-1 on a CUDA context). Unobserved evaluation costs one test per group. */
int sm_context_set_observer(sm_context *c, sm_observer_fn fn, void *user);

/* A mixture-of-experts block (SM_FEAT_MOE) has no dense ffn_gate/up/down: the observer above
 * sees SM_IN_FFN as the router's (ffn_gate_inp's) input, every token, and no SM_IN_FFN_DOWN.
 * Each expert's own inputs go to an expert observer, called per layer for each expert that
 * receives tokens (in expert order), with only those n_tok tokens, gathered: which is SM_IN_FFN
 * (ffn_norm(x): the input of the expert's slices of ffn_gate_exps and ffn_up_exps) or
 * SM_IN_FFN_DOWN (silu(gate) * up: the input of its slice of ffn_down_exps); x[f*ld + i] is
 * feature f of the i-th routed token, tok[i] that token's column in the layer's SM_IN_FFN batch
 * (increasing) and weight[i] its routing weight for this expert (after renormalisation). Return
 * values as for sm_observer_fn. CPU contexts only. */
typedef int (*sm_expert_observer_fn)(void *user, int64_t layer, int64_t expert, sm_linear_input which, const float *x,
                                     int64_t ld, int64_t cols, int64_t n_tok, const int32_t *tok, const float *weight);
int sm_context_set_expert_observer(sm_context *c, sm_expert_observer_fn fn, void *user);
/* An expert input's index: 0 for SM_IN_FFN (gate/up), 1 for SM_IN_FFN_DOWN, -1 for any other. */
int sm_expert_input(sm_linear_input which);
/* SM_FEAT_MOE: one expert's matrix of layer `layer`'s stack `stack` (0 ffn_gate_exps, 1
 * ffn_up_exps, 2 ffn_down_exps): its shape (rows = outputs) and its weights as floats, rows x
 * cols row-major (the layer prepared, as sm_model_linear_f32). */
int sm_model_expert_shape(const sm_model *m, int stack, int64_t *rows, int64_t *cols);
int sm_model_expert_f32(const sm_model *m, int64_t layer, int stack, int64_t expert, float *dst);

/* Shape of a block's linear: rows = outputs, cols = inputs. */
int sm_model_linear_shape(const sm_model *m, int64_t layer, sm_linear which, int64_t *rows, int64_t *cols);
/* Its weight as floats, rows x cols row-major, as stored (GGUF: ggml's rope row layout for
 * q/k; Hugging Face: rotate_half layout). */
int sm_model_linear_f32(const sm_model *m, int64_t layer, sm_linear which, float *dst);

/* Layer `layer`'s linear weights (layer -1: the token embedding and the output head) are not
 * needed for a while: their pages of the mapped model file stop counting as this process's
 * memory (they are read back from the file if used again). Layer-at-a-time work (GPTQ) calls
 * it after each block, so that its resident memory is one block, not the model. */
void sm_model_release_layer(const sm_model *m, int64_t layer);

/* Make a model loaded from a Hugging Face directory compute exactly what the GGUF `smelt
 * convert` writes of it computes (for llama / mistral: q/k rows and biases in llama.cpp's
 * interleaved rope order, normal rope instead of rotate_half), so that layer-at-a-time work
 * reads the directory instead of a converted copy. Any other model is left as it is. Only
 * layer-at-a-time evaluation is then possible (sm_model_eval_block, sm_model_linear_f32):
 * each layer must be prepared with sm_model_prepare_layer (its permuted q/k rows are made,
 * one layer's worth) and is unprepared again by sm_model_release_layer. */
int sm_model_gguf_layout(sm_model *m);
int sm_model_prepare_layer(const sm_model *m, int64_t layer);

/* Token embeddings of n tokens, token-major: x[t*n_embd + f]. */
int sm_model_embed(const sm_model *m, const int32_t *tokens, int64_t n, float *x);

/* The floats the runtime uses for block `layer`'s 1-D tensor (a norm weight or a bias) named as
 * in GGUF after "blk.N." ("attn_norm.weight", "attn_v.bias"), *n its length; NULL if the model
 * has no such tensor. */
const float *sm_model_block_vector(const sm_model *m, int64_t layer, const char *name, int64_t *n);

/* Replacement weights for one block's linears: rows x cols floats row-major in the layout
 * sm_model_linear_f32 gives; NULL keeps the model's own weight. */
typedef struct sm_block_override {
    const float *w[SM_LIN_COUNT];
    /* SM_FEAT_MOE: per expert stack (0 ffn_gate_exps, 1 ffn_up_exps, 2 ffn_down_exps) NULL, or
     * n_expert pointers, each NULL (the model's weights) or that expert's replacement floats */
    const float *const *exps[3];
} sm_block_override;

/* Run decoder block `layer` alone (CPU contexts) over n tokens of the residual stream x
 * (token-major, n x n_embd, replaced by the block's output) at positions pos0..pos0+n-1 of
 * the context's KV cache for that layer, in batches of the context's n_batch. The caller
 * keeps each layer's cache consistent: positions below pos0 must have been run through the
 * same layer (pos0 = 0 starts a new sequence). ov may be NULL. The observer is called as in
 * sm_model_eval; if it stops the block (returns > 0), that value is returned and x is left
 * unchanged for the tokens of that batch and later ones. */
int sm_model_eval_block(const sm_model *m, sm_context *c, int64_t layer, const sm_block_override *ov, float *x,
                        int64_t n, int64_t pos0);

/* The same on a GPU (kernels.h's sm_cuda_block): a device block for samples of up to n_tok
 * tokens, and the upload of layer `layer`'s norms, biases and linears into it (as float, one
 * tensor at a time; the tensors of model/tensor_names.c's block table). lin[i] (sm_linear i), when lin and lin[i] are not
 * NULL, is that linear's weight already in float (as sm_model_linear_f32 gives it), uploaded
 * as is instead of being converted again. -1 (sm_error) without a usable device. */
struct sm_cuda_block;
int sm_model_cuda_block_new(const sm_model *m, int64_t n_tok, struct sm_cuda_block **out);
int sm_model_cuda_block_load(const sm_model *m, int64_t layer, struct sm_cuda_block *b, const float *const *lin);
/* Upload one linear of layer `layer` (float, [out][in]; w NULL: the model's own, converted). */
int sm_model_cuda_block_set_linear(const sm_model *m, int64_t layer, sm_linear i, const float *w,
                                   struct sm_cuda_block *b);

#endif
