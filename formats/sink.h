/* sink.h - where a producer's tensors go: one interface, one implementation per output format.
 *
 * Producers (convert, quantize, gptq, lora export, imatrix) describe their output as
 *   - metadata: an sm_meta (formats.h), an ordered key/value list independent of any file
 *     format (GGUF value types; keys keep the order of first setting);
 *   - tensors, declared up front (name, type, shape), whose bytes are then streamed in
 *     declaration order (a tensor may come in several calls; one call never spans two).
 * and hand both to an sm_sink, which turns them into files:
 *
 *     sm_sink *s = sm_sink_open(path, &opts);        // nothing is created yet
 *     sm_meta_set_u32(sm_sink_meta(s), "k", 1);      // metadata, any time before begin
 *     sm_sink_add(s, "a.weight", SM_TYPE_Q4_K, 2, shape);  // every tensor, before begin
 *     sm_sink_begin(s);                              // files are opened (temporaries)
 *     sm_sink_write(s, bytes, n); ...                // each tensor's bytes, in order
 *     sm_sink_finish(s);                             // all files committed (renamed) at once
 *     sm_sink_close(s);                              // frees; aborts (removes temporaries) if
 *                                                    // finish did not succeed
 *
 * Every output is atomic: files are written as temporaries beside their targets (sm_outfile:
 * removed on SIGINT/SIGTERM/SIGHUP, on a write error such as ENOSPC, and on abort) and renamed
 * only when the whole output is complete; a split set is renamed part by part at finish, and a
 * failure there removes the parts already renamed, so no partial set is left.
 *
 * Formats (sm_sink_format):
 *   GGUF         one GGUF v3 file, byte for byte what ggml's gguf_write_to_file writes;
 *                with split limits (opts.split_max_bytes / split_max_tensors) the layout of
 *                llama.cpp's llama-gguf-split: PREFIX-00001-of-0000N.gguf ... (PREFIX = path
 *                without ".gguf"), all metadata in the first file, and in every file
 *                split.no (u16), split.tensors.count (i32), split.count (u16) appended;
 *                byte for byte the files llama-gguf-split makes of the unsplit output.
 *   SAFETENSORS  one .safetensors file; string metadata values go to "__metadata__", other
 *                values are refused at begin; GGUF-only (block-quantized) types are refused.
 *   SMELT        the packed .smelt format (formats/smelt_*.c, see its document).
 *
 * Adding a format: one file that defines `const sm_sink_impl sm_sink_impl_X` (below), an
 * enum value, and its entry in sink.c's table; the command gets it through an option.
 * An implementation sees the complete declaration list and metadata at begin (s->tensors,
 * s->meta), then gets every write with the tensor index and offset already worked out.
 */
#ifndef SMELT_SINK_H
#define SMELT_SINK_H

#include "formats/formats.h"

typedef enum sm_sink_format {
    SM_SINK_GGUF = 0,
    SM_SINK_SAFETENSORS,
    SM_SINK_SMELT,
    SM_SINK_N_FORMATS
} sm_sink_format;

typedef struct sm_sink_opts {
    sm_sink_format format;
    /* GGUF only: split into parts of at most this many bytes of tensor data (each tensor's
     * size padded to 32, as llama-gguf-split counts; a tensor larger than the limit gets a
     * part of its own) and/or this many tensors; 0 = no limit. Either non-zero: split layout
     * (even if one part results, as llama-gguf-split does). */
    uint64_t split_max_bytes;
    uint64_t split_max_tensors;
    /* .smelt only (the pack implementation reads them): zstd level (0 = default) and raw
     * (store tensor data uncompressed and aligned). */
    int level;
    bool raw;
    /* Called at finish for every file committed (first part first), e.g. to record the
     * artifacts in a manifest; NULL: none. */
    void (*on_file)(void *ctx, const char *path);
    void *on_file_ctx;
} sm_sink_opts;

/* One declared tensor. shape outermost-first (as sm_tensor). */
typedef struct sm_sink_tensor {
    char *name;
    sm_type type;
    int n_dims;
    int64_t shape[SM_MAX_DIMS];
    uint64_t nbytes; /* sm_type_row_bytes(type, innermost) * rows */
} sm_sink_tensor;

typedef struct sm_sink sm_sink;

/* An output format. Every function returns 0 or -1 with sm_error set (naming the file). */
typedef struct sm_sink_impl {
    const char *name; /* "gguf", "safetensors", "smelt" */
    /* The declarations and metadata are final; open the output (temporaries). */
    int (*begin)(sm_sink *s);
    /* Bytes [offset, offset + n) of tensor i; calls come in tensor order, offsets contiguous;
     * the last call of a tensor has offset + n == nbytes. */
    int (*write)(sm_sink *s, size_t i, uint64_t offset, const void *data, uint64_t n);
    /* Everything was written: complete and commit the output; report each file committed
     * through sm_sink_add_file. On failure nothing may be left at the targets. */
    int (*finish)(sm_sink *s);
    /* Remove the temporaries (after a failed begin/write/finish too, or instead of finish);
     * free s->impl. Must accept s->impl == NULL. */
    void (*abort)(sm_sink *s);
} sm_sink_impl;

struct sm_sink {
    const sm_sink_impl *impl_ops;
    void *impl;          /* the implementation's state */
    char *path;          /* the output path as given */
    sm_sink_opts opts;
    sm_meta *meta;
    size_t n_tensors, cap_tensors;
    sm_sink_tensor *tensors;
    int state;           /* 0 declaring, 1 writing, 2 finished, -1 failed */
    size_t cur;          /* tensor being written */
    uint64_t cur_done;
    size_t n_files;
    char **files;        /* committed files, in order (after finish) */
};

/* "gguf", "safetensors", "smelt" -> format; -1 if unknown. */
int sm_sink_format_parse(const char *s, sm_sink_format *out);
const char *sm_sink_format_name(sm_sink_format f);

/* A sink writing `path`; NULL (sm_error) on a bad option or out of memory. opts may be NULL
 * (one GGUF file). */
sm_sink *sm_sink_open(const char *path, const sm_sink_opts *opts);
/* The metadata to fill (owned by the sink). */
sm_meta *sm_sink_meta(sm_sink *s);
/* Declare a tensor (shape outermost-first); -1 on a repeated name, a bad shape or a row that
 * does not fit the type's block. */
int sm_sink_add(sm_sink *s, const char *name, sm_type type, int n_dims, const int64_t *shape);
int sm_sink_begin(sm_sink *s);
int sm_sink_write(sm_sink *s, const void *data, uint64_t nbytes);
/* Commit; -1 if a tensor is incomplete or committing failed (then nothing is left). */
int sm_sink_finish(sm_sink *s);
/* Files written (after a successful finish): a split set lists every part, first first. */
size_t sm_sink_n_files(const sm_sink *s);
const char *sm_sink_file(const sm_sink *s, size_t i);
/* Free; removes the temporaries unless finish succeeded. NULL is fine. */
void sm_sink_close(sm_sink *s);

/* For implementations: record a committed file. */
int sm_sink_add_file(sm_sink *s, const char *path);

/* The implementations (sink.c's table). */
extern const sm_sink_impl sm_sink_impl_gguf;        /* one file or a split set */
extern const sm_sink_impl sm_sink_impl_safetensors;
extern const sm_sink_impl sm_sink_impl_smelt;        /* formats/sink_smelt.c */

/* Split file naming, as llama.cpp's llama_split_path: "PREFIX-%05d-of-%05d.gguf" for part
 * i (0-based) of n; malloc'ed. The prefix of an output path: the path without ".gguf". */
char *sm_split_path(const char *prefix, int i, int n);
char *sm_split_prefix_of(const char *out_path);

#endif
