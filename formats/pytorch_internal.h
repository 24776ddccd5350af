/* pytorch_internal.h - one torch.save zip archive held in memory, as a list of tensors.
 *
 * pytorch_archive.c does the archive-level work without touching files (so fuzzers can drive
 * it): legacy-format detection, the zip, the archive folder ("<prefix>/data.pkl",
 * "<prefix>/data/<key>", "<prefix>/byteorder"), and the state dict pickle. pytorch.c maps
 * files (single or sharded through an index) and fills sm_ckpt (checkpoint_internal.h). */
#ifndef SMELT_PYTORCH_INTERNAL_H
#define SMELT_PYTORCH_INTERNAL_H

#include "formats/zip_internal.h"

typedef struct sm_pt_archive {
    sm_zip zip;
    char *prefix;       /* the archive folder every entry lives in */
    char *pickle_name;  /* "<path>: <prefix>/data.pkl", for messages */
    sm_tensor *tensors; /* views into the buffer (or into owned); names malloc'ed */
    size_t n_tensors;
    /* storages read (CRC-checked, inflated when deflated), by zip entry index: each entry is
     * read once however many tensors view it */
    const uint8_t **read;
    uint8_t **owned;    /* inflated storages the tensors point into (NULL: none / handed over) */
} sm_pt_archive;

/* Parse a torch.save archive in data[0, size); `path` names it in errors and must outlive a. */
/* map: the file mapping data lies in (its pages are released as the CRC pass reads them), or
 * NULL for an archive in memory. */
int sm_pt_archive_open(sm_pt_archive *a, const void *data, uint64_t size, const char *path, const sm_mmap *map);
/* Frees what is still owned: a caller keeping the tensors takes a->owned[i] (entry i) first,
 * setting it to NULL. */
void sm_pt_archive_close(sm_pt_archive *a);

#endif
