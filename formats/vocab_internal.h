/* vocab_internal.h - helpers shared by the vocabulary readers (vocab_*.c). */
#ifndef SMELT_VOCAB_INTERNAL_H
#define SMELT_VOCAB_INTERNAL_H

#include "formats/formats.h"

#define SM_VOCAB_MAX_TOKENS (1 << 24)
/* ids a BPE tokenizer.json (or config.json's vocab_size) may leave without a token, beyond as many as it names */
#define SM_VOCAB_MAX_PAD (1 << 16)
#define SM_VOCAB_MAX_TOKEN_BYTES (1 << 16)

/* Empty vocabulary of n tokens (all NULL text, score 0, type NORMAL), no special ids, and
 * llama.cpp's defaults for the kind: SPM add_bos + add_space_prefix, pre "default". */
int sm_vocab_init(sm_vocab *v, sm_vocab_kind kind, int32_t n);
/* Replace token i's text with a copy of s[0..n) (which must hold no NUL byte). */
int sm_vocab_set_token(sm_vocab *v, int32_t i, const char *s, size_t n);

#endif
