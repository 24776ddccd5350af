/* cuda_loader.c - the CUDA entry points of kernels.h, forwarded to the CUDA plugin
 * (libsmelt_cuda.so, built beside the smelt binary when CUDA is found; $SMELT_CUDA_PLUGIN
 * names another path). The plugin is loaded with dlopen on first use, so the CPU paths never
 * map the CUDA libraries, and a machine without them runs everything else. */
#include "kernels.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    void *h;
    const char *why;
    int (*available)(const char **);
    int (*net_new)(const sm_cuda_dims *, sm_cuda_net **);
    int (*net_upload)(sm_cuda_net *, sm_cuda_tensor, int64_t, const float *, int64_t);
    int (*net_eval)(sm_cuda_net *, const int32_t *, int64_t, int64_t, int64_t, float *);
    void (*net_free)(sm_cuda_net *);
    const char *(*last_error)(void);
} P;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_why[PATH_MAX + 256];

static void load(void) {
    char path[PATH_MAX];
    const char *env = getenv("SMELT_CUDA_PLUGIN");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 32);
        if (n <= 0) n = 0;
        path[n] = 0;
        char *slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path, sizeof path - (size_t)(slash ? slash + 1 - path : 0), "libsmelt_cuda.so");
    }
    P.h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!P.h) {
        snprintf(g_why, sizeof g_why, "no CUDA plugin (%s); build smelt with CUDA (-DSMELT_CUDA=ON)", dlerror());
        P.why = g_why;
        return;
    }
    *(void **)&P.available = dlsym(P.h, "smcu_available");
    *(void **)&P.net_new = dlsym(P.h, "smcu_net_new");
    *(void **)&P.net_upload = dlsym(P.h, "smcu_net_upload");
    *(void **)&P.net_eval = dlsym(P.h, "smcu_net_eval");
    *(void **)&P.net_free = dlsym(P.h, "smcu_net_free");
    *(void **)&P.last_error = dlsym(P.h, "smcu_last_error");
    if (!P.available || !P.net_new || !P.net_upload || !P.net_eval || !P.net_free || !P.last_error) {
        snprintf(g_why, sizeof g_why, "%s is not a smelt CUDA plugin of this version", path);
        P.why = g_why;
        dlclose(P.h);
        P.h = NULL;
    }
}

static bool loaded(void) {
    pthread_once(&g_once, load);
    return P.h != NULL;
}

static int fail(void) { return sm_error("CUDA: %s", P.h ? P.last_error() : P.why); }

int sm_cuda_available(const char **why) {
    if (!loaded()) {
        if (why) *why = P.why;
        return 0;
    }
    return P.available(why);
}

int sm_cuda_net_new(const sm_cuda_dims *d, sm_cuda_net **out) {
    *out = NULL;
    if (!loaded()) return fail();
    return P.net_new(d, out) ? fail() : 0;
}

int sm_cuda_net_upload(sm_cuda_net *net, sm_cuda_tensor which, int64_t layer, const float *host, int64_t n) {
    if (!loaded()) return fail();
    return P.net_upload(net, which, layer, host, n) ? fail() : 0;
}

int sm_cuda_net_eval(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first,
                     float *logits) {
    if (!loaded()) return fail();
    return P.net_eval(net, tokens, n, pos0, out_first, logits) ? fail() : 0;
}

void sm_cuda_net_free(sm_cuda_net *net) {
    if (net && loaded()) P.net_free(net);
}
