/* files.c - mmap, whole-file reads, paths. */
#include "core.h"
#include "lazymap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int sm_mmap_open(sm_mmap *m, const char *path) {
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sm_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sm_error("%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return sm_error("%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size) {
        m->data = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m->data == MAP_FAILED) {
            int e = errno;
            close(fd);
            m->data = NULL;
            return sm_error("%s: cannot mmap: %s", path, strerror(e));
        }
    }
    close(fd);
    m->path = strdup(path);
    return 0;
}

void sm_mmap_close(sm_mmap *m) {
    if (!m) return;
    if (m->lazy) {
        sm_lazymap_close(m);
        return;
    }
    if (m->data) munmap(m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

void sm_mmap_release(const sm_mmap *m, const void *p, uint64_t n) {
    if (!m || !m->data || !p || !n) return;
    if (m->lazy) {
        sm_lazymap_release(m, p, n);
        return;
    }
    const uintptr_t base = (uintptr_t)m->data, end = base + m->size;
    uintptr_t a = (uintptr_t)p, b = n > UINTPTR_MAX - a ? UINTPTR_MAX : a + (uintptr_t)n;
    if (a < base) a = base; /* only the part inside the mapping */
    if (b > end) b = end;
    if (a >= b) return;
    static uintptr_t page;
    if (!page) {
        const long ps = sysconf(_SC_PAGESIZE);
        page = ps > 0 ? (uintptr_t)ps : 4096;
    }
    /* the mapping starts on a page and its last page is mapped whole: rounding out stays inside */
    const uintptr_t lo = a & ~(page - 1), hi = (b + page - 1) & ~(page - 1);
    madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

int sm_read_file(const char *path, size_t max_bytes, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sm_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return sm_error("%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return sm_error("%s: %lld bytes, more than the %zu allowed for this kind of file", path,
                        (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return sm_error("%s: out of memory", path);
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return sm_error("%s: read failed", path);
    }
    fclose(f);
    buf[n] = 0;
    *out = buf;
    if (out_len) *out_len = n;
    return 0;
}

bool sm_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool sm_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *sm_path_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    size_t k = la;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, b, lb + 1);
    return p;
}
