/* fuzz_pytorch.c - libFuzzer target: a whole torch.save archive in memory (zip, archive
 * folder, byteorder, pickle, storages); every accepted tensor's bytes are read. */
#include "formats/pytorch_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned g_sink; /* keeps the reads of tensor bytes */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sm_pt_archive a;
    sm_zip_max_inflate = (uint64_t)16 << 20; /* deflated entries: bounded memory per input */
    if (sm_pt_archive_open(&a, data, size, "fuzz.pt", NULL)) return 0;
    unsigned sum = 0;
    for (size_t i = 0; i < a.n_tensors; i++)
        for (uint64_t k = 0; k < a.tensors[i].nbytes; k++) sum += ((const uint8_t *)a.tensors[i].data)[k];
    sm_pt_archive_close(&a);
    g_sink = sum;
    return 0;
}
