/* pickle_internal.h - a restricted unpickler for PyTorch state dicts (no Python involved).
 *
 * pickle.c is the virtual machine: it decodes the opcodes torch.save emits into a small object
 * model (none, bool, int, float, str, tuple, list, dict, and a fixed set of named globals) and
 * refuses everything else by name and offset. Nothing is ever looked up by name or executed:
 * GLOBAL/STACK_GLOBAL only resolve to entries of a fixed allowlist, and REDUCE / BINPERSID /
 * BUILD call the C functions in pickle_torch.c, which implement what the allowed torch
 * callables would compute (tensor views of storages) with every argument checked.
 *
 * Every read is bounds-checked; the stack, the mark stack, the memo, string lengths, object
 * count and total memory are limited (memory grows at most linearly with the pickle size). */
#ifndef SMELT_PICKLE_INTERNAL_H
#define SMELT_PICKLE_INTERNAL_H

#include "core/core.h"

#define SM_PK_MAX_STACK (1u << 20)   /* values on the stack */
#define SM_PK_MAX_MARKS 256u         /* nested MARKs */
#define SM_PK_MAX_STR (1u << 20)     /* bytes in one string */
#define SM_PK_MAX_GLOBAL_NAME 256u   /* bytes in a GLOBAL module or name */
#define SM_PK_MAX_PICKLE ((uint64_t)1 << 31)
#define SM_PK_MAX_DEPTH 32           /* nesting of dicts in a state dict */

typedef enum pk_kind {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_FLOAT,
    PK_STR,
    PK_TUPLE,
    PK_LIST,
    PK_DICT,    /* dict and collections.OrderedDict (insertion order kept) */
    PK_GLOBAL,  /* one of the allowlisted names below */
    PK_STORAGE, /* the result of a persistent id: bytes of a storage */
    PK_TENSOR,  /* the result of _rebuild_tensor_v2/_v3/_rebuild_parameter */
} pk_kind;

typedef enum pk_global {
    PKG_ORDERED_DICT,
    PKG_REBUILD_TENSOR_V2,
    PKG_REBUILD_TENSOR_V3,
    PKG_REBUILD_PARAMETER,
    PKG_REBUILD_PARAMETER_WITH_STATE,
    PKG_STORAGE_TYPE, /* torch.FloatStorage, ..., torch.UntypedStorage (type: U8) */
    PKG_DTYPE,        /* torch.float32, ... */
} pk_global;

typedef struct pk_tensor {
    sm_type type;
    int n_dims;
    int64_t shape[SM_MAX_DIMS];
    bool contiguous; /* row-major contiguous strides (checked when the tensor is named) */
    const uint8_t *data;
    uint64_t nbytes;
} pk_tensor;

typedef struct pk_obj pk_obj;
struct pk_obj {
    pk_kind kind;
    bool walked; /* a dict already flattened (a dict reached twice would repeat its tensors) */
    union {
        bool b;
        int64_t i;
        double f;
        struct { const char *p; size_t len; } str; /* UTF-8, in the pickle buffer, not NUL-terminated */
        struct { pk_obj **items; size_t n, cap; } seq; /* tuple / list items; dict: key, value, key, ... */
        struct { pk_global fn; sm_type type; const char *name; } global;
        struct { sm_type type; const uint8_t *data; uint64_t numel; } storage;
        pk_tensor *tensor;
    } u;
};

/* Resolve a storage key (from a persistent id) to its bytes. */
typedef int (*sm_pk_storage_fn)(void *ctx, const char *key, const uint8_t **data, uint64_t *nbytes);

typedef struct pk_vm {
    const uint8_t *buf;
    size_t len, pos, op_pos; /* op_pos: offset of the opcode being executed (for messages) */
    const char *what;        /* names the pickle in messages ("x.bin: archive/data.pkl") */
    sm_pk_storage_fn storage_fn;
    void *storage_ctx;
    pk_obj **stack;
    size_t sp, stack_cap;
    size_t marks[SM_PK_MAX_MARKS];
    size_t n_marks;
    pk_obj **memo;
    size_t memo_cap;
    struct pk_block *blocks; /* arena */
    uint64_t arena_bytes, arena_limit;
} pk_vm;

/* Error "what: <message> at offset N" (N: the current opcode's offset); returns -1. */
int pk_fail(pk_vm *vm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void *pk_alloc(pk_vm *vm, size_t bytes); /* zeroed, from the arena; NULL after pk_fail */
pk_obj *pk_new(pk_vm *vm, pk_kind kind);
const char *pk_kind_name(pk_kind k);

/* pickle.c: run the pickle to its STOP; *root is the unpickled object (arena-owned). */
int pk_run(pk_vm *vm, const uint8_t *buf, size_t len, const char *what, sm_pk_storage_fn fn, void *ctx, pk_obj **root);
void pk_vm_free(pk_vm *vm);

/* pickle_torch.c: what the allowed callables compute. */
int pk_call(pk_vm *vm, const pk_obj *fn, const pk_obj *args, pk_obj **out);      /* REDUCE */
int pk_persistent_load(pk_vm *vm, const pk_obj *pid, pk_obj **out);              /* BINPERSID */

/* Unpickle a torch.save'd state dict and list its tensors (zero-copy views of the storages).
 * Names are malloc'ed; free the list with sm_pickle_free_tensors. The root must be a dict; see
 * pickle_torch.c for how wrapped and nested state dicts are flattened. */
int sm_pickle_state_dict(const uint8_t *buf, size_t len, const char *what, sm_pk_storage_fn fn, void *ctx, sm_tensor **out,
                         size_t *n_out);
void sm_pickle_free_tensors(sm_tensor *t, size_t n);

#endif
