/* source.c - open what `smelt convert` was pointed at: a Hugging Face model directory
 * (config.json, weights through sm_ckpt_open, tokenizer through sm_vocab_load_hf) or a
 * llama2.c checkpoint file (its SentencePiece tokenizer beside it or named by --tokenizer). */
#include "convert_internal.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cv_id_to_title(const char *id, char *out, size_t cap) {
    /* words split on '-' and white space; an all-lowercase word that is not a version or
     * number gets Python's str.title(); other words are kept */
    size_t k = 0;
    const char *p = id;
    if (cap == 0) return;
    while (*p) {
        while (*p == '-' || isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *w = p;
        while (*p && *p != '-' && !isspace((unsigned char)*p)) p++;
        size_t n = (size_t)(p - w);
        bool has_upper = false, has_lower = false;
        for (size_t i = 0; i < n; i++) {
            has_upper |= isupper((unsigned char)w[i]) != 0;
            has_lower |= islower((unsigned char)w[i]) != 0;
        }
        bool version = isdigit((unsigned char)w[0]) || (w[0] == 'v' && n > 1 && isdigit((unsigned char)w[1]));
        if (w[0] == 'v' && version) /* v\d+(\.\d+)* exactly */
            for (size_t i = 1; i < n; i++)
                if (!isdigit((unsigned char)w[i]) && !(w[i] == '.' && i + 1 < n && isdigit((unsigned char)w[i + 1])))
                    version = false;
        bool title = has_lower && !has_upper && !version;
        if (k && k + 1 < cap) out[k++] = ' ';
        for (size_t i = 0; i < n && k + 1 < cap; i++) {
            char c = w[i];
            if (title) {
                bool after_letter = i > 0 && isalpha((unsigned char)w[i - 1]);
                c = (char)(after_letter ? tolower((unsigned char)c) : toupper((unsigned char)c));
            }
            out[k++] = c;
        }
    }
    out[k] = 0;
}

void cv_size_label(int64_t n, char *out, size_t cap) {
    double v;
    char suffix;
    if (n > 1000000000000LL) v = (double)n * 1e-12, suffix = 'T';
    else if (n > 1000000000LL) v = (double)n * 1e-9, suffix = 'B';
    else if (n > 1000000LL) v = (double)n * 1e-6, suffix = 'M';
    else v = (double)n * 1e-3, suffix = 'K';
    char whole[32];
    snprintf(whole, sizeof whole, "%.0f", v);
    const char *digits = whole;
    while (*digits == '0') digits++;
    int fix = 2 - (int)strlen(digits);
    if (fix < 0) fix = 0;
    snprintf(out, cap, "%.*f%c", fix, v, suffix);
}

/* The last path component of a (possibly relative, possibly slash-terminated) path. */
static void base_name(const char *path, char *out, size_t cap) {
    char *real = realpath(path, NULL);
    const char *p = real ? real : path;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && p[s - 1] != '/') s--;
    snprintf(out, cap, "%.*s", (int)(n - s), p + s);
    free(real);
}

/* config.json's top-level "_name_or_path" string (*out NULL when absent or not a string) */
static int name_or_path(const char *dir, char **out) {
    *out = NULL;
    char *cfg = sm_path_join(dir, "config.json"), *text = NULL;
    size_t len = 0;
    if (!cfg) return sm_error("out of memory");
    int rc = sm_read_file(cfg, 4u << 20, &text, &len);
    cJSON *j = rc ? NULL : cJSON_ParseWithLength(text, len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "_name_or_path");
    if (cJSON_IsString(v) && !(*out = strdup(v->valuestring))) rc = sm_error("out of memory");
    cJSON_Delete(j);
    free(text);
    free(cfg);
    return rc;
}

static int open_hf(const char *dir, const sm_convert_opts *o, cv_source *s) {
    char *cfg = sm_path_join(dir, "config.json");
    if (!cfg) return sm_error("out of memory");
    if (!sm_is_file(cfg)) {
        sm_error("%s: no config.json: expected a Hugging Face model directory (config.json + weights + tokenizer)", dir);
        free(cfg);
        return -1;
    }
    int rc = sm_hparams_from_hf_config(cfg, &s->hp);
    if (rc == 0 && !strcmp(s->hp.rope_scaling_type, "longrope")) {
        const size_t half = (size_t)(s->hp.n_rot ? s->hp.n_rot : s->hp.head_dim) / 2;
        s->longrope[0] = malloc(half * sizeof(float));
        s->longrope[1] = malloc(half * sizeof(float));
        rc = s->longrope[0] && s->longrope[1] ? sm_rope_longrope_factors(cfg, &s->hp, s->longrope[0], s->longrope[1])
                                              : sm_error("out of memory");
    }
    free(cfg);
    if (rc) return -1;
    rc = sm_gptq_hf_config_load(dir, &s->gptq_cfg);
    if (rc < 0) return -1;
    s->gptq = rc == 0;
    if (sm_ckpt_open(dir, &s->ckpt)) return -1;
    if (o->tokenizer ? sm_vocab_load(o->tokenizer, &s->vocab) : sm_vocab_load_hf(dir, &s->vocab)) return -1;
    if (!o->tokenizer) sm_vocab_apply_arch(&s->hp, &s->vocab);
    s->have_vocab = true;
    /* the general.* name keys come from _name_or_path and the directory's name (model_name.c); a README.md
     * model card's YAML front matter, which convert_hf_to_gguf.py reads first, is not read yet */
    base_name(dir, s->dir_name, sizeof s->dir_name);
    if (name_or_path(dir, &s->name_or_path)) return -1;
    if (!o->name) {
        cv_model_id m;
        if (cv_model_meta(s->name_or_path, s->dir_name, 0, &m)) return -1;
        snprintf(s->name, sizeof s->name, "%s", m.name ? m.name : "");
        cv_model_id_free(&m);
    }
    return 0;
}

static int open_llama2c(const char *path, const sm_convert_opts *o, cv_source *s) {
    sm_llama2c_config cfg;
    s->llama2c = true;
    if (sm_llama2c_open(path, &s->ckpt, &cfg)) return -1;
    if (sm_hparams_from_llama2c(&cfg, &s->hp)) return -1;
    char *tok = NULL;
    if (o->tokenizer) {
        tok = strdup(o->tokenizer);
    } else {
        /* beside the checkpoint: tok<vocab>.model (llama2.c's naming), then tokenizer.model */
        const char *slash = strrchr(path, '/');
        int dlen = slash ? (int)(slash - path) : 1;
        const char *dir = slash ? path : ".";
        char cand[2][PATH_MAX];
        snprintf(cand[0], sizeof cand[0], "%.*s/tok%d.model", dlen, dir, cfg.vocab_size);
        snprintf(cand[1], sizeof cand[1], "%.*s/tokenizer.model", dlen, dir);
        for (int i = 0; i < 2 && !tok; i++)
            if (sm_is_file(cand[i])) tok = strdup(cand[i]);
        if (!tok)
            return sm_error("%s: no tokenizer found beside the llama2.c checkpoint (looked for %s and %s); "
                            "pass --tokenizer PATH (a SentencePiece .model file)",
                            path, cand[0], cand[1]);
    }
    if (!tok) return sm_error("out of memory");
    int rc = sm_vocab_load(tok, &s->vocab);
    free(tok);
    if (rc) return -1;
    s->have_vocab = true;
    if (!o->name) {
        char base[256];
        base_name(path, base, sizeof base);
        size_t n = strlen(base);
        if (n > 4 && !strcmp(base + n - 4, ".bin")) base[n - 4] = 0;
        cv_id_to_title(base, s->name, sizeof s->name);
    }
    return 0;
}

int cv_source_open(const char *path, const sm_convert_opts *o, cv_source *s) {
    memset(s, 0, sizeof *s);
    int rc;
    sm_file_kind kind;
    if (sm_sniff_expect(path, SM_FILE_BIT(SM_FILE_HF_DIR) | SM_FILE_BIT(SM_FILE_LLAMA2C),
                        "a Hugging Face model directory (config.json, weights, tokenizer) or a llama2.c checkpoint",
                        &kind)) {
        const char *hint = NULL;
        if (kind == SM_FILE_SAFETENSORS || kind == SM_FILE_ZIP || kind == SM_FILE_PICKLE || kind == SM_FILE_JSON)
            hint = "one file of a checkpoint: pass the Hugging Face model directory that holds it";
        else if (kind == SM_FILE_GGUF)
            hint = "a GGUF needs no conversion: quantize it with smelt quantize, evaluate it with smelt ppl";
        if (hint) {
            char *msg = strdup(sm_last_error());
            if (msg) sm_error("%s (%s)", msg, hint);
            free(msg);
        }
        return -1;
    }
    if (kind == SM_FILE_HF_DIR) rc = open_hf(path, o, s);
    else rc = open_llama2c(path, o, s);
    if (rc) return -1;
    if (o->name) snprintf(s->name, sizeof s->name, "%s", o->name);
    snprintf(s->hp.name, sizeof s->hp.name, "%s", s->name);
    if (s->vocab.n_tokens != s->hp.n_vocab)
        return sm_error("%s: the tokenizer has %d tokens but the model's vocabulary has %lld", path,
                        s->vocab.n_tokens, (long long)s->hp.n_vocab);
    return 0;
}

void cv_source_close(cv_source *s) {
    free(s->name_or_path);
    sm_ckpt_close(s->ckpt);
    free(s->longrope[0]);
    free(s->longrope[1]);
    if (s->have_vocab) sm_vocab_free(&s->vocab);
    memset(s, 0, sizeof *s);
}
