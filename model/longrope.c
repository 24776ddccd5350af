/* longrope.c - Phi-3 / Phi-4-mini long-context rope ("longrope", formerly "su"): per-pair
 * frequency divisors for short and long contexts and an attention factor on cos / sin.
 *
 * What llama.cpp does, and therefore what smelt does:
 *  - convert (conversion/phi.py Phi3MiniModel.generate_extra_tensors): rope_factors_long.weight
 *    and rope_factors_short.weight (F32, n_rot/2 each, emitted before the checkpoint's tensors)
 *    and phi3.rope.scaling.attn_factor = sqrt(1 + ln(s) / ln(orig)) with s = max_position_embeddings /
 *    original_max_position_embeddings (1 when s <= 1), written before general.type;
 *  - runtime (llama_model::get_rope_factors, ggml rope): the long factors when the context is
 *    larger than the original context, else the short ones, for every position; cos and sin
 *    multiplied by the attention factor.
 * transformers (modeling_rope_utils _compute_longrope_parameters, longrope_frequency_update)
 * picks the factors per forward call by its length (max position + 1) instead of by the context
 * size: the two agree whenever a sequence is evaluated in one call that fills the context (what
 * perplexity does). llama.cpp rounds its per-sequence context up to a multiple of 256 before
 * the comparison; smelt compares the context it was asked for (the same for the released
 * models, whose original contexts are multiples of 256). A config "attention_factor" other than
 * llama.cpp's value is refused: llama.cpp's converter ignores it, transformers applies it. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (4u << 20)

static const cJSON *rope_params(const cJSON *cfg) {
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_parameters");
    if (!rp || cJSON_IsNull(rp)) rp = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    return rp;
}

static int factors(const cJSON *rp, const char *path, const char *key, int64_t n, float *out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(rp, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0)
        return sm_error("%s: longrope rope scaling needs \"%s\" (a list of numbers)", path, key);
    if ((int64_t)cJSON_GetArraySize(a) != n)
        return sm_error("%s: rope scaling \"%s\": %d values, expected %lld (rotated head dimensions / 2)", path, key,
                        cJSON_GetArraySize(a), (long long)n);
    int64_t i = 0;
    for (const cJSON *v = a->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble) || v->valuedouble > 1e30)
            return sm_error("%s: rope scaling \"%s\"[%lld]: expected a positive number", path, key, (long long)i);
        if (out) out[i] = (float)v->valuedouble;
    }
    return 0;
}

int sm_longrope_from_config(const cJSON *cfg, const char *path, sm_hparams *hp, float *long_f, float *short_f) {
    const cJSON *rp = rope_params(cfg);
    if (!cJSON_IsObject(rp)) return sm_error("%s: longrope: no rope_scaling object", path);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(rp, "original_max_position_embeddings");
    if (!o || cJSON_IsNull(o)) o = cJSON_GetObjectItemCaseSensitive(cfg, "original_max_position_embeddings");
    if (!cJSON_IsNumber(o) || !(o->valuedouble >= 1) || o->valuedouble != floor(o->valuedouble) || o->valuedouble > 1e12)
        return sm_error("%s: longrope rope scaling needs \"original_max_position_embeddings\" (a positive integer)", path);
    hp->rope_scaling_orig_ctx = (int64_t)o->valuedouble;
    const int64_t n_rot = hp->n_rot ? hp->n_rot : hp->head_dim;
    if (factors(rp, path, "long_factor", n_rot / 2, long_f) || factors(rp, path, "short_factor", n_rot / 2, short_f))
        return -1;
    const double scale = (double)hp->n_ctx_train / (double)hp->rope_scaling_orig_ctx;
    const double af = scale > 1.0 ? sqrt(1 + log(scale) / log((double)hp->rope_scaling_orig_ctx)) : 1.0;
    hp->rope_attn_factor = (float)af;
    const cJSON *given = cJSON_GetObjectItemCaseSensitive(rp, "attention_factor");
    if (given && !cJSON_IsNull(given) && (!cJSON_IsNumber(given) || (float)given->valuedouble != hp->rope_attn_factor))
        return sm_error("%s: rope scaling \"attention_factor\": llama.cpp's converter ignores it and uses %.9g "
                        "(from max_position_embeddings / original_max_position_embeddings); a different value is not "
                        "supported", path, af);
    return 0;
}

int sm_rope_longrope_factors(const char *config_json_path, const sm_hparams *hp, float *long_f, float *short_f) {
    char *text = NULL;
    size_t len = 0;
    if (sm_read_file(config_json_path, CONFIG_MAX_BYTES, &text, &len)) return -1;
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cfg) return sm_error("%s: invalid JSON", config_json_path);
    sm_hparams tmp = *hp;
    int rc = sm_longrope_from_config(cfg, config_json_path, &tmp, long_f, short_f);
    cJSON_Delete(cfg);
    return rc;
}
