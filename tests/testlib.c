/* testlib.c - the harness behind testlib.h. */
#include "testlib.h"

#include "formats/formats.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int tl_failures, tl_checks;
const char *tl_current = "";
static char g_tmpdir[512];

void tl_check_fails(int rc, const char *needle, const char *expr, const char *file, int line) {
    tl_checks++;
    if (rc == 0) {
        tl_failures++;
        fprintf(stderr, "%s:%d: [%s] expected failure from %s, got success\n", file, line, tl_current, expr);
    } else if (needle && !strstr(sm_last_error(), needle)) {
        tl_failures++;
        fprintf(stderr, "%s:%d: [%s] %s failed with \"%s\", expected it to mention \"%s\"\n", file, line,
                tl_current, expr, sm_last_error(), needle);
    }
}

static char *ring(void) {
    static char bufs[8][1024];
    static int k;
    return bufs[k++ & 7];
}

const char *tl_asset(const char *rel) {
    const char *root = getenv("SMELT_ASSETS");
    if (!root || !*root) root = getenv("SMELT_ASSETS_DEFAULT");
    if (!root || !*root) root = "../shared";
    char *b = ring();
    snprintf(b, 1024, "%s/%s", root, rel);
    if (access(b, R_OK) != 0) {
        tl_failures++;
        fprintf(stderr, "[%s] missing test asset: %s (set SMELT_ASSETS)\n", tl_current, b);
    }
    return b;
}

static void cleanup(void) {
    if (g_tmpdir[0] && !getenv("SMELT_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
        if (system(cmd)) {}
    }
}

const char *tl_tmpdir(void) {
    if (!g_tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/smelt-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(g_tmpdir)) { perror("mkdtemp"); exit(2); }
        atexit(cleanup);
    }
    return g_tmpdir;
}

const char *tl_tmp(const char *name) {
    char *b = ring();
    snprintf(b, 1024, "%s/%s", tl_tmpdir(), name);
    return b;
}

const char *tl_smelt_bin(void) {
    const char *b = getenv("SMELT_BIN");
    return b && *b ? b : "./smelt";
}

char *tl_slurp(const char *path, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    if (sm_read_file(path, (size_t)1 << 32, &buf, &n)) return NULL;
    if (len) *len = n;
    return buf;
}

void tl_check_same_gguf_tensors(const char *a, const char *b) {
    sm_gguf *x = NULL, *y = NULL;
    CHECK_OK(sm_gguf_open(a, &x));
    CHECK_OK(sm_gguf_open(b, &y));
    if (x && y) {
        CHECK(sm_gguf_n_tensors(x) == sm_gguf_n_tensors(y));
        for (size_t i = 0; i < sm_gguf_n_tensors(x); i++) {
            const sm_tensor *t = sm_gguf_tensor(x, i), *u = sm_gguf_find_tensor(y, t->name);
            CHECK_MSG(u && u->type == t->type && u->nbytes == t->nbytes && !memcmp(u->data, t->data, t->nbytes),
                      "%s differs between %s and %s", t->name, a, b);
        }
    }
    if (x) sm_gguf_close(x);
    if (y) sm_gguf_close(y);
}

int tl_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    fclose(f);
    return w == len ? 0 : -1;
}

int tl_run_smelt(const char *args, char **out) { return tl_run_smelt_env("", args, out); }

int tl_run_smelt_env(const char *env, const char *args, char **out) {
    size_t n = strlen(env) + strlen(args) + 1024;
    char *cmd = malloc(n);
    const char *log = tl_tmp("last-run.log");
    snprintf(cmd, n, "SMELT_NO_PROGRESS=1 %s '%s' %s > '%s' 2>&1", env, tl_smelt_bin(), args, log);
    int st = system(cmd);
    free(cmd);
    if (out) *out = tl_slurp(log, NULL);
    if (out && !*out) *out = strdup("");
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int main(void) {
    run_tests();
    fprintf(stderr, "%d checks, %d failed\n", tl_checks, tl_failures);
    return tl_failures ? 1 : 0;
}
