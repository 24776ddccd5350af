/* checkpoint.c - the sm_ckpt container shared by every checkpoint reader (see
 * checkpoint_internal.h), lookup by name, and sm_ckpt_open's dispatch to the right reader. */
#include "formats/checkpoint_internal.h"
#include "formats/smelt.h"

#include <stdlib.h>
#include <string.h>

typedef struct name_ref {
    const char *name;
    size_t index;
} name_ref;

typedef struct ckpt_priv {
    sm_mmap **maps;
    size_t n_maps, cap_maps;
    void **owned;
    size_t n_owned, cap_owned;
    size_t cap_tensors;
    name_ref *by_name; /* every tensor, sorted by name (built by sm_ckpt_finish) */
    void *state;
    void (*free_state)(void *state);
} ckpt_priv;

static ckpt_priv *priv(const sm_ckpt *c) { return (ckpt_priv *)c->priv; }

/* Grow *arr (of elem-sized items) so that it holds at least need items. */
static int grow(void *arr, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem) return sm_error("out of memory");
        n *= 2;
    }
    void *p = realloc(*(void **)arr, n * elem);
    if (!p) return sm_error("out of memory");
    *(void **)arr = p;
    *cap = n;
    return 0;
}

sm_ckpt *sm_ckpt_new(sm_ckpt_kind kind, const char *path) {
    sm_ckpt *c = calloc(1, sizeof *c);
    ckpt_priv *p = calloc(1, sizeof *p);
    char *copy = strdup(path);
    if (!c || !p || !copy) {
        free(c);
        free(p);
        free(copy);
        sm_error("%s: out of memory", path);
        return NULL;
    }
    c->kind = kind;
    c->path = copy;
    c->priv = p;
    return c;
}

const sm_mmap *sm_ckpt_add_mmap(sm_ckpt *c, const char *path) {
    ckpt_priv *p = priv(c);
    if (grow(&p->maps, &p->cap_maps, p->n_maps + 1, sizeof *p->maps)) return NULL;
    sm_mmap *m = calloc(1, sizeof *m);
    if (!m) {
        sm_error("%s: out of memory", path);
        return NULL;
    }
    if (sm_smelt_mmap_open(m, path)) { /* a .smelt of a safetensors file: that file */
        free(m);
        return NULL;
    }
    p->maps[p->n_maps++] = m;
    return m;
}

void *sm_ckpt_own(sm_ckpt *c, void *mem) {
    ckpt_priv *p = priv(c);
    if (!mem) {
        sm_error("out of memory");
        return NULL;
    }
    if (grow(&p->owned, &p->cap_owned, p->n_owned + 1, sizeof *p->owned)) {
        free(mem);
        return NULL;
    }
    p->owned[p->n_owned++] = mem;
    return mem;
}

char *sm_ckpt_strndup(sm_ckpt *c, const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return sm_ckpt_own(c, d);
}

char *sm_ckpt_strdup(sm_ckpt *c, const char *s) { return sm_ckpt_strndup(c, s, strlen(s)); }

sm_tensor *sm_ckpt_add_tensor(sm_ckpt *c) {
    ckpt_priv *p = priv(c);
    if (grow(&c->tensors, &p->cap_tensors, c->n_tensors + 1, sizeof *c->tensors)) return NULL;
    sm_tensor *t = &c->tensors[c->n_tensors++];
    memset(t, 0, sizeof *t);
    return t;
}

void sm_ckpt_set_state(sm_ckpt *c, void *state, void (*free_state)(void *state)) {
    priv(c)->state = state;
    priv(c)->free_state = free_state;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

int sm_ckpt_finish(sm_ckpt *c) {
    ckpt_priv *p = priv(c);
    free(p->by_name);
    p->by_name = malloc((c->n_tensors ? c->n_tensors : 1) * sizeof *p->by_name);
    if (!p->by_name) return sm_error("%s: out of memory", c->path);
    for (size_t i = 0; i < c->n_tensors; i++) p->by_name[i] = (name_ref){c->tensors[i].name, i};
    qsort(p->by_name, c->n_tensors, sizeof *p->by_name, cmp_by_name);
    for (size_t i = 1; i < c->n_tensors; i++)
        if (!strcmp(p->by_name[i - 1].name, p->by_name[i].name))
            return sm_error("%s: tensor name '%s' appears twice", c->path, p->by_name[i].name);
    return 0;
}

const sm_tensor *sm_ckpt_find(const sm_ckpt *c, const char *name) {
    const ckpt_priv *p = priv(c);
    if (!p->by_name || !name) return NULL;
    size_t lo = 0, hi = c->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(name, p->by_name[mid].name);
        if (!r) return &c->tensors[p->by_name[mid].index];
        if (r < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

void sm_ckpt_release(const sm_ckpt *c, const void *p, uint64_t n) {
    if (!c || !c->priv) return;
    const ckpt_priv *q = priv(c);
    for (size_t i = 0; i < q->n_maps; i++) sm_mmap_release(q->maps[i], p, n);
}

void sm_ckpt_close(sm_ckpt *c) {
    if (!c) return;
    ckpt_priv *p = priv(c);
    if (p) {
        if (p->free_state) p->free_state(p->state);
        for (size_t i = 0; i < p->n_maps; i++) {
            sm_mmap_close(p->maps[i]);
            free(p->maps[i]);
        }
        free(p->maps);
        for (size_t i = 0; i < p->n_owned; i++) free(p->owned[i]);
        free(p->owned);
        free(p->by_name);
        free(p);
    }
    cJSON_Delete(c->metadata);
    free(c->tensors);
    free(c->path);
    free(c);
}

/* ---- dispatch ---- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

/* An index JSON names its shards; their extension says which reader handles them. */
static int open_index(const char *path, sm_ckpt **out) {
    char *text = NULL;
    size_t len = 0;
    if (sm_read_file(path, (size_t)64 << 20, &text, &len)) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    const cJSON *first = map && cJSON_IsObject(map) ? map->child : NULL;
    bool pytorch = first && cJSON_IsString(first) && !ends_with(first->valuestring, ".safetensors");
    cJSON_Delete(root);
    /* anything malformed is reported in detail by the safetensors index reader */
    return pytorch ? sm_pytorch_open(path, out) : sm_safetensors_open(path, out);
}

static int open_file(const char *path, sm_ckpt **out) {
    if (ends_with(path, ".json")) return open_index(path, out);
    uint8_t head[9] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (n >= 4 && !memcmp(head, "PK\x03\x04", 4)) return sm_pytorch_open(path, out);
    /* a safetensors file has its JSON header's '{' at byte 8; a legacy (non-zip) torch.save
     * file starts with a pickle protocol marker instead */
    if (!(n == 9 && head[8] == '{') && (ends_with(path, ".bin") || ends_with(path, ".pt") ||
                                        ends_with(path, ".pth")))
        return sm_pytorch_open(path, out);
    return sm_safetensors_open(path, out);
}

/* A checkpoint opened through its directory reports the directory as its path. */
static int set_path(sm_ckpt **out, const char *path) {
    char *copy = strdup(path);
    if (!copy) {
        sm_ckpt_close(*out);
        *out = NULL;
        return sm_error("out of memory");
    }
    free((*out)->path);
    (*out)->path = copy;
    return 0;
}

int sm_ckpt_open(const char *path, sm_ckpt **out) {
    *out = NULL;
    if (!sm_is_dir(path)) {
        if (!sm_is_file(path)) return sm_error("%s: no such file or directory", path);
        return open_file(path, out);
    }
    static const char *const candidates[] = {"model.safetensors", "model.safetensors.index.json",
                                             "pytorch_model.bin", "pytorch_model.bin.index.json"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char *p = sm_path_join(path, candidates[i]);
        if (!p) return sm_error("out of memory");
        if (sm_is_file(p)) {
            int rc = open_file(p, out);
            free(p);
            return rc ? rc : set_path(out, path);
        }
        free(p);
    }
    return sm_error("%s: no checkpoint found: expected model.safetensors, "
                    "model.safetensors.index.json, pytorch_model.bin or "
                    "pytorch_model.bin.index.json in this directory",
                    path);
}
