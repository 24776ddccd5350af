/* fuzz_llama2c.c - libFuzzer target for the llama2.c checkpoint reader. The input becomes a
 * memory file (memfd) opened by path; every tensor of an accepted file is read in full, so a
 * view past the end of the mapping shows up under ASan. */
#include "formats/formats.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("fuzz-llama2c", 0);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sm_ckpt *c = NULL;
    sm_llama2c_config cfg;
    if (!sm_llama2c_open(path, &c, &cfg)) {
        volatile uint8_t sink = 0;
        uint64_t total = 28;
        for (size_t i = 0; i < c->n_tensors; i++) {
            const sm_tensor *t = &c->tensors[i];
            const uint8_t *p = t->data;
            for (uint64_t k = 0; k < t->nbytes; k++) sink ^= p[k];
            if (sm_ckpt_find(c, t->name) != t) __builtin_trap();
            total += t->nbytes;
        }
        if (total > size) __builtin_trap();
        (void)sink;
        sm_ckpt_close(c);
    }
    close(fd);
    return 0;
}
