/* tokenizer_internal.h - what the tokenizer files share: the tokenizer's state, a string -> id
 * hash table, growable arrays, and the two merge engines (SPM scores, BPE ranks). */
#ifndef SMELT_TOKENIZER_INTERNAL_H
#define SMELT_TOKENIZER_INTERNAL_H

#include "model/model.h"

/* ---- growable arrays ---- */
typedef struct sm_u32vec {
    uint32_t *v;
    size_t n, cap;
} sm_u32vec;
int sm_u32vec_push(sm_u32vec *a, uint32_t x);

typedef struct sm_i32vec {
    int32_t *v;
    size_t n, cap;
} sm_i32vec;
int sm_i32vec_push(sm_i32vec *a, int32_t x);

typedef struct sm_bytevec {
    char *v;
    size_t n, cap;
} sm_bytevec;
int sm_bytevec_append(sm_bytevec *a, const void *p, size_t n);

/* ---- open-addressing hash table: byte string -> token id (the last id wins for a text that
 * appears twice, as in llama.cpp), and (left id, right id) -> merge ---- */
typedef struct sm_strmap {
    uint32_t mask;    /* capacity - 1 (capacity a power of two) */
    int32_t *slots;   /* token id or -1 */
    uint64_t *hashes;
    const char *const *text; /* token texts and lengths the ids refer to */
    const uint32_t *len;
} sm_strmap;

typedef struct sm_merge {
    int32_t rank;   /* position in the merge list (lower merges first) */
    int32_t result; /* id of the merged token */
} sm_merge;

typedef struct sm_pairmap {
    uint32_t mask;
    uint64_t *keys; /* (left << 32 | right) + 1; 0 = empty */
    sm_merge *vals;
} sm_pairmap;

typedef enum sm_pre_kind { SM_PRE_GPT2, SM_PRE_LLAMA3, SM_PRE_QWEN2, SM_PRE_GPT4O } sm_pre_kind;

struct sm_tokenizer {
    sm_vocab_kind kind;
    int32_t n_tokens;
    char **text;    /* token texts (NUL-terminated copies) */
    uint32_t *len;
    float *scores;
    int32_t *types;
    sm_strmap map;

    /* decoded pieces for sm_token_to_piece: piece_off[i]..piece_off[i+1] in pieces */
    char *pieces;
    size_t *piece_off;

    int32_t bos, eos, unk;
    bool add_bos, add_eos, add_space_prefix;

    /* tokens matched in the raw text before the merges: CONTROL, USER_DEFINED and UNKNOWN,
     * longest first */
    int32_t *special;
    size_t n_special;

    /* SPM: the token for each byte (<0xXX>, else the byte as a one-byte piece), -1 if none */
    int32_t byte_token[256];
    /* SPM: ASCII bytes that occur in no token longer than one byte (e.g. '\n' in Llama's
     * vocabulary): the merges never cross them */
    bool spm_isolated[128];

    /* BPE */
    sm_pre_kind pre;
    bool ignore_merges;  /* llama3 family: a word that is a token is taken whole */
    sm_pairmap merges;
    char byte_utf8[256][2]; /* GPT-2 alphabet character of each byte, as UTF-8 */
    uint8_t byte_utf8_len[256];
};

int sm_strmap_init(sm_strmap *m, const char *const *text, const uint32_t *len, int32_t n);
int32_t sm_strmap_find(const sm_strmap *m, const char *s, size_t n);
void sm_strmap_free(sm_strmap *m);

/* Split code points into pre-tokenizer words; appends each word's length in code points. */
int sm_pretokenize(sm_pre_kind kind, const uint32_t *cp, size_t n, sm_u32vec *word_lens);

/* Merge engines: tokenize one raw text fragment (no special tokens inside) and append ids.
 * SPM: the fragment gets the dummy-prefix space (when prefix is set) and U+2581 escaping here. */
int sm_spm_encode(const sm_tokenizer *t, const char *text, size_t len, bool prefix, sm_i32vec *out);
int sm_bpe_encode(const sm_tokenizer *t, const char *text, size_t len, sm_i32vec *out);
/* The BPE parts of sm_tokenizer_new (merge table, byte alphabet, pre-tokenizer from v->pre). */
int sm_bpe_init(sm_tokenizer *t, const sm_vocab *v);

#endif
