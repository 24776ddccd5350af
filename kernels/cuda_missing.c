/* cuda_missing.c - the CUDA decoder's entry points in a build without CUDA: each fails with
 * a message (sm_cuda_available in cpu_features.c says why). */
#include "kernels.h"

#ifndef SMELT_HAVE_CUDA
static int no_cuda(void) {
    return sm_error("this smelt was built without CUDA (configure with -DSMELT_CUDA=ON where nvcc is installed)");
}
int sm_cuda_net_new(const sm_cuda_dims *d, sm_cuda_net **out) {
    (void)d;
    *out = NULL;
    return no_cuda();
}
int sm_cuda_net_upload(sm_cuda_net *net, sm_cuda_tensor which, int64_t layer, const float *host, int64_t n) {
    (void)net, (void)which, (void)layer, (void)host, (void)n;
    return no_cuda();
}
int sm_cuda_net_eval(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first,
                     float *logits) {
    (void)net, (void)tokens, (void)n, (void)pos0, (void)out_first, (void)logits;
    return no_cuda();
}
void sm_cuda_net_free(sm_cuda_net *net) { (void)net; }
#endif
