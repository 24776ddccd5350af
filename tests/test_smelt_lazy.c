/* test_smelt_lazy.c - a compressed .smelt read as the file it holds (sm_smelt_mmap_open): the
 * mapping's bytes equal the original GGUF's (compared with the GGUF read from disk), read
 * forward, backward, again after being released and by several threads at once; with the
 * smallest decode cache (SMELT_DECODE_CACHE_MB=0: two of the largest tensor) the decoded bytes
 * kept stay within it, tensors are decoded again when read again; no temporary file (TMPDIR is a
 * plain file); a damaged tensor ends a reader with an error naming it, not with wrong bytes. */
#include "core/lazymap.h"
#include "formats/smelt.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_gguf[1100], g_pk[1100];

static void setup(void) {
    char args[3000];
    snprintf(g_gguf, sizeof g_gguf, "%s", tl_tmp("bf16.gguf"));
    snprintf(g_pk, sizeof g_pk, "%s", tl_tmp("bf16.smelt"));
    snprintf(args, sizeof args, "convert %s -o %s --outtype bf16 -q", tl_asset("models/tiny-llama-kjv"), g_gguf);
    CHECK(tl_run_smelt(args, NULL) == 0);
    /* 8 KiB chunks: tensors of many chunks; GGUF alignment 32: tensors share pages */
    snprintf(args, sizeof args, "pack %s -o %s -q --chunk-size 8192", g_gguf, g_pk);
    CHECK(tl_run_smelt(args, NULL) == 0);
    char *nd = (char *)tl_tmp("not-a-dir");
    FILE *f = fopen(nd, "w");
    if (f) fclose(f);
    setenv("TMPDIR", nd, 1);
    setenv("SMELT_DECODE_CACHE_MB", "0", 1);
}

static void same_bytes(void) {
    size_t n = 0;
    uint8_t *orig = (uint8_t *)tl_slurp(g_gguf, &n);
    sm_mmap m;
    CHECK_OK(sm_smelt_mmap_open(&m, g_pk));
    CHECK(orig && m.lazy && m.size == n);
    if (!orig || !m.lazy || m.size != n) return;
    const uint64_t budget = 2 * 1048576 + 2 * 4096; /* the largest tensors: 2048 x 256 BF16 */
    const uint8_t *p = m.data;
    CHECK(sm_lazymap_fills(&m) == 0); /* nothing decoded yet but the header */
    CHECK_MSG(!memcmp(p, orig, n), "forward read differs");
    const uint64_t first = sm_lazymap_fills(&m);
    CHECK(first >= 39 && sm_lazymap_resident(&m) <= budget);
    for (size_t at = n; at > 0;) { /* backward, in pieces */
        const size_t k = at < 3000 ? at : 3000;
        at -= k;
        CHECK_MSG(!memcmp(p + at, orig + at, k), "backward read differs at %zu", at);
        if (memcmp(p + at, orig + at, k)) break;
    }
    CHECK_MSG(sm_lazymap_fills(&m) > first, "nothing decoded again: the cache is not bounded");
    CHECK(sm_lazymap_resident(&m) <= budget);
    sm_mmap_release(&m, m.data, m.size);
    CHECK(sm_lazymap_resident(&m) == 0);
    CHECK_MSG(!memcmp(p, orig, n), "read after release differs");
    sm_mmap_close(&m);
    /* several threads at once, every page first read in a scattered order (default cache) */
    unsetenv("SMELT_DECODE_CACHE_MB");
    CHECK_OK(sm_smelt_mmap_open(&m, g_pk));
    setenv("SMELT_DECODE_CACHE_MB", "0", 1);
    p = m.data;
    int bad = 0;
#pragma omp parallel for num_threads(4) reduction(+ : bad) schedule(dynamic, 1)
    for (long i = 0; i < (long)(n / 4096 + 1); i++) {
        const size_t a = (size_t)i * 7919 % (n / 4096 + 1) * 4096, k = n - a < 4096 ? n - a : 4096;
        bad += memcmp(p + a, orig + a, k) != 0;
    }
    CHECK_MSG(bad == 0, "%d pages differ when read by several threads", bad);
    CHECK(sm_lazymap_fills(&m) == 39);
    sm_mmap_close(&m);
    free(orig);
}

/* a raw-stored .smelt mapped lazily too (what a reader gets where the page size is not a divisor
 * of the raw file's 4096-byte offset): tensors copied and checked, the gaps copied at open */
static void raw_lazily(void) {
    char args[3000];
    const char *raw = tl_tmp("raw.smelt");
    snprintf(args, sizeof args, "pack %s -o %s -q --raw", g_gguf, raw);
    CHECK(tl_run_smelt(args, NULL) == 0);
    size_t n = 0;
    uint8_t *orig = (uint8_t *)tl_slurp(g_gguf, &n);
    sm_smelt *s = NULL;
    CHECK_OK(sm_smelt_open(raw, &s));
    sm_mmap m;
    if (orig && s && !sm_smelt_map_lazy(s, 0, &m)) {
        sm_smelt_close(s); /* the mapping keeps it open */
        CHECK(m.size == n && !memcmp(m.data, orig, n));
        CHECK(sm_lazymap_fills(&m) == 39);
        sm_mmap_close(&m);
    } else {
        CHECK_MSG(0, "raw .smelt not mapped: %s", sm_last_error());
        sm_smelt_close(s);
    }
    free(orig);
}

/* a byte inside a tensor's compressed data changed: the reader is ended (status 1) naming it */
static void damaged_tensor(void) {
    size_t n = 0;
    char *img = tl_slurp(g_pk, &n);
    CHECK(img && n > 1000000);
    if (!img || n <= 1000000) return;
    img[n / 2] ^= 0x10;
    const char *bad = tl_tmp("bad.smelt"), *log = tl_tmp("bad.log");
    FILE *f = fopen(bad, "wb");
    CHECK(f && fwrite(img, 1, n, f) == n);
    if (f) fclose(f);
    free(img);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr)) _exit(9);
        sm_mmap m;
        if (sm_smelt_mmap_open(&m, bad)) _exit(2);
        volatile uint8_t x = 0;
        for (size_t i = 0; i < m.size; i++) x ^= ((const uint8_t *)m.data)[i];
        _exit(0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 1, "the reader of a damaged tensor ended with status %d", st);
    char *out = tl_slurp(log, NULL);
    CHECK_MSG(out && strstr(out, "bad.smelt: ") && strstr(out, "tensor '") && strstr(out, "of file 'bf16.gguf'"),
              "message: %s", out ? out : "(none)");
    free(out);
}

void run_tests(void) {
    TEST(setup);
    TEST(same_bytes);
    TEST(raw_lazily);
    TEST(damaged_tensor);
}
