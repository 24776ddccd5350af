/* runtime_internal.h - the loaded model as the forward pass sees it (model/weights.c fills
 * it, model/forward.c and model/attention.c use it). */
#ifndef SMELT_RUNTIME_INTERNAL_H
#define SMELT_RUNTIME_INTERNAL_H

#include "model.h"

#include "kernels/kernels.h"

/* A weight matrix in its stored type: rows x cols, row r at data + r*stride. */
typedef struct sm_weight {
    sm_type type;
    const void *data;
    size_t stride;
    int64_t rows, cols;
} sm_weight;

typedef struct sm_layer_weights {
    float *attn_norm, *ffn_norm; /* n_embd */
    float *bq, *bk, *bv, *bo;    /* biases: NULL when the model has none */
    float *bgate, *bup, *bdown;
    float *q_norm, *k_norm;      /* per-head q/k RMSNorm [head_dim]: NULL when the architecture has none */
    float *post_attn_norm, *post_ffw_norm; /* SM_FEAT_POST_NORMS [n_embd]: NULL otherwise */
    sm_weight wq, wk, wv, wo, gate, up, down;
    /* SM_FEAT_FUSED: the stored attn_qkv / fused ffn_up; wq, wk, wv and gate, up are row views of them */
    sm_weight wqkv, gate_up;
    /* SM_FEAT_MOE: the router [n_expert, n_embd] and each expert's gate, up [n_ff_exp, n_embd] and down
     * [n_embd, n_ff_exp] (n_expert each: views of the stacked GGUF tensors, or the HF experts' own) */
    sm_weight gate_inp;
    sm_weight *gate_exps, *up_exps, *down_exps;
} sm_layer_weights;

struct sm_model {
    sm_hparams hp;
    sm_rope_kind rope;
    int64_t head_dim, q_dim, kv_dim;
    int64_t n_rot;              /* rotated dimensions of each head (head_dim unless partial rotary) */
    double *rope_freq;          /* n_rot/2 angles per position step (scaling included; longrope: short factors) */
    double *rope_freq_long;     /* longrope: the angles with the long factors, for contexts beyond the original */
    double *rope_freq_swa;      /* SM_FEAT_SWA_ROPE: the sliding layers' (hp.rope_theta_swa, unscaled); else NULL */
    float *longrope_f[2];       /* longrope from an HF directory: long, short factors (owned) */
    sm_weight tok_embd, output; /* output may alias tok_embd (tied) */
    float *output_norm;
    sm_layer_weights *layers;
    sm_vocab vocab;
    bool has_vocab;
    bool vocab_external;   /* from --vocab FILE (or tokenizer.model beside a llama2.c file), not the model's own */
    sm_tokenizer *tok;          /* NULL: no vocabulary, or tok_error says why not */
    char tok_error[256];
    /* where the bytes live */
    sm_gguf *gguf;
    sm_ckpt *ckpt;
    char (*ckpt_names)[96];     /* HF checkpoints: GGUF name of each ckpt tensor ("" = skipped);
                                   GPTQ tensors: the weight's GGUF name + ".qweight" etc. */
    bool gptq;                  /* HF GPTQ checkpoint: block linears are dequantized at load */
    sm_gptq_hf_config gptq_cfg;
    float **owned;              /* float copies of 1-D tensors */
    size_t n_owned;
    /* sm_model_gguf_layout: each layer's q/k weights as stored (HF rotate_half row order) and
     * their rows in llama.cpp's order while the layer is prepared (NULL otherwise); 2 per layer */
    sm_weight *qk_src;
    void **qk_perm;
    sm_weight *expert_w;        /* SM_FEAT_MOE: the experts' matrices of every layer (the layers' *_exps point in) */
};

/* Activations are feature-major (see kernels.h): row f of a batch buffer holds feature f of
 * every token of the batch, `ld` floats apart. */
/* The KV cache slot of a layer: its own, or slot 0 in a block context (sm_context_new_block),
 * where one block at a time is evaluated. */
#define SM_KV_SLOT(c, layer) ((c)->kv_layers == 1 ? 0 : (layer))

struct sm_context {
    const sm_model *m;
    int64_t n_ctx, n_batch, n_past, ld;
    struct sm_cuda_net *cuda;   /* a CUDA context: everything below is unused */
    int64_t kv_layers;          /* KV cache slots: n_layer, or 1 for a block context */
    float *k_cache;             /* per layer [n_head_kv][n_ctx][head_dim] */
    float *v_cache;             /* per layer [n_head_kv][head_dim][n_ctx] (transposed) */
    float *rope_cos, *rope_sin; /* [head_dim/2][n_ctx] */
    float *rope_cos_swa, *rope_sin_swa; /* the same for m->rope_freq_swa (NULL without) */
    float *x, *xn;              /* [n_embd][ld] */
    float *tmp;                 /* [n_embd]: one token's embedding row */
    float *q, *att;             /* [n_head*head_dim][ld] */
    float *k, *v;               /* [n_head_kv*head_dim][ld] */
    float *gate, *up;           /* [n_ff][ld] */
    float *logits_t;            /* [LOGIT_ROWS][ld] */
    double *ss;                 /* [n_batch] */
    sm_block_desc block;        /* the decoder block this context executes (model/block_desc.c) */
    sm_observer_fn obs;         /* activation observer (NULL: none) and its argument */
    void *obs_user;
    bool int_dot;               /* sm_context_set_int_dot */
    sm_expert_observer_fn eobs; /* SM_FEAT_MOE: the experts' observer (NULL: none) and its argument */
    void *eobs_user;
    /* SM_FEAT_MOE scratch (model/moe.c): router probabilities [n_expert][ld], one expert's gathered
     * tokens [max(n_embd, ..)][ld], each routing slot's weighted expert output [n_expert_used][n_embd][ld],
     * per token its experts and weights [ld][n_expert_used], one expert's tokens, slots and weights */
    float *router, *xe, *slots, *sel_w, *e_w;
    int32_t *sel, *e_tok, *e_slot;
};

/* Vocabulary rows per output product (bounds the transposed-logits scratch). */
#define SM_LOGIT_ROWS 4096

/* One decoder block over the batch of n tokens in c->x (feature-major), with weights L
 * (layer l's own or replacements), KV cache of layer l at positions pos0... Returns 0, -1,
 * or the positive value an observer stopped it with (model/forward.c). */
int sm_layer_forward(sm_context *c, const sm_layer_weights *L, int64_t l, int64_t n, int64_t pos0);

/* The model's decoder block as data (model/block_desc.c), executed by every backend. */
void sm_block_desc_build(const sm_model *m, sm_block_desc *d);
/* Layer weights of a tensor role (sm_cuda_tensor): the sm_weight of a matrix, the float * field
 * of a vector (*matrix says which, when matrix is not NULL); NULL for a role with no field. */
const void *sm_layer_role(const sm_layer_weights *L, int role, bool *matrix);
/* The tensor role of a block linear. */
sm_cuda_tensor sm_linear_role(sm_linear l);
/* 0, or an error when a context of n_ctx positions needs windowed attention on every layer
 * (SM_FEAT_SWA with pattern 0: Phi-3), which no backend applies. */
int sm_context_check_window(const sm_model *m, int64_t n_ctx);
/* The rope tables of a context of n_ctx positions, [n_rot/2][n_ctx] each (longrope's factors as
 * llama.cpp picks them for n_ctx, its attention factor applied); cos_swa / sin_swa (when the model
 * has SM_FEAT_SWA_ROPE's second base, else unused and may be NULL) the windowed layers'. */
void sm_rope_tables(const sm_model *m, int64_t n_ctx, float *cos_t, float *sin_t, float *cos_swa, float *sin_swa);
/* The mixture-of-experts FFN (model/moe.c) over tokens [0, n) of xn (ffn_norm(x), feature-major,
 * c->ld apart): x += the weighted sum of each token's experts. 0, -1, or an observer's stop value. */
int sm_moe_ffn(sm_context *c, const sm_layer_weights *L, int64_t l, const float *xn, float *x, int64_t n);
int sm_moe_context_alloc(sm_context *c);
void sm_moe_context_free(sm_context *c);
/* sm_model_eval_block's expert replacements: L's stacks point into *tmp (3 x n_expert, free it after the
 * block; NULL when ov replaces no expert). */
int sm_moe_override(const sm_model *m, sm_layer_weights *L, const sm_block_override *ov, sm_weight **tmp);

/* The CUDA copy of the model's weights (model/forward_cuda.c). */
int sm_cuda_net_for_model(const sm_model *m, int64_t n_ctx, struct sm_cuda_net **out);

/* Attention of the batch's n tokens (positions pos0..) over the layer's cache, which
 * already holds their keys and values: q and out are [n_head*head_dim][ld]. */
int sm_attention(const sm_context *c, int64_t layer, const float *q, int64_t n, int64_t pos0, float *out);

#endif
