/* safetensors_internal.h - the safetensors pieces shared by the reader, the writer and the
 * fuzz target (formats/ only). Parsing works on memory so the fuzzer can drive it. */
#ifndef SMELT_SAFETENSORS_INTERNAL_H
#define SMELT_SAFETENSORS_INTERNAL_H

#include "formats/checkpoint_internal.h"

#define SM_ST_MAX_HEADER 100000000u /* the reference implementation's limit (100 MB) */
#define SM_ST_MAX_NAME 1024         /* bytes in a tensor name */

/* "F32" <-> SM_TYPE_F32 etc. SM_TYPE_INVALID / NULL where safetensors has no such dtype. */
sm_type sm_st_dtype_type(const char *dtype);
const char *sm_st_type_dtype(sm_type t);

/* s[0..n) is valid UTF-8 (RFC 3629). */
bool sm_st_utf8_valid(const char *s, size_t n);

/* Check a JSON text before cJSON sees it: valid UTF-8, strings without control characters
 * or \u0000, well-formed escapes, and (with integers_only) every number a non-negative
 * integer of at most 2^53 without leading zeros. On failure sets *bad to the byte offset
 * and *what to what was expected there, and returns -1 (without calling sm_error). */
int sm_st_json_precheck(const uint8_t *s, size_t n, bool integers_only, size_t *bad, const char **what);

/* Parse a whole safetensors file held in memory (buf[0..len)). Appends its tensors to c in
 * file order, their data pointing into buf; *metadata receives "__metadata__" (the caller
 * owns it; NULL if absent). `name` (the file) starts every error message. */
int sm_safetensors_parse(const uint8_t *buf, size_t len, const char *name, sm_ckpt *c, cJSON **metadata);

/* A sharded checkpoint's index (model.safetensors.index.json). */
typedef struct sm_st_index_entry {
    const char *name;  /* tensor */
    const char *shard; /* file name, relative to the index's directory */
    bool seen;         /* found in its shard (used while opening) */
} sm_st_index_entry;

typedef struct sm_st_index {
    cJSON *root;               /* owns the strings */
    size_t n;                  /* weight_map entries, sorted by name, names unique */
    sm_st_index_entry *entries;
    size_t n_shards;           /* distinct shard names, sorted */
    const char **shards;
} sm_st_index;

/* Parse an index JSON text (text[0..len)); `name` starts every error message. */
int sm_st_index_parse(const char *text, size_t len, const char *name, sm_st_index *out);
/* The entry for a tensor name, or NULL. */
sm_st_index_entry *sm_st_index_find(const sm_st_index *ix, const char *name);
void sm_st_index_free(sm_st_index *ix);

#endif
