/* pytorch_archive.c - a torch.save (>= 1.6) zip archive in memory -> its state dict tensors.
 *
 * All entries live in one folder, named by the first central directory entry (as PyTorch's
 * own reader decides): <prefix>/data.pkl is the pickled state dict, <prefix>/data/<key> the
 * raw little-endian bytes of each storage, <prefix>/byteorder ("little") is written by
 * torch >= 2.1, <prefix>/version and others are ignored. The small entries (data.pkl,
 * byteorder) and every storage a tensor refers to are CRC-checked as they are read (stored
 * entries are used in place, deflated ones inflated into buffers the archive owns). Files in
 * the legacy pre-1.6 format (a pickle stream starting with torch's magic number, or a tar
 * archive) are refused by name. */
#include "pytorch_internal.h"

#include "formats/pickle_internal.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t LEGACY_MAGIC[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

static int check_magic(const uint8_t *p, uint64_t size, const char *path) {
    /* PROTO n, LONG1 10 bytes: the magic number 0x1950a86a20f9469cfc6c */
    bool legacy = size >= 2 + sizeof LEGACY_MAGIC && p[0] == 0x80 && memcmp(p + 2, LEGACY_MAGIC, sizeof LEGACY_MAGIC) == 0;
    legacy |= size >= 262 && memcmp(p + 257, "ustar", 5) == 0;
    if (legacy)
        return sm_error("%s: unsupported legacy (pre-1.6, non-zip) PyTorch format; re-save it with a newer torch.save", path);
    if (size < 4 || p[0] != 'P' || p[1] != 'K' || !((p[2] == 3 && p[3] == 4) || (p[2] == 5 && p[3] == 6)))
        return sm_error("%s: offset 0: not a PyTorch checkpoint (expected a zip archive written by torch.save)", path);
    return 0;
}

static const sm_zip_entry *find_in(const sm_pt_archive *a, const char *rel) {
    char name[SM_ZIP_MAX_NAME + 300];
    snprintf(name, sizeof name, "%s/%s", a->prefix, rel);
    return sm_zip_find(&a->zip, name);
}

static int resolve_storage(void *ctx, const char *key, const uint8_t **data, uint64_t *nbytes) {
    const sm_pt_archive *a = ctx;
    char rel[300];
    snprintf(rel, sizeof rel, "data/%s", key);
    const sm_zip_entry *e = find_in(a, rel);
    if (!e) return sm_error("persistent id refers to storage '%s' but the archive has no entry '%s/%s'", key, a->prefix, rel);
    size_t i = (size_t)(e - a->zip.entries);
    if (!a->read[i]) {
        uint8_t *owned = NULL;
        if (sm_zip_read(&a->zip, e, &a->read[i], &owned)) return -1;
        a->owned[i] = owned;
    }
    *data = a->read[i];
    *nbytes = e->size;
    return 0;
}

static int check_byteorder(const sm_pt_archive *a) {
    const sm_zip_entry *e = find_in(a, "byteorder");
    if (!e) return 0;
    const uint8_t *d;
    uint8_t *owned;
    if (sm_zip_read(&a->zip, e, &d, &owned)) return -1;
    bool little = e->size == 6 && memcmp(d, "little", 6) == 0, big = e->size == 3 && memcmp(d, "big", 3) == 0;
    free(owned);
    if (little) return 0;
    if (big) return sm_error("%s: %s/byteorder: big-endian checkpoints are not supported", a->zip.path, a->prefix);
    return sm_error("%s: %s/byteorder: expected \"little\"", a->zip.path, a->prefix);
}

int sm_pt_archive_open(sm_pt_archive *a, const void *data, uint64_t size, const char *path, const sm_mmap *map) {
    memset(a, 0, sizeof *a);
    if (check_magic(data, size, path) || sm_zip_open(&a->zip, data, size, path)) return -1;
    a->zip.map = map;
    if (a->zip.n_entries == 0) {
        sm_error("%s: empty zip archive", path);
        goto fail;
    }
    const char *first = a->zip.entries[0].name, *slash = strchr(first, '/');
    if (!slash) {
        sm_error("%s: entry '%s' is not inside an archive folder; not a torch.save checkpoint", path, first);
        goto fail;
    }
    a->prefix = strndup(first, (size_t)(slash - first));
    size_t wlen = strlen(path) + strlen(a->prefix) + 16;
    a->pickle_name = malloc(wlen);
    if (!a->prefix || !a->pickle_name) {
        sm_error("%s: out of memory", path);
        goto fail;
    }
    snprintf(a->pickle_name, wlen, "%s: %s/data.pkl", path, a->prefix);
    const sm_zip_entry *pkl = find_in(a, "data.pkl");
    if (!pkl) {
        if (find_in(a, "constants.pkl"))
            sm_error("%s: a TorchScript archive (torch.jit.save), not a torch.save state dict; not supported", path);
        else
            sm_error("%s: no '%s/data.pkl' in the archive; not a torch.save checkpoint", path, a->prefix);
        goto fail;
    }
    size_t n = a->zip.n_entries;
    a->read = calloc(n, sizeof *a->read);
    a->owned = calloc(n, sizeof *a->owned);
    if (!a->read || !a->owned) {
        sm_error("%s: out of memory", path);
        goto fail;
    }
    const uint8_t *pk;
    uint8_t *pk_owned;
    if (check_byteorder(a) || sm_zip_read(&a->zip, pkl, &pk, &pk_owned)) goto fail;
    int rc = sm_pickle_state_dict(pk, (size_t)pkl->size, a->pickle_name, resolve_storage, a, &a->tensors, &a->n_tensors);
    free(pk_owned);
    if (rc) goto fail;
    return 0;
fail:
    sm_pt_archive_close(a);
    return -1;
}

void sm_pt_archive_close(sm_pt_archive *a) {
    if (!a) return;
    sm_pickle_free_tensors(a->tensors, a->n_tensors);
    for (size_t i = 0; a->owned && i < a->zip.n_entries; i++) free(a->owned[i]);
    free(a->owned);
    free(a->read);
    sm_zip_close(&a->zip);
    free(a->prefix);
    free(a->pickle_name);
    memset(a, 0, sizeof *a);
}
