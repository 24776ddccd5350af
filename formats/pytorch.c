/* pytorch.c - placeholder so the library links until the PyTorch reader lands (it replaces
 * this file). */
#include "formats/formats.h"

int sm_pytorch_open(const char *path, sm_ckpt **out) {
    *out = NULL;
    return sm_error("%s: PyTorch reader not built yet", path);
}
