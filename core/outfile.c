/* outfile.c - atomic output: write a temporary beside the target, rename on commit.
 * Temporaries still open are removed if the process is interrupted (SIGINT/SIGTERM/SIGHUP). */
#include "core.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sm_outfile {
    FILE *f;
    char *tmp;
    char *path;
    uint64_t pos;
    int slot;
    bool failed;
};

#define MAX_OPEN 16
static char *volatile g_tmp_paths[MAX_OPEN];
static int g_durable = -1; /* -1: from SMELT_NO_SYNC */

void sm_outfile_set_durable(bool on) { g_durable = on; }

static bool durable(void) {
    if (g_durable < 0) {
        const char *e = getenv("SMELT_NO_SYNC");
        g_durable = !(e && *e && strcmp(e, "0") != 0);
    }
    return g_durable;
}
static volatile sig_atomic_t g_handlers_installed;

static void on_signal(int sig) {
    for (int i = 0; i < MAX_OPEN; i++)
        if (g_tmp_paths[i]) unlink(g_tmp_paths[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int register_tmp(char *p) {
    if (!g_handlers_installed) {
        g_handlers_installed = 1;
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGHUP, on_signal);
    }
    for (int i = 0; i < MAX_OPEN; i++)
        if (!g_tmp_paths[i]) { g_tmp_paths[i] = p; return i; }
    return -1;
}

sm_outfile *sm_outfile_open(const char *path) {
    sm_outfile *o = calloc(1, sizeof *o);
    if (!o) { sm_error("%s: out of memory", path); return NULL; }
    o->path = strdup(path);
    size_t n = strlen(path) + 32;
    o->tmp = malloc(n);
    if (!o->path || !o->tmp) { free(o->path); free(o->tmp); free(o); sm_error("out of memory"); return NULL; }
    snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        sm_error("%s: cannot create: %s", o->path, strerror(errno));
        free(o->path); free(o->tmp); free(o);
        return NULL;
    }
    o->slot = register_tmp(o->tmp);
    return o;
}

int sm_outfile_write(sm_outfile *o, const void *buf, size_t n) {
    if (o->failed) return -1;
    if (n && fwrite(buf, 1, n, o->f) != n) {
        o->failed = true;
        return sm_error("%s: write failed at offset %llu: %s", o->path, (unsigned long long)o->pos,
                        strerror(errno));
    }
    o->pos += n;
    return 0;
}

int sm_outfile_pad_to(sm_outfile *o, uint64_t alignment) {
    static const uint8_t zeros[256];
    if (alignment == 0) return 0;
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        if (sm_outfile_write(o, zeros, k)) return -1;
        pad -= k;
    }
    return 0;
}

uint64_t sm_outfile_tell(const sm_outfile *o) { return o->pos; }

static void release(sm_outfile *o) {
    if (o->slot >= 0) g_tmp_paths[o->slot] = NULL;
    free(o->tmp);
    free(o->path);
    free(o);
}

int sm_outfile_commit(sm_outfile *o) {
    int rc = 0;
    if (o->failed) rc = -1;
    if (!rc && fflush(o->f) != 0) rc = sm_error("%s: flush failed: %s", o->path, strerror(errno));
    if (!rc && durable() && fsync(fileno(o->f)) != 0 && errno != EINVAL)
        rc = sm_error("%s: fsync failed: %s", o->path, strerror(errno));
    if (fclose(o->f) != 0 && !rc) rc = sm_error("%s: close failed: %s", o->path, strerror(errno));
    if (!rc && rename(o->tmp, o->path) != 0)
        rc = sm_error("%s: cannot rename temporary into place: %s", o->path, strerror(errno));
    if (rc) unlink(o->tmp);
    release(o);
    return rc;
}

void sm_outfile_abort(sm_outfile *o) {
    if (!o) return;
    fclose(o->f);
    unlink(o->tmp);
    release(o);
}
