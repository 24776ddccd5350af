/* cuda_loader.c - the CUDA entry points of kernels.h, forwarded to the CUDA plugin
 * (libsmelt_cuda.so, built beside the smelt binary when CUDA is found; $SMELT_CUDA_PLUGIN
 * names another path). The plugin is loaded with dlopen on first use, so the CPU paths never
 * map the CUDA libraries, and a machine without them runs everything else. A plugin must
 * have smcu_available and smcu_last_error; an entry point it lacks fails when called. */
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
    const char *(*last_error)(void);
    int (*net_new)(const sm_cuda_dims *, sm_cuda_net **);
    int (*net_upload)(sm_cuda_net *, sm_cuda_tensor, int64_t, const float *, int64_t);
    int (*net_eval)(sm_cuda_net *, const int32_t *, int64_t, int64_t, int64_t, float *);
    void (*net_free)(sm_cuda_net *);
    int (*syrk_new)(int64_t, sm_cuda_syrk **);
    int (*syrk_add)(sm_cuda_syrk *, const float *, int64_t, int64_t);
    int (*syrk_read)(sm_cuda_syrk *, double *);
    int (*syrk_read_abs)(sm_cuda_syrk *, double *);
    void (*syrk_free)(sm_cuda_syrk *);
    int (*cholesky_inverse)(const double *, int64_t, double *, int64_t *);
    int (*gptq_new)(int64_t, const double *, const double *, sm_cuda_gptq **);
    int (*gptq_load)(sm_cuda_gptq *, const double *, int64_t);
    int (*gptq_fetch)(sm_cuda_gptq *, int64_t, int64_t, double *);
    int (*gptq_update)(sm_cuda_gptq *, int64_t, int64_t, const double *, int64_t);
    int (*gptq_loss)(sm_cuda_gptq *, const double *, int64_t, double *);
    void (*gptq_free)(sm_cuda_gptq *);
    int (*dgemm_rate)(int64_t, int, double *);
    int (*block_new)(const sm_cuda_dims *, sm_cuda_block **);
    int (*block_set)(sm_cuda_block *, sm_cuda_tensor, const float *, int64_t);
    int (*block_run)(sm_cuda_block *, float *, int64_t, int, sm_cuda_syrk *const *);
    int (*block_set_layer)(sm_cuda_block *, int64_t);
    void (*block_free)(sm_cuda_block *);
} P;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_why[PATH_MAX + 256];

#define SYM(field) (*(void **)&P.field = dlsym(P.h, "smcu_" #field))

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
#ifdef SM_PLUGIN_RELDIR
    if (!P.h && !(env && *env)) { /* installed: PREFIX/bin/smelt and PREFIX/lib/smelt/libsmelt_cuda.so */
        char inst[PATH_MAX + 64];
        char *slash = strrchr(path, '/');
        if (slash) {
            *slash = 0;
            snprintf(inst, sizeof inst, "%.*s/../%s/libsmelt_cuda.so", PATH_MAX - 1, path, SM_PLUGIN_RELDIR);
            P.h = dlopen(inst, RTLD_NOW | RTLD_LOCAL);
            if (!P.h) *slash = '/'; /* the message names the first place looked */
            else snprintf(path, sizeof path, "%.*s", PATH_MAX - 1, inst);
        }
    }
#endif
    if (!P.h) {
        snprintf(g_why, sizeof g_why, "no CUDA plugin (%s); build smelt with CUDA (-DSMELT_CUDA=ON)", dlerror());
        P.why = g_why;
        return;
    }
    SYM(available);
    SYM(last_error);
    if (!P.available || !P.last_error) {
        snprintf(g_why, sizeof g_why, "%s is not a smelt CUDA plugin", path);
        P.why = g_why;
        dlclose(P.h);
        P.h = NULL;
        return;
    }
    SYM(net_new);
    SYM(net_upload);
    SYM(net_eval);
    SYM(net_free);
    SYM(syrk_new);
    SYM(syrk_add);
    SYM(syrk_read);
    SYM(syrk_read_abs);
    SYM(syrk_free);
    SYM(cholesky_inverse);
    SYM(gptq_new);
    SYM(gptq_load);
    SYM(gptq_fetch);
    SYM(gptq_update);
    SYM(gptq_loss);
    SYM(gptq_free);
    SYM(dgemm_rate);
    SYM(block_new);
    SYM(block_set);
    SYM(block_run);
    SYM(block_set_layer);
    SYM(block_free);
}

static bool loaded(void) {
    pthread_once(&g_once, load);
    return P.h != NULL;
}

static int fail(void) { return sm_error("CUDA: %s", P.h ? P.last_error() : P.why); }

/* Forward a call returning 0 / -1 to the plugin's entry point `field`. */
#define FORWARD(field, ...)                                                                          \
    do {                                                                                             \
        if (!loaded()) return fail();                                                                \
        if (!P.field) return sm_error("CUDA: the plugin has no smcu_" #field " (rebuild smelt)");   \
        return P.field(__VA_ARGS__) ? fail() : 0;                                                    \
    } while (0)

int sm_cuda_available(const char **why) {
    if (!loaded()) {
        if (why) *why = P.why;
        return 0;
    }
    return P.available(why);
}

int sm_cuda_net_new(const sm_cuda_dims *d, sm_cuda_net **out) {
    *out = NULL;
    FORWARD(net_new, d, out);
}

int sm_cuda_net_upload(sm_cuda_net *net, sm_cuda_tensor which, int64_t layer, const float *host, int64_t n) {
    FORWARD(net_upload, net, which, layer, host, n);
}

int sm_cuda_net_eval(sm_cuda_net *net, const int32_t *tokens, int64_t n, int64_t pos0, int64_t out_first,
                     float *logits) {
    FORWARD(net_eval, net, tokens, n, pos0, out_first, logits);
}

void sm_cuda_net_free(sm_cuda_net *net) {
    if (net && loaded() && P.net_free) P.net_free(net);
}

int sm_cuda_syrk_new(int64_t n, sm_cuda_syrk **out) {
    *out = NULL;
    FORWARD(syrk_new, n, out);
}

int sm_cuda_syrk_add(sm_cuda_syrk *s, const float *x, int64_t n_tok, int64_t ld) { FORWARD(syrk_add, s, x, n_tok, ld); }

int sm_cuda_syrk_read(sm_cuda_syrk *s, double *host) { FORWARD(syrk_read, s, host); }
int sm_cuda_syrk_read_abs(sm_cuda_syrk *s, double *host) { FORWARD(syrk_read_abs, s, host); }

void sm_cuda_syrk_free(sm_cuda_syrk *s) {
    if (s && loaded() && P.syrk_free) P.syrk_free(s);
}

int sm_cuda_cholesky_inverse(const double *a, int64_t n, double *linv, int64_t *bad) {
    *bad = -1;
    FORWARD(cholesky_inverse, a, n, linv, bad);
}

int sm_cuda_gptq_new(int64_t n, const double *U, const double *H, sm_cuda_gptq **out) {
    *out = NULL;
    FORWARD(gptq_new, n, U, H, out);
}

int sm_cuda_gptq_load(sm_cuda_gptq *g, const double *W, int64_t rows) { FORWARD(gptq_load, g, W, rows); }

int sm_cuda_gptq_fetch(sm_cuda_gptq *g, int64_t c0, int64_t c1, double *W) { FORWARD(gptq_fetch, g, c0, c1, W); }

int sm_cuda_gptq_update(sm_cuda_gptq *g, int64_t i1, int64_t i2, const double *E, int64_t lde) {
    FORWARD(gptq_update, g, i1, i2, E, lde);
}

int sm_cuda_gptq_loss(sm_cuda_gptq *g, const double *D, int64_t m, double *out) { FORWARD(gptq_loss, g, D, m, out); }

void sm_cuda_gptq_free(sm_cuda_gptq *g) {
    if (g && loaded() && P.gptq_free) P.gptq_free(g);
}

int sm_cuda_dgemm_rate(int64_t n, int reps, double *gflops) {
    *gflops = 0;
    FORWARD(dgemm_rate, n, reps, gflops);
}

int sm_cuda_block_new(const sm_cuda_dims *d, sm_cuda_block **out) {
    *out = NULL;
    FORWARD(block_new, d, out);
}

int sm_cuda_block_set(sm_cuda_block *b, sm_cuda_tensor which, const float *host, int64_t n) {
    FORWARD(block_set, b, which, host, n);
}

int sm_cuda_block_set_layer(sm_cuda_block *b, int64_t layer) { FORWARD(block_set_layer, b, layer); }

int sm_cuda_block_run(sm_cuda_block *b, float *x, int64_t n_tok, int stop_at, sm_cuda_syrk *const *h) {
    if (!loaded()) return fail();
    if (!P.block_run) return sm_error("CUDA: the plugin has no smcu_block_run (rebuild smelt)");
    const int rc = P.block_run(b, x, n_tok, stop_at, h);
    return rc < 0 ? fail() : rc;
}

void sm_cuda_block_free(sm_cuda_block *b) {
    if (b && loaded() && P.block_free) P.block_free(b);
}
