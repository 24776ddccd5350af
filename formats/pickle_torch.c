/* pickle_torch.c - what the allowlisted torch callables compute, and the state dict walk.
 *
 * BINPERSID ('storage', <torch.XStorage>, key, location, numel) becomes a storage: the bytes
 * of the archive entry the key names (resolved by the caller), checked to hold numel elements.
 * REDUCE of torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
 * hooks[, metadata]) or _rebuild_tensor_v3(..., dtype[, metadata]) becomes a tensor view of
 * the storage, bounds-checked; _rebuild_parameter[_with_state](tensor, ...) is the tensor;
 * collections.OrderedDict() is an empty dict. Nothing else can be called.
 *
 * The state dict: the unpickled root must be a dict. While it has no tensor values and holds
 * a dict under "state_dict", "model_state_dict", "model" or "module" (looked for in that
 * order), that dict is used instead (training checkpoints wrap the weights this way next to
 * optimizer state). In the chosen dict, tensors are the checkpoint's tensors, nested dicts are
 * flattened with '.' between the keys (as nn.Module names its parameters), None / bool / int /
 * float / str values are skipped, and anything else (lists, tuples, ...) is refused by name.
 * Tensors must be row-major contiguous; tensors sharing one storage are fine. */
#include "pickle_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_NAME 4096
#define MAX_KEY 256

static uint64_t esize(sm_type t) { return sm_type_get(t)->block_bytes; }

static bool is_str(const pk_obj *o, const char *s) {
    return o->kind == PK_STR && o->u.str.len == strlen(s) && memcmp(o->u.str.p, s, o->u.str.len) == 0;
}

int pk_persistent_load(pk_vm *vm, const pk_obj *pid, pk_obj **out) {
    if (pid->kind != PK_TUPLE || pid->u.seq.n != 5)
        return pk_fail(vm, "persistent id is a %s of %zu items; expected ('storage', storage type, key, location, numel)",
                       pk_kind_name(pid->kind), pid->kind == PK_TUPLE ? pid->u.seq.n : 0);
    pk_obj *const *it = pid->u.seq.items;
    if (!is_str(it[0], "storage")) return pk_fail(vm, "persistent id is not a ('storage', ...) tuple");
    if (it[1]->kind != PK_GLOBAL || it[1]->u.global.fn != PKG_STORAGE_TYPE)
        return pk_fail(vm, "persistent id: storage type is a %s, not a torch storage class", pk_kind_name(it[1]->kind));
    if (it[2]->kind != PK_STR || it[2]->u.str.len == 0 || it[2]->u.str.len > MAX_KEY || memchr(it[2]->u.str.p, 0, it[2]->u.str.len))
        return pk_fail(vm, "persistent id: storage key must be a string of 1 to %d bytes", MAX_KEY);
    if (it[3]->kind != PK_STR) return pk_fail(vm, "persistent id: location is a %s, not a string", pk_kind_name(it[3]->kind));
    if (it[4]->kind != PK_INT || it[4]->u.i < 0) return pk_fail(vm, "persistent id: numel must be a non-negative int");
    char key[MAX_KEY + 1];
    memcpy(key, it[2]->u.str.p, it[2]->u.str.len);
    key[it[2]->u.str.len] = 0;
    const uint8_t *data;
    uint64_t nbytes;
    if (vm->storage_fn(vm->storage_ctx, key, &data, &nbytes)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sm_last_error());
        return pk_fail(vm, "%s", msg);
    }
    sm_type t = it[1]->u.global.type;
    uint64_t numel = (uint64_t)it[4]->u.i;
    if (numel > nbytes / esize(t))
        return pk_fail(vm, "storage '%s' holds %llu bytes, fewer than its %llu %s elements need", key, (unsigned long long)nbytes,
                       (unsigned long long)numel, sm_type_name(t));
    pk_obj *o = pk_new(vm, PK_STORAGE);
    if (!o) return -1;
    o->u.storage.type = t;
    o->u.storage.data = data;
    o->u.storage.numel = numel;
    *out = o;
    return 0;
}

static int int_tuple(pk_vm *vm, const pk_obj *o, const char *what, int64_t *v, int *n) {
    if (o->kind != PK_TUPLE && o->kind != PK_LIST) return pk_fail(vm, "tensor %s is a %s, not a tuple", what, pk_kind_name(o->kind));
    if (o->u.seq.n > SM_MAX_DIMS) return pk_fail(vm, "tensor with %zu dimensions (at most %d supported)", o->u.seq.n, SM_MAX_DIMS);
    for (size_t i = 0; i < o->u.seq.n; i++) {
        const pk_obj *e = o->u.seq.items[i];
        if (e->kind != PK_INT || e->u.i < 0) return pk_fail(vm, "tensor %s must hold non-negative ints", what);
        v[i] = e->u.i;
    }
    *n = (int)o->u.seq.n;
    return 0;
}

/* _rebuild_tensor_v2 / _v3: a view (offset, size, stride) of a storage. */
static int rebuild_tensor(pk_vm *vm, const pk_obj *args, bool v3, pk_obj **out) {
    size_t n = args->u.seq.n, fixed = v3 ? 7 : 6;
    pk_obj *const *a = args->u.seq.items;
    if (n != fixed && n != fixed + 1)
        return pk_fail(vm, "_rebuild_tensor_%s takes %zu or %zu arguments, got %zu", v3 ? "v3" : "v2", fixed, fixed + 1, n);
    if (a[0]->kind != PK_STORAGE) return pk_fail(vm, "tensor storage is a %s, not a storage", pk_kind_name(a[0]->kind));
    if (a[1]->kind != PK_INT || a[1]->u.i < 0) return pk_fail(vm, "tensor storage offset must be a non-negative int");
    if (a[4]->kind != PK_BOOL && a[4]->kind != PK_INT) return pk_fail(vm, "tensor requires_grad must be a bool");
    if (a[5]->kind != PK_DICT) return pk_fail(vm, "tensor backward hooks must be an (empty) OrderedDict");
    if (n == fixed + 1 && a[fixed]->kind != PK_DICT && a[fixed]->kind != PK_NONE)
        return pk_fail(vm, "tensor metadata must be a dict");
    pk_tensor *t = pk_alloc(vm, sizeof *t);
    if (!t) return -1;
    int64_t stride[SM_MAX_DIMS];
    int ns;
    if (int_tuple(vm, a[2], "size", t->shape, &t->n_dims) || int_tuple(vm, a[3], "stride", stride, &ns)) return -1;
    if (ns != t->n_dims) return pk_fail(vm, "tensor has %d sizes but %d strides", t->n_dims, ns);
    const pk_obj *st = a[0];
    t->type = st->u.storage.type;
    uint64_t avail = st->u.storage.numel; /* in elements of the tensor's type */
    if (v3) {
        if (a[6]->kind != PK_GLOBAL || a[6]->u.global.fn != PKG_DTYPE) return pk_fail(vm, "_rebuild_tensor_v3 dtype is not a torch dtype");
        t->type = a[6]->u.global.type;
        avail = st->u.storage.numel * esize(st->u.storage.type) / esize(t->type);
    }
    uint64_t es = esize(t->type), numel = 1, offset = (uint64_t)a[1]->u.i;
    for (int i = 0; i < t->n_dims; i++) {
        if (t->shape[i] && numel > ((uint64_t)1 << 62) / (uint64_t)t->shape[i]) return pk_fail(vm, "tensor has too many elements");
        numel *= (uint64_t)t->shape[i];
    }
    if (offset > avail)
        return pk_fail(vm, "tensor storage offset %llu is past the end of its storage of %llu %s elements", (unsigned long long)offset,
                       (unsigned long long)avail, sm_type_name(t->type));
    t->contiguous = true;
    uint64_t expect = 1, last = offset; /* last: index of the view's last element */
    for (int i = t->n_dims - 1; i >= 0; i--) {
        uint64_t sz = (uint64_t)t->shape[i], sd = (uint64_t)stride[i];
        if (sz != 1 && sd != expect) t->contiguous = false;
        expect *= sz;
        if (sz > 1) {
            if (sd && (sz - 1) > (UINT64_MAX / 4 - last) / sd) return pk_fail(vm, "tensor strides overflow");
            last += (sz - 1) * sd;
        }
    }
    if (numel && last >= avail)
        return pk_fail(vm, "tensor view (offset %llu, %llu elements) reaches past its storage of %llu %s elements",
                       (unsigned long long)offset, (unsigned long long)numel, (unsigned long long)avail, sm_type_name(t->type));
    t->data = st->u.storage.data + (numel ? offset * es : 0);
    t->nbytes = numel * es;
    pk_obj *o = pk_new(vm, PK_TENSOR);
    if (!o) return -1;
    o->u.tensor = t;
    *out = o;
    return 0;
}

int pk_call(pk_vm *vm, const pk_obj *fn, const pk_obj *args, pk_obj **out) {
    if (fn->kind != PK_GLOBAL) return pk_fail(vm, "REDUCE on a %s, not an allowed callable", pk_kind_name(fn->kind));
    if (args->kind != PK_TUPLE) return pk_fail(vm, "REDUCE arguments are a %s, not a tuple", pk_kind_name(args->kind));
    size_t n = args->u.seq.n;
    switch (fn->u.global.fn) {
    case PKG_ORDERED_DICT:
        if (n) return pk_fail(vm, "OrderedDict() with arguments is not supported");
        *out = pk_new(vm, PK_DICT);
        return *out ? 0 : -1;
    case PKG_REBUILD_TENSOR_V2: return rebuild_tensor(vm, args, false, out);
    case PKG_REBUILD_TENSOR_V3: return rebuild_tensor(vm, args, true, out);
    case PKG_REBUILD_PARAMETER:
    case PKG_REBUILD_PARAMETER_WITH_STATE:
        if (n != (fn->u.global.fn == PKG_REBUILD_PARAMETER ? 3u : 4u) || args->u.seq.items[0]->kind != PK_TENSOR)
            return pk_fail(vm, "%s takes (tensor, requires_grad, hooks%s)", fn->u.global.name,
                           fn->u.global.fn == PKG_REBUILD_PARAMETER ? "" : ", state");
        *out = args->u.seq.items[0];
        return 0;
    case PKG_STORAGE_TYPE:
    case PKG_DTYPE: break;
    }
    return pk_fail(vm, "refusing to call torch.%s", fn->u.global.name);
}

/* ---- the state dict ---- */

typedef struct flat {
    const char *what;
    sm_tensor *t;
    size_t n, cap;
} flat;

void sm_pickle_free_tensors(sm_tensor *t, size_t n) {
    if (!t) return;
    for (size_t i = 0; i < n; i++) free((char *)t[i].name);
    free(t);
}

static int add_tensor(flat *f, const char *name, const pk_tensor *pt) {
    if (!pt->contiguous) return sm_error("%s: non-contiguous tensor %s is not supported (save it after .contiguous())", f->what, name);
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        sm_tensor *t = realloc(f->t, cap * sizeof *t);
        if (!t) return sm_error("%s: out of memory", f->what);
        f->t = t;
        f->cap = cap;
    }
    char *nm = strdup(name);
    if (!nm) return sm_error("%s: out of memory", f->what);
    sm_tensor *t = &f->t[f->n++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->type = pt->type;
    t->n_dims = pt->n_dims;
    memcpy(t->shape, pt->shape, sizeof t->shape);
    t->data = pt->data;
    t->nbytes = pt->nbytes;
    return 0;
}

static int walk(flat *f, const pk_obj *d, char *name, size_t plen, int depth) {
    if (depth > SM_PK_MAX_DEPTH)
        return sm_error("%s: state dict nested deeper than %d levels (or cyclic) at '%s'", f->what, SM_PK_MAX_DEPTH, name);
    if (d->walked) return sm_error("%s: the same dict appears twice in the state dict (at '%s')", f->what, plen ? name : "(root)");
    ((pk_obj *)d)->walked = true;
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) {
        const pk_obj *k = d->u.seq.items[i], *v = d->u.seq.items[i + 1];
        bool scalar = v->kind <= PK_STR;
        if (scalar) continue;
        if (k->kind != PK_STR)
            return sm_error("%s: state dict key under '%s' is a %s, not a string", f->what, plen ? name : "(root)", pk_kind_name(k->kind));
        size_t len = plen + (plen ? 1 : 0) + k->u.str.len;
        if (len >= MAX_NAME) return sm_error("%s: tensor name longer than %d bytes", f->what, MAX_NAME);
        if (memchr(k->u.str.p, 0, k->u.str.len)) return sm_error("%s: tensor name contains a NUL byte", f->what);
        if (plen) name[plen] = '.';
        memcpy(name + len - k->u.str.len, k->u.str.p, k->u.str.len);
        name[len] = 0;
        int rc = 0;
        if (v->kind == PK_TENSOR) rc = add_tensor(f, name, v->u.tensor);
        else if (v->kind == PK_DICT) rc = walk(f, v, name, len, depth + 1);
        else rc = sm_error("%s: state dict entry '%s' is a %s; expected a tensor or a dict of tensors", f->what, name, pk_kind_name(v->kind));
        name[plen] = 0;
        if (rc) return -1;
    }
    return 0;
}

static const pk_obj *choose_state_dict(const pk_obj *d) {
    static const char *const wrappers[] = {"state_dict", "model_state_dict", "model", "module"};
    for (int depth = 0; depth < SM_PK_MAX_DEPTH; depth++) {
        for (size_t i = 0; i + 1 < d->u.seq.n; i += 2)
            if (d->u.seq.items[i + 1]->kind == PK_TENSOR) return d;
        const pk_obj *next = NULL;
        for (size_t w = 0; w < sizeof wrappers / sizeof wrappers[0] && !next; w++)
            for (size_t i = 0; i + 1 < d->u.seq.n; i += 2)
                if (is_str(d->u.seq.items[i], wrappers[w]) && d->u.seq.items[i + 1]->kind == PK_DICT) {
                    next = d->u.seq.items[i + 1];
                    break;
                }
        if (!next) return d;
        d = next;
    }
    return d;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp((*(const sm_tensor *const *)a)->name, (*(const sm_tensor *const *)b)->name);
}

static int check_unique(const flat *f) {
    const sm_tensor **order = malloc((f->n ? f->n : 1) * sizeof *order);
    if (!order) return sm_error("%s: out of memory", f->what);
    for (size_t i = 0; i < f->n; i++) order[i] = &f->t[i];
    qsort(order, f->n, sizeof *order, cmp_name);
    int rc = 0;
    for (size_t i = 1; i < f->n && !rc; i++)
        if (strcmp(order[i]->name, order[i - 1]->name) == 0) rc = sm_error("%s: duplicate tensor name '%s'", f->what, order[i]->name);
    free(order);
    return rc;
}

int sm_pickle_state_dict(const uint8_t *buf, size_t len, const char *what, sm_pk_storage_fn fn, void *ctx, sm_tensor **out,
                         size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    pk_vm vm;
    pk_obj *root;
    flat f = {what, NULL, 0, 0};
    char *name = NULL;
    int rc = pk_run(&vm, buf, len, what, fn, ctx, &root);
    if (rc == 0 && root->kind != PK_DICT)
        rc = sm_error("%s: the pickle holds a %s, not a dict of tensors (a state dict)", what, pk_kind_name(root->kind));
    if (rc == 0 && !(name = malloc(MAX_NAME + 1))) rc = sm_error("%s: out of memory", what);
    if (rc == 0) {
        name[0] = 0;
        rc = walk(&f, choose_state_dict(root), name, 0, 0);
    }
    if (rc == 0 && f.n == 0) rc = sm_error("%s: no tensors found in the state dict", what);
    if (rc == 0) rc = check_unique(&f);
    free(name);
    pk_vm_free(&vm);
    if (rc) {
        sm_pickle_free_tensors(f.t, f.n);
        return -1;
    }
    *out = f.t;
    *n_out = f.n;
    return 0;
}
