/* core.h - the small foundation every smelt module stands on.
 *
 * Types (one enum for GGUF block types and checkpoint dtypes), a tensor view, errors,
 * half-precision conversion, mmap, atomic output files, progress and small file helpers.
 *
 * Conventions used across smelt:
 *  - Shapes are outermost-first, as in numpy / safetensors / PyTorch: a Linear weight is
 *    shape = {out_features, in_features}; the row length is shape[n_dims-1]. The GGUF module
 *    converts to and from ggml's ne[] (innermost-first) at the file boundary.
 *  - Functions that can fail return 0 on success and -1 on failure, after describing the
 *    failure with sm_error() (file, offset, what was expected). Callers propagate -1.
 */
#ifndef SMELT_CORE_H
#define SMELT_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SM_MAX_DIMS 8
#ifndef SM_VERSION /* set by CMake (project(VERSION) + git describe) for the files that use it: see CMakeLists.txt */
#define SM_VERSION "unknown"
#endif

/* Element types. Values below 64 are exactly ggml's `enum ggml_type` numbers (so GGUF files
 * carry them verbatim); values from 100 on are checkpoint dtypes ggml has no number for. */
typedef enum sm_type {
    SM_TYPE_F32 = 0,
    SM_TYPE_F16 = 1,
    SM_TYPE_Q4_0 = 2,
    SM_TYPE_Q4_1 = 3,
    SM_TYPE_Q5_0 = 6,
    SM_TYPE_Q5_1 = 7,
    SM_TYPE_Q8_0 = 8,
    SM_TYPE_Q8_1 = 9,
    SM_TYPE_Q2_K = 10,
    SM_TYPE_Q3_K = 11,
    SM_TYPE_Q4_K = 12,
    SM_TYPE_Q5_K = 13,
    SM_TYPE_Q6_K = 14,
    SM_TYPE_Q8_K = 15,
    SM_TYPE_IQ2_XXS = 16,
    SM_TYPE_IQ2_XS = 17,
    SM_TYPE_IQ3_XXS = 18,
    SM_TYPE_IQ1_S = 19,
    SM_TYPE_IQ4_NL = 20,
    SM_TYPE_IQ3_S = 21,
    SM_TYPE_IQ2_S = 22,
    SM_TYPE_IQ4_XS = 23,
    SM_TYPE_I8 = 24,
    SM_TYPE_I16 = 25,
    SM_TYPE_I32 = 26,
    SM_TYPE_I64 = 27,
    SM_TYPE_F64 = 28,
    SM_TYPE_IQ1_M = 29,
    SM_TYPE_BF16 = 30,
    SM_TYPE_TQ1_0 = 34,
    SM_TYPE_TQ2_0 = 35,
    SM_TYPE_MXFP4 = 39,
    SM_TYPE_GGML_COUNT = 40, /* ggml numbers are < this */

    SM_TYPE_U8 = 100,
    SM_TYPE_BOOL = 101,
    SM_TYPE_F8_E4M3 = 102,
    SM_TYPE_F8_E5M2 = 103,
    SM_TYPE_U16 = 104,
    SM_TYPE_U32 = 105,
    SM_TYPE_U64 = 106,
    SM_TYPE_INVALID = -1,
} sm_type;

typedef struct sm_type_info {
    const char *name;     /* ggml's name ("q4_K", "f16", ...) or the dtype's ("u8", "f8_e4m3") */
    int block_size;       /* elements per block (1 for plain types) */
    size_t block_bytes;   /* bytes per block */
    bool quantized;       /* a ggml block format */
    bool in_ggml;         /* has a ggml number (may appear in GGUF) */
} sm_type_info;

/* NULL for an unknown type. */
const sm_type_info *sm_type_get(sm_type t);
const char *sm_type_name(sm_type t); /* "?" for unknown */
/* Case-insensitive lookup by ggml name ("Q4_K", "q8_0", "bf16", "f32"); SM_TYPE_INVALID if none. */
sm_type sm_type_from_name(const char *name);
/* Bytes of n elements (n must be a multiple of the block size; returns 0 if not). */
uint64_t sm_type_row_bytes(sm_type t, int64_t n);

/* A view of a tensor. `data` usually points into an mmapped file. */
typedef struct sm_tensor {
    const char *name;
    sm_type type;
    int n_dims;
    int64_t shape[SM_MAX_DIMS]; /* outermost first */
    const void *data;
    uint64_t nbytes;
} sm_tensor;

int64_t sm_tensor_nelements(const sm_tensor *t);
int64_t sm_tensor_row_len(const sm_tensor *t);  /* shape[n_dims-1], 1 for scalars */
int64_t sm_tensor_nrows(const sm_tensor *t);    /* nelements / row_len */
/* "[2048, 256]" into buf. */
const char *sm_shape_str(const sm_tensor *t, char *buf, size_t cap);

/* ---- errors ---- */
/* Describe the current failure (thread-local, printf-style). Returns -1 for `return sm_error(...)`. */
int sm_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prepend context: "ctx: <previous message>". Returns -1. */
int sm_error_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *sm_last_error(void);
void sm_clear_error(void);

/* ---- numbers ---- */
float sm_f16_to_f32(uint16_t h);
uint16_t sm_f32_to_f16(float f);      /* round to nearest even, like ggml's GGML_FP32_TO_FP16 */
float sm_bf16_to_f32(uint16_t h);
uint16_t sm_f32_to_bf16(float f);     /* round to nearest even, NaN kept quiet (ggml's rule) */
float sm_f8e4m3_to_f32(uint8_t v);
float sm_f8e5m2_to_f32(uint8_t v);
/* Convert n elements of a plain (non-block) type to float. -1 for block types. */
int sm_plain_to_f32(sm_type t, const void *src, float *dst, int64_t n);
/* Convert n floats to F32, F16 or BF16. -1 for other types. */
int sm_f32_to_plain(sm_type t, const float *src, void *dst, int64_t n);
/* Index of the first NaN or infinity among n values of a plain float type (F32, F16, BF16,
 * F64, F8), or -1 (also for other types). */
int64_t sm_first_nonfinite(sm_type t, const void *p, int64_t n);
/* sm_error for the value at elem (of type t), element `index` of its tensor: "row R, column C
 * holds nan (...)" with row_len > 0, else "element I holds ...". Returns -1. */
int sm_nonfinite_error(sm_type t, const void *elem, int64_t index, int64_t row_len);
/* --allow-nonfinite: convert, quantize and lora merge pass NaN/Inf weights through instead of
 * refusing them (process-wide; off by default). */
void sm_set_allow_nonfinite(bool on);
bool sm_allow_nonfinite(void);

/* ---- files ---- */
typedef struct sm_mmap {
    void *data;
    size_t size;
    char *path;
    void *lazy; /* core/lazymap.h: bytes produced on demand (a compressed .smelt); NULL: a file */
} sm_mmap;
/* Map a whole file read-only (an empty file maps to data == NULL, size 0). */
int sm_mmap_open(sm_mmap *m, const char *path);
void sm_mmap_close(sm_mmap *m);
/* Stop counting the mapped pages under [p, p+n) as this process's memory (MADV_DONTNEED on
 * the whole pages it touches): the bytes stay readable, a later access faults them back in
 * from the page cache or the file. For streaming readers, after the bytes are used. Only the
 * part of the range inside the mapping is released (never heap memory). */
void sm_mmap_release(const sm_mmap *m, const void *p, uint64_t n);

/* Read a whole (small) file into a NUL-terminated buffer, refusing files over max_bytes. */
int sm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len);
bool sm_is_dir(const char *path);
bool sm_is_file(const char *path);
/* malloc'ed "a/b". */
char *sm_path_join(const char *a, const char *b);

/* Before any work: can `path` become an output? Its parent directory must exist and be writable;
 * a file output (dir_output false) must not be a directory or a special file, a directory output
 * must not be an existing non-directory. -1 with an error naming the path as given. */
int sm_check_output_path(const char *path, bool dir_output);

/* Atomic output: bytes go to "<path>.tmp.<pid>" and reach `path` only on commit. On abort,
 * on error, and on SIGINT/SIGTERM/SIGHUP the temporary file is removed. A file that replaces
 * another keeps its mode (a new one gets 0666 & ~umask); the directory is fsynced after the
 * rename unless durability is off. */
typedef struct sm_outfile sm_outfile;
sm_outfile *sm_outfile_open(const char *path);
int sm_outfile_write(sm_outfile *o, const void *buf, size_t n);
int sm_outfile_pad_to(sm_outfile *o, uint64_t alignment); /* zero bytes up to a multiple */
uint64_t sm_outfile_tell(const sm_outfile *o);
int sm_outfile_commit(sm_outfile *o); /* flush, fsync, rename; frees o */
/* Durability of committed files (default on): when off, commit skips the fsync. The file still
 * appears only complete (rename), but a power loss soon after may lose it. `--no-sync` and
 * SMELT_NO_SYNC=1 turn it off. */
void sm_outfile_set_durable(bool on);
bool sm_outfile_durable(void);
void sm_outfile_abort(sm_outfile *o); /* removes the temporary; frees o; NULL is fine */

/* Atomic output directory: built in "<path>.tmp.<pid>" (files created through sm_outdir_file)
 * and renamed into place on commit. An existing `path` is replaced only if it is empty or holds
 * nothing but files smelt writes into such a directory (model.safetensors, config.json,
 * tokenizer and generation files): the new directory is exchanged with it in one step
 * (renameat2 RENAME_EXCHANGE; where the file system cannot, the old one is moved aside first)
 * and the old one removed, so the target never holds a mix of old and new files. Anything
 * else at `path` is refused by sm_outdir_open (and by sm_outdir_check, for the checks before
 * the work). On abort, error and SIGINT/SIGTERM/SIGHUP the temporary directory is removed. */
typedef struct sm_outdir sm_outdir;
int sm_outdir_check(const char *path);
sm_outdir *sm_outdir_open(const char *path);
char *sm_outdir_file(sm_outdir *d, const char *name); /* malloc'ed path of `name` inside the temporary */
const char *sm_outdir_path(const sm_outdir *d);       /* the target */
int sm_outdir_commit(sm_outdir *d);                   /* rename into place; frees d */
void sm_outdir_abort(sm_outdir *d);                   /* removes the temporary; frees d; NULL is fine */

/* Temporaries removed (unlink, or rmdir for a directory) if SIGINT/SIGTERM/SIGHUP ends the
 * process; the handler then re-raises the signal. Returns a slot for sm_tmp_forget (-1 if the
 * table is full: the path is then only not removed on a signal). */
int sm_tmp_register(const char *path, bool is_dir);
void sm_tmp_forget(int slot);
/* Remove every registered temporary now (async-signal-safe: for a fatal exit). */
void sm_tmp_remove_all(void);

/* Refuse (error naming both paths) an output that is one of the inputs (same file, by device
 * and inode or by resolved path), lies inside an input directory (also when it does not exist
 * yet), or is a directory holding an input. NULL inputs and inputs that do not exist are
 * skipped. Call before any work. */
int sm_check_output_not_input(const char *out, const char *const *inputs, size_t n_inputs);

/* ---- progress ---- */
/* Progress bar on stderr, shown only when stderr is a terminal and not quiet. */
typedef struct sm_progress {
    const char *label;
    uint64_t total, done;
    double t_start, t_last;
    bool enabled;
    char note[64]; /* a running value shown after the bar ("PPL 12.34") */
} sm_progress;
void sm_progress_begin(sm_progress *p, const char *label, uint64_t total, bool quiet);
void sm_progress_update(sm_progress *p, uint64_t done);
/* Set the running value shown after the bar (printf-style), and redraw. */
void sm_progress_note(sm_progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clear the bar's line (to print a line of text above it); the next update redraws it. */
void sm_progress_clear(sm_progress *p);
void sm_progress_end(sm_progress *p);

/* Where work runs: the CPU, or a CUDA GPU through the optional plugin (kernels.h). */
typedef enum sm_device { SM_DEVICE_CPU, SM_DEVICE_CUDA } sm_device;

double sm_now(void);      /* monotonic seconds */
int sm_num_threads(void); /* SMELT_THREADS / OMP default, at most SM_MAX_THREADS */
#define SM_MAX_THREADS 512 /* ggml's GGML_MAX_N_THREADS; more makes libgomp abort on small machines */

#endif
