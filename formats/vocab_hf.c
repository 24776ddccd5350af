/* vocab_hf.c - a Hugging Face model folder's tokenizer files -> sm_vocab, as llama.cpp's
 * convert_hf_to_gguf.py and gguf-py's SpecialVocab make them:
 *
 *  - tokenizer.model present: SentencePiece (vocab_spm.c), padded or cut to config.json's
 *    vocab_size ("[PADn]" UNUSED tokens with score -10000), then added_tokens.json entries
 *    (USER_DEFINED, score -1000) and tokenizer_config.json's added_tokens_decoder (CONTROL when
 *    "special" or when the text looks special, e.g. "<|...|>", else USER_DEFINED with U+2581 as
 *    spaces; score -1000), as _create_vocab_sentencepiece does;
 *  - else tokenizer.json with a BPE model and a byte-level pre-tokenizer: the vocab map and
 *    added_tokens (CONTROL / USER_DEFINED as above), merges in either form ("a b" strings or
 *    ["a", "b"] pairs, whose spaces become U+0120 as in gguf-py), the pre-tokenizer recognised
 *    from its structure: GPT-2's ByteLevel -> "gpt-2", Llama 3's Split regex -> "llama-bpe",
 *    Qwen2's -> "qwen2", GPT-4o's (Phi-4-mini) -> "gpt-4o" (llama.cpp hashes a tokenization of a test string instead, which needs
 *    the tokenizer itself);
 *  - special ids and add_bos/add_eos by SpecialVocab's rules: tokenizer.json's post_processor
 *    (TemplateProcessing / RobertaProcessing) sets add_bos/add_eos, tokenizer_config.json's
 *    add_bos_token / add_eos_token override them, its bos/eos/unk/pad_token strings (or
 *    AddedToken objects) are looked up among tokenizer.json's added_tokens, and config.json's
 *    *_token_id (or text_config's) fill the ids still missing. special_tokens_map.json and
 *    generation_config.json are not read, as SpecialVocab does not read them; tokenizer.model's
 *    trainer_spec ids are not used either (llama.cpp's loader defaults apply: 1, 2, 0).
 *    Differences: ids out of range are dropped (llama.cpp writes them and ignores them when
 *    loading), a negative id counts as absent (llama.cpp fails), sep/cls/mask/eot ids are not
 *    kept;
 *  - tokenizer_config.json's add_prefix_space, when not null, becomes add_space_prefix (as
 *    LlamaModel.set_vocab writes it); otherwise an SPM model's own add_dummy_prefix is kept
 *    (llama.cpp ignores it, and tokenizes models with add_dummy_prefix off differently from
 *    SentencePiece);
 *  - the chat template: tokenizer_config.json's chat_template, else chat_template.jinja, else
 *    chat_template.json (for a list of named templates, the one named "default").
 *
 * Every JSON file is size-limited before it is read and parsed with cJSON. */
#include "vocab_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKENIZER_JSON ((size_t)512 << 20)
#define MAX_CONFIG_JSON ((size_t)64 << 20)

static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* GPT-4o's o200k split (Phi-4-mini's tokenizer.json) */
static const char GPT4O_REGEX[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- JSON helpers ---- */

static int parse_json(const char *text, size_t len, const char *name, cJSON **out) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!*out) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        return sm_error("%s: offset %zu: expected valid JSON", name, at);
    }
    return 0;
}

/* dir/file parsed into *out; *out = NULL (and 0) when the file does not exist. */
static int load_json(const char *dir, const char *file, size_t max, cJSON **out) {
    *out = NULL;
    char *path = sm_path_join(dir, file);
    if (!path) return sm_error("out of memory");
    int rc = 0;
    if (sm_is_file(path)) {
        char *buf;
        size_t n;
        rc = sm_read_file(path, max, &buf, &n);
        if (!rc) {
            rc = parse_json(buf, n, path, out);
            free(buf);
        }
    }
    free(path);
    return rc;
}

static const cJSON *obj_get(const cJSON *o, const char *key) { return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL; }

static const char *obj_str(const cJSON *o, const char *key) {
    const cJSON *v = obj_get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* An integer JSON number in [lo, hi]. */
static bool json_int(const cJSON *v, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != (double)(int64_t)d) return false;
    *out = (int64_t)d;
    return true;
}

/* A token given as "text" or as an AddedToken object {"content": "text", ...}. */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    return obj_str(v, "content");
}

static bool looks_special(const char *t) {
    size_t n = strlen(t);
    if (!strcmp(t, "<pad>") || !strcmp(t, "<mask>") || !strcmp(t, "<2mass>") || !strcmp(t, "[@BOS@]")) return true;
    if (n >= 4 && !strncmp(t, "<|", 2) && !strcmp(t + n - 2, "|>")) return true;
    if (n >= 8 && !strncmp(t, "<\xEF\xBD\x9C", 4) && !strcmp(t + n - 4, "\xEF\xBD\x9C>")) return true; /* <｜...｜> */
    if (n >= 8 && !strncmp(t, "<unused", 7) && t[n - 1] == '>') return true;
    return false;
}

/* s with every U+2581 replaced by ' ' (user-defined tokens are stored pre-normalized). */
static int set_user_token(sm_vocab *v, int32_t id, const char *s) {
    size_t n = strlen(s);
    char *c = malloc(n + 1);
    if (!c) return sm_error("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (n - i >= 3 && !memcmp(s + i, "\xE2\x96\x81", 3)) {
            c[k++] = ' ';
            i += 3;
        } else {
            c[k++] = s[i++];
        }
    }
    int rc = sm_vocab_set_token(v, id, c, k);
    free(c);
    return rc;
}

/* Token type of an added token (CONTROL or USER_DEFINED), and its text stored accordingly. */
static int set_added_token(sm_vocab *v, int32_t id, const char *content, bool special) {
    if (special || looks_special(content)) {
        v->types[id] = SM_TOKEN_CONTROL;
        return sm_vocab_set_token(v, id, content, strlen(content));
    }
    v->types[id] = SM_TOKEN_USER_DEFINED;
    return set_user_token(v, id, content);
}

/* ---- tokenizer.json (BPE) ---- */

static const cJSON *array_item(const cJSON *a, int i) { return cJSON_IsArray(a) ? cJSON_GetArrayItem(a, i) : NULL; }

static bool is_byte_level(const cJSON *p, bool use_regex) {
    if (!cJSON_IsObject(p)) return false;
    const char *type = obj_str(p, "type");
    if (!type || strcmp(type, "ByteLevel")) return false;
    const cJSON *prefix = obj_get(p, "add_prefix_space"), *rx = obj_get(p, "use_regex");
    bool add_prefix = prefix ? cJSON_IsTrue(prefix) : true; /* the tokenizers library's defaults */
    bool regex = rx ? cJSON_IsTrue(rx) : true;
    return !add_prefix && regex == use_regex;
}

/* The llama.cpp pre-tokenizer name of a tokenizer.json pre_tokenizer. */
static int detect_pre(const cJSON *root, const char *name, char pre[32]) {
    const cJSON *p = obj_get(root, "pre_tokenizer");
    if (is_byte_level(p, true)) {
        strcpy(pre, "gpt-2");
        return 0;
    }
    const char *type = obj_str(p, "type");
    const cJSON *list = obj_get(p, "pretokenizers");
    if (type && !strcmp(type, "Sequence") && cJSON_GetArraySize(list) == 2 && is_byte_level(array_item(list, 1), false)) {
        const cJSON *split = array_item(list, 0);
        const char *st = obj_str(split, "type"), *behavior = obj_str(split, "behavior");
        const char *regex = obj_str(obj_get(split, "pattern"), "Regex");
        bool ok = st && !strcmp(st, "Split") && behavior && !strcmp(behavior, "Isolated") && !cJSON_IsTrue(obj_get(split, "invert"));
        if (ok && regex && !strcmp(regex, LLAMA3_REGEX)) {
            strcpy(pre, "llama-bpe");
            return 0;
        }
        if (ok && regex && !strcmp(regex, QWEN2_REGEX)) {
            strcpy(pre, "qwen2");
            return 0;
        }
        if (ok && regex && !strcmp(regex, GPT4O_REGEX)) {
            strcpy(pre, "gpt-4o");
            return 0;
        }
    }
    return sm_error("%s: pre_tokenizer not supported: expected GPT-2's ByteLevel, or Llama 3's or Qwen2's Split regex followed by "
                    "ByteLevel (add_prefix_space false), or GPT-4o's (Phi-4-mini)", name);
}

/* "a b" merge strings from the merges array (either form). */
static int read_merges(const cJSON *merges, const char *name, sm_vocab *v) {
    if (!merges) return 0;
    if (!cJSON_IsArray(merges)) return sm_error("%s: model.merges: expected an array", name);
    int n = cJSON_GetArraySize(merges);
    v->merges = calloc((size_t)n + 1, sizeof *v->merges);
    if (!v->merges) return sm_error("%s: out of memory", name);
    int i = 0;
    for (const cJSON *m = merges->child; m; m = m->next, i++) {
        v->n_merges = i + 1;
        if (cJSON_IsString(m)) {
            if (!(v->merges[i] = strdup(m->valuestring))) return sm_error("%s: out of memory", name);
            continue;
        }
        if (cJSON_GetArraySize(m) != 2 || !cJSON_IsString(array_item(m, 0)) || !cJSON_IsString(array_item(m, 1)))
            return sm_error("%s: model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", name, i);
        /* pair form: a space inside a part is written U+0120 (what the byte-level alphabet uses) */
        const char *parts[2] = {array_item(m, 0)->valuestring, array_item(m, 1)->valuestring};
        size_t len = 2 * (strlen(parts[0]) + strlen(parts[1])) + 2;
        char *s = malloc(len), *q = s;
        if (!s) return sm_error("%s: out of memory", name);
        for (int k = 0; k < 2; k++) {
            if (k) *q++ = ' ';
            for (const char *c = parts[k]; *c; c++) {
                if (*c == ' ') {
                    *q++ = '\xC4';
                    *q++ = '\xA0';
                } else {
                    *q++ = *c;
                }
            }
        }
        *q = 0;
        v->merges[i] = s;
    }
    return 0;
}

static int cmp_str_ptr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static bool has_token(const char *const *sorted, int32_t n, const char *s) {
    return bsearch(&s, sorted, (size_t)n, sizeof *sorted, cmp_str_ptr) != NULL;
}

/* Every merge "LEFT RIGHT" names two tokens and makes a third (what HF tokenizers and smelt's
 * own tokenizer require); a tokenizer.json that breaks this is refused here rather than
 * written into a GGUF nothing can tokenize with. */
static int check_merges(const sm_vocab *v, const char *name) {
    if (v->n_merges <= 0) return 0;
    const char **sorted = malloc((size_t)v->n_tokens * sizeof *sorted);
    char *cat = NULL;
    size_t cap = 0;
    if (!sorted) return sm_error("%s: out of memory", name);
    for (int32_t i = 0; i < v->n_tokens; i++) sorted[i] = v->tokens[i];
    qsort(sorted, (size_t)v->n_tokens, sizeof *sorted, cmp_str_ptr);
    int rc = 0;
    for (int32_t i = 0; i < v->n_merges && !rc; i++) {
        const char *s = v->merges[i], *sp = *s ? strchr(s + 1, ' ') : NULL;
        if (!sp) {
            rc = sm_error("%s: model.merges[%d] \"%s\" is not \"LEFT RIGHT\"", name, i, s);
            break;
        }
        size_t ll = (size_t)(sp - s), rl = strlen(sp + 1);
        if (ll + rl + 1 > cap) {
            cap = 2 * (ll + rl + 1);
            char *c = realloc(cat, cap);
            if (!c) { rc = sm_error("%s: out of memory", name); break; }
            cat = c;
        }
        const char *what = NULL;
        memcpy(cat, s, ll), cat[ll] = 0;
        if (!has_token(sorted, v->n_tokens, cat)) what = "its left part";
        else if (!has_token(sorted, v->n_tokens, sp + 1)) what = "its right part";
        else {
            memcpy(cat + ll, sp + 1, rl + 1);
            if (!has_token(sorted, v->n_tokens, cat)) what = "the merged text";
        }
        if (what)
            rc = sm_error("%s: model.merges[%d] \"%s\": %s is not a token of model.vocab (HF tokenizers refuses such a merge)",
                          name, i, s, what);
    }
    free(cat);
    free(sorted);
    return rc;
}

/* Ids without a token become "[PADi]" entries (as convert_hf_to_gguf.py writes them). Real
 * vocabularies pad a few hundred ids at most, so a few bytes naming id 16M (or a config.json
 * vocab_size of 16M) are refused here instead of costing millions of allocations. */
static int check_padding(const char *name, int64_t n, int64_t n_named) {
    int64_t holes = n - n_named, max_holes = n_named > SM_VOCAB_MAX_PAD ? n_named : SM_VOCAB_MAX_PAD;
    if (holes <= max_holes) return 0;
    return sm_error("%s: %lld token ids up to %lld have no token (%lld tokens named): expected at most %lld unnamed ids",
                    name, (long long)holes, (long long)n - 1, (long long)n_named, (long long)max_holes);
}

/* vocab_size <= 0: as many tokens as the largest id needs. */
static int bpe_from_tokenizer_json(const cJSON *root, const char *name, int64_t vocab_size, sm_vocab *out) {
    memset(out, 0, sizeof *out);
    const cJSON *model = obj_get(root, "model");
    const char *type = obj_str(model, "type");
    if (!type) return sm_error("%s: expected an object \"model\" with a \"type\"", name);
    if (strcmp(type, "BPE")) return sm_error("%s: tokenizer model type \"%s\" is not supported (only BPE)", name, type);
    if (cJSON_IsTrue(obj_get(model, "byte_fallback"))) return sm_error("%s: BPE with byte_fallback is not supported", name);
    const cJSON *norm = obj_get(root, "normalizer");
    const char *norm_type = obj_str(norm, "type");
    if (norm && !cJSON_IsNull(norm) && !(norm_type && !strcmp(norm_type, "NFC")))
        return sm_error("%s: normalizer \"%s\" is not supported (none or NFC, which llama.cpp ignores)", name, norm_type ? norm_type : "?");
    char pre[32];
    if (detect_pre(root, name, pre)) return -1;
    const cJSON *vocab = obj_get(model, "vocab");
    if (!cJSON_IsObject(vocab)) return sm_error("%s: model.vocab: expected an object", name);
    const cJSON *added = obj_get(root, "added_tokens");
    if (added && !cJSON_IsArray(added)) return sm_error("%s: added_tokens: expected an array", name);

    int64_t max_id = -1, id, n_named = 0;
    for (const cJSON *t = vocab->child; t; t = t->next, n_named++) {
        if (!json_int(t, 0, SM_VOCAB_MAX_TOKENS - 1, &id)) return sm_error("%s: model.vocab[\"%s\"]: expected an id in 0..%d", name, t->string, SM_VOCAB_MAX_TOKENS - 1);
        if (id > max_id) max_id = id;
    }
    int k = 0;
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next, k++, n_named++) {
        if (!json_int(obj_get(a, "id"), 0, SM_VOCAB_MAX_TOKENS - 1, &id) || !obj_str(a, "content"))
            return sm_error("%s: added_tokens[%d]: expected {\"id\": 0..%d, \"content\": \"...\"}", name, k, SM_VOCAB_MAX_TOKENS - 1);
        if (id > max_id) max_id = id;
    }
    if (max_id < 0) return sm_error("%s: no tokens", name);
    if (vocab_size > 0 && max_id >= vocab_size) return sm_error("%s: token id %lld is not below config.json's vocab_size %lld", name, (long long)max_id, (long long)vocab_size);
    int32_t n = (int32_t)(vocab_size > 0 ? vocab_size : max_id + 1);
    if (check_padding(name, n, n_named)) return -1;
    if (sm_vocab_init(out, SM_VOCAB_BPE, n)) return -1;
    strcpy(out->pre, pre);
    int rc = 0;
    for (const cJSON *t = vocab->child; t && !rc; t = t->next) {
        json_int(t, 0, SM_VOCAB_MAX_TOKENS - 1, &id);
        rc = sm_vocab_set_token(out, (int32_t)id, t->string, strlen(t->string));
    }
    for (const cJSON *a = added ? added->child : NULL; a && !rc; a = a->next) {
        json_int(obj_get(a, "id"), 0, SM_VOCAB_MAX_TOKENS - 1, &id);
        rc = set_added_token(out, (int32_t)id, obj_str(a, "content"), cJSON_IsTrue(obj_get(a, "special")));
    }
    for (int32_t i = 0; i < n && !rc; i++) {
        if (out->tokens[i]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", i);
        rc = sm_vocab_set_token(out, i, pad, strlen(pad));
        out->types[i] = SM_TOKEN_UNUSED;
    }
    if (!rc) rc = read_merges(obj_get(model, "merges"), name, out);
    if (!rc) rc = check_merges(out, name);
    if (rc) sm_vocab_free(out);
    return rc;
}

int sm_vocab_parse_tokenizer_json(const char *json, size_t len, const char *name, sm_vocab *out) {
    memset(out, 0, sizeof *out);
    cJSON *root;
    if (parse_json(json, len, name, &root)) return -1;
    int rc = bpe_from_tokenizer_json(root, name, 0, out);
    cJSON_Delete(root);
    return rc;
}

/* ---- SentencePiece in an HF folder ---- */

static int spm_from_hf(const char *dir, const char *model_path, const cJSON *config, const cJSON *tok_cfg, sm_vocab *out) {
    sm_vocab base;
    if (sm_vocab_load_spm(model_path, &base)) return -1;
    int64_t vocab_size = 0;
    if (!json_int(obj_get(config, "vocab_size_per_layer_input"), 1, SM_VOCAB_MAX_TOKENS, &vocab_size) &&
        !json_int(obj_get(config, "vocab_size"), 1, SM_VOCAB_MAX_TOKENS, &vocab_size))
        vocab_size = base.n_tokens;
    int32_t n = (int32_t)vocab_size;
    int rc = check_padding(dir, n, base.n_tokens);
    if (!rc) rc = sm_vocab_init(out, SM_VOCAB_SPM, n);
    for (int32_t i = 0; i < n && !rc; i++) {
        if (i < base.n_tokens) {
            out->tokens[i] = base.tokens[i];
            base.tokens[i] = NULL;
            out->scores[i] = base.scores[i];
            out->types[i] = base.types[i];
        } else {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", i);
            rc = sm_vocab_set_token(out, i, pad, strlen(pad));
            out->scores[i] = -10000.0f;
            out->types[i] = SM_TOKEN_UNUSED;
        }
    }
    out->add_space_prefix = base.add_space_prefix;
    out->explicit_flags = base.explicit_flags;
    sm_vocab_free(&base);

    cJSON *added = NULL;
    if (!rc) rc = load_json(dir, "added_tokens.json", MAX_CONFIG_JSON, &added);
    if (!rc && added && !cJSON_IsObject(added)) rc = sm_error("%s/added_tokens.json: expected an object", dir);
    for (const cJSON *a = added ? added->child : NULL; a && !rc; a = a->next) {
        int64_t id;
        if (!json_int(a, 0, INT32_MAX, &id)) {
            rc = sm_error("%s/added_tokens.json: \"%s\": expected a token id", dir, a->string);
            break;
        }
        if (id >= n) continue; /* llama.cpp: ignored, out of range */
        rc = sm_vocab_set_token(out, (int32_t)id, a->string, strlen(a->string));
        out->scores[id] = -1000.0f;
        out->types[id] = SM_TOKEN_USER_DEFINED;
    }
    cJSON_Delete(added);

    const cJSON *dec = obj_get(tok_cfg, "added_tokens_decoder");
    if (!rc && dec && !cJSON_IsObject(dec)) rc = sm_error("%s/tokenizer_config.json: added_tokens_decoder: expected an object", dir);
    for (const cJSON *a = dec ? dec->child : NULL; a && !rc; a = a->next) {
        char *end;
        errno = 0;
        long id = strtol(a->string, &end, 10);
        const char *content = obj_str(a, "content");
        if (errno || end == a->string || *end || id < 0 || !content) {
            rc = sm_error("%s/tokenizer_config.json: added_tokens_decoder[\"%s\"]: expected a token id with {\"content\": ...}", dir, a->string);
            break;
        }
        if (id >= n) continue;
        rc = set_added_token(out, (int32_t)id, content, cJSON_IsTrue(obj_get(a, "special")));
        out->scores[id] = -1000.0f;
    }
    if (rc) sm_vocab_free(out);
    return rc;
}

/* ---- special ids, add_bos/add_eos, chat template (gguf-py SpecialVocab) ---- */

enum { SP_BOS, SP_EOS, SP_UNK, SP_PAD, SP_N };
static const char *const SP_NAMES[SP_N] = {"bos", "eos", "unk", "pad"};

enum { ADD_BOS, ADD_EOS, ADD_SEP, ADD_N }; /* the add_*_token flags smelt writes */

typedef struct special {
    int32_t id[SP_N];
    const char *text[SP_N]; /* the tokenizer_config.json strings, possibly replaced */
    int add[ADD_N];         /* -1 unset */
    /* the order the ids and the add flags were set in (SpecialVocab's dict orders, which
     * convert_hf_to_gguf.py writes the keys in) */
    uint8_t n_order, order[SP_N], n_add_order, add_order[ADD_N];
} special;

static void set_id(special *sp, int k, int64_t id, int32_t n_vocab) {
    if (sp->id[k] < 0 && id >= 0 && id < n_vocab) {
        sp->id[k] = (int32_t)id;
        sp->order[sp->n_order++] = (uint8_t)k;
    }
}

static void set_add(special *sp, int k, bool on) {
    if (sp->add[k] < 0) sp->add_order[sp->n_add_order++] = (uint8_t)k;
    sp->add[k] = on;
}

static bool same(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* The "SpecialToken" id of a template entry, NULL if it is none (or empty). */
static const char *template_special(const cJSON *entry) {
    const char *id = obj_str(obj_get(entry, "SpecialToken"), "id");
    return id && *id ? id : NULL;
}

/* TemplateProcessing's pair template: whether a separator goes between A and B (SpecialVocab's
 * reading: A [sep] [eos] B once the single template's leading/trailing tokens are stripped). */
static void pair_template(const cJSON *pair, const char *first, const char *last, const char *sep, special *sp) {
    int n = cJSON_GetArraySize(pair), lo = 0, hi = n;
    if (!cJSON_IsArray(pair) || n == 0) return;
    if (first && same(template_special(array_item(pair, 0)), first)) lo = 1;
    if (last && same(template_special(array_item(pair, n - 1)), last)) hi = n - 1;
    if (hi <= lo) return;
    const char *a = obj_str(obj_get(array_item(pair, lo), "Sequence"), "id");
    const char *b = obj_str(obj_get(array_item(pair, hi - 1), "Sequence"), "id");
    if (!same(a, "A") || !same(b, "B") || hi - lo < 3) return;
    bool add_sep = false;
    const char *e0 = template_special(array_item(pair, lo + 1));
    if (e0 && (same(e0, sep) || same(e0, sp->text[SP_EOS])) && !last) add_sep = true;
    if (hi - lo - 2 == 2) {
        const char *e1 = template_special(array_item(pair, lo + 2));
        if (e1 && (same(e1, sep) || same(e1, sp->text[SP_EOS]))) add_sep = true;
    }
    set_add(sp, ADD_SEP, add_sep);
}

/* tokenizer.json post_processor: what TemplateProcessing / RobertaProcessing imply. */
static void post_processor(const cJSON *tok_json, const cJSON *tok_cfg, special *sp, const char **cls, const char *sep) {
    const cJSON *pp = obj_get(tok_json, "post_processor");
    if (!cJSON_IsObject(pp)) return;
    const cJSON *list = obj_get(pp, "processors");
    const cJSON *one = cJSON_IsArray(list) ? list->child : pp;
    for (; one; one = cJSON_IsArray(list) ? one->next : NULL) {
        const char *type = obj_str(one, "type");
        if (type && !strcmp(type, "RobertaProcessing")) {
            set_add(sp, ADD_BOS, true);
            set_add(sp, ADD_EOS, true);
            set_add(sp, ADD_SEP, true);
            continue;
        }
        if (!type || strcmp(type, "TemplateProcessing")) continue;
        const cJSON *single = obj_get(one, "single");
        int n = cJSON_GetArraySize(single);
        const char *first = NULL, *last = NULL;
        if (cJSON_IsArray(single) && n > 1) {
            first = template_special(array_item(single, 0));
            if (first) {
                if (!tok_cfg) sp->text[SP_BOS] = first;
                else if (!same(first, sp->text[SP_BOS]) && !same(first, *cls)) {
                    if (!sp->text[SP_BOS]) sp->text[SP_BOS] = first;
                    if (!*cls) *cls = first;
                }
                set_add(sp, ADD_BOS, same(first, sp->text[SP_BOS]) || same(first, *cls));
            }
            last = template_special(array_item(single, n - 1));
            if (last) {
                sp->text[SP_EOS] = last; /* a different EOS replaces tokenizer_config's (which llama.cpp keeps as EOT) */
                set_add(sp, ADD_EOS, true);
            }
        }
        pair_template(obj_get(one, "pair"), first, last, sep, sp);
    }
}

static int chat_template(const char *dir, const cJSON *tok_cfg, sm_vocab *v) {
    const cJSON *ct = obj_get(tok_cfg, "chat_template");
    cJSON *alt = NULL;
    char *path = NULL, *text = NULL;
    int rc = 0;
    if (!ct) {
        path = sm_path_join(dir, "chat_template.jinja");
        if (!path) return sm_error("out of memory");
        if (sm_is_file(path)) {
            rc = sm_read_file(path, MAX_CONFIG_JSON, &text, NULL);
            v->chat_template = text;
        } else {
            rc = load_json(dir, "chat_template.json", MAX_CONFIG_JSON, &alt);
            ct = obj_get(alt, "chat_template");
        }
        free(path);
    }
    if (!rc && cJSON_IsArray(ct)) { /* [{"name": ..., "template": ...}]: keep the default one */
        const cJSON *def = NULL;
        for (const cJSON *e = ct->child; e; e = e->next) {
            const char *nm = obj_str(e, "name");
            if (nm && !strcmp(nm, "default")) def = e;
        }
        ct = obj_get(def, "template");
    }
    if (!rc && cJSON_IsString(ct) && !(v->chat_template = strdup(ct->valuestring))) rc = sm_error("out of memory");
    cJSON_Delete(alt);
    return rc;
}

static int apply_special(const char *dir, const cJSON *tok_json, const cJSON *tok_cfg, const cJSON *config, sm_vocab *v) {
    special sp = {{-1, -1, -1, -1}, {NULL}, {-1, -1, -1}, 0, {0}, 0, {0}};
    const char *cls = NULL, *sep = NULL;
    if (!cJSON_IsObject(tok_cfg) || !tok_cfg->child) tok_cfg = NULL; /* SpecialVocab treats {} as absent */
    if (tok_cfg)
        for (int k = 0; k < SP_N; k++) {
            char key[32];
            snprintf(key, sizeof key, "%s_token", SP_NAMES[k]);
            sp.text[k] = token_text(obj_get(tok_cfg, key));
            if (sp.text[k] && !*sp.text[k]) sp.text[k] = NULL;
        }
    if (tok_json && tok_cfg) {
        cls = token_text(obj_get(tok_cfg, "cls_token"));
        sep = token_text(obj_get(tok_cfg, "sep_token"));
        if (cls && !*cls) cls = NULL;
        if (!sp.text[SP_BOS] && cls) sp.text[SP_BOS] = cls;
        if (!sp.text[SP_EOS] && sep && *sep) sp.text[SP_EOS] = sep;
    }
    if (tok_json) post_processor(tok_json, tok_cfg, &sp, &cls, sep && *sep ? sep : NULL);
    /* SpecialVocab stops here without tokenizer_config.json */
    if (tok_cfg) {
        static const char *const ADD_KEYS[ADD_N] = {"add_bos_token", "add_eos_token", "add_sep_token"};
        for (int k = 0; k < ADD_N; k++) {
            const cJSON *flag = obj_get(tok_cfg, ADD_KEYS[k]);
            if (cJSON_IsBool(flag)) set_add(&sp, k, cJSON_IsTrue(flag));
        }
        const cJSON *added = obj_get(tok_json, "added_tokens");
        for (int k = 0; k < SP_N; k++) {
            if (!sp.text[k]) continue;
            for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
                const char *content = obj_str(a, "content");
                int64_t id;
                if (content && !strcmp(content, sp.text[k])) {
                    if (json_int(obj_get(a, "id"), 0, INT32_MAX, &id)) set_id(&sp, k, id, v->n_tokens);
                    break;
                }
            }
        }
        if (chat_template(dir, tok_cfg, v)) return -1;
        const cJSON *aps = obj_get(tok_cfg, "add_prefix_space");
        if (cJSON_IsBool(aps)) {
            if (v->add_space_prefix) v->explicit_flags |= SM_VOCAB_PREFIX_WAS_ON;
            if (v->explicit_flags & SM_VOCAB_HAS_ADD_SPACE_PREFIX) v->explicit_flags |= SM_VOCAB_PREFIX_WAS_STATED;
            v->add_space_prefix = cJSON_IsTrue(aps);
            v->explicit_flags |= SM_VOCAB_HAS_ADD_SPACE_PREFIX | SM_VOCAB_PREFIX_FROM_TOKCFG;
        }
    }
    for (int k = 0; k < SP_N; k++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", SP_NAMES[k]);
        const cJSON *idv = obj_get(config, key);
        if (!idv || cJSON_IsNull(idv)) idv = obj_get(obj_get(config, "text_config"), key);
        int64_t id;
        if (json_int(idv, 0, INT32_MAX, &id)) set_id(&sp, k, id, v->n_tokens);
    }
    v->bos_id = sp.id[SP_BOS];
    v->eos_id = sp.id[SP_EOS];
    v->unk_id = sp.id[SP_UNK];
    v->pad_id = sp.id[SP_PAD];
    v->n_id_order = sp.n_order;
    memcpy(v->id_order, sp.order, sizeof v->id_order);
    static const unsigned ADD_FLAGS[ADD_N] = {SM_VOCAB_HAS_ADD_BOS, SM_VOCAB_HAS_ADD_EOS, SM_VOCAB_HAS_ADD_SEP};
    bool *const add_dst[ADD_N] = {&v->add_bos, &v->add_eos, &v->add_sep};
    for (int k = 0; k < ADD_N; k++)
        if (sp.add[k] >= 0) {
            *add_dst[k] = sp.add[k];
            v->explicit_flags |= ADD_FLAGS[k];
        }
    v->n_add_order = sp.n_add_order;
    memcpy(v->add_order, sp.add_order, sizeof v->add_order);
    return 0;
}

int sm_vocab_load_hf(const char *dir, sm_vocab *out) {
    memset(out, 0, sizeof *out);
    if (!sm_is_dir(dir)) return sm_error("%s: not a directory", dir);
    cJSON *config = NULL, *tok_cfg = NULL, *tok_json = NULL;
    char *spm_path = sm_path_join(dir, "tokenizer.model");
    char *json_path = sm_path_join(dir, "tokenizer.json");
    int rc = !spm_path || !json_path ? sm_error("out of memory") : 0;
    if (!rc) rc = load_json(dir, "config.json", MAX_CONFIG_JSON, &config);
    if (!rc) rc = load_json(dir, "tokenizer_config.json", MAX_CONFIG_JSON, &tok_cfg);
    if (!rc && (config && !cJSON_IsObject(config))) rc = sm_error("%s/config.json: expected an object", dir);
    if (!rc && (tok_cfg && !cJSON_IsObject(tok_cfg))) rc = sm_error("%s/tokenizer_config.json: expected an object", dir);
    if (!rc) rc = load_json(dir, "tokenizer.json", MAX_TOKENIZER_JSON, &tok_json);
    if (!rc && tok_json && !cJSON_IsObject(tok_json)) rc = sm_error("%s: expected an object", json_path);
    if (!rc) {
        if (sm_is_file(spm_path)) {
            rc = spm_from_hf(dir, spm_path, config, tok_cfg, out);
        } else if (tok_json) {
            int64_t vocab_size = 0;
            json_int(obj_get(config, "vocab_size"), 1, SM_VOCAB_MAX_TOKENS, &vocab_size);
            rc = bpe_from_tokenizer_json(tok_json, json_path, vocab_size, out);
        } else {
            rc = sm_error("%s: no tokenizer.model or tokenizer.json", dir);
        }
    }
    if (!rc && apply_special(dir, tok_json, tok_cfg, config, out)) {
        sm_vocab_free(out);
        rc = -1;
    }
    cJSON_Delete(config);
    cJSON_Delete(tok_cfg);
    cJSON_Delete(tok_json);
    free(spm_path);
    free(json_path);
    return rc;
}
