/* smelt_internal.h - what the .smelt writer, reader and codec share (private to formats/).
 * The byte layout is specified in docs/smelt-format.md. */
#ifndef SMELT_SMELT_INTERNAL_H
#define SMELT_SMELT_INTERNAL_H

#include "formats/smelt.h"

#define SMELT_VERSION_MAJOR 1
#define SMELT_VERSION_MINOR 0
#define SMELT_PREAMBLE 32            /* magic, u16 major, u16 minor, u32 flags, 16 reserved */
#define SMELT_TRAILER 40             /* u64 header offset, size, xxh3, file size, "SMELTEND" */
#define SMELT_END_MAGIC "SMELTEND"
#define SMELT_RAW_ALIGN 4096         /* raw-stored files start at multiples of this */
#define SMELT_DEFAULT_CHUNK ((uint64_t)256 << 10)
#define SMELT_MAX_CHUNK ((uint64_t)64 << 20)    /* reader's limit on a chunk's raw size */
#define SMELT_MAX_HEADER ((uint64_t)1 << 30)    /* reader's limit on the header JSON */
#define SMELT_MAX_PLANES 4

typedef enum { SMELT_PLANES_NONE = 0, SMELT_PLANES_B2, SMELT_PLANES_B4, SMELT_PLANES_BF16 } smelt_planes;

typedef struct smelt_chunk {
    uint64_t off, size; /* in the .smelt */
} smelt_chunk;

typedef struct smelt_tensor {
    sm_tensor view;       /* name, type, shape, nbytes; data NULL */
    uint64_t src_off;     /* offset in the original file */
    uint64_t xxh;         /* xxh3-64 of the raw bytes */
    bool raw;             /* stored verbatim at `off` */
    uint64_t off;         /* raw: offset in the .smelt */
    smelt_planes planes;
    uint64_t chunk_size;
    size_t n_chunks;
    smelt_chunk *chunks;
} smelt_tensor;

typedef struct smelt_file {
    char *name;
    char *kind;
    uint64_t size, xxh;
    bool raw;             /* the whole file stored verbatim at off */
    uint64_t off;
    size_t n_tensors;
    smelt_tensor *tensors; /* in src_off order */
    smelt_tensor rest;     /* packed: the bytes between tensors, concatenated (view.nbytes) */
} smelt_file;

struct sm_smelt {
    char *path;
    sm_mmap map;          /* when opened from a path */
    const uint8_t *base;
    uint64_t size;
    uint64_t data_end;    /* the header's offset: chunks lie in [SMELT_PREAMBLE, data_end) */
    cJSON *header;
    size_t n_files;
    smelt_file *files;
};

/* codec (smelt_codec.c) */
/* The plane layout for a tensor of type t and nbytes (NONE unless the size suits). */
smelt_planes smelt_planes_for(sm_type t, uint64_t nbytes);
int smelt_n_planes(smelt_planes p);
const char *smelt_planes_name(smelt_planes p);
smelt_planes smelt_planes_from_name(const char *s); /* -1 if unknown */
/* Worst-case stored size of a chunk of n raw bytes. */
size_t smelt_chunk_bound(smelt_planes p, size_t n);
/* Encode n raw bytes: out (smelt_chunk_bound bytes) gets the chunk, *out_n its size.
 * scratch: n bytes. cctx: a ZSTD_CCtx. Deterministic. */
int smelt_chunk_encode(void *cctx, int level, smelt_planes p, const uint8_t *src, size_t n, uint8_t *scratch,
                       uint8_t *out, size_t *out_n);
/* Decode a chunk of `stored` bytes into n raw bytes (scratch: n bytes). dctx: a ZSTD_DCtx.
 * -1 with a message (no file context) when the chunk is malformed. */
int smelt_chunk_decode(void *dctx, smelt_planes p, const uint8_t *src, size_t stored, uint8_t *dst, size_t n,
                       uint8_t *scratch);

void smelt_file_clear(smelt_file *f); /* frees what f owns */

/* "%016llx" of an xxh3 value into buf (17 bytes). */
void smelt_hex64(uint64_t v, char buf[17]);
/* kind of a file by its first bytes: "gguf", "safetensors", "other" */
const char *smelt_kind_of(const uint8_t *p, uint64_t n);

#endif
