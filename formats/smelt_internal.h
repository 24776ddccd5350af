/* smelt_internal.h - what the .smelt writer, reader and codec share (private to formats/).
 * The byte layout is specified in docs/smelt-format.md. */
#ifndef SMELT_SMELT_INTERNAL_H
#define SMELT_SMELT_INTERNAL_H

#include "formats/formats.h"
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
    int refs;             /* lazy mappings still reading it (each closes it once more) */
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

/* decoding (smelt_extract.c) */
uint64_t smelt_chunk_raw(const smelt_tensor *t, size_t c); /* chunk c's raw size */
/* Chunk c of t (of file f) into dst (smelt_chunk_raw bytes; scratch as many); -1 with an error
 * naming the file, tensor, chunk and its offset in the .smelt. */
int smelt_decode_chunk(const sm_smelt *s, const smelt_file *f, const smelt_tensor *t, size_t c, void *dctx,
                       uint8_t *dst, uint8_t *scratch);
/* "...: checksum mismatch" for t of f whose bytes hashed to `got`; -1. */
int smelt_hash_error(const sm_smelt *s, const smelt_file *f, const smelt_tensor *t, uint64_t got);

/* ---- the writer's machinery (smelt_write.c), shared by `pack` and the streaming writer ---- */

/* A batch of chunks encoded in parallel (one zstd context per thread), then written in order:
 * the output does not depend on the thread count. */
typedef struct smelt_job {
    smelt_tensor *t;   /* a tensor's chunk (NULL: a rest chunk) */
    const uint8_t *src;
    uint8_t *owned;    /* the job's own copy of src (freed after writing), or NULL: src is in map */
    size_t n;
    smelt_planes planes;
    smelt_chunk *dst;
    uint8_t *out;
    size_t out_n;
    char *err;
} smelt_job;

typedef struct smelt_packer {
    sm_outfile *o;
    const char *out_path;
    int level, threads;
    uint64_t chunk;
    void **cctx;                /* ZSTD_CCtx per thread */
    uint8_t **outs, **scratch;  /* per job slot (chunk bound), per thread (chunk) */
    smelt_job *jobs;
    size_t n_jobs, cap_jobs;
    const sm_mmap *map;         /* jobs without `owned` point into it; NULL: every job owns its bytes */
    sm_progress prog;
    uint64_t done;
    /* checksums of mapped sources, computed in file order as the chunks are written */
    void *tensor_h, *file_h;    /* XXH3_state_t */
    uint64_t file_pos;
    uint64_t rel_lo, rel_hi;    /* used source bytes not yet handed back (sm_mmap_release) */
} smelt_packer;

/* Allocate (level 0: default; threads 0: all; chunk 0: default), open `out` (a temporary) and
 * write the preamble. */
int smelt_packer_init(smelt_packer *p, const char *out, int level, int threads, uint64_t chunk);
/* Queue one chunk (written at the next flush, which comes when the batch is full). */
int smelt_packer_add(smelt_packer *p, smelt_tensor *t, const uint8_t *src, uint8_t *owned, size_t n,
                     smelt_planes planes, smelt_chunk *dst);
int smelt_packer_flush(smelt_packer *p);
/* Hand back the used source pages not yet released (they are released in large batches). */
void smelt_packer_release(smelt_packer *p);
/* The mapped source's bytes up to `end` into the file checksum (file_h). */
void smelt_packer_hash_to(smelt_packer *p, uint64_t end);
/* Append a tensor (name copied) to f's list. */
int smelt_file_add_tensor(smelt_file *f, const char *name, sm_type type, int n_dims, const int64_t *shape, uint64_t off,
                          uint64_t nbytes);
/* t's chunk list for chunks of `chunk` bytes */
int smelt_alloc_chunks(smelt_tensor *t, uint64_t chunk);
/* The header (format, version, tool, source, model (taken), provenance (copied), files (the
 * caller appends smelt_file_json of each)); NULL when out of memory. */
cJSON *smelt_header_new(const char *source_name, const char *source_kind, const char *command_line, cJSON *model,
                        const cJSON *provenance);
cJSON *smelt_file_json(const smelt_file *f);
/* A GGUF metadata value as the header's model.gguf_metadata shows it. */
cJSON *smelt_value_json(const sm_gguf_value *v);
/* Header and trailer, then commit the output (p->o is NULL afterwards). */
int smelt_packer_commit(smelt_packer *p, cJSON *header);
/* Free; removes the output unless it was committed. */
void smelt_packer_free(smelt_packer *p);

/* ---- the streaming writer (smelt_stream.c): one original file, whose bytes arrive in file
 * order, packed as it comes (the sink's .smelt output). Tensors are declared before their first
 * byte arrives; every byte outside a tensor is kept in memory (a GGUF's header and padding) and
 * encoded at the end, so the output is byte for byte what sm_smelt_pack makes of the file. */
typedef struct smelt_stream smelt_stream;
/* o: level, raw, threads, chunk_size, command_line, provenance (quiet is implied). */
int smelt_stream_open(smelt_stream **out, const char *path, const char *file_name, const char *kind,
                      const sm_smelt_pack_opts *o);
int smelt_stream_tensor(smelt_stream *st, const char *name, sm_type type, int n_dims, const int64_t *shape,
                        uint64_t src_off, uint64_t nbytes);
uint64_t smelt_stream_pos(const smelt_stream *st); /* bytes fed so far */
int smelt_stream_feed(smelt_stream *st, const void *data, size_t n);
/* Encode the rest, write the header (model: taken) and commit. */
int smelt_stream_finish(smelt_stream *st, cJSON *model);
void smelt_stream_free(smelt_stream *st); /* removes the output unless committed; NULL is fine */

/* "%016llx" of an xxh3 value into buf (17 bytes). */
void smelt_hex64(uint64_t v, char buf[17]);
/* kind of a file by its first bytes: "gguf", "safetensors", "other" */
const char *smelt_kind_of(const uint8_t *p, uint64_t n);

#endif
