/* pickle.c - the restricted unpickler virtual machine (see pickle_internal.h).
 *
 * Accepted opcodes (protocols 2 to 5, what torch.save emits for state dicts):
 *   PROTO FRAME STOP MARK EMPTY_DICT EMPTY_LIST EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
 *   BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET BININT BININT1 BININT2 LONG1
 *   BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINSTRING SHORT_BINSTRING NONE NEWTRUE NEWFALSE
 *   BINFLOAT GLOBAL STACK_GLOBAL BINPERSID REDUCE SETITEM SETITEMS APPEND APPENDS BUILD
 * Any other opcode is refused naming it and its offset. GLOBAL and STACK_GLOBAL resolve only
 * names in the allowlist below; REDUCE calls only the allowlisted callables (implemented in
 * C in pickle_torch.c); BUILD is accepted only on a dict (OrderedDict state such as
 * state_dict's `_metadata`, which is ignored). */
#include "pickle_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

int pk_fail(pk_vm *vm, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sm_error("%s: %s at offset %zu", vm->what, msg, vm->op_pos);
}

const char *pk_kind_name(pk_kind k) {
    static const char *const names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* ---- memory: one arena per run, with a limit proportional to the pickle's size ---- */

struct pk_block {
    struct pk_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

static int account(pk_vm *vm, uint64_t bytes) {
    if (bytes > vm->arena_limit - vm->arena_bytes)
        return pk_fail(vm, "unpickling needs more than %llu bytes of memory, too much for a %zu-byte pickle",
                       (unsigned long long)vm->arena_limit, vm->len);
    vm->arena_bytes += bytes;
    return 0;
}

void *pk_alloc(pk_vm *vm, size_t bytes) {
    bytes = (bytes + 15) & ~(size_t)15;
    struct pk_block *b = vm->blocks;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = bytes > 65536 ? bytes : 65536;
        if (account(vm, cap)) return NULL;
        b = malloc(sizeof *b + cap);
        if (!b) {
            pk_fail(vm, "out of memory");
            return NULL;
        }
        b->next = vm->blocks;
        b->used = 0;
        b->cap = cap;
        vm->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += bytes;
    memset(p, 0, bytes);
    return p;
}

pk_obj *pk_new(pk_vm *vm, pk_kind kind) {
    pk_obj *o = pk_alloc(vm, sizeof *o);
    if (o) o->kind = kind;
    return o;
}

void pk_vm_free(pk_vm *vm) {
    for (struct pk_block *b = vm->blocks, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(vm->stack);
    free(vm->memo);
    memset(vm, 0, sizeof *vm);
}

/* ---- the allowlist ---- */

typedef struct allowed {
    const char *module, *name;
    pk_global fn;
    sm_type type;
} allowed;

static const allowed ALLOWED[] = {
    {"collections", "OrderedDict", PKG_ORDERED_DICT, SM_TYPE_INVALID},
    {"torch._utils", "_rebuild_tensor_v2", PKG_REBUILD_TENSOR_V2, SM_TYPE_INVALID},
    {"torch._utils", "_rebuild_tensor_v3", PKG_REBUILD_TENSOR_V3, SM_TYPE_INVALID},
    {"torch._utils", "_rebuild_parameter", PKG_REBUILD_PARAMETER, SM_TYPE_INVALID},
    {"torch._utils", "_rebuild_parameter_with_state", PKG_REBUILD_PARAMETER_WITH_STATE, SM_TYPE_INVALID},
    {"torch", "FloatStorage", PKG_STORAGE_TYPE, SM_TYPE_F32},
    {"torch", "HalfStorage", PKG_STORAGE_TYPE, SM_TYPE_F16},
    {"torch", "BFloat16Storage", PKG_STORAGE_TYPE, SM_TYPE_BF16},
    {"torch", "DoubleStorage", PKG_STORAGE_TYPE, SM_TYPE_F64},
    {"torch", "LongStorage", PKG_STORAGE_TYPE, SM_TYPE_I64},
    {"torch", "IntStorage", PKG_STORAGE_TYPE, SM_TYPE_I32},
    {"torch", "ShortStorage", PKG_STORAGE_TYPE, SM_TYPE_I16},
    {"torch", "CharStorage", PKG_STORAGE_TYPE, SM_TYPE_I8},
    {"torch", "ByteStorage", PKG_STORAGE_TYPE, SM_TYPE_U8},
    {"torch", "BoolStorage", PKG_STORAGE_TYPE, SM_TYPE_BOOL},
    {"torch", "UntypedStorage", PKG_STORAGE_TYPE, SM_TYPE_U8},
    {"torch.storage", "UntypedStorage", PKG_STORAGE_TYPE, SM_TYPE_U8},
    {"torch", "float32", PKG_DTYPE, SM_TYPE_F32},
    {"torch", "float16", PKG_DTYPE, SM_TYPE_F16},
    {"torch", "bfloat16", PKG_DTYPE, SM_TYPE_BF16},
    {"torch", "float64", PKG_DTYPE, SM_TYPE_F64},
    {"torch", "int64", PKG_DTYPE, SM_TYPE_I64},
    {"torch", "int32", PKG_DTYPE, SM_TYPE_I32},
    {"torch", "int16", PKG_DTYPE, SM_TYPE_I16},
    {"torch", "int8", PKG_DTYPE, SM_TYPE_I8},
    {"torch", "uint8", PKG_DTYPE, SM_TYPE_U8},
    {"torch", "bool", PKG_DTYPE, SM_TYPE_BOOL},
    {"torch", "float8_e4m3fn", PKG_DTYPE, SM_TYPE_F8_E4M3},
    {"torch", "float8_e5m2", PKG_DTYPE, SM_TYPE_F8_E5M2},
    {"torch", "uint16", PKG_DTYPE, SM_TYPE_U16},
    {"torch", "uint32", PKG_DTYPE, SM_TYPE_U32},
    {"torch", "uint64", PKG_DTYPE, SM_TYPE_U64},
};

static bool str_is(const char *p, size_t n, const char *s) { return strlen(s) == n && memcmp(p, s, n) == 0; }

/* A printable copy of (possibly hostile) bytes for a message. */
static const char *shown(const char *p, size_t n, char *buf, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++) buf[k++] = ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) ? '?' : p[i];
    if (n > k) { memcpy(buf + k, "...", 3); k += 3; }
    buf[k] = 0;
    return buf;
}

static int resolve_global(pk_vm *vm, const char *mod, size_t mlen, const char *name, size_t nlen, pk_obj **out) {
    for (size_t i = 0; i < sizeof ALLOWED / sizeof ALLOWED[0]; i++) {
        if (!str_is(mod, mlen, ALLOWED[i].module) || !str_is(name, nlen, ALLOWED[i].name)) continue;
        pk_obj *o = pk_new(vm, PK_GLOBAL);
        if (!o) return -1;
        o->u.global.fn = ALLOWED[i].fn;
        o->u.global.type = ALLOWED[i].type;
        o->u.global.name = ALLOWED[i].name;
        *out = o;
        return 0;
    }
    char m[96], n[96];
    shown(mod, mlen, m, sizeof m);
    shown(name, nlen, n, sizeof n);
    if (str_is(mod, mlen, "torch") && nlen > 7 && memcmp(name + nlen - 7, "Storage", 7) == 0)
        return pk_fail(vm, "unsupported tensor storage type 'torch.%s' (refusing pickle global 'torch.%s')", n, n);
    return pk_fail(vm, "refusing pickle global '%s.%s'", m, n);
}

/* ---- opcodes ---- */

enum {
    OP_MARK = '(', OP_STOP = '.', OP_BINFLOAT = 'G', OP_BININT = 'J', OP_BININT1 = 'K', OP_BININT2 = 'M', OP_NONE = 'N',
    OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_BINSTRING = 'T', OP_SHORT_BINSTRING = 'U', OP_BINUNICODE = 'X', OP_APPEND = 'a',
    OP_BUILD = 'b', OP_GLOBAL = 'c', OP_APPENDS = 'e', OP_BINGET = 'h', OP_LONG_BINGET = 'j', OP_EMPTY_LIST = ']',
    OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't', OP_SETITEMS = 'u', OP_EMPTY_DICT = '}',
    OP_EMPTY_TUPLE = ')', OP_PROTO = 0x80, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a, OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94, OP_FRAME = 0x95,
};

/* Names of all pickle opcodes, for messages about the refused ones. */
static const char *opname(uint8_t op) {
    static const struct { uint8_t op; const char *name; } N[] = {
        {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"}, {'F', "FLOAT"}, {'I', "INT"},
        {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"}, {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"},
        {'Q', "BINPERSID"}, {'R', "REDUCE"}, {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"},
        {'V', "UNICODE"}, {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
        {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"}, {'j', "LONG_BINGET"},
        {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"}, {'q', "BINPUT"}, {'r', "LONG_BINPUT"},
        {'s', "SETITEM"}, {'t', "TUPLE"}, {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {0x80, "PROTO"},
        {0x81, "NEWOBJ"}, {0x82, "EXT1"}, {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"},
        {0x87, "TUPLE3"}, {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"}, {'B', "BINBYTES"},
        {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
        {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"}, {0x93, "STACK_GLOBAL"},
        {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"}, {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"},
    };
    for (size_t i = 0; i < sizeof N / sizeof N[0]; i++)
        if (N[i].op == op) return N[i].name;
    return "unknown";
}

static int need(pk_vm *vm, size_t n, const char *op) {
    if (vm->len - vm->pos < n) return pk_fail(vm, "truncated pickle: %s needs %zu more bytes, %zu left", op, n, vm->len - vm->pos);
    return 0;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static size_t base(const pk_vm *vm) { return vm->n_marks ? vm->marks[vm->n_marks - 1] : 0; }

static int push(pk_vm *vm, pk_obj *o) {
    if (!o) return -1;
    if (vm->sp == vm->stack_cap) {
        if (vm->stack_cap >= SM_PK_MAX_STACK) return pk_fail(vm, "pickle stack overflow (more than %u values)", SM_PK_MAX_STACK);
        size_t cap = vm->stack_cap ? vm->stack_cap * 2 : 256;
        if (account(vm, (cap - vm->stack_cap) * sizeof(pk_obj *))) return -1;
        pk_obj **s = realloc(vm->stack, cap * sizeof *s);
        if (!s) return pk_fail(vm, "out of memory");
        vm->stack = s;
        vm->stack_cap = cap;
    }
    vm->stack[vm->sp++] = o;
    return 0;
}

static int pop(pk_vm *vm, pk_obj **o, const char *op) {
    *o = NULL;
    if (vm->sp <= base(vm)) return pk_fail(vm, "%s on an empty stack", op);
    *o = vm->stack[--vm->sp];
    return 0;
}

static int top(pk_vm *vm, pk_obj **o, const char *op) {
    *o = NULL;
    if (vm->sp <= base(vm)) return pk_fail(vm, "%s on an empty stack", op);
    *o = vm->stack[vm->sp - 1];
    return 0;
}

/* Items since the last MARK: stack[*start, vm->sp); the mark is removed. */
static int pop_mark(pk_vm *vm, size_t *start, const char *op) {
    *start = vm->sp;
    if (!vm->n_marks) return pk_fail(vm, "%s without a MARK", op);
    *start = vm->marks[--vm->n_marks];
    return 0;
}

static pk_obj *new_seq(pk_vm *vm, pk_kind kind, pk_obj *const *items, size_t n) {
    pk_obj *o = pk_new(vm, kind);
    if (!o) return NULL;
    if (n) {
        o->u.seq.items = pk_alloc(vm, n * sizeof *items);
        if (!o->u.seq.items) return NULL;
        memcpy(o->u.seq.items, items, n * sizeof *items);
    }
    o->u.seq.n = o->u.seq.cap = n;
    return o;
}

/* Append to a list or dict (arena arrays grow by doubling; the old array is abandoned). */
static int seq_append(pk_vm *vm, pk_obj *o, pk_obj *const *items, size_t n) {
    if (n == 0) return 0;
    if (o->u.seq.cap - o->u.seq.n < n) {
        size_t cap = o->u.seq.cap ? o->u.seq.cap : 4;
        while (cap - o->u.seq.n < n) cap *= 2;
        pk_obj **a = pk_alloc(vm, cap * sizeof *a);
        if (!a) return -1;
        if (o->u.seq.n) memcpy(a, o->u.seq.items, o->u.seq.n * sizeof *a);
        o->u.seq.items = a;
        o->u.seq.cap = cap;
    }
    memcpy(o->u.seq.items + o->u.seq.n, items, n * sizeof *items);
    o->u.seq.n += n;
    return 0;
}

static int memo_put(pk_vm *vm, uint64_t idx, uint64_t *n_puts) {
    pk_obj *o;
    if (top(vm, &o, "memo put")) return -1;
    /* The pickler numbers memo entries densely from 0; anything beyond is refused. */
    if (idx > *n_puts) return pk_fail(vm, "memo index %llu out of range (%llu entries so far)", (unsigned long long)idx,
                                      (unsigned long long)*n_puts);
    if (idx >= vm->memo_cap) {
        size_t cap = vm->memo_cap ? vm->memo_cap * 2 : 256;
        while (cap <= idx) cap *= 2;
        if (account(vm, (cap - vm->memo_cap) * sizeof(pk_obj *))) return -1;
        pk_obj **m = realloc(vm->memo, cap * sizeof *m);
        if (!m) return pk_fail(vm, "out of memory");
        memset(m + vm->memo_cap, 0, (cap - vm->memo_cap) * sizeof *m);
        vm->memo = m;
        vm->memo_cap = cap;
    }
    vm->memo[idx] = o;
    if (idx == *n_puts) (*n_puts)++;
    return 0;
}

static int memo_get(pk_vm *vm, uint64_t idx) {
    if (idx >= vm->memo_cap || !vm->memo[idx]) return pk_fail(vm, "memo index %llu was never set", (unsigned long long)idx);
    return push(vm, vm->memo[idx]);
}

static bool utf8_valid(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) k = 1, cp = c & 0x1f;
        else if ((c & 0xf0) == 0xe0) k = 2, cp = c & 0x0f;
        else if ((c & 0xf8) == 0xf0) k = 3, cp = c & 0x07;
        else return false;
        if (n - i <= k) return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int op_string(pk_vm *vm, int len_bytes, bool is_signed, const char *op) {
    if (need(vm, (size_t)len_bytes, op)) return -1;
    uint64_t n = le(vm->buf + vm->pos, len_bytes);
    if (is_signed && (n & 0x80000000u)) return pk_fail(vm, "%s with a negative length", op);
    vm->pos += (size_t)len_bytes;
    if (n > SM_PK_MAX_STR) return pk_fail(vm, "%s of %llu bytes exceeds the string limit of %u", op, (unsigned long long)n, SM_PK_MAX_STR);
    if (need(vm, (size_t)n, op)) return -1;
    const uint8_t *s = vm->buf + vm->pos;
    if (!utf8_valid(s, (size_t)n)) return pk_fail(vm, "%s is not valid UTF-8", op);
    vm->pos += (size_t)n;
    pk_obj *o = pk_new(vm, PK_STR);
    if (!o) return -1;
    o->u.str.p = (const char *)s;
    o->u.str.len = (size_t)n;
    return push(vm, o);
}

static int op_long1(pk_vm *vm) {
    if (need(vm, 1, "LONG1")) return -1;
    size_t n = vm->buf[vm->pos++];
    if (need(vm, n, "LONG1")) return -1;
    const uint8_t *p = vm->buf + vm->pos;
    vm->pos += n;
    int64_t v = 0;
    if (n) {
        size_t k = n < 8 ? n : 8;
        uint64_t u = le(p, (int)k);
        bool neg = p[n - 1] & 0x80;
        if (k < 8 && neg) u |= ~(uint64_t)0 << (8 * k);
        for (size_t i = 8; i < n; i++)
            if (p[i] != (neg ? 0xff : 0x00)) return pk_fail(vm, "LONG1 integer of %zu bytes does not fit in 64 bits", n);
        if (n > 8 && (bool)(p[7] & 0x80) != neg) return pk_fail(vm, "LONG1 integer of %zu bytes does not fit in 64 bits", n);
        memcpy(&v, &u, sizeof v);
    }
    pk_obj *o = pk_new(vm, PK_INT);
    if (!o) return -1;
    o->u.i = v;
    return push(vm, o);
}

static int op_int(pk_vm *vm, int bytes, bool is_signed, const char *op) {
    if (need(vm, (size_t)bytes, op)) return -1;
    uint64_t u = le(vm->buf + vm->pos, bytes);
    vm->pos += (size_t)bytes;
    pk_obj *o = pk_new(vm, PK_INT);
    if (!o) return -1;
    o->u.i = is_signed ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
    return push(vm, o);
}

static int op_global(pk_vm *vm) {
    const char *part[2];
    size_t plen[2];
    for (int k = 0; k < 2; k++) {
        size_t lim = vm->len - vm->pos;
        if (lim > SM_PK_MAX_GLOBAL_NAME + 1) lim = SM_PK_MAX_GLOBAL_NAME + 1;
        const uint8_t *nl = memchr(vm->buf + vm->pos, '\n', lim);
        if (!nl) return pk_fail(vm, "GLOBAL %s name is unterminated or longer than %u bytes", k ? "attribute" : "module", SM_PK_MAX_GLOBAL_NAME);
        part[k] = (const char *)vm->buf + vm->pos;
        plen[k] = (size_t)(nl - (vm->buf + vm->pos));
        vm->pos += plen[k] + 1;
    }
    pk_obj *o;
    if (resolve_global(vm, part[0], plen[0], part[1], plen[1], &o)) return -1;
    return push(vm, o);
}

static int op_stack_global(pk_vm *vm) {
    pk_obj *name, *mod;
    if (pop(vm, &name, "STACK_GLOBAL") || pop(vm, &mod, "STACK_GLOBAL")) return -1;
    if (name->kind != PK_STR || mod->kind != PK_STR) return pk_fail(vm, "STACK_GLOBAL needs two strings");
    pk_obj *o;
    if (resolve_global(vm, mod->u.str.p, mod->u.str.len, name->u.str.p, name->u.str.len, &o)) return -1;
    return push(vm, o);
}

static int op_tuple_n(pk_vm *vm, size_t n, const char *op) {
    if (vm->sp - base(vm) < n) return pk_fail(vm, "%s needs %zu values on the stack", op, n);
    pk_obj *o = new_seq(vm, PK_TUPLE, vm->stack + vm->sp - n, n);
    if (!o) return -1;
    vm->sp -= n;
    return push(vm, o);
}

static int op_from_mark(pk_vm *vm, uint8_t op) {
    size_t start;
    if (pop_mark(vm, &start, opname(op))) return -1;
    size_t n = vm->sp - start;
    pk_obj *const *items = n ? vm->stack + start : NULL;
    vm->sp = start;
    if (op == OP_TUPLE) return push(vm, new_seq(vm, PK_TUPLE, items, n));
    pk_obj *target;
    if (top(vm, &target, opname(op))) return -1;
    if (op == OP_APPENDS) {
        if (target->kind != PK_LIST) return pk_fail(vm, "APPENDS to a %s (only lists)", pk_kind_name(target->kind));
        return seq_append(vm, target, items, n);
    }
    /* SETITEMS */
    if (target->kind != PK_DICT) return pk_fail(vm, "SETITEMS on a %s (only dicts)", pk_kind_name(target->kind));
    if (n % 2) return pk_fail(vm, "SETITEMS with an odd number (%zu) of keys and values", n);
    return seq_append(vm, target, items, n);
}

static int op_build(pk_vm *vm) {
    pk_obj *state, *inst;
    if (pop(vm, &state, "BUILD") || top(vm, &inst, "BUILD")) return -1;
    /* torch.save(module.state_dict()) pickles the OrderedDict's `_metadata` attribute this way. */
    if (inst->kind == PK_DICT && (state->kind == PK_DICT || state->kind == PK_NONE)) return 0;
    return pk_fail(vm, "refusing BUILD of a %s with a %s state (only OrderedDict attributes are accepted)", pk_kind_name(inst->kind),
                   pk_kind_name(state->kind));
}

static int step(pk_vm *vm, uint8_t op, pk_obj **root, bool *stop, uint64_t *n_puts) {
    pk_obj *a, *b;
    switch (op) {
    case OP_PROTO:
        if (need(vm, 1, "PROTO")) return -1;
        if (vm->buf[vm->pos] < 2 || vm->buf[vm->pos] > 5) return pk_fail(vm, "unsupported pickle protocol %u", vm->buf[vm->pos]);
        vm->pos++;
        return 0;
    case OP_FRAME: /* a hint for buffered readers: the whole pickle is in memory already */
        if (need(vm, 8, "FRAME")) return -1;
        if (le(vm->buf + vm->pos, 8) > vm->len - vm->pos - 8) return pk_fail(vm, "FRAME longer than the rest of the pickle");
        vm->pos += 8;
        return 0;
    case OP_STOP:
        if (pop(vm, root, "STOP")) return -1;
        *stop = true;
        return 0;
    case OP_MARK:
        if (vm->n_marks == SM_PK_MAX_MARKS) return pk_fail(vm, "MARKs nested deeper than %u", SM_PK_MAX_MARKS);
        vm->marks[vm->n_marks++] = vm->sp;
        return 0;
    case OP_EMPTY_DICT: return push(vm, pk_new(vm, PK_DICT));
    case OP_EMPTY_LIST: return push(vm, pk_new(vm, PK_LIST));
    case OP_EMPTY_TUPLE: return push(vm, pk_new(vm, PK_TUPLE));
    case OP_NONE: return push(vm, pk_new(vm, PK_NONE));
    case OP_NEWTRUE:
    case OP_NEWFALSE:
        if (!(a = pk_new(vm, PK_BOOL))) return -1;
        a->u.b = op == OP_NEWTRUE;
        return push(vm, a);
    case OP_TUPLE1: return op_tuple_n(vm, 1, "TUPLE1");
    case OP_TUPLE2: return op_tuple_n(vm, 2, "TUPLE2");
    case OP_TUPLE3: return op_tuple_n(vm, 3, "TUPLE3");
    case OP_TUPLE:
    case OP_APPENDS:
    case OP_SETITEMS: return op_from_mark(vm, op);
    case OP_BINPUT:
        if (need(vm, 1, "BINPUT")) return -1;
        return memo_put(vm, vm->buf[vm->pos++], n_puts);
    case OP_LONG_BINPUT:
        if (need(vm, 4, "LONG_BINPUT")) return -1;
        vm->pos += 4;
        return memo_put(vm, le(vm->buf + vm->pos - 4, 4), n_puts);
    case OP_MEMOIZE: return memo_put(vm, *n_puts, n_puts);
    case OP_BINGET:
        if (need(vm, 1, "BINGET")) return -1;
        return memo_get(vm, vm->buf[vm->pos++]);
    case OP_LONG_BINGET:
        if (need(vm, 4, "LONG_BINGET")) return -1;
        vm->pos += 4;
        return memo_get(vm, le(vm->buf + vm->pos - 4, 4));
    case OP_BININT: return op_int(vm, 4, true, "BININT");
    case OP_BININT1: return op_int(vm, 1, false, "BININT1");
    case OP_BININT2: return op_int(vm, 2, false, "BININT2");
    case OP_LONG1: return op_long1(vm);
    case OP_BINFLOAT: {
        if (need(vm, 8, "BINFLOAT")) return -1;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = u << 8 | vm->buf[vm->pos + (size_t)i]; /* big-endian */
        vm->pos += 8;
        if (!(a = pk_new(vm, PK_FLOAT))) return -1;
        memcpy(&a->u.f, &u, sizeof u);
        return push(vm, a);
    }
    case OP_BINUNICODE: return op_string(vm, 4, false, "BINUNICODE");
    case OP_SHORT_BINUNICODE: return op_string(vm, 1, false, "SHORT_BINUNICODE");
    case OP_BINUNICODE8: return op_string(vm, 8, false, "BINUNICODE8");
    case OP_BINSTRING: return op_string(vm, 4, true, "BINSTRING");
    case OP_SHORT_BINSTRING: return op_string(vm, 1, false, "SHORT_BINSTRING");
    case OP_GLOBAL: return op_global(vm);
    case OP_STACK_GLOBAL: return op_stack_global(vm);
    case OP_BINPERSID:
        if (pop(vm, &a, "BINPERSID") || pk_persistent_load(vm, a, &b)) return -1;
        return push(vm, b);
    case OP_REDUCE: {
        pk_obj *args, *fn, *res;
        if (pop(vm, &args, "REDUCE") || pop(vm, &fn, "REDUCE")) return -1;
        if (pk_call(vm, fn, args, &res)) return -1;
        return push(vm, res);
    }
    case OP_SETITEM: {
        pk_obj *kv[2], *d;
        if (pop(vm, &kv[1], "SETITEM") || pop(vm, &kv[0], "SETITEM") || top(vm, &d, "SETITEM")) return -1;
        if (d->kind != PK_DICT) return pk_fail(vm, "SETITEM on a %s (only dicts)", pk_kind_name(d->kind));
        return seq_append(vm, d, kv, 2);
    }
    case OP_APPEND: {
        pk_obj *l;
        if (pop(vm, &a, "APPEND") || top(vm, &l, "APPEND")) return -1;
        if (l->kind != PK_LIST) return pk_fail(vm, "APPEND to a %s (only lists)", pk_kind_name(l->kind));
        return seq_append(vm, l, &a, 1);
    }
    case OP_BUILD: return op_build(vm);
    default: return pk_fail(vm, "unsupported pickle opcode %s (0x%02x)", opname(op), op);
    }
}

int pk_run(pk_vm *vm, const uint8_t *buf, size_t len, const char *what, sm_pk_storage_fn fn, void *ctx, pk_obj **root) {
    memset(vm, 0, sizeof *vm);
    vm->buf = buf;
    vm->len = len;
    vm->what = what;
    vm->storage_fn = fn;
    vm->storage_ctx = ctx;
    if ((uint64_t)len > SM_PK_MAX_PICKLE)
        return pk_fail(vm, "pickle of %zu bytes exceeds the limit of %llu", len, (unsigned long long)SM_PK_MAX_PICKLE);
    vm->arena_limit = 32 * (uint64_t)len + (16u << 20);
    bool stop = false;
    uint64_t n_puts = 0;
    *root = NULL;
    while (!stop) {
        vm->op_pos = vm->pos;
        if (vm->pos >= vm->len) return pk_fail(vm, "truncated pickle: no STOP opcode");
        if (step(vm, vm->buf[vm->pos++], root, &stop, &n_puts)) return -1;
    }
    return 0;
}
