/* fuzz_zip.c - libFuzzer target: the zip reader over arbitrary bytes; every accepted entry is
 * looked up by name and its bytes are read (CRC; deflated ones inflated), so out-of-range offsets
 * would be caught. */
#include "formats/zip_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sm_zip z;
    sm_zip_max_inflate = (uint64_t)16 << 20; /* deflated entries: bounded memory per input */
    if (sm_zip_open(&z, data, size, "fuzz.zip")) return 0;
    for (size_t i = 0; i < z.n_entries; i++) {
        if (sm_zip_find(&z, z.entries[i].name) != &z.entries[i]) __builtin_trap();
        (void)sm_zip_check_crc(&z, &z.entries[i]);
    }
    sm_zip_close(&z);
    return 0;
}
