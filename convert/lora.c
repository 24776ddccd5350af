/* lora.c - PEFT LoRA adapters: read adapter_config.json and the adapter tensors, work out
 * each module's scale, and apply the deltas to base weight rows. */
#include "convert/convert.h"
#include "convert/lora_internal.h"

#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "base_model.model."
#define MAX_CONFIG (1 << 20)

typedef struct lora_module {
    char *base;                /* base weight name, e.g. model.layers.0.self_attn.q_proj.weight */
    const sm_tensor *a, *b;    /* A [r, in], B [out, r] (embeddings: A [r, vocab], B [dim, r]) */
    const sm_tensor *mag;      /* DoRA magnitude [out] or NULL */
    bool embedding;            /* lora_embedding_A/B: delta = (B A)^T */
    double scale;
    double r;                  /* the rank the config gives it (r, or its rank_pattern entry) */
    bool r_pattern;            /* from rank_pattern */
} lora_module;

typedef struct lora_saved {
    char *base;
    const sm_tensor *t;
} lora_saved;

struct sm_lora {
    char *dir;
    sm_ckpt *ck;
    double weight;
    double alpha;
    int64_t r;
    bool rslora, dora, fan_in_fan_out;
    size_t n_mod, n_saved;
    lora_module *mod;
    lora_saved *saved;
};

const char *sm_lora_path(const sm_lora *l) { return l->dir; }

void sm_lora_close(sm_lora *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n_mod; i++) free(l->mod[i].base);
    for (size_t i = 0; i < l->n_saved; i++) free(l->saved[i].base);
    free(l->mod);
    free(l->saved);
    if (l->ck) sm_ckpt_close(l->ck);
    free(l->dir);
    free(l);
}

/* PEFT's pattern lookup: the first key K with re.match(r"(.*\.)?K$", module). */
static const cJSON *pattern_value(const cJSON *patterns, const char *module) {
    const cJSON *it;
    cJSON_ArrayForEach(it, patterns) {
        if (!it->string) continue;
        size_t n = strlen(it->string) + 16;
        char *re_s = malloc(n);
        if (!re_s) return NULL;
        snprintf(re_s, n, "^(.*\\.)?(%s)$", it->string);
        regex_t re;
        bool hit = false;
        if (regcomp(&re, re_s, REG_EXTENDED | REG_NOSUB) == 0) {
            hit = regexec(&re, module, 0, NULL, 0) == 0;
            regfree(&re);
        }
        free(re_s);
        if (hit) return it;
    }
    return NULL;
}

static lora_module *module_for(sm_lora *l, const char *base, bool create) {
    for (size_t i = 0; i < l->n_mod; i++)
        if (!strcmp(l->mod[i].base, base)) return &l->mod[i];
    if (!create) return NULL;
    lora_module *m = realloc(l->mod, (l->n_mod + 1) * sizeof *m);
    if (!m) return NULL;
    l->mod = m;
    m = &l->mod[l->n_mod++];
    memset(m, 0, sizeof *m);
    m->base = strdup(base);
    return m->base ? m : NULL;
}

/* Split "<module>.<kind>[.<adapter>][.weight]" where kind is one of the LoRA parts. */
static const char *const KINDS[] = {"lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector"};

static int classify(const char *key, char *module, size_t cap, int *kind) {
    *kind = -1;
    for (int k = 0; k < 5; k++) {
        char pat[64];
        snprintf(pat, sizeof pat, ".%s", KINDS[k]);
        const char *p = strstr(key, pat);
        if (!p) continue;
        const char *rest = p + strlen(pat);
        /* rest: "", ".weight", ".<adapter>", ".<adapter>.weight" (no further dots) */
        int dots = 0;
        for (const char *q = rest; *q; q++) dots += *q == '.';
        if (dots > 2 || (*rest && *rest != '.')) continue;
        size_t n = (size_t)(p - key);
        if (n + 1 > cap) return sm_error("adapter tensor name too long: %s", key);
        memcpy(module, key, n);
        module[n] = 0;
        *kind = k;
        return 0;
    }
    return 0;
}

static bool in_list(const cJSON *list, const char *module) {
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        if (!cJSON_IsString(it)) continue;
        size_t a = strlen(module), b = strlen(it->valuestring);
        if (a >= b && !strcmp(module + a - b, it->valuestring) && (a == b || module[a - b - 1] == '.')) return true;
    }
    return false;
}

static int load_config(sm_lora *l, const char *path, cJSON **out) {
    char *txt;
    size_t n;
    if (sm_read_file(path, MAX_CONFIG, &txt, &n)) return -1;
    cJSON *c = cJSON_ParseWithLength(txt, n);
    free(txt);
    if (!c || !cJSON_IsObject(c)) {
        cJSON_Delete(c);
        return sm_error("%s: not a JSON object", path);
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(c, "peft_type");
    if (pt && cJSON_IsString(pt) && strcmp(pt->valuestring, "LORA") != 0) {
        int rc = sm_error("%s: peft_type %s is not supported (only LORA)", path, pt->valuestring);
        cJSON_Delete(c);
        return rc;
    }
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "r"), *a = cJSON_GetObjectItemCaseSensitive(c, "lora_alpha");
    if (!cJSON_IsNumber(r) || r->valuedouble < 1 || !cJSON_IsNumber(a)) {
        cJSON_Delete(c);
        return sm_error("%s: expected numeric \"r\" (>= 1) and \"lora_alpha\"", path);
    }
    l->r = (int64_t)r->valuedouble;
    l->alpha = a->valuedouble;
    l->rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "use_rslora"));
    l->dora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "use_dora"));
    l->fan_in_fan_out = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "fan_in_fan_out"));
    const cJSON *bias = cJSON_GetObjectItemCaseSensitive(c, "bias");
    if (bias && cJSON_IsString(bias) && strcmp(bias->valuestring, "none") != 0) {
        int rc = sm_error("%s: bias \"%s\" is not supported (only \"none\")", path, bias->valuestring);
        cJSON_Delete(c);
        return rc;
    }
    *out = c;
    return 0;
}

int sm_lora_open(const char *spec, sm_lora **out) {
    *out = NULL;
    sm_lora *l = calloc(1, sizeof *l);
    if (!l) return sm_error("out of memory");
    l->weight = 1.0;
    l->dir = strdup(spec);
    char *colon = strrchr(l->dir, ':');
    if (colon && !sm_is_dir(l->dir)) {
        char *end;
        double w = strtod(colon + 1, &end);
        if (end == colon + 1 || *end) {
            sm_lora_close(l);
            return sm_error("adapter '%s': expected DIR or DIR:WEIGHT", spec);
        }
        *colon = 0;
        l->weight = w;
    }
    /* another kind of file is named as such; a missing directory is load_config's to report */
    const unsigned ok = SM_FILE_BIT(SM_FILE_LORA_DIR) | SM_FILE_BIT(SM_FILE_HF_DIR) | SM_FILE_BIT(SM_FILE_MISSING);
    if (sm_sniff_expect(l->dir, ok, "a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors)", NULL)) {
        sm_lora_close(l);
        return -1;
    }
    cJSON *cfg = NULL;
    char *p = sm_path_join(l->dir, "adapter_config.json");
    int rc = load_config(l, p, &cfg);
    free(p);
    if (rc) { sm_lora_close(l); return -1; }

    p = sm_path_join(l->dir, "adapter_model.safetensors");
    if (!sm_is_file(p)) {
        free(p);
        p = sm_path_join(l->dir, "adapter_model.bin");
    }
    rc = sm_ckpt_open(p, &l->ck);
    free(p);
    if (rc) goto fail;

    const cJSON *rank_pat = cJSON_GetObjectItemCaseSensitive(cfg, "rank_pattern");
    const cJSON *alpha_pat = cJSON_GetObjectItemCaseSensitive(cfg, "alpha_pattern");
    const cJSON *to_save = cJSON_GetObjectItemCaseSensitive(cfg, "modules_to_save");
    char module[1024], base[1100];
    for (size_t i = 0; i < l->ck->n_tensors; i++) {
        const sm_tensor *t = &l->ck->tensors[i];
        if (strncmp(t->name, PREFIX, strlen(PREFIX)) != 0) {
            rc = sm_error("%s: adapter tensor %s does not start with \"" PREFIX "\"", l->dir, t->name);
            goto fail;
        }
        const char *key = t->name + strlen(PREFIX);
        int kind;
        if (classify(key, module, sizeof module, &kind)) goto fail;
        if (kind < 0) {
            /* modules_to_save: "<m>.modules_to_save.<adapter>.weight" or "<m>.weight" */
            char name[1100], mod_name[1100];
            const char *mts = strstr(key, ".modules_to_save."), *last = strrchr(key, '.');
            if (mts && last > mts + 16) snprintf(name, sizeof name, "%.*s%s", (int)(mts - key), key, last);
            else snprintf(name, sizeof name, "%s", key);
            snprintf(mod_name, sizeof mod_name, "%s", name);
            char *dot = strrchr(mod_name, '.');
            if (dot) *dot = 0;
            if (!in_list(to_save, mod_name)) {
                rc = sm_error("%s: adapter tensor %s is neither a LoRA part nor in modules_to_save", l->dir, t->name);
                goto fail;
            }
            lora_saved *s = realloc(l->saved, (l->n_saved + 1) * sizeof *s);
            if (!s) { rc = sm_error("out of memory"); goto fail; }
            l->saved = s;
            l->saved[l->n_saved].base = strdup(name);
            l->saved[l->n_saved].t = t;
            l->n_saved++;
            continue;
        }
        snprintf(base, sizeof base, "%s.weight", module);
        lora_module *m = module_for(l, base, true);
        if (!m) { rc = sm_error("out of memory"); goto fail; }
        const sm_tensor **slot = kind == 0 || kind == 2 ? &m->a : kind == 1 || kind == 3 ? &m->b : &m->mag;
        if (*slot) { rc = sm_error("%s: adapter tensor %s appears twice for module %s", l->dir, t->name, module); goto fail; }
        *slot = t;
        if (kind == 2 || kind == 3) m->embedding = true;
        const sm_type_info *ti = sm_type_get(t->type);
        if (!ti || ti->quantized || (t->type != SM_TYPE_F32 && t->type != SM_TYPE_F16 && t->type != SM_TYPE_BF16 &&
                                     t->type != SM_TYPE_F64)) {
            rc = sm_error("%s: adapter tensor %s has unsupported dtype %s", l->dir, t->name, sm_type_name(t->type));
            goto fail;
        }
        /* scale from the module's rank and alpha */
        const cJSON *rp = pattern_value(rank_pat, module), *ap = pattern_value(alpha_pat, module);
        double r = rp && cJSON_IsNumber(rp) ? rp->valuedouble : (double)l->r;
        double alpha = ap && cJSON_IsNumber(ap) ? ap->valuedouble : l->alpha;
        m->scale = l->rslora ? alpha / sqrt(r) : alpha / r;
        m->r = r;
        m->r_pattern = rp && cJSON_IsNumber(rp);
    }
    for (size_t i = 0; i < l->n_mod; i++) {
        lora_module *m = &l->mod[i];
        if (!m->a || !m->b) { rc = sm_error("%s: module %s has lora_%s but no lora_%s", l->dir, m->base, m->a ? "A" : "B", m->a ? "B" : "A"); goto fail; }
        if (m->a->n_dims != 2 || m->b->n_dims != 2 || m->a->shape[0] != m->b->shape[1]) {
            char s1[64], s2[64];
            rc = sm_error("%s: module %s: lora_A %s and lora_B %s do not share a rank", l->dir, m->base,
                          sm_shape_str(m->a, s1, sizeof s1), sm_shape_str(m->b, s2, sizeof s2));
            goto fail;
        }
        /* the scale assumes the config's rank; PEFT refuses tensors of another rank too */
        if ((double)m->a->shape[0] != m->r) {
            rc = sm_error("%s: adapter tensor %s has rank %lld but adapter_config.json gives module %s r = %g%s (a mismatched "
                          "config would merge with the wrong scale)", l->dir, m->a->name, (long long)m->a->shape[0], m->base,
                          m->r, m->r_pattern ? " (from rank_pattern)" : "");
            goto fail;
        }
        if (l->dora && !m->mag) { rc = sm_error("%s: use_dora is set but module %s has no lora_magnitude_vector", l->dir, m->base); goto fail; }
        if (!l->dora && m->mag) { rc = sm_error("%s: module %s has a DoRA magnitude but use_dora is false", l->dir, m->base); goto fail; }
        if (m->mag && sm_tensor_nelements(m->mag) != m->b->shape[0]) {
            rc = sm_error("%s: module %s: magnitude has %lld values, expected %lld", l->dir, m->base,
                          (long long)sm_tensor_nelements(m->mag), (long long)m->b->shape[0]);
            goto fail;
        }
    }
    cJSON_Delete(cfg);
    *out = l;
    return 0;
fail:
    cJSON_Delete(cfg);
    sm_lora_close(l);
    return -1;
}

/* Does module m apply to a base of shape [rows, cols] directly (false) or transposed (true)? */
static int orientation(const sm_lora *l, const lora_module *m, int64_t rows, int64_t cols, bool *transposed) {
    int64_t out = m->b->shape[0], in = m->a->shape[1];
    bool direct = rows == out && cols == in, trans = rows == in && cols == out;
    if (m->embedding) { /* embedding LoRA: delta = (B A)^T, shape [vocab, dim] */
        direct = false;
        trans = rows == in && cols == out;
    }
    if (!direct && !trans)
        return sm_error("%s: module %s: LoRA delta [%lld, %lld] does not fit the base tensor [%lld, %lld]", l->dir,
                        m->base, (long long)out, (long long)in, (long long)rows, (long long)cols);
    /* PEFT sets fan_in_fan_out to False for nn.Linear (weights [out, in]); it only transposes
     * for Conv1D-style [in, out] weights. */
    *transposed = m->embedding || (!direct && trans);
    if (direct && trans && l->fan_in_fan_out && !m->embedding) *transposed = false;
    return 0;
}

int sm_lora_check(sm_lora *const *ads, size_t n_ads, const sm_ckpt *base) {
    for (size_t k = 0; k < n_ads; k++) {
        const sm_lora *l = ads[k];
        for (size_t i = 0; i < l->n_mod; i++) {
            const sm_tensor *t = sm_ckpt_find(base, l->mod[i].base);
            if (!t) return sm_error("%s: module %s not found in the base model (adapter for another model?)", l->dir, l->mod[i].base);
            if (t->n_dims != 2) return sm_error("%s: base tensor %s is not a matrix", l->dir, t->name);
            bool tr = false;
            if (orientation(l, &l->mod[i], t->shape[0], t->shape[1], &tr)) return -1;
        }
        for (size_t i = 0; i < l->n_saved; i++) {
            const sm_tensor *t = sm_ckpt_find(base, l->saved[i].base), *s = l->saved[i].t;
            if (!t) return sm_error("%s: modules_to_save tensor %s not found in the base model", l->dir, l->saved[i].base);
            bool same = t->n_dims == s->n_dims;
            for (int d = 0; same && d < t->n_dims; d++) same = t->shape[d] == s->shape[d];
            if (!same) return sm_error("%s: modules_to_save tensor %s has another shape than the base's", l->dir, t->name);
        }
    }
    return 0;
}

const sm_tensor *sm_lora_replacement(sm_lora *const *ads, size_t n_ads, const char *base_name) {
    const sm_tensor *r = NULL;
    for (size_t k = 0; k < n_ads; k++)
        for (size_t i = 0; i < ads[k]->n_saved; i++)
            if (!strcmp(ads[k]->saved[i].base, base_name)) r = ads[k]->saved[i].t;
    return r;
}

bool sm_lora_touches(sm_lora *const *ads, size_t n_ads, const char *base_name) {
    if (sm_lora_replacement(ads, n_ads, base_name)) return true;
    for (size_t k = 0; k < n_ads; k++)
        if (module_for(ads[k], base_name, false)) return true;
    return false;
}

static float *to_f32(const sm_tensor *t) {
    int64_t n = sm_tensor_nelements(t);
    float *f = malloc((size_t)n * sizeof *f);
    if (!f) { sm_error("out of memory"); return NULL; }
    if (sm_plain_to_f32(t->type, t->data, f, n)) { free(f); return NULL; }
    return f;
}

/* rows [r0, r0+n) of delta = scale * (B A) or its transpose, added to w (n x cols) */
static void add_delta(const float *A, const float *B, int64_t r, int64_t in, int64_t out, bool transposed, double s,
                      float *w, int64_t r0, int64_t n, int64_t cols) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int64_t row = r0 + i;
        float *wr = w + i * cols;
        if (!transposed) { /* row = output index o: sum_k B[o][k] A[k][:] */
            for (int64_t j = 0; j < in; j++) {
                double acc = 0;
                for (int64_t k = 0; k < r; k++) acc += (double)B[row * r + k] * (double)A[k * in + j];
                wr[j] = (float)((double)wr[j] + s * acc);
            }
        } else { /* row = input index: w[row][o] += s * sum_k A[k][row] B[o][k] */
            for (int64_t o = 0; o < out; o++) {
                double acc = 0;
                for (int64_t k = 0; k < r; k++) acc += (double)A[k * in + row] * (double)B[o * r + k];
                wr[o] = (float)((double)wr[o] + s * acc);
            }
        }
    }
}

int sm_lora_apply(sm_lora *const *ads, size_t n_ads, const char *base_name, float *w, int64_t r0, int64_t n,
                  int64_t rows, int64_t cols) {
    for (size_t k = 0; k < n_ads; k++) {
        const sm_lora *l = ads[k];
        const lora_module *m = module_for((sm_lora *)l, base_name, false);
        if (!m) continue;
        bool tr = false;
        if (orientation(l, m, rows, cols, &tr)) return -1;
        float *A = to_f32(m->a), *B = to_f32(m->b);
        if (!A || !B) { free(A); free(B); return sm_error_ctx("%s: %s", l->dir, m->base); }
        int64_t r = m->a->shape[0], in = m->a->shape[1], out = m->b->shape[0];
        add_delta(A, B, r, in, out, tr, l->weight * m->scale, w, r0, n, cols);
        free(A);
        free(B);
        if (m->mag) { /* DoRA: each output row rescaled to its magnitude */
            if (tr) return sm_error("%s: DoRA on a transposed module (%s) is not supported", l->dir, m->base);
            float *mag = to_f32(m->mag);
            if (!mag) return -1;
            for (int64_t i = 0; i < n; i++) {
                double ss = 0;
                for (int64_t j = 0; j < cols; j++) ss += (double)w[i * cols + j] * (double)w[i * cols + j];
                double f = ss > 0 ? (double)mag[r0 + i] / sqrt(ss) : 0;
                for (int64_t j = 0; j < cols; j++) w[i * cols + j] = (float)((double)w[i * cols + j] * f);
            }
            free(mag);
        }
    }
    return 0;
}

/* ---- accessors for the GGUF exporter ---- */

int sm_lora_module_count(const sm_lora *l) { return (int)l->n_mod; }

int sm_lora_module_get(const sm_lora *l, int i, const char **base, const sm_tensor **a, const sm_tensor **b,
                       double *scale, bool *has_extra) {
    const lora_module *m = &l->mod[i];
    *base = m->base;
    *a = m->a;
    *b = m->b;
    *scale = l->weight * m->scale;
    *has_extra = m->mag != NULL || m->embedding || l->n_saved > 0;
    return 0;
}

double sm_lora_alpha(const sm_lora *l) { return l->alpha; }
