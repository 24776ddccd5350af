/* zip_internal.h - a read-only view of a zip archive held in memory (an mmapped file).
 *
 * Only what PyTorch checkpoints need: stored (uncompressed) and deflated entries, zip64 for
 * archives over 4 GiB, one disk. Every structure is checked against the buffer before use; entry names are
 * validated (relative, no "..", no NUL, no duplicates) and entry byte ranges may neither
 * overlap each other nor reach into the central directory. Stored entries' bytes are used in
 * place; deflated ones are inflated (sm_zip_read). Whatever is read is CRC-checked. */
#ifndef SMELT_ZIP_INTERNAL_H
#define SMELT_ZIP_INTERNAL_H

#include "core/core.h"

#define SM_ZIP_MAX_ENTRIES (1u << 20) /* far above any real checkpoint */
#define SM_ZIP_MAX_NAME 1024          /* bytes in one entry name */
#define SM_ZIP_MAX_INFLATE ((uint64_t)64 << 30) /* bytes one deflated entry may inflate to */
/* The limit in force (fuzz targets lower it); a larger deflated entry is refused by name. */
extern uint64_t sm_zip_max_inflate;

typedef struct sm_zip_entry {
    const char *name; /* NUL-terminated copy */
    uint64_t offset;  /* of the entry's (compressed) bytes in the archive */
    uint64_t size;    /* uncompressed */
    uint32_t crc32;   /* as recorded in the central directory */
    uint64_t csize;   /* bytes in the archive (== size when stored) */
    uint16_t method;  /* 0 stored, 8 deflated */
} sm_zip_entry;

typedef struct sm_zip {
    const uint8_t *data;
    uint64_t size;
    const char *path;        /* for messages (borrowed) */
    const sm_mmap *map;      /* the file mapping `data` lies in, or NULL (memory): the CRC pass
                                over a stored entry releases the mapped pages it read */
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
/* A stored entry's bytes, in place (not checked; sm_zip_read checks them). */
static inline const uint8_t *sm_zip_entry_data(const sm_zip *z, const sm_zip_entry *e) {
    return z->data + e->offset;
}
/* An entry's bytes, checked against its CRC-32: in place for a stored entry (*owned = NULL),
 * inflated into a malloc'ed buffer the caller frees (*owned) for a deflated one. */
int sm_zip_read(const sm_zip *z, const sm_zip_entry *e, const uint8_t **data, uint8_t **owned);
/* Compare an entry's bytes with its recorded CRC-32 (reads, and inflates, the whole entry). */
int sm_zip_check_crc(const sm_zip *z, const sm_zip_entry *e);
uint32_t sm_crc32(const void *data, size_t n);
uint32_t sm_crc32_update(uint32_t crc, const void *data, uint64_t n);

#endif
