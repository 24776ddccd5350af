/* gguf_internal.h - what the GGUF reader, writer and value helpers share (private to formats/).
 *
 * The file layout (ggml's gguf.cpp is the reference), all integers little-endian:
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x   { string key, u32 value type, value }
 *            value: fixed-size scalar | string (u64 length + bytes) |
 *                   array (u32 element type, u64 count, elements; arrays may nest)
 *   n_tensors x { string name, u32 n_dims, i64 ne[n_dims] (innermost first), i32 ggml type,
 *                 u64 offset relative to the data section }
 *   zero padding to `general.alignment` (u32, default 32)
 *   data section: each tensor at its offset, every offset a multiple of the alignment.
 */
#ifndef SMELT_GGUF_INTERNAL_H
#define SMELT_GGUF_INTERNAL_H

#include "formats/formats.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_VERSION 3
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_KEY_ALIGNMENT "general.alignment"
#define GGUF_MAX_DIMS 4           /* ggml's GGML_MAX_DIMS */
#define GGUF_MAX_NAME 64          /* ggml's GGML_MAX_NAME: tensor names are shorter than this */
#define GGUF_MAX_KEY_LEN 65535    /* the GGUF spec's limit on key length */
#define GGUF_MAX_STRING_LEN ((uint64_t)64 << 20) /* our limit on one string value */
#define GGUF_MAX_NESTING 8        /* arrays of arrays of ... at most this deep */

/* Bytes of one element of a fixed-size type; 0 for STRING, ARRAY and unknown types. */
size_t gguf_vtype_size(sm_gguf_vtype t);
bool gguf_vtype_valid(uint32_t t);
/* Free what a value owns (not the value struct itself); the value becomes empty. */
void gguf_value_clear(sm_gguf_value *v);
/* Deep copy; -1 (with an error) when out of memory or the value is malformed. */
int gguf_value_copy(sm_gguf_value *dst, const sm_gguf_value *src);

/* A string -> index hash table (open addressing). Names are owned by the caller and must
 * outlive the index. */
typedef struct gguf_index {
    size_t cap;      /* power of two, 0 when empty */
    size_t n;
    size_t *slots;   /* index + 1; 0 = free */
    const char **names;
} gguf_index;
/* Insert name -> idx. Returns 1 if inserted, 0 if the name was already there (*existing set
 * if non-NULL), -1 when out of memory. */
int gguf_index_add(gguf_index *ix, const char *name, size_t idx, size_t *existing);
/* Index of name, or -1 if absent. */
long long gguf_index_find(const gguf_index *ix, const char *name);
void gguf_index_free(gguf_index *ix);

#endif
