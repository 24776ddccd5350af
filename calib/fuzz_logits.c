/* fuzz_logits.c - libFuzzer target: the log-probability file parser must reject or accept
 * any bytes without reading out of bounds. */
#include "calib.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sm_logits_file f;
    memset(&f, 0, sizeof f);
    if (sm_logits_file_parse("fuzz", data, size, &f) == 0) {
        /* touch what a reader touches */
        volatile int32_t sink = 0;
        for (int64_t i = 0; i < (int64_t)f.n_chunk * f.n_ctx; i++) {
            int32_t t;
            memcpy(&t, f.tokens + 4 * i, 4);
            sink += t;
        }
        (void)sink;
    }
    return 0;
}
