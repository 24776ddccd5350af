/* fuzz_hf_config.c - libFuzzer target for config.json -> hyperparameters (through a memfd
 * path, as the converter reads it), followed by the tensor-list and name-map functions that
 * consume the result. */
#include "model/model.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz-config", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sm_hparams hp;
    if (!sm_hparams_from_hf_config(path, &hp)) {
        char name[64], back[96];
        int nd, flags;
        int64_t shape[SM_MAX_DIMS];
        for (size_t i = 0; i < 64 && sm_arch_tensor(&hp, i, name, sizeof name, &nd, shape) == 1; i++)
            if (sm_map_gguf_name(&hp, name, back, sizeof back) == 1 &&
                sm_map_hf_name(&hp, back, name, sizeof name, &flags) != 1)
                __builtin_trap();
        if (!strcmp(hp.rope_scaling_type, "llama3") && hp.head_dim / 2 <= 4096) {
            float f[4096];
            if (sm_rope_llama3_factors(&hp, f, hp.head_dim / 2)) __builtin_trap();
        }
    }
    close(fd);
    return 0;
}
