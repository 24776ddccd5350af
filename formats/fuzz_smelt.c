/* fuzz_smelt.c - libFuzzer target for the .smelt reader: open a memory image, then decode every
 * file (every chunk, every checksum) and every tensor, so that an out-of-bounds read or a
 * decoder overrun shows up under ASan; and map every file lazily (sm_smelt_map_lazy: the bytes
 * between its tensors decoded at once, damaged ones refused) and, for a file that decoded
 * cleanly, read the mapping through (every tensor decoded on its first read by the fault
 * handler): it must hold the bytes the decoder gave. Images that declare more than 16 MiB of
 * decoded bytes are only opened (decoding them proves nothing more and takes long). */
#include "formats/smelt.h"

#include <stdlib.h>
#include <xxhash.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *ctx, const void *p, size_t n) {
    XXH3_64bits_update(ctx, p, n);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sm_smelt *s;
    if (sm_smelt_open_mem(data, size, "fuzz", &s)) return 0;
    uint64_t total = 0;
    for (size_t f = 0; f < sm_smelt_n_files(s); f++) total += sm_smelt_file_size(s, f);
    if (total <= (16u << 20)) {
        for (size_t f = 0; f < sm_smelt_n_files(s); f++) {
            XXH3_state_t *h = XXH3_createState();
            XXH3_64bits_reset(h);
            const int bad = sm_smelt_extract(s, f, sink, h);
            sm_mmap m;
            if (!sm_smelt_map_lazy(s, f, &m)) {
                if (!bad && XXH3_64bits(m.data, m.size) != XXH3_64bits_digest(h)) abort();
                sm_mmap_close(&m);
            }
            XXH3_freeState(h);
            for (size_t i = 0; i < sm_smelt_n_tensors(s, f); i++) {
                const sm_tensor *t = sm_smelt_tensor(s, f, i);
                void *buf = malloc(t->nbytes ? t->nbytes : 1);
                if (buf) sm_smelt_read_tensor(s, f, i, buf);
                free(buf);
            }
        }
    }
    sm_smelt_close(s);
    return 0;
}
