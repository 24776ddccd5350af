/* recipe.h - quantization mixtures ("recipes"): which type each tensor gets.
 *
 * Follows llama.cpp's llama-quant.cpp rules (per-tensor categories, "more bits" layers for
 * attn_v / ffn_down in the _M recipes, output/tied embedding to Q6_K, fallbacks when a row
 * length is not a multiple of the block size), plus user overrides. */
#ifndef SMELT_RECIPE_H
#define SMELT_RECIPE_H

#include "core/core.h"

#include <regex.h>

typedef struct sm_recipe {
    const char *name;      /* "Q4_K_M" */
    int ftype;             /* llama_ftype number, written as general.file_type */
    sm_type default_type;  /* the base type of the mixture */
    const char *summary;
} sm_recipe;

/* Case-insensitive lookup of a recipe or alias ("q4_k" = Q4_K_M, as llama-quantize). */
const sm_recipe *sm_recipe_find(const char *name);
/* Names of all recipes, comma-separated, for messages. */
const char *sm_recipe_names(void);

#define SM_RECIPE_MAX_RULES 32

typedef struct sm_recipe_rule {
    regex_t re;
    sm_type type;   /* SM_TYPE_INVALID for --keep (leave in source precision) */
    char *pattern;
} sm_recipe_rule;

/* What the mixture needs to know about the model, and its running counters. Counters
 * advance as tensors are planned, so plan every tensor once, in file order. */
typedef struct sm_recipe_plan {
    const sm_recipe *recipe;
    int64_t n_head, n_head_kv; /* for n_gqa (attn_v rules) */
    int n_layer;
    bool llama_70b;            /* llama.cpp's LLM_TYPE_70B: llama arch, 80 layers, GQA */
    bool has_imatrix;
    bool pure;                 /* every quantizable tensor gets the default type (no mixture) */
    sm_type output_type;       /* SM_TYPE_INVALID: by the rules */
    sm_type token_embd_type;   /* SM_TYPE_INVALID: by the rules */
    int n_rules;
    sm_recipe_rule rules[SM_RECIPE_MAX_RULES]; /* first match wins */
    /* set by sm_recipe_plan_begin from the tensor names */
    int n_attention_wv;
    bool tied_embeddings;
    /* running counters */
    int i_attention_wv, i_ffn_down, i_ffn_gate, i_ffn_up;
    int n_fallback;
} sm_recipe_plan;

/* Initialise a plan for a model with these tensor names (GGUF names, file order). */
int sm_recipe_plan_begin(sm_recipe_plan *p, const sm_recipe *r, const char *const *names, size_t n_names,
                         const char *arch, int64_t n_layer, int64_t n_head, int64_t n_head_kv, bool has_imatrix);
/* Add `--tensor-type REGEX=TYPE` (type NULL: `--keep REGEX`). */
int sm_recipe_add_rule(sm_recipe_plan *p, const char *regex, const char *type_name);
/* The type for one tensor (shape outermost-first; cur_type: its type in the source). Returns
 * cur_type for tensors that are not quantized (1-D, norms, --keep). *fallback is set when the
 * row length forced a fallback type. */
sm_type sm_recipe_tensor_type(sm_recipe_plan *p, const char *name, int n_dims, const int64_t *shape,
                              sm_type cur_type, bool *fallback);
/* True when a tensor of this type, in this recipe, must have importance weights (llama.cpp). */
bool sm_recipe_requires_imatrix(const sm_recipe_plan *p, const char *name, sm_type type);
void sm_recipe_plan_free(sm_recipe_plan *p);

#endif
