/* pytorch_ckpt_stub.c - TEMPORARY: sm_ckpt_close / sm_ckpt_find for the PyTorch reader's tests
 * until the checkpoint module (formats/checkpoint.c, branch st) is merged; delete then. */
#include "formats/formats.h"
#include "pytorch_internal.h"

#include <stdlib.h>
#include <string.h>

void sm_ckpt_close(sm_ckpt *c) {
    if (!c) return;
    sm_pytorch_priv_free(c->priv);
    free(c->tensors);
    free(c->path);
    cJSON_Delete(c->metadata);
    free(c);
}

const sm_tensor *sm_ckpt_find(const sm_ckpt *c, const char *name) {
    for (size_t i = 0; i < c->n_tensors; i++)
        if (strcmp(c->tensors[i].name, name) == 0) return &c->tensors[i];
    return NULL;
}
