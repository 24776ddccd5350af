/* pytorch.c - sm_pytorch_open: a torch.save checkpoint file, or a sharded one through its
 * pytorch_model.bin.index.json, as an sm_ckpt whose tensors point into the mmapped files.
 *
 * Sharded checkpoints: the index's "weight_map" maps every tensor name to a shard file in the
 * index's folder. Shards are read in file-name order; every tensor of a shard must be listed
 * for that shard, and every listed tensor must be found, so a missing shard, a missing tensor
 * or an extra one is an error naming it. */
#include "formats/checkpoint_internal.h"
#include "pytorch_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_INDEX_BYTES ((size_t)64 << 20)

/* ---- sharded checkpoints ---- */

typedef struct wm_entry {
    const char *name, *shard;
    size_t shard_idx;
    bool found;
} wm_entry;

static int cmp_wm(const void *a, const void *b) { return strcmp(((const wm_entry *)a)->name, ((const wm_entry *)b)->name); }
static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int check_shard_name(const char *index, const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 255 || strchr(s, '/') || strchr(s, '\\') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return sm_error("%s: weight_map shard '%s' is not a plain file name in the index's folder", index, s);
    return 0;
}

/* Every tensor in shard k must be listed for shard k. */
static int match_shard(const char *index, const char *shard, size_t k, const sm_pt_archive *arc, wm_entry *wm, size_t n_wm) {
    for (size_t i = 0; i < arc->n_tensors; i++) {
        wm_entry key = {.name = arc->tensors[i].name};
        wm_entry *e = bsearch(&key, wm, n_wm, sizeof *wm, cmp_wm);
        if (!e) return sm_error("%s: tensor '%s' in shard %s is not listed in the index's weight_map", index, key.name, shard);
        if (e->shard_idx != k)
            return sm_error("%s: tensor '%s' is in shard %s but the index maps it to %s", index, key.name, shard, e->shard);
        e->found = true;
    }
    return 0;
}

/* Map one archive into c and append its tensors (names copied into c; data stays in the
 * mapping, which c keeps). With wm, every tensor must be listed for shard k (see match_shard). */
static int add_archive(sm_ckpt *c, const char *path, const char *index, const char *shard, size_t k, wm_entry *wm, size_t n_wm) {
    const sm_mmap *m = sm_ckpt_add_mmap(c, path);
    sm_pt_archive arc;
    if (!m || sm_pt_archive_open(&arc, m->data, m->size, m->path, m))
        return index ? sm_error_ctx("%s: shard %s", index, shard) : -1;
    int rc = wm ? match_shard(index, shard, k, &arc, wm, n_wm) : 0;
    for (size_t i = 0; i < arc.zip.n_entries && rc == 0; i++) /* inflated storages live as long as c */
        if (arc.owned[i]) {
            rc = sm_ckpt_own(c, arc.owned[i]) ? 0 : -1;
            arc.owned[i] = NULL;
        }
    for (size_t i = 0; i < arc.n_tensors && rc == 0; i++) {
        sm_tensor *t = sm_ckpt_add_tensor(c);
        if (!t) rc = -1;
        else {
            *t = arc.tensors[i];
            if (!(t->name = sm_ckpt_strdup(c, arc.tensors[i].name))) rc = -1;
        }
    }
    sm_pt_archive_close(&arc);
    return rc;
}

static int open_index(const char *index, sm_ckpt *c) {
    char *text = NULL;
    cJSON *root = NULL;
    wm_entry *wm = NULL;
    const char **shards = NULL;
    char *dir = NULL, *full = NULL;
    int rc = -1;
    if (sm_read_file(index, MAX_INDEX_BYTES, &text, NULL)) goto done;
    root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        sm_error("%s: %s", index, root ? "expected a JSON object" : "not valid JSON");
        goto done;
    }
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        sm_error("%s: expected a \"weight_map\" object", index);
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(map), k = 0;
    wm = calloc(n ? n : 1, sizeof *wm);
    shards = calloc(n ? n : 1, sizeof *shards);
    if (!wm || !shards) {
        sm_error("%s: out of memory", index);
        goto done;
    }
    for (cJSON *it = map->child; it; it = it->next, k++) {
        if (!cJSON_IsString(it) || check_shard_name(index, it->valuestring)) {
            if (!cJSON_IsString(it)) sm_error("%s: weight_map entry '%s' is not a file name string", index, it->string);
            goto done;
        }
        wm[k] = (wm_entry){it->string, it->valuestring, 0, false};
        shards[k] = it->valuestring;
    }
    if (n == 0) {
        sm_error("%s: empty weight_map", index);
        goto done;
    }
    qsort(wm, n, sizeof *wm, cmp_wm);
    for (size_t i = 1; i < n; i++)
        if (strcmp(wm[i].name, wm[i - 1].name) == 0) {
            sm_error("%s: tensor '%s' is listed twice in the weight_map", index, wm[i].name);
            goto done;
        }
    qsort(shards, n, sizeof *shards, cmp_str);
    size_t n_shards = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(shards[i], shards[i - 1]) != 0) shards[n_shards++] = shards[i];
    for (size_t i = 0; i < n; i++) {
        const char **s = bsearch(&wm[i].shard, shards, n_shards, sizeof *shards, cmp_str);
        wm[i].shard_idx = (size_t)(s - shards);
    }
    const char *slash = strrchr(index, '/');
    dir = slash ? strndup(index, (size_t)(slash - index)) : strdup(".");
    if (!dir) {
        sm_error("%s: out of memory", index);
        goto done;
    }
    for (size_t i = 0; i < n_shards; i++) {
        free(full);
        full = sm_path_join(dir, shards[i]);
        if (!full) {
            sm_error("%s: out of memory", index);
            goto done;
        }
        if (add_archive(c, full, index, shards[i], i, wm, n)) goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (!wm[i].found) {
            sm_error("%s: tensor '%s' listed in the index is missing from shard %s", index, wm[i].name, wm[i].shard);
            goto done;
        }
    rc = 0;
done:
    free(full);
    free(dir);
    free(shards);
    free(wm);
    cJSON_Delete(root);
    free(text);
    return rc;
}

static bool looks_like_json(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".json") == 0;
}

int sm_pytorch_open(const char *path, sm_ckpt **out) {
    *out = NULL;
    sm_ckpt *c = sm_ckpt_new(SM_CKPT_PYTORCH, path);
    if (!c) return -1;
    int rc = looks_like_json(path) ? open_index(path, c) : add_archive(c, path, NULL, NULL, 0, NULL, 0);
    if (rc || sm_ckpt_finish(c)) {
        sm_ckpt_close(c);
        return -1;
    }
    *out = c;
    return 0;
}
