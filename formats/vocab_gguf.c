/* vocab_gguf.c - sm_vocab <-> GGUF metadata, with llama.cpp's keys and value types:
 *
 *   tokenizer.ggml.model        string  "llama" (SPM) / "gpt2" (BPE)
 *   tokenizer.ggml.pre          string
 *   tokenizer.ggml.tokens       [string]
 *   tokenizer.ggml.scores       [f32]    (SPM)
 *   tokenizer.ggml.token_type   [i32]
 *   tokenizer.ggml.merges       [string] (BPE)
 *   tokenizer.ggml.{bos,eos,unknown,padding}_token_id   u32, when set
 *   tokenizer.ggml.add_bos_token / add_eos_token / add_sep_token  bool, when stated by the source
 *                               (ids and flags in the order the source set them, as SpecialVocab does)
 *   tokenizer.ggml.add_space_prefix                     bool, when stated by the source
 *   tokenizer.chat_template     string, when present
 *
 * Written in the order convert_hf_to_gguf.py writes them (add_space_prefix first, as
 * LlamaModel.set_vocab does, or last where SM_VOCAB_ADD_SPACE_PREFIX_LAST says: Gemma's). Reading applies llama.cpp's loader rules: a special id out of
 * range counts as absent, missing scores are 0 and missing types NORMAL. */
#include "vocab_internal.h"

#include <stdlib.h>
#include <string.h>

#define KEY(x) "tokenizer.ggml." x

static const char *const ID_KEYS[4] = {KEY("bos_token_id"), KEY("eos_token_id"), KEY("unknown_token_id"), KEY("padding_token_id")};

/* The indices 0..n-1 in the order the source set them (src[0..n_src), repeats and out-of-range
 * entries skipped), then the ones it did not set in index order; returns n. */
static int key_order(const uint8_t *src, int n_src, int n, int *out) {
    bool seen[4] = {false, false, false, false};
    int m = 0;
    for (int i = 0; i < n_src; i++)
        if (src[i] < n && !seen[src[i]]) seen[src[i]] = true, out[m++] = src[i];
    for (int k = 0; k < n; k++)
        if (!seen[k]) out[m++] = k;
    return m;
}

void sm_vocab_to_meta(const sm_vocab *v, sm_meta *w) {
    const unsigned asp = v->explicit_flags & (SM_VOCAB_HAS_ADD_SPACE_PREFIX | SM_VOCAB_ADD_SPACE_PREFIX_LAST);
    if (asp == SM_VOCAB_HAS_ADD_SPACE_PREFIX) sm_meta_set_bool(w, KEY("add_space_prefix"), v->add_space_prefix);
    sm_meta_set_str(w, KEY("model"), v->kind == SM_VOCAB_SPM ? "llama" : "gpt2");
    sm_meta_set_str(w, KEY("pre"), v->pre);
    sm_meta_set_arr_str(w, KEY("tokens"), (const char *const *)v->tokens, (size_t)v->n_tokens);
    if (v->kind == SM_VOCAB_SPM) sm_meta_set_arr(w, KEY("scores"), SM_GGUF_FLOAT32, v->scores, (size_t)v->n_tokens);
    sm_meta_set_arr(w, KEY("token_type"), SM_GGUF_INT32, v->types, (size_t)v->n_tokens);
    if (v->kind == SM_VOCAB_BPE) sm_meta_set_arr_str(w, KEY("merges"), (const char *const *)v->merges, (size_t)v->n_merges);
    const int32_t ids[4] = {v->bos_id, v->eos_id, v->unk_id, v->pad_id};
    int order[4];
    for (int i = 0, n = key_order(v->id_order, v->n_id_order, 4, order); i < n; i++)
        if (ids[order[i]] >= 0) sm_meta_set_u32(w, ID_KEYS[order[i]], (uint32_t)ids[order[i]]);
    static const char *const ADD_KEYS[3] = {KEY("add_bos_token"), KEY("add_eos_token"), KEY("add_sep_token")};
    static const unsigned ADD_FLAGS[3] = {SM_VOCAB_HAS_ADD_BOS, SM_VOCAB_HAS_ADD_EOS, SM_VOCAB_HAS_ADD_SEP};
    const bool adds[3] = {v->add_bos, v->add_eos, v->add_sep};
    for (int i = 0, n = key_order(v->add_order, v->n_add_order, 3, order); i < n; i++)
        if (v->explicit_flags & ADD_FLAGS[order[i]]) sm_meta_set_bool(w, ADD_KEYS[order[i]], adds[order[i]]);
    if (v->chat_template) sm_meta_set_str(w, "tokenizer.chat_template", v->chat_template);
    if (asp == (SM_VOCAB_HAS_ADD_SPACE_PREFIX | SM_VOCAB_ADD_SPACE_PREFIX_LAST))
        sm_meta_set_bool(w, KEY("add_space_prefix"), v->add_space_prefix);
}

/* The array-of-strings value of key; NULL if absent, or (with an error) of another type. */
static const sm_gguf_value *str_array(const sm_gguf *g, const char *key) {
    const sm_gguf_value *a = sm_gguf_find(g, key);
    if (!a) return NULL;
    if (a->type != SM_GGUF_ARRAY || a->v.arr.type != SM_GGUF_STRING) {
        sm_error("%s: %s: expected an array of strings", sm_gguf_path(g), key);
        return NULL;
    }
    return a;
}

static int read_flag(const sm_gguf *g, const char *key, unsigned flag, bool *dst, unsigned *explicit_flags) {
    if (!sm_gguf_find(g, key)) return 0;
    if (sm_gguf_get_bool(g, key, dst)) return -1;
    *explicit_flags |= flag;
    return 0;
}

int sm_vocab_from_gguf(const sm_gguf *g, sm_vocab *out) {
    memset(out, 0, sizeof *out);
    const char *path = sm_gguf_path(g);
    const char *model = sm_gguf_get_str(g, KEY("model"));
    if (!model) return sm_error("%s: no %s string (no vocabulary in this file)", path, KEY("model"));
    sm_vocab_kind kind;
    if (!strcmp(model, "llama")) kind = SM_VOCAB_SPM;
    else if (!strcmp(model, "gpt2")) kind = SM_VOCAB_BPE;
    else return sm_error("%s: tokenizer model '%s' is not supported (\"llama\" or \"gpt2\")", path, model);

    const sm_gguf_value *toks = str_array(g, KEY("tokens"));
    if (!toks) return sm_gguf_find(g, KEY("tokens")) ? -1 : sm_error("%s: no %s", path, KEY("tokens"));
    if (toks->v.arr.n == 0 || toks->v.arr.n > SM_VOCAB_MAX_TOKENS)
        return sm_error("%s: %s: %llu tokens, expected 1..%d", path, KEY("tokens"), (unsigned long long)toks->v.arr.n, SM_VOCAB_MAX_TOKENS);
    int32_t n = (int32_t)toks->v.arr.n;
    if (sm_vocab_init(out, kind, n)) return -1;
    int rc = 0;
    for (int32_t i = 0; i < n && !rc; i++) {
        const sm_gguf_value *s = &toks->v.arr.items[i];
        if (s->v.str.len > SM_VOCAB_MAX_TOKEN_BYTES) rc = sm_error("%s: %s[%d]: %llu bytes, more than %d", path, KEY("tokens"), i, (unsigned long long)s->v.str.len, SM_VOCAB_MAX_TOKEN_BYTES);
        else rc = sm_vocab_set_token(out, i, s->v.str.ptr, (size_t)s->v.str.len);
    }

    const sm_gguf_value *sc = sm_gguf_find(g, KEY("scores"));
    if (!rc && sc) {
        if (sc->type != SM_GGUF_ARRAY || sc->v.arr.type != SM_GGUF_FLOAT32 || sc->v.arr.n < (uint64_t)n)
            rc = sm_error("%s: %s: expected an array of at least %d float32", path, KEY("scores"), n);
        else /* the reader keeps arrays in host order */
            memcpy(out->scores, sc->v.arr.data, 4 * (size_t)n);
    }
    const sm_gguf_value *ty = sm_gguf_find(g, KEY("token_type"));
    if (!rc && ty) {
        if (ty->type != SM_GGUF_ARRAY || (ty->v.arr.type != SM_GGUF_INT32 && ty->v.arr.type != SM_GGUF_UINT32) || ty->v.arr.n < (uint64_t)n)
            rc = sm_error("%s: %s: expected an array of at least %d int32", path, KEY("token_type"), n);
        else
            memcpy(out->types, ty->v.arr.data, 4 * (size_t)n);
    }
    if (!rc && kind == SM_VOCAB_BPE) {
        const sm_gguf_value *mg = str_array(g, KEY("merges"));
        if (!mg) rc = sm_gguf_find(g, KEY("merges")) ? -1 : sm_error("%s: no %s (needed by a gpt2 tokenizer)", path, KEY("merges"));
        else if (mg->v.arr.n > (uint64_t)INT32_MAX / 2) rc = sm_error("%s: %s: too many merges", path, KEY("merges"));
        else if (!(out->merges = calloc(mg->v.arr.n + 1, sizeof *out->merges))) rc = sm_error("%s: out of memory", path);
        for (uint64_t i = 0; !rc && i < mg->v.arr.n; i++) {
            const sm_gguf_value *s = &mg->v.arr.items[i];
            if (memchr(s->v.str.ptr, 0, (size_t)s->v.str.len)) {
                rc = sm_error("%s: %s[%llu] holds a NUL byte", path, KEY("merges"), (unsigned long long)i);
                break;
            }
            if (!(out->merges[i] = strdup(s->v.str.ptr))) rc = sm_error("%s: out of memory", path);
            out->n_merges = (int32_t)i + 1;
        }
    }
    const char *pre = sm_gguf_get_str(g, KEY("pre"));
    if (!rc && pre) {
        if (strlen(pre) >= sizeof out->pre) rc = sm_error("%s: %s '%s' is too long", path, KEY("pre"), pre);
        else strcpy(out->pre, pre);
    }
    int32_t *ids[4] = {&out->bos_id, &out->eos_id, &out->unk_id, &out->pad_id};
    for (int k = 0; k < 4 && !rc; k++) {
        int64_t id;
        if (!sm_gguf_find(g, ID_KEYS[k])) continue;
        if (sm_gguf_get_i64(g, ID_KEYS[k], &id)) rc = -1;
        else if (id >= 0 && id < n) *ids[k] = (int32_t)id;
    }
    if (!rc) rc = read_flag(g, KEY("add_bos_token"), SM_VOCAB_HAS_ADD_BOS, &out->add_bos, &out->explicit_flags);
    if (!rc) rc = read_flag(g, KEY("add_eos_token"), SM_VOCAB_HAS_ADD_EOS, &out->add_eos, &out->explicit_flags);
    if (!rc) rc = read_flag(g, KEY("add_sep_token"), SM_VOCAB_HAS_ADD_SEP, &out->add_sep, &out->explicit_flags);
    if (!rc) rc = read_flag(g, KEY("add_space_prefix"), SM_VOCAB_HAS_ADD_SPACE_PREFIX, &out->add_space_prefix, &out->explicit_flags);
    const char *ct = sm_gguf_get_str(g, "tokenizer.chat_template");
    if (!rc && ct && !(out->chat_template = strdup(ct))) rc = sm_error("%s: out of memory", path);
    if (rc) sm_vocab_free(out);
    return rc;
}
