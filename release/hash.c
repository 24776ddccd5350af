/* hash.c - file digests for manifests: size, SHA-256 (OpenSSL libcrypto's EVP interface) and
 * XXH3-128 (libxxhash), computed in one streaming pass over each file (a fixed 4 MiB buffer:
 * memory does not grow with the file). Several files are hashed on parallel threads. */
#include "release/release.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define HASH_BUF ((size_t)4 << 20)

static void hex(const uint8_t *b, size_t n, char *out) {
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = 0;
}

int sm_hash_file(const char *path, sm_file_hashes *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sm_error("%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = malloc(HASH_BUF);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    XXH3_state_t *xx = XXH3_createState();
    int rc = 0;
    if (!buf || !md || !xx) rc = sm_error("%s: out of memory", path);
    if (!rc && (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 || XXH3_128bits_reset(xx) != XXH_OK))
        rc = sm_error("%s: cannot initialise the hash functions", path);
    while (!rc) {
        ssize_t n = read(fd, buf, HASH_BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = sm_error("%s: read error at offset %llu: %s", path, (unsigned long long)out->size, strerror(errno));
            break;
        }
        if (n == 0) break;
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1 || XXH3_128bits_update(xx, buf, (size_t)n) != XXH_OK)
            rc = sm_error("%s: hashing failed", path);
        out->size += (uint64_t)n;
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* the page cache need not keep what was read */
    }
    if (!rc) {
        uint8_t d[EVP_MAX_MD_SIZE];
        unsigned dn = 0;
        if (EVP_DigestFinal_ex(md, d, &dn) != 1 || dn != 32) rc = sm_error("%s: SHA-256 failed", path);
        else hex(d, 32, out->sha256);
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xx));
        hex(c.digest, 16, out->xxh3_128);
    }
    EVP_MD_CTX_free(md);
    XXH3_freeState(xx);
    free(buf);
    close(fd);
    return rc;
}

typedef struct hash_job {
    const char *const *paths;
    sm_file_hashes *out;
    size_t n, next;
    int rc;
    char err[512];
    pthread_mutex_t mu;
} hash_job;

static void *hash_worker(void *arg) {
    hash_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t i = j->next++;
        bool stop = i >= j->n || j->rc;
        pthread_mutex_unlock(&j->mu);
        if (stop) return NULL;
        if (sm_hash_file(j->paths[i], &j->out[i])) {
            pthread_mutex_lock(&j->mu);
            if (!j->rc) { /* the error of this thread, for the caller's thread */
                j->rc = -1;
                snprintf(j->err, sizeof j->err, "%s", sm_last_error());
            }
            pthread_mutex_unlock(&j->mu);
        }
    }
}

int sm_hash_files(const char *const *paths, size_t n, sm_file_hashes *out) {
    hash_job j = {.paths = paths, .out = out, .n = n};
    pthread_mutex_init(&j.mu, NULL);
    enum { MAX_T = 8 };
    pthread_t t[MAX_T];
    size_t nt = n < MAX_T ? n : MAX_T, started = 0;
    for (; started + 1 < nt; started++)
        if (pthread_create(&t[started], NULL, hash_worker, &j)) break;
    hash_worker(&j);
    for (size_t i = 0; i < started; i++) pthread_join(t[i], NULL);
    pthread_mutex_destroy(&j.mu);
    return j.rc ? sm_error("%s", j.err) : 0;
}
