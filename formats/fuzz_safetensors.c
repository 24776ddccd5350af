/* fuzz_safetensors.c - libFuzzer target for the safetensors parser (memory image of a whole
 * file) and, for inputs starting with '{', the sharded-checkpoint index parser. Every parsed
 * tensor's bytes are read, so an out-of-bounds view shows up under ASan. */
#include "formats/safetensors_internal.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size && data[0] == '{') {
        sm_st_index ix;
        if (!sm_st_index_parse((const char *)data, size, "fuzz", &ix)) {
            for (size_t i = 0; i < ix.n; i++)
                if (sm_st_index_find(&ix, ix.entries[i].name) != &ix.entries[i]) __builtin_trap();
            sm_st_index_free(&ix);
        }
        return 0;
    }
    sm_ckpt *c = sm_ckpt_new(SM_CKPT_SAFETENSORS, "fuzz");
    if (!c) return 0;
    cJSON *meta = NULL;
    if (!sm_safetensors_parse(data, size, "fuzz", c, &meta) && !sm_ckpt_finish(c)) {
        c->metadata = meta;
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < c->n_tensors; i++) {
            const sm_tensor *t = &c->tensors[i];
            const uint8_t *p = t->data;
            for (uint64_t k = 0; k < t->nbytes; k++) sink ^= p[k];
            if (sm_ckpt_find(c, t->name) != t) __builtin_trap();
        }
        (void)sink;
    } else {
        cJSON_Delete(meta);
    }
    sm_ckpt_close(c);
    return 0;
}
