/* zip_internal.h - a read-only view of a zip archive held in memory (an mmapped file).
 *
 * Only what PyTorch checkpoints need: stored (uncompressed) entries, zip64 for archives over
 * 4 GiB, one disk. Every structure is checked against the buffer before use; entry names are
 * validated (relative, no "..", no NUL, no duplicates) and entry byte ranges may neither
 * overlap each other nor reach into the central directory. Entry bytes are used in place. */
#ifndef SMELT_ZIP_INTERNAL_H
#define SMELT_ZIP_INTERNAL_H

#include "core/core.h"

#define SM_ZIP_MAX_ENTRIES (1u << 20) /* far above any real checkpoint */
#define SM_ZIP_MAX_NAME 1024          /* bytes in one entry name */

typedef struct sm_zip_entry {
    const char *name; /* NUL-terminated copy */
    uint64_t offset;  /* of the entry's bytes in the archive */
    uint64_t size;
    uint32_t crc32;   /* as recorded in the central directory */
} sm_zip_entry;

typedef struct sm_zip {
    const uint8_t *data;
    uint64_t size;
    const char *path;        /* for messages (borrowed) */
    size_t n_entries;
    sm_zip_entry *entries;   /* central directory order */
    size_t *by_name;         /* entry indexes sorted by name */
    char *names;             /* storage of all names */
} sm_zip;

/* Parse the archive in data[0, size). `path` names it in errors and must outlive z. */
int sm_zip_open(sm_zip *z, const void *data, uint64_t size, const char *path);
void sm_zip_close(sm_zip *z);
/* NULL if there is no entry of that name. */
const sm_zip_entry *sm_zip_find(const sm_zip *z, const char *name);
static inline const uint8_t *sm_zip_entry_data(const sm_zip *z, const sm_zip_entry *e) {
    return z->data + e->offset;
}
/* Compare an entry's bytes with its recorded CRC-32 (reads the whole entry). */
int sm_zip_check_crc(const sm_zip *z, const sm_zip_entry *e);
uint32_t sm_crc32(const void *data, size_t n);

#endif
