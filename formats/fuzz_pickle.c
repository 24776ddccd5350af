/* fuzz_pickle.c - libFuzzer target: the restricted unpickler over arbitrary bytes. Every
 * storage key resolves to the same 4 KiB buffer; every accepted tensor's bytes are read. */
#include "formats/pickle_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned g_sink; /* keeps the reads of tensor bytes */

static uint8_t g_storage[4096];

static int resolve(void *ctx, const char *key, const uint8_t **d, uint64_t *n) {
    (void)ctx;
    if (key[0] == 'x') return sm_error("no storage '%s'", key); /* exercise the error path */
    *d = g_storage;
    *n = sizeof g_storage;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sm_tensor *t;
    size_t n;
    if (sm_pickle_state_dict(data, size, "fuzz.pkl", resolve, NULL, &t, &n)) return 0;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        for (uint64_t k = 0; k < t[i].nbytes; k++) sum += ((const uint8_t *)t[i].data)[k];
    sm_pickle_free_tensors(t, n);
    g_sink = sum;
    return 0;
}
