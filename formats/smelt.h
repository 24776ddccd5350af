/* smelt.h - the `.smelt` packed format (docs/smelt-format.md): one or more original files
 * (a GGUF, a safetensors file, the files of a Hugging Face model directory) stored so that
 * they come back byte for byte, each tensor either raw and aligned (zero-copy mmap) or in
 * independent zstd chunks with float tensors split into byte planes; a JSON header with the
 * model's metadata, provenance and a directory of every tensor with its xxh3-64.
 *
 * The reader treats its input as hostile: every offset and size is checked against the file
 * before use, and errors name the file, the offset and what was expected. */
#ifndef SMELT_SMELT_H
#define SMELT_SMELT_H

#include "core/core.h"

#include <cjson/cJSON.h>

#define SM_SMELT_MAGIC "SMELTPAK"
#define SM_SMELT_DEFAULT_LEVEL 3

/* ---- writing ---- */
typedef struct sm_smelt_pack_opts {
    int level;                 /* zstd level (1..19); 0: SM_SMELT_DEFAULT_LEVEL */
    bool raw;                  /* store every file verbatim (aligned, mmap-able) instead of compressing */
    int threads;               /* 0: sm_num_threads() */
    uint64_t chunk_size;       /* raw bytes per zstd chunk; 0: the default (1 MiB) */
    const char *command_line;  /* recorded in the header (may be NULL) */
    const cJSON *provenance;   /* extra provenance/recipe object copied into the header (may be NULL) */
    bool quiet;                /* no progress bar */
} sm_smelt_pack_opts;

/* Pack `in` (a GGUF file, a safetensors file or a model directory: every regular file in it)
 * into `out` (atomic: temporary + rename). */
int sm_smelt_pack(const char *in, const char *out, const sm_smelt_pack_opts *o);

/* ---- reading ---- */
typedef struct sm_smelt sm_smelt;

/* True if the path is a regular file starting with the .smelt magic. */
bool sm_smelt_is_file(const char *path);
/* Open (mmap) and validate the preamble, trailer, header JSON and directory. */
int sm_smelt_open(const char *path, sm_smelt **out);
/* The same over bytes in memory (not copied; `name` is used in errors). */
int sm_smelt_open_mem(const void *data, size_t size, const char *name, sm_smelt **out);
void sm_smelt_close(sm_smelt *s);
const cJSON *sm_smelt_header(const sm_smelt *s);
size_t sm_smelt_n_files(const sm_smelt *s);
const char *sm_smelt_file_name(const sm_smelt *s, size_t i);
const char *sm_smelt_file_kind(const sm_smelt *s, size_t i); /* "gguf", "safetensors", "other" */
uint64_t sm_smelt_file_size(const sm_smelt *s, size_t i);
size_t sm_smelt_n_tensors(const sm_smelt *s, size_t file);
/* Tensor i of a file: its view has data == NULL (use sm_smelt_read_tensor). */
const sm_tensor *sm_smelt_tensor(const sm_smelt *s, size_t file, size_t i);
/* A raw-stored tensor's bytes inside the mapping (zero-copy), else NULL. */
const void *sm_smelt_tensor_data(const sm_smelt *s, size_t file, size_t i);
/* Decode tensor i into dst (its nbytes) and check its xxh3-64. */
int sm_smelt_read_tensor(const sm_smelt *s, size_t file, size_t i, void *dst);

/* Rebuild file i byte for byte through `write` (called in file order), checking every tensor's,
 * the rest's and the whole file's checksums on the way. Memory: a bounded batch of chunks. */
typedef int (*sm_smelt_write_fn)(void *ctx, const void *buf, size_t n);
int sm_smelt_extract(const sm_smelt *s, size_t i, sm_smelt_write_fn write, void *ctx);

/* Every checksum of the file (header, every tensor, every file). 0 if all match; else -1 with
 * an error naming the first bad tensor (file, name, offset in the .smelt). n_tensors_checked
 * and bytes_checked (may be NULL) report what was verified. */
int sm_smelt_verify_file(const char *path, uint64_t *n_tensors_checked, uint64_t *bytes_checked);

/* Unpack to `out`: the original file (one file packed) or a directory of the files. Atomic. */
int sm_smelt_unpack(const char *path, const char *out);

/* Map a file for a reader: a plain file is mapped as sm_mmap_open does; a .smelt holding one
 * file maps that file's original bytes (raw storage: a zero-copy mapping of the .smelt, after
 * its checksums are checked; compressed: sm_smelt_map_lazy). A .smelt of several files is
 * refused (unpack it). */
int sm_smelt_mmap_open(sm_mmap *m, const char *path);
/* File `file` of s as a read-only mapping of its original bytes, produced on demand (see
 * core/lazymap.h): the bytes between its tensors are decoded and checked now, each tensor when
 * it is first read (its checksum checked before its bytes become readable; a damaged tensor
 * ends the process with an error naming it). No temporary file; memory stays within the decode
 * cache (SMELT_DECODE_CACHE_MB, default 256, at least two tensors). s stays open until m is
 * closed (sm_mmap_close); the caller still closes s. */
int sm_smelt_map_lazy(sm_smelt *s, size_t file, sm_mmap *m);
/* The kind of the one file a .smelt holds ("gguf", "safetensors", ...), NULL if it is not a
 * readable .smelt of one file. */
const char *sm_smelt_inner_kind(const char *path);

#endif
