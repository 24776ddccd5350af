/* outfile.c - outputs that never lose anything:
 *   - sm_outfile: a file is written to a temporary beside the target and renamed on commit
 *     (keeping the mode of the file it replaces; the directory is fsynced after the rename);
 *   - sm_outdir: a directory output is built in a temporary sibling directory and renamed into
 *     place (an existing previous output is exchanged with it, then removed);
 *   - temporaries still present are removed on SIGINT/SIGTERM/SIGHUP (the handler only calls
 *     unlink/rmdir on paths prepared beforehand, then re-raises the signal);
 *   - sm_check_output_not_input refuses an output that would replace or land inside an input. */
#include "core.h"
#include "lazymap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- temporaries removed on a signal ---- */

#define MAX_TMP 128
static char *volatile g_tmp[MAX_TMP];
static volatile sig_atomic_t g_tmp_is_dir[MAX_TMP];
static volatile sig_atomic_t g_handlers_installed;
static int g_durable = -1; /* -1: from SMELT_NO_SYNC */

void sm_outfile_set_durable(bool on) { g_durable = on; }

static bool durable(void) {
    if (g_durable < 0) {
        const char *e = getenv("SMELT_NO_SYNC");
        g_durable = !(e && *e && strcmp(e, "0") != 0);
    }
    return g_durable;
}

bool sm_outfile_durable(void) { return durable(); }

/* Async-signal-safe: unlink and rmdir only, files first, then directories (newest first). */
void sm_tmp_remove_all(void) {
    for (int i = 0; i < MAX_TMP; i++) {
        const char *p = g_tmp[i];
        if (p && !g_tmp_is_dir[i]) unlink(p);
    }
    for (int i = MAX_TMP - 1; i >= 0; i--) {
        const char *p = g_tmp[i];
        if (p && g_tmp_is_dir[i]) rmdir(p);
    }
}

static void on_signal(int sig) {
    sm_tmp_remove_all();
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns: the process ends as the signal says */
}

static void install_handlers(void) {
    if (g_handlers_installed) return;
    g_handlers_installed = 1;
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0) continue;
        if (old.sa_handler == SIG_IGN) continue; /* nohup and the like: stay ignored */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) sigaddset(&sa.sa_mask, sigs[k]);
        sigaction(sigs[i], &sa, NULL);
    }
}

int sm_tmp_register(const char *path, bool is_dir) {
    install_handlers();
    char *p = strdup(path);
    if (!p) return -1;
    for (int i = 0; i < MAX_TMP; i++)
        if (!g_tmp[i]) {
            g_tmp_is_dir[i] = is_dir;
            g_tmp[i] = p;
            return i;
        }
    free(p); /* full: still works, only not removed on a signal */
    return -1;
}

void sm_tmp_forget(int slot) {
    if (slot < 0 || slot >= MAX_TMP) return;
    char *p = g_tmp[slot];
    g_tmp[slot] = NULL;
    free(p);
}

/* fsync a directory (after a rename into it); EINVAL (a file system that cannot) is fine. */
static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sm_error("%s: cannot open the directory to sync it: %s", dir, strerror(errno));
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
        rc = sm_error("%s: fsync of the directory failed: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

/* The directory holding path ("." for a bare name); malloc'ed. */
static char *parent_of(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    while (n > 0 && path[n - 1] != '/') n--;
    while (n > 1 && path[n - 1] == '/') n--;
    if (n == 0) return strdup(".");
    return strndup(path, n);
}

static int sync_parent(const char *path) {
    if (!durable()) return 0;
    char *dir = parent_of(path);
    if (!dir) return sm_error("out of memory");
    int rc = fsync_dir(dir);
    free(dir);
    return rc;
}

/* ---- files ---- */

struct sm_outfile {
    FILE *f;
    char *tmp;
    char *path; /* as errors name it: inside an sm_outdir, the path the file will have */
    char *target;
    uint64_t pos;
    int slot;
    bool failed;
    bool keep_mode; /* replacing a file: give the new one its mode */
    mode_t mode;
};

static char *shown_name(const char *path);

sm_outfile *sm_outfile_open(const char *path) {
    sm_outfile *o = calloc(1, sizeof *o);
    if (!o) { sm_error("%s: out of memory", path); return NULL; }
    o->target = strdup(path);
    o->path = shown_name(path);
    size_t n = strlen(path) + 32;
    o->tmp = malloc(n);
    if (!o->target || !o->path || !o->tmp) {
        free(o->target); free(o->path); free(o->tmp); free(o);
        sm_error("out of memory");
        return NULL;
    }
    snprintf(o->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        o->keep_mode = true;
        o->mode = st.st_mode & 07777;
    }
    o->slot = sm_tmp_register(o->tmp, false);
    /* 0666 & ~umask as for any new file; O_EXCL: never write through a link planted there */
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST && unlink(o->tmp) == 0) /* left by an earlier process of our pid */
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    o->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!o->f) {
        sm_error("%s: cannot create: %s", o->path, strerror(errno));
        if (fd >= 0) { close(fd); unlink(o->tmp); }
        sm_tmp_forget(o->slot);
        free(o->target); free(o->path); free(o->tmp); free(o);
        return NULL;
    }
    return o;
}

int sm_outfile_write(sm_outfile *o, const void *buf, size_t n) {
    if (o->failed) return -1;
    if (sm_lazymap_overlaps(buf, n)) { /* bytes produced on demand: the kernel would not fault them in */
        uint8_t piece[16384];
        for (size_t at = 0; at < n; at += sizeof piece) {
            const size_t k = n - at < sizeof piece ? n - at : sizeof piece;
            memcpy(piece, (const uint8_t *)buf + at, k);
            if (sm_outfile_write(o, piece, k)) return -1;
        }
        return 0;
    }
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
    sm_tmp_forget(o->slot);
    free(o->tmp);
    free(o->path);
    free(o->target);
    free(o);
}

int sm_outfile_commit(sm_outfile *o) {
    int rc = 0;
    if (o->failed) rc = -1;
    if (!rc && fflush(o->f) != 0) rc = sm_error("%s: flush failed: %s", o->path, strerror(errno));
    if (!rc && o->keep_mode && fchmod(fileno(o->f), o->mode) != 0)
        rc = sm_error("%s: cannot give the new file the mode %04o of the one it replaces: %s", o->path,
                      (unsigned)o->mode, strerror(errno));
    if (!rc && durable() && fsync(fileno(o->f)) != 0 && errno != EINVAL)
        rc = sm_error("%s: fsync failed: %s", o->path, strerror(errno));
    if (fclose(o->f) != 0 && !rc) rc = sm_error("%s: close failed: %s", o->path, strerror(errno));
    if (!rc && rename(o->tmp, o->target) != 0)
        rc = sm_error("%s: cannot rename the temporary into place: %s", o->path, strerror(errno));
    if (rc) unlink(o->tmp);
    else rc = sync_parent(o->target);
    release(o);
    return rc;
}

void sm_outfile_abort(sm_outfile *o) {
    if (!o) return;
    fclose(o->f);
    unlink(o->tmp);
    release(o);
}

/* ---- directories ---- */

/* What smelt writes into an output directory: an existing directory holding only these (as
 * regular files) is a previous output and may be replaced; anything else is refused. */
static const char *const OUTDIR_FILES[] = {"model.safetensors",       "config.json",         "generation_config.json",
                                           "tokenizer.model",         "tokenizer.json",      "tokenizer_config.json",
                                           "special_tokens_map.json", "added_tokens.json"};

static bool outdir_known(const char *name) {
    for (size_t i = 0; i < sizeof OUTDIR_FILES / sizeof OUTDIR_FILES[0]; i++)
        if (!strcmp(name, OUTDIR_FILES[i])) return true;
    return false;
}

typedef struct outdir_entry {
    char *path;
    int slot;
} outdir_entry;

struct sm_outdir {
    char *path; /* the target, without trailing slashes */
    char *tmp;  /* "<path>.tmp.<pid>" */
    int slot;
    bool replace; /* the target exists (a previous output, or empty) */
    outdir_entry *files;
    size_t n_files, cap_files;
};

static char *strip_slashes(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    return strndup(path, n);
}

/* 0: absent; 1: an empty directory or a previous output; -1 (error set): refused. */
static int outdir_state(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        return sm_error("%s: cannot stat: %s", path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return sm_error("%s: is a symbolic link; give the output directory itself (or a new name)", path);
    if (!S_ISDIR(st.st_mode)) return sm_error("%s: exists and is not a directory; refusing to replace it", path);
    DIR *d = opendir(path);
    if (!d) return sm_error("%s: cannot read the directory: %s", path, strerror(errno));
    int rc = 1;
    for (struct dirent *e; rc == 1 && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        struct stat es;
        bool reg = fstatat(dirfd(d), e->d_name, &es, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(es.st_mode);
        if (!reg || !outdir_known(e->d_name))
            rc = sm_error("%s: the directory exists and holds '%s', which smelt does not write there; refusing to "
                          "replace it (remove it, or choose another output directory)",
                          path, e->d_name);
    }
    closedir(d);
    return rc;
}

int sm_outdir_check(const char *path) {
    char *p = strip_slashes(path);
    if (!p) return sm_error("out of memory");
    int rc = outdir_state(p);
    free(p);
    return rc < 0 ? -1 : 0;
}

/* Output directories being built, so that errors about their files name the user's path. */
#define MAX_OUTDIRS 8
static sm_outdir *g_outdirs[MAX_OUTDIRS];

static char *shown_name(const char *path) {
    for (int i = 0; i < MAX_OUTDIRS; i++) {
        const sm_outdir *d = g_outdirs[i];
        size_t n = d ? strlen(d->tmp) : 0;
        if (d && !strncmp(path, d->tmp, n) && path[n] == '/') {
            size_t len = strlen(d->path) + strlen(path + n) + 1;
            char *s = malloc(len);
            if (s) snprintf(s, len, "%s%s", d->path, path + n);
            return s;
        }
    }
    return strdup(path);
}

static void outdir_free(sm_outdir *d) {
    for (int i = 0; i < MAX_OUTDIRS; i++)
        if (g_outdirs[i] == d) g_outdirs[i] = NULL;
    for (size_t i = 0; i < d->n_files; i++) {
        sm_tmp_forget(d->files[i].slot);
        free(d->files[i].path);
    }
    sm_tmp_forget(d->slot);
    free(d->files);
    free(d->tmp);
    free(d->path);
    free(d);
}

sm_outdir *sm_outdir_open(const char *path) {
    sm_outdir *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strip_slashes(path)) || !(d->tmp = malloc(strlen(d->path) + 32))) {
        if (d) free(d->path);
        free(d);
        sm_error("out of memory");
        return NULL;
    }
    d->slot = -1;
    snprintf(d->tmp, strlen(d->path) + 32, "%s.tmp.%ld", d->path, (long)getpid());
    int st = outdir_state(d->path);
    if (st < 0) {
        outdir_free(d);
        return NULL;
    }
    d->replace = st == 1;
    d->slot = sm_tmp_register(d->tmp, true);
    if (mkdir(d->tmp, 0777) != 0) { /* 0777 & ~umask, as mkdir(1) */
        sm_error("%s: cannot create the directory: %s", d->path, strerror(errno));
        sm_tmp_forget(d->slot);
        d->slot = -1;
        outdir_free(d);
        return NULL;
    }
    for (int i = 0; i < MAX_OUTDIRS; i++)
        if (!g_outdirs[i]) {
            g_outdirs[i] = d;
            break;
        }
    return d;
}

const char *sm_outdir_path(const sm_outdir *d) { return d->path; }

char *sm_outdir_file(sm_outdir *d, const char *name) {
    if (d->n_files == d->cap_files) {
        size_t cap = d->cap_files ? 2 * d->cap_files : 8;
        outdir_entry *f = realloc(d->files, cap * sizeof *f);
        if (!f) { sm_error("out of memory"); return NULL; }
        d->files = f;
        d->cap_files = cap;
    }
    char *p = sm_path_join(d->tmp, name), *ret = p ? strdup(p) : NULL;
    if (!p || !ret) {
        free(p);
        free(ret);
        sm_error("out of memory");
        return NULL;
    }
    d->files[d->n_files].path = p;
    d->files[d->n_files].slot = sm_tmp_register(p, false); /* once committed, still removed on a signal */
    d->n_files++;
    return ret;
}

/* Remove a directory smelt wrote (its known files, then itself). */
static int remove_outdir(const char *dir) {
    DIR *dd = opendir(dir);
    if (dd) {
        for (struct dirent *e; (e = readdir(dd));)
            if (outdir_known(e->d_name)) unlinkat(dirfd(dd), e->d_name, 0);
        closedir(dd);
    }
    return rmdir(dir);
}

static void remove_tmp_files(sm_outdir *d) {
    for (size_t i = 0; i < d->n_files; i++) unlink(d->files[i].path);
}

void sm_outdir_abort(sm_outdir *d) {
    if (!d) return;
    remove_tmp_files(d);
    if (rmdir(d->tmp) != 0 && errno != ENOENT)
        fprintf(stderr, "smelt: warning: could not remove the temporary directory %s: %s\n", d->tmp, strerror(errno));
    outdir_free(d);
}

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int exchange(const char *a, const char *b) {
#ifdef SYS_renameat2
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
#else
    (void)a, (void)b;
    errno = ENOSYS;
    return -1;
#endif
}

int sm_outdir_commit(sm_outdir *d) {
    int rc = 0;
    if (durable()) rc = fsync_dir(d->tmp);
    if (!rc && !d->replace) {
        if (rename(d->tmp, d->path) != 0)
            rc = sm_error("%s: cannot rename the temporary directory %s into place: %s", d->path, d->tmp,
                          strerror(errno));
    } else if (!rc) {
        /* the new directory takes the old one's name in one step; the old one, now under the
         * temporary name, is removed after */
        if (exchange(d->tmp, d->path) == 0) {
            if (remove_outdir(d->tmp) != 0)
                fprintf(stderr, "smelt: warning: the previous %s is left in %s: %s\n", d->path, d->tmp,
                        strerror(errno));
        } else if (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP) {
            /* no exchange on this file system: old aside, new in, old removed */
            size_t n = strlen(d->path) + 32;
            char *old = malloc(n);
            if (!old) rc = sm_error("out of memory");
            else {
                snprintf(old, n, "%s.old.%ld", d->path, (long)getpid());
                if (rename(d->path, old) != 0)
                    rc = sm_error("%s: cannot move the previous output aside: %s", d->path, strerror(errno));
                else if (rename(d->tmp, d->path) != 0) {
                    rc = sm_error("%s: cannot rename the temporary directory %s into place: %s", d->path, d->tmp,
                                  strerror(errno));
                    rename(old, d->path);
                } else if (remove_outdir(old) != 0) {
                    fprintf(stderr, "smelt: warning: the previous %s is left in %s: %s\n", d->path, old,
                            strerror(errno));
                }
                free(old);
            }
        } else {
            rc = sm_error("%s: cannot exchange the temporary directory %s with it: %s", d->path, d->tmp,
                          strerror(errno));
        }
    }
    if (rc) {
        sm_outdir_abort(d);
        return -1;
    }
    rc = sync_parent(d->path);
    outdir_free(d);
    return rc;
}

/* ---- outputs never replace inputs ---- */

/* An absolute path without symbolic links, "." or "..", also for a path that does not exist
 * yet (its longest existing ancestor resolved, the rest appended); malloc'ed. */
static char *resolve(const char *path) {
    char *r = realpath(path, NULL);
    if (r) return r;
    char *p = strip_slashes(path);
    if (!p) return NULL;
    char *slash = strrchr(p, '/');
    const char *base = slash ? slash + 1 : p;
    char *parent = slash ? (slash == p ? strdup("/") : strndup(p, (size_t)(slash - p))) : strdup(".");
    char *rp = parent && strcmp(parent, path) ? resolve(parent) : NULL;
    char *out = NULL;
    if (rp) {
        size_t n = strlen(rp) + strlen(base) + 2;
        if ((out = malloc(n))) snprintf(out, n, "%s%s%s", rp, strcmp(rp, "/") ? "/" : "", base);
    }
    free(rp);
    free(parent);
    free(p);
    return out;
}

/* a is dir itself or lies below it */
static bool within(const char *a, const char *dir) {
    if (!strcmp(dir, "/")) return true;
    size_t n = strlen(dir);
    return !strncmp(a, dir, n) && (a[n] == '/' || a[n] == 0);
}

int sm_check_output_not_input(const char *out, const char *const *inputs, size_t n_inputs) {
    char *ro = resolve(out);
    if (!ro) return sm_error("%s: cannot resolve the output path: %s", out, strerror(errno));
    struct stat os;
    const bool out_exists = stat(out, &os) == 0;
    int rc = 0;
    for (size_t i = 0; i < n_inputs && !rc; i++) {
        const char *in = inputs[i];
        if (!in) continue;
        struct stat is;
        if (stat(in, &is) != 0) continue; /* the command reports a missing input itself */
        char *ri = resolve(in);
        if (!ri) continue;
        if ((out_exists && os.st_dev == is.st_dev && os.st_ino == is.st_ino) || !strcmp(ro, ri))
            rc = sm_error("%s: the output is the input %s; refusing to overwrite an input (choose another output)", out,
                          in);
        else if (S_ISDIR(is.st_mode) && within(ro, ri))
            rc = sm_error("%s: the output lies inside the input directory %s; refusing to write into an input "
                          "(choose an output outside it)",
                          out, in);
        else if (within(ri, ro))
            rc = sm_error("%s: the output would replace the directory holding the input %s (choose another output)",
                          out, in);
        free(ri);
    }
    free(ro);
    return rc;
}
