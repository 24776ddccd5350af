/* hparams_gguf.c - sm_hparams <-> GGUF metadata: the <arch>.* keys llama.cpp reads, written
 * as llama.cpp's convert_hf_to_gguf.py writes them (TextModel.set_gguf_parameters and
 * LlamaModel.set_gguf_parameters; key names from gguf-py/gguf/constants.py). */
#include "model.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *key(char *buf, size_t cap, const char *arch, const char *suffix) {
    snprintf(buf, cap, "%s.%s", arch, suffix);
    return buf;
}

/* One GGUF <arch>.* key: its name after "<arch>.", its type and the sm_hparams field it holds. */
typedef enum { KT_U32, KT_F32, KT_STR } key_type;
typedef struct gguf_key { const char *suffix; key_type type; size_t off; } gguf_key;
#define U32(s, f) {s, KT_U32, offsetof(sm_hparams, f)}
#define F32(s, f) {s, KT_F32, offsetof(sm_hparams, f)}

enum { K_CTX, K_EMBD, K_FF, K_LAYERS, K_HEADS, K_HEADS_KV, K_EPS, K_KEY_LEN, K_VALUE_LEN, K_ROPE_DIM, K_ROPE_BASE,
       K_SCALING_TYPE, K_SCALING_FACTOR, K_ORIG_CTX, K_YARN_EXT, K_YARN_ATTN, K_YARN_FAST, K_YARN_SLOW, K_VOCAB,
       K_ATTN_CAP, K_FINAL_CAP, K_SWA, K_ROPE_BASE_SWA, K_ROT_DIM, K_EXPERTS, K_EXPERTS_USED, K_EXPERT_FF,
       K_FILE_TYPE /* general.file_type, where the converter class writes it */ };

static const gguf_key KEYS[] = {
    [K_CTX] = U32("context_length", n_ctx_train),
    [K_EMBD] = U32("embedding_length", n_embd),
    [K_FF] = U32("feed_forward_length", n_ff),
    [K_LAYERS] = U32("block_count", n_layer),
    [K_HEADS] = U32("attention.head_count", n_head),
    [K_HEADS_KV] = U32("attention.head_count_kv", n_head_kv),
    [K_EPS] = F32("attention.layer_norm_rms_epsilon", rms_eps),
    [K_KEY_LEN] = U32("attention.key_length", head_dim),
    [K_VALUE_LEN] = U32("attention.value_length", head_dim),
    [K_ROPE_DIM] = U32("rope.dimension_count", head_dim),
    [K_ROPE_BASE] = F32("rope.freq_base", rope_theta),
    [K_SCALING_TYPE] = {"rope.scaling.type", KT_STR, offsetof(sm_hparams, rope_scaling_type)},
    [K_SCALING_FACTOR] = F32("rope.scaling.factor", rope_scaling_factor),
    [K_ORIG_CTX] = U32("rope.scaling.original_context_length", rope_scaling_orig_ctx),
    [K_YARN_EXT] = F32("rope.scaling.yarn_ext_factor", rope_yarn_ext_factor),
    [K_YARN_ATTN] = F32("rope.scaling.yarn_attn_factor", rope_yarn_attn_factor),
    [K_YARN_FAST] = F32("rope.scaling.yarn_beta_fast", rope_yarn_beta_fast),
    [K_YARN_SLOW] = F32("rope.scaling.yarn_beta_slow", rope_yarn_beta_slow),
    [K_VOCAB] = U32("vocab_size", n_vocab),
    [K_ATTN_CAP] = F32("attn_logit_softcapping", attn_softcap),
    [K_FINAL_CAP] = F32("final_logit_softcapping", final_softcap),
    [K_SWA] = U32("attention.sliding_window", sliding_window),
    [K_ROPE_BASE_SWA] = F32("rope.freq_base_swa", rope_theta_swa),
    [K_ROT_DIM] = U32("rope.dimension_count", n_rot), /* Phi3MiniModel: partial rotary */
    [K_EXPERTS] = U32("expert_count", n_expert),
    [K_EXPERTS_USED] = U32("expert_used_count", n_expert_used),
    [K_EXPERT_FF] = U32("expert_feed_forward_length", n_ff_exp),
    [K_FILE_TYPE] = {"general.file_type", KT_U32, 0},
};

/* When a key of a key set is written. */
typedef enum { W_ALWAYS, W_SCALED /* linear or yarn rope scaling */, W_YARN, W_YARN_EXT, W_YARN_ATTN, W_YARN_FAST,
               W_YARN_SLOW, W_HEAD_DIM /* head_dim given or not n_embd / n_head */, W_LLAMA /* LlamaModel keys */,
               W_FINAL_CAP /* final soft-capping set */, W_SWA_ROPE /* a local rope base */,
               W_MOE /* a mixture of experts */,
               W_END } key_when;
typedef struct key_use { int key; key_when when; } key_use;

/* The converter classes' set_gguf_parameters, each in its order (SM_KEYS_*). */
static const key_use TEXT_KEYS[] = { /* TextModel + LlamaModel */
    {K_LAYERS, W_ALWAYS}, {K_CTX, W_ALWAYS}, {K_EMBD, W_ALWAYS}, {K_FF, W_ALWAYS}, {K_HEADS, W_ALWAYS},
    {K_HEADS_KV, W_ALWAYS}, {K_SCALING_TYPE, W_SCALED}, {K_SCALING_FACTOR, W_SCALED}, {K_ORIG_CTX, W_YARN},
    {K_YARN_EXT, W_YARN_EXT}, {K_YARN_ATTN, W_YARN_ATTN}, {K_YARN_FAST, W_YARN_FAST}, {K_YARN_SLOW, W_YARN_SLOW},
    {K_ROPE_BASE, W_ALWAYS}, {K_EPS, W_ALWAYS}, {K_EXPERTS, W_MOE}, {K_EXPERTS_USED, W_MOE}, {K_KEY_LEN, W_HEAD_DIM},
    {K_VALUE_LEN, W_HEAD_DIM}, {K_FILE_TYPE, W_ALWAYS}, {K_VOCAB, W_LLAMA}, {K_ROPE_DIM, W_LLAMA}, {0, W_END}};
static const key_use QWEN_MOE_KEYS[] = { /* Qwen2MoeModel: TextModel's, then the expert FFN width */
    {K_LAYERS, W_ALWAYS}, {K_CTX, W_ALWAYS}, {K_EMBD, W_ALWAYS}, {K_FF, W_ALWAYS}, {K_HEADS, W_ALWAYS},
    {K_HEADS_KV, W_ALWAYS}, {K_SCALING_TYPE, W_SCALED}, {K_SCALING_FACTOR, W_SCALED}, {K_ORIG_CTX, W_YARN},
    {K_YARN_EXT, W_YARN_EXT}, {K_YARN_ATTN, W_YARN_ATTN}, {K_YARN_FAST, W_YARN_FAST}, {K_YARN_SLOW, W_YARN_SLOW},
    {K_ROPE_BASE, W_ALWAYS}, {K_EPS, W_ALWAYS}, {K_EXPERTS, W_MOE}, {K_EXPERTS_USED, W_MOE}, {K_KEY_LEN, W_HEAD_DIM},
    {K_VALUE_LEN, W_HEAD_DIM}, {K_FILE_TYPE, W_ALWAYS}, {K_EXPERT_FF, W_MOE}, {0, W_END}};
static const key_use PHI3_KEYS[] = { /* conversion/phi.py Phi3MiniModel */
    {K_CTX, W_ALWAYS}, {K_ORIG_CTX, W_ALWAYS}, {K_EMBD, W_ALWAYS}, {K_FF, W_ALWAYS}, {K_LAYERS, W_ALWAYS},
    {K_HEADS, W_ALWAYS}, {K_HEADS_KV, W_ALWAYS}, {K_EPS, W_ALWAYS}, {K_ROT_DIM, W_ALWAYS}, {K_ROPE_BASE, W_ALWAYS},
    {K_FILE_TYPE, W_ALWAYS}, {K_SWA, W_ALWAYS}, {0, W_END}};
static const key_use GEMMA2_KEYS[] = { /* Gemma2Model */
    {K_CTX, W_ALWAYS}, {K_EMBD, W_ALWAYS}, {K_LAYERS, W_ALWAYS}, {K_FF, W_ALWAYS}, {K_HEADS, W_ALWAYS},
    {K_HEADS_KV, W_ALWAYS}, {K_EPS, W_ALWAYS}, {K_KEY_LEN, W_ALWAYS}, {K_VALUE_LEN, W_ALWAYS},
    {K_FILE_TYPE, W_ALWAYS}, {K_ATTN_CAP, W_ALWAYS}, {K_FINAL_CAP, W_ALWAYS}, {K_SWA, W_ALWAYS}, {0, W_END}};
static const key_use GEMMA3_KEYS[] = { /* Gemma3Model: TextModel's (its later values overwrite them in place) */
    {K_LAYERS, W_ALWAYS}, {K_CTX, W_ALWAYS}, {K_EMBD, W_ALWAYS}, {K_FF, W_ALWAYS}, {K_HEADS, W_ALWAYS},
    {K_HEADS_KV, W_ALWAYS}, {K_SCALING_TYPE, W_SCALED}, {K_SCALING_FACTOR, W_SCALED}, {K_ORIG_CTX, W_YARN},
    {K_YARN_EXT, W_YARN_EXT}, {K_YARN_ATTN, W_YARN_ATTN}, {K_YARN_FAST, W_YARN_FAST}, {K_YARN_SLOW, W_YARN_SLOW},
    {K_ROPE_BASE, W_ALWAYS}, {K_ROPE_BASE_SWA, W_SWA_ROPE}, {K_EPS, W_ALWAYS}, {K_KEY_LEN, W_ALWAYS},
    {K_VALUE_LEN, W_ALWAYS}, {K_FILE_TYPE, W_ALWAYS}, {K_FINAL_CAP, W_FINAL_CAP}, {K_SWA, W_ALWAYS}, {0, W_END}};
static const key_use *const KEY_SETS[] = {[SM_KEYS_TEXT] = TEXT_KEYS, [SM_KEYS_PHI3] = PHI3_KEYS,
                                          [SM_KEYS_GEMMA2] = GEMMA2_KEYS, [SM_KEYS_GEMMA3] = GEMMA3_KEYS,
                                          [SM_KEYS_QWEN_MOE] = QWEN_MOE_KEYS};

static bool key_wanted(const sm_hparams *hp, key_when when) {
    bool yarn = !strcmp(hp->rope_scaling_type, "yarn");
    switch (when) {
    case W_ALWAYS: return true;
    case W_SCALED: return yarn || !strcmp(hp->rope_scaling_type, "linear");
    case W_YARN: return yarn;
    case W_YARN_EXT: return yarn && (hp->rope_yarn_set & 1);
    case W_YARN_ATTN: return yarn && (hp->rope_yarn_set & 2);
    case W_YARN_FAST: return yarn && (hp->rope_yarn_set & 4);
    case W_YARN_SLOW: return yarn && (hp->rope_yarn_set & 8);
    case W_HEAD_DIM: return hp->explicit_head_dim || hp->head_dim * hp->n_head != hp->n_embd;
    case W_LLAMA: return hp->llama_keys;
    case W_FINAL_CAP: return hp->final_softcap > 0;
    case W_SWA_ROPE: return hp->rope_theta_swa > 0;
    case W_MOE: return hp->n_expert > 0;
    case W_END: break;
    }
    return false;
}

void sm_hparams_to_meta(const sm_hparams *hp, sm_meta *w) { sm_hparams_to_meta_ftype(hp, -1, w); }

/* file_type < 0: no general.file_type */
void sm_hparams_to_meta_ftype(const sm_hparams *hp, int file_type, sm_meta *w) {
    char k[128];
    const char *a = hp->arch;
    sm_meta_set_str(w, "general.architecture", a);
    const sm_arch_info *ai = sm_arch_by_gguf(a);
    int set = ai ? ai->gguf_keys : hp->gguf_keys;
    if (set < 0 || (size_t)set >= sizeof KEY_SETS / sizeof KEY_SETS[0] || !KEY_SETS[set]) set = SM_KEYS_TEXT;
    for (const key_use *u = KEY_SETS[set]; u->when != W_END; u++) {
        if (!key_wanted(hp, u->when)) continue;
        const gguf_key *d = &KEYS[u->key];
        const char *p = (const char *)hp + d->off;
        if (u->key == K_FILE_TYPE) {
            if (file_type >= 0) sm_meta_set_u32(w, d->suffix, (uint32_t)file_type);
        } else if (d->type == KT_U32) {
            sm_meta_set_u32(w, key(k, sizeof k, a, d->suffix), (uint32_t)*(const int64_t *)(const void *)p);
        } else if (d->type == KT_F32) {
            sm_meta_set_f32(w, key(k, sizeof k, a, d->suffix), *(const float *)(const void *)p);
        } else {
            sm_meta_set_str(w, key(k, sizeof k, a, d->suffix), p);
        }
    }
}

static int get_dim(const sm_gguf *g, const char *k, int64_t *out, bool required) {
    uint64_t v;
    if (!sm_gguf_find(g, k)) return required ? sm_error("%s: missing key %s", sm_gguf_path(g), k) : 0;
    if (sm_gguf_get_u64(g, k, &v)) return -1;
    if (v == 0 || v > ((uint64_t)1 << 31)) return sm_error("%s: key %s: value %llu out of range", sm_gguf_path(g), k,
                                                          (unsigned long long)v);
    *out = (int64_t)v;
    return 0;
}

static int get_float(const sm_gguf *g, const char *k, float *out) {
    if (!sm_gguf_find(g, k)) return 0;
    double d;
    if (sm_gguf_get_f64(g, k, &d)) return -1;
    *out = (float)d;
    return 0;
}

/* llama.cpp's expert keys: a llama file with expert_count > 0 is a Mixtral; qwen3moe needs them. The
 * expert FFN width defaults as llama.cpp's loaders take it (llama: n_ff; qwen3moe: n_ff / used). */
static int moe_from_gguf(const sm_gguf *g, sm_hparams *hp) {
    char k[128];
    const char *a = hp->arch;
    const bool required = (hp->features & SM_FEAT_MOE) != 0;
    if (!sm_gguf_find(g, key(k, sizeof k, a, "expert_count")) && !required) return 0;
    if (get_dim(g, k, &hp->n_expert, true) || get_dim(g, key(k, sizeof k, a, "expert_used_count"), &hp->n_expert_used, true))
        return -1;
    if (hp->n_expert > 512 || hp->n_expert_used > hp->n_expert)
        return sm_error("%s: %lld experts, %lld used per token: expected 1 <= used <= experts <= 512", sm_gguf_path(g),
                        (long long)hp->n_expert, (long long)hp->n_expert_used);
    hp->n_ff_exp = hp->gguf_keys == SM_KEYS_QWEN_MOE ? hp->n_ff / hp->n_expert_used : hp->n_ff;
    if (get_dim(g, key(k, sizeof k, a, "expert_feed_forward_length"), &hp->n_ff_exp, false)) return -1;
    if (hp->n_ff_exp <= 0) return sm_error("%s: expert feed-forward length is 0", sm_gguf_path(g));
    hp->features |= SM_FEAT_MOE | (hp->gguf_keys == SM_KEYS_QWEN_MOE ? 0 : SM_FEAT_MOE_BSM);
    return 0;
}

int sm_hparams_from_gguf(const sm_gguf *g, sm_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    const char *arch = sm_gguf_get_str(g, "general.architecture");
    if (!arch) return sm_error("%s: missing general.architecture", sm_gguf_path(g));
    if (strlen(arch) >= sizeof hp->arch) return sm_error("%s: general.architecture too long", sm_gguf_path(g));
    snprintf(hp->arch, sizeof hp->arch, "%s", arch);
    const char *name = sm_gguf_get_str(g, "general.name");
    snprintf(hp->name, sizeof hp->name, "%s", name ? name : "");
    char k[128];
    const char *a = hp->arch;
    if (get_dim(g, key(k, sizeof k, a, "block_count"), &hp->n_layer, true) ||
        get_dim(g, key(k, sizeof k, a, "embedding_length"), &hp->n_embd, true) ||
        get_dim(g, key(k, sizeof k, a, "feed_forward_length"), &hp->n_ff, true) ||
        get_dim(g, key(k, sizeof k, a, "attention.head_count"), &hp->n_head, true) ||
        get_dim(g, key(k, sizeof k, a, "context_length"), &hp->n_ctx_train, true))
        return -1;
    hp->n_head_kv = hp->n_head;
    if (get_dim(g, key(k, sizeof k, a, "attention.head_count_kv"), &hp->n_head_kv, false)) return -1;
    hp->head_dim = hp->n_embd / hp->n_head;
    if (sm_gguf_find(g, key(k, sizeof k, a, "attention.key_length"))) {
        if (get_dim(g, k, &hp->head_dim, true)) return -1;
        hp->explicit_head_dim = true;
    }
    /* whole heads rotate (llama.cpp requires it of llama models: "invalid n_rot"), except for phi3
     * (Phi-4-mini's partial rotary factor) */
    int64_t n_rot = hp->head_dim;
    if (get_dim(g, key(k, sizeof k, a, "rope.dimension_count"), &n_rot, false)) return -1;
    const sm_arch_info *rai = sm_arch_by_gguf(a);
    const bool partial_ok = rai && rai->gguf_keys == SM_KEYS_PHI3 && n_rot < hp->head_dim && n_rot % 2 == 0;
    hp->n_rot = n_rot;
    if (n_rot != hp->head_dim && !partial_ok)
        return sm_error("%s: %s = %lld but the head size is %lld: %s", sm_gguf_path(g), k, (long long)n_rot,
                        (long long)hp->head_dim,
                        n_rot > hp->head_dim || n_rot % 2 ? "it must be even and at most the head size"
                                                          : "rotating part of a head is not supported (llama.cpp refuses it for llama)");
    const sm_tensor *emb = sm_gguf_find_tensor(g, "token_embd.weight");
    const sm_gguf_value *toks = sm_gguf_find(g, "tokenizer.ggml.tokens");
    if (sm_gguf_find(g, key(k, sizeof k, a, "vocab_size"))) {
        if (get_dim(g, k, &hp->n_vocab, true)) return -1;
    } else if (toks && toks->type == SM_GGUF_ARRAY) {
        hp->n_vocab = (int64_t)toks->v.arr.n;
    } else if (emb && emb->n_dims == 2) {
        hp->n_vocab = emb->shape[0];
    } else {
        return sm_error("%s: cannot tell the vocabulary size", sm_gguf_path(g));
    }
    hp->rope_theta = 10000.0f;
    if (get_float(g, key(k, sizeof k, a, "rope.freq_base"), &hp->rope_theta)) return -1;
    if (!sm_gguf_find(g, key(k, sizeof k, a, "attention.layer_norm_rms_epsilon")))
        return sm_error("%s: missing key %s", sm_gguf_path(g), k);
    if (get_float(g, k, &hp->rms_eps)) return -1;
    const char *rs = sm_gguf_get_str(g, key(k, sizeof k, a, "rope.scaling.type"));
    if (rs && strcmp(rs, "none") != 0) {
        snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "%s", rs);
        if (get_float(g, key(k, sizeof k, a, "rope.scaling.factor"), &hp->rope_scaling_factor)) return -1;
        if (sm_gguf_find(g, key(k, sizeof k, a, "rope.scaling.original_context_length")) &&
            get_dim(g, k, &hp->rope_scaling_orig_ctx, true))
            return -1;
        static const struct { const char *suffix; unsigned bit; size_t off; } YARN[] = {
            {"rope.scaling.yarn_ext_factor", 1, offsetof(sm_hparams, rope_yarn_ext_factor)},
            {"rope.scaling.yarn_attn_factor", 2, offsetof(sm_hparams, rope_yarn_attn_factor)},
            {"rope.scaling.yarn_beta_fast", 4, offsetof(sm_hparams, rope_yarn_beta_fast)},
            {"rope.scaling.yarn_beta_slow", 8, offsetof(sm_hparams, rope_yarn_beta_slow)},
        };
        for (size_t i = 0; i < sizeof YARN / sizeof YARN[0]; i++)
            if (sm_gguf_find(g, key(k, sizeof k, a, YARN[i].suffix))) {
                if (get_float(g, k, (float *)((char *)hp + YARN[i].off))) return -1;
                hp->rope_yarn_set |= YARN[i].bit;
            }
    } else if (sm_gguf_find_tensor(g, "rope_freqs.weight")) {
        snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "llama3"); /* factors come as a tensor */
    }
    hp->tied_embeddings = sm_gguf_find_tensor(g, "output.weight") == NULL;
    hp->qkv_bias = sm_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    hp->attn_out_bias = sm_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    hp->mlp_bias = sm_gguf_find_tensor(g, "blk.0.ffn_up.bias") != NULL;
    const sm_arch_info *ai = sm_arch_by_gguf(a); /* unknown: the runtime refuses it */
    hp->llama_keys = ai && ai->llama_keys;
    hp->features = ai ? ai->features : 0;
    hp->gguf_keys = ai ? ai->gguf_keys : SM_KEYS_TEXT;
    if (hp->gguf_keys == SM_KEYS_PHI3) {
        if (sm_gguf_find(g, key(k, sizeof k, a, "rope.scaling.original_context_length")) &&
            get_dim(g, k, &hp->rope_scaling_orig_ctx, true))
            return -1;
        if (sm_gguf_find(g, key(k, sizeof k, a, "attention.sliding_window"))) {
            uint64_t v;
            if (sm_gguf_get_u64(g, k, &v)) return -1;
            hp->sliding_window = (int64_t)(v > ((uint64_t)1 << 31) ? ((uint64_t)1 << 31) : v);
        }
        /* longrope (model/longrope.c): llama.cpp's original context defaults to context_length, its
         * attention factor to 1 */
        const bool lf = sm_gguf_find_tensor(g, "rope_factors_long.weight"), sf = sm_gguf_find_tensor(g, "rope_factors_short.weight");
        if (lf != sf)
            return sm_error("%s: %s without %s: longrope needs both", sm_gguf_path(g),
                            lf ? "rope_factors_long.weight" : "rope_factors_short.weight",
                            lf ? "rope_factors_short.weight" : "rope_factors_long.weight");
        if (lf) {
            snprintf(hp->rope_scaling_type, sizeof hp->rope_scaling_type, "longrope");
            if (!hp->rope_scaling_orig_ctx) hp->rope_scaling_orig_ctx = hp->n_ctx_train;
            hp->rope_attn_factor = 1.0f;
            if (get_float(g, key(k, sizeof k, a, "rope.scaling.attn_factor"), &hp->rope_attn_factor)) return -1;
        }
    }
    if (hp->gguf_keys == SM_KEYS_GEMMA2) { /* llama.cpp's llama_model_gemma2::load_hparams */
        if (get_float(g, key(k, sizeof k, a, "attn_logit_softcapping"), &hp->attn_softcap) ||
            get_float(g, key(k, sizeof k, a, "final_logit_softcapping"), &hp->final_softcap))
            return -1;
        hp->sliding_window = 4096; /* llama.cpp's default when the key is absent */
        if (sm_gguf_find(g, key(k, sizeof k, a, "attention.sliding_window")) &&
            get_dim(g, k, &hp->sliding_window, true))
            return -1;
        hp->swa_pattern = 2;
        /* query_pre_attn_scalar is not in the file: llama.cpp uses n_embd / n_head for the 46-layer
         * (27B) model and head_dim otherwise, as the released configs do */
        hp->attn_scale = (float)(1.0 / sqrt((double)(hp->n_layer == 46 ? hp->n_embd / hp->n_head : hp->head_dim)));
    }
    if (hp->gguf_keys == SM_KEYS_GEMMA3) { /* llama.cpp's llama_model_gemma3::load_arch_hparams */
        if (get_float(g, key(k, sizeof k, a, "final_logit_softcapping"), &hp->final_softcap)) return -1;
        if (sm_gguf_find(g, key(k, sizeof k, a, "attention.sliding_window")) && get_dim(g, k, &hp->sliding_window, true))
            return -1;
        hp->swa_pattern = 6;
        hp->rope_theta_swa = 10000.0f;
        if (get_float(g, key(k, sizeof k, a, "rope.freq_base_swa"), &hp->rope_theta_swa)) return -1;
        if (!hp->sliding_window) hp->features &= ~(unsigned)(SM_FEAT_SWA | SM_FEAT_SWA_ROPE);
        hp->attn_scale = (float)(1.0 / sqrt((double)(hp->n_layer == 62 ? hp->n_embd / hp->n_head : hp->head_dim)));
    }
    if (hp->n_head % hp->n_head_kv) return sm_error("%s: head_count is not a multiple of head_count_kv", sm_gguf_path(g));
    return moe_from_gguf(g, hp);
}

int sm_ftype_for_type(sm_type t) {
    switch (t) {
    case SM_TYPE_F32: return 0;
    case SM_TYPE_F16: return 1;
    case SM_TYPE_Q8_0: return 7;
    case SM_TYPE_BF16: return 32;
    default: return -1;
    }
}
