/* vocab.c - sm_vocab allocation and release, and loading by what a path is. */
#include "vocab_internal.h"

#include <stdlib.h>
#include <string.h>

int sm_vocab_init(sm_vocab *v, sm_vocab_kind kind, int32_t n) {
    memset(v, 0, sizeof *v);
    if (n < 0 || n > SM_VOCAB_MAX_TOKENS) return sm_error("vocabulary: %d tokens, more than the %d supported", n, SM_VOCAB_MAX_TOKENS);
    v->kind = kind;
    v->n_tokens = n;
    v->tokens = calloc((size_t)n + 1, sizeof *v->tokens);
    v->scores = calloc((size_t)n + 1, sizeof *v->scores);
    v->types = malloc(((size_t)n + 1) * sizeof *v->types);
    if (!v->tokens || !v->scores || !v->types) {
        sm_vocab_free(v);
        return sm_error("vocabulary: out of memory");
    }
    for (int32_t i = 0; i < n; i++) v->types[i] = SM_TOKEN_NORMAL;
    v->bos_id = v->eos_id = v->unk_id = v->pad_id = -1;
    v->add_bos = kind == SM_VOCAB_SPM;
    v->add_space_prefix = kind == SM_VOCAB_SPM;
    strcpy(v->pre, "default");
    return 0;
}

int sm_vocab_set_token(sm_vocab *v, int32_t i, const char *s, size_t n) {
    if (memchr(s, 0, n)) return sm_error("vocabulary: token %d holds a NUL byte", i);
    char *c = malloc(n + 1);
    if (!c) return sm_error("vocabulary: out of memory");
    memcpy(c, s, n);
    c[n] = 0;
    free(v->tokens[i]);
    v->tokens[i] = c;
    return 0;
}

void sm_vocab_free(sm_vocab *v) {
    if (!v) return;
    if (v->tokens)
        for (int32_t i = 0; i < v->n_tokens; i++) free(v->tokens[i]);
    if (v->merges)
        for (int32_t i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->scores);
    free(v->types);
    free(v->merges);
    free(v->chat_template);
    memset(v, 0, sizeof *v);
}

int sm_vocab_load(const char *path, sm_vocab *out) {
    memset(out, 0, sizeof *out);
    /* kinds that cannot hold a tokenizer are named; an unrecognised file is tried as a
     * SentencePiece model (whose reader says what is wrong with it) */
    if (sm_sniff_expect(path,
                        SM_FILE_BIT(SM_FILE_HF_DIR) | SM_FILE_BIT(SM_FILE_DIR) | SM_FILE_BIT(SM_FILE_GGUF) |
                            SM_FILE_BIT(SM_FILE_JSON) | SM_FILE_BIT(SM_FILE_SPM) | SM_FILE_BIT(SM_FILE_UNKNOWN),
                        "a tokenizer: a model directory, a GGUF, a tokenizer.json or a SentencePiece .model", NULL))
        return -1;
    if (sm_is_dir(path)) return sm_vocab_load_hf(path, out);
    if (sm_gguf_is_file(path)) {
        sm_gguf *g;
        if (sm_gguf_open(path, &g)) return -1;
        int rc = sm_vocab_from_gguf(g, out);
        sm_gguf_close(g);
        return rc;
    }
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) {
        char *buf;
        size_t len;
        if (sm_read_file(path, (size_t)512 << 20, &buf, &len)) return -1;
        int rc = sm_vocab_parse_tokenizer_json(buf, len, path, out);
        free(buf);
        return rc;
    }
    return sm_vocab_load_spm(path, out);
}
