/* arch_internal.h - the decoder block's tensor table (model/tensor_names.c): one row per block
 * tensor, shared by every architecture of model/arch.c's table. It drives the HF <-> GGUF
 * name maps, the converter's expected tensor list, the runtime's loader (model/weights.c) and
 * the upload to the CUDA block (model/forward_cuda.c): a tensor is described once. */
#ifndef SMELT_ARCH_INTERNAL_H
#define SMELT_ARCH_INTERNAL_H

#include "runtime_internal.h"

#include "kernels/kernels.h"

#include <stddef.h>

/* A dimension in units of the hyperparameters. */
typedef enum sm_dim { SM_DIM_NONE, SM_DIM_EMBD, SM_DIM_FF, SM_DIM_Q, SM_DIM_KV, SM_DIM_HEAD,
                     SM_DIM_QKV /* q + 2 kv (fused attn_qkv) */, SM_DIM_FF2 /* 2 n_ff (fused gate_up) */,
                     SM_DIM_EXPERTS /* n_expert (the router's rows) */, SM_DIM_FF_EXP /* n_ff_exp */ } sm_dim;

/* When a block tensor is present. */
typedef enum sm_when {
    SM_WHEN_ALWAYS,
    SM_WHEN_QKV_BIAS, /* hp->qkv_bias */
    SM_WHEN_OUT_BIAS, /* hp->attn_out_bias */
    SM_WHEN_MLP_BIAS, /* hp->mlp_bias */
    SM_WHEN_QK_NORM,  /* hp->features & SM_FEAT_QK_NORM */
    SM_WHEN_UNFUSED,  /* !(hp->features & SM_FEAT_FUSED): separate q/k/v and gate/up */
    SM_WHEN_FUSED,    /* hp->features & SM_FEAT_FUSED: attn_qkv and the fused ffn_up */
    SM_WHEN_POST_NORMS,    /* hp->features & SM_FEAT_POST_NORMS */
    SM_WHEN_NO_POST_NORMS, /* not SM_FEAT_POST_NORMS (a stem whose GGUF name depends on it) */
    SM_WHEN_DENSE,         /* not SM_FEAT_MOE: the dense FFN */
    SM_WHEN_DENSE_UNFUSED, /* neither SM_FEAT_MOE nor SM_FEAT_FUSED: the dense FFN's separate gate and up */
    SM_WHEN_MOE,           /* SM_FEAT_MOE with Qwen3-MoE's HF names (mlp.gate, mlp.experts.E.*) */
    SM_WHEN_MOE_BSM,       /* SM_FEAT_MOE with Mixtral's (block_sparse_moe.*) */
} sm_when;

typedef struct sm_block_tensor {
    const char *hf;      /* between "model.layers.N." and ".weight" / ".bias"; a "*" stands for an expert's
                            number: one GGUF tensor [n_expert, rows, cols] stacks the experts' matrices */
    const char *gguf;    /* between "blk.N." and ".weight" / ".bias" */
    bool bias;           /* the ".bias" of the stem (else ".weight") */
    sm_dim rows, cols;   /* outermost first; cols SM_DIM_NONE: a vector (kept F32) */
    sm_when when;
    int permute;         /* SM_MAP_PERMUTE_Q / _K where the architecture stores rotate_half rows */
    sm_cuda_tensor slot; /* its role in the block description (kernels.h); SM_CT_COUNT: none (a fused store) */
    size_t off;          /* its field in sm_layer_weights (an sm_weight for a matrix, a float * for a vector, an
                            sm_weight * (n_expert of them) for an expert stack) */
} sm_block_tensor;

/* The block features each backend implements: a model whose architecture needs another is
 * refused there with a message, never run without it. */
#define SM_FEAT_CPU                                                                                              \
    (SM_FEAT_QK_NORM | SM_FEAT_FUSED | SM_FEAT_GELU_TANH | SM_FEAT_EMBD_SCALE | SM_FEAT_POST_NORMS | SM_FEAT_SOFTCAP | \
     SM_FEAT_SWA | SM_FEAT_NORM_SHIFT | SM_FEAT_SPM_NO_SPACE_PREFIX | SM_FEAT_SWA_ROPE | SM_FEAT_VLM_TEXT | SM_FEAT_MOE | \
     SM_FEAT_MOE_BSM | SM_FEAT_TOKCFG_SPACE_PREFIX)
/* kernels/cuda/block_exec.cu executes the same block description (fused q/k/v and gate/up are
 * split into their row views at upload; norm shifts, tokenizer and naming rules act before);
 * the mixture-of-experts FFN is not on the GPU yet (refused, naming it) */
#define SM_FEAT_CUDA (SM_FEAT_CPU & ~(SM_FEAT_MOE | SM_FEAT_MOE_BSM))
/* A feature bit's name for messages ("q/k norm", "sliding window" ...; "feature 0x..." if unknown). */
const char *sm_feature_name(unsigned bit);

extern const sm_block_tensor SM_BLOCK_TENSORS[];
extern const size_t SM_N_BLOCK_TENSORS;

bool sm_block_tensor_present(const sm_hparams *hp, const sm_block_tensor *t);
/* A row whose stem means this tensor only in other architectures (hp NULL: no features): skip it. */
bool sm_block_tensor_other_arch(const sm_hparams *hp, const sm_block_tensor *t);
int64_t sm_dim_size(const sm_hparams *hp, sm_dim d);
/* The row stacks one matrix per expert (its HF stem has a "*"). */
bool sm_block_tensor_is_stack(const sm_block_tensor *t);

#endif
