/* tensor_io.c - stream tensors from the checkpoint into the GGUF writer.
 *
 * A tensor is processed in chunks of whole rows (whole rope heads when its rows are
 * permuted), each cast from the source dtype to the output type (through floats and the codec
 * for quantized output) in buffers of bounded size, so memory does not grow with the model.
 * A tensor already in its output type with no permutation is written straight from the
 * mapped file.
 *
 * Two threads: the caller converts chunk N+1 while a writer thread writes chunk N, so reading
 * the checkpoint (page faults, read-ahead) overlaps writing the output (which the kernel
 * throttles to the disk's pace). Chunks travel through a small ring of buffers, in order.
 * After a chunk is written, the pages of the source file mapping it came from are released
 * (MADV_DONTNEED: the data stays in the page cache, it just stops counting as this process's
 * memory) - only inside file-backed mappings (found once from /proc/self/maps), never in heap
 * memory. MADV_WILLNEED keeps the kernel reading ahead of the conversion. */
#include "convert_internal.h"
#include "kernels/kernels.h"
#include "quantize/quantize.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes of a few hundred KiB keep the data in the CPU caches on its way into the page cache
 * (measured 2-3x faster here than 8-64 MiB writes); quantized chunks are larger so that the
 * codec's thread team has enough work per call. */
#define WRITE_BYTES ((uint64_t)256 << 10)
#define QUANT_ELEMS ((int64_t)4 << 20)
#define AHEAD_BYTES ((uintptr_t)32 << 20) /* read-ahead requested past the bytes being converted */
#define RING 4                            /* chunks in flight */

typedef struct range { uintptr_t lo, hi; } range;

typedef struct job {
    const uint8_t *data;   /* bytes to write (a ring buffer, the mapping, or generated data) */
    uint64_t n;
    const uint8_t *src;    /* the source bytes this chunk consumed (for progress and release) */
    uint64_t src_n;
    int buf;               /* ring buffer to hand back after writing, -1 if none */
    bool stop;
} job;

struct cv_io {
    sm_sink *w;
    sm_progress *prog;
    uint64_t done;                /* source bytes written (writer thread) */
    range *files;                 /* file-backed mappings */
    size_t n_files;
    uintptr_t page, ahead;        /* read-ahead requested up to `ahead` (caller thread) */
    float *fbuf;                  /* floats for the codec (caller thread) */
    size_t fcap;
    float *lbuf;                  /* source-order floats when LoRA deltas are added */
    size_t lcap;
    uint8_t *buf[RING];           /* output chunks */
    size_t cap[RING];
    bool busy[RING];
    job q[RING + 1];              /* pending jobs, FIFO */
    size_t q_head, q_len;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool started, failed;
    char *error;                  /* the writer thread's error message */
};

static void load_file_mappings(cv_io *io) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    char line[4096];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off, inode;
        char perms[8], dev[16];
        if (sscanf(line, "%lx-%lx %7s %lx %15s %lu", &lo, &hi, perms, &off, dev, &inode) != 6 || inode == 0) continue;
        if (io->n_files == cap) {
            size_t ncap = cap ? 2 * cap : 32;
            range *r = realloc(io->files, ncap * sizeof *r);
            if (!r) break;
            io->files = r;
            cap = ncap;
        }
        io->files[io->n_files++] = (range){lo, hi};
    }
    fclose(f);
}

static const range *mapping_of(const cv_io *io, uintptr_t a, uintptr_t b) {
    for (size_t i = 0; i < io->n_files; i++)
        if (a >= io->files[i].lo && b <= io->files[i].hi) return &io->files[i];
    return NULL;
}

/* Writer thread: source bytes [p, p+n) are in the output now. */
static void consumed(cv_io *io, const uint8_t *p, uint64_t n) {
    if (!n) return;
    io->done += n;
    if (io->prog) sm_progress_update(io->prog, io->done);
    uintptr_t a = (uintptr_t)p, b = a + (uintptr_t)n;
    if (mapping_of(io, a, b)) {
        uintptr_t lo = (a + io->page - 1) & ~(io->page - 1), hi = b & ~(io->page - 1);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
}

/* About to read [p, p+n): ask the kernel to read on ahead in the same file mapping. */
static void read_ahead(cv_io *io, const uint8_t *p, uint64_t n) {
    uintptr_t a = (uintptr_t)p, b = a + (uintptr_t)n;
    const range *f = mapping_of(io, a, b);
    if (!f) return;
    if (io->ahead < a || io->ahead > f->hi) io->ahead = a & ~(io->page - 1);
    if (io->ahead >= b + AHEAD_BYTES / 2) return;
    uintptr_t end = b + AHEAD_BYTES < f->hi ? b + AHEAD_BYTES : f->hi;
    if (end > io->ahead) madvise((void *)io->ahead, end - io->ahead, MADV_WILLNEED);
    io->ahead = end;
}

static void *writer_main(void *arg) {
    cv_io *io = arg;
    for (;;) {
        pthread_mutex_lock(&io->mu);
        while (io->q_len == 0) pthread_cond_wait(&io->cv, &io->mu);
        job j = io->q[io->q_head];
        bool failed = io->failed;
        pthread_mutex_unlock(&io->mu);
        if (j.stop) return NULL;
        int rc = failed ? 0 : sm_sink_write(io->w, j.data, j.n);
        if (!failed && !rc) consumed(io, j.src, j.src_n);
        pthread_mutex_lock(&io->mu);
        if (rc && !io->failed) {
            io->failed = true;
            io->error = strdup(sm_last_error());
        }
        if (j.buf >= 0) io->busy[j.buf] = false;
        io->q_head = (io->q_head + 1) % (RING + 1);
        io->q_len--;
        pthread_cond_broadcast(&io->cv);
        pthread_mutex_unlock(&io->mu);
    }
}

cv_io *cv_io_new(sm_sink *w, sm_progress *prog) {
    cv_io *io = calloc(1, sizeof *io);
    if (!io) {
        sm_error("out of memory");
        return NULL;
    }
    io->w = w;
    io->prog = prog;
    long ps = sysconf(_SC_PAGESIZE);
    io->page = ps > 0 ? (uintptr_t)ps : 4096;
    (void)sm_isa_active(); /* settle the cached answer before other threads ask */
    load_file_mappings(io);
    pthread_mutex_init(&io->mu, NULL);
    pthread_cond_init(&io->cv, NULL);
    if (pthread_create(&io->thread, NULL, writer_main, io)) {
        cv_io_finish(io);
        sm_error("cannot start the writer thread");
        return NULL;
    }
    io->started = true;
    return io;
}

/* Queue a job (waits while the queue is full). -1 if the writer has failed. */
static int push(cv_io *io, job j) {
    pthread_mutex_lock(&io->mu);
    while (io->q_len == RING + 1 && !io->failed) pthread_cond_wait(&io->cv, &io->mu);
    int rc = io->failed ? -1 : 0;
    if (!rc || j.stop) {
        while (io->q_len == RING + 1) pthread_cond_wait(&io->cv, &io->mu); /* a stop always gets in */
        io->q[(io->q_head + io->q_len) % (RING + 1)] = j;
        io->q_len++;
        pthread_cond_broadcast(&io->cv);
    }
    pthread_mutex_unlock(&io->mu);
    return rc;
}

/* A free ring buffer of at least n bytes (waits for the writer to hand one back); -1 on failure. */
static int take_buffer(cv_io *io, size_t n) {
    pthread_mutex_lock(&io->mu);
    int b = -1;
    while (!io->failed) {
        for (int i = 0; i < RING && b < 0; i++)
            if (!io->busy[i]) b = i;
        if (b >= 0) break;
        pthread_cond_wait(&io->cv, &io->mu);
    }
    if (b >= 0) io->busy[b] = true;
    pthread_mutex_unlock(&io->mu);
    if (b < 0) return -1;
    if (n > io->cap[b]) {
        uint8_t *p = realloc(io->buf[b], n);
        if (!p) {
            pthread_mutex_lock(&io->mu);
            io->busy[b] = false;
            pthread_mutex_unlock(&io->mu);
            return sm_error("out of memory (%zu bytes)", n);
        }
        io->buf[b] = p;
        io->cap[b] = n;
    }
    return b;
}

static void give_back(cv_io *io, int b) {
    pthread_mutex_lock(&io->mu);
    io->busy[b] = false;
    pthread_cond_broadcast(&io->cv);
    pthread_mutex_unlock(&io->mu);
}

/* The writer's failure as this thread's error. */
static int writer_error(cv_io *io) {
    pthread_mutex_lock(&io->mu);
    int rc = io->failed ? sm_error("%s", io->error ? io->error : "write failed") : 0;
    pthread_mutex_unlock(&io->mu);
    return rc;
}

int cv_io_finish(cv_io *io) {
    if (!io) return 0;
    int rc = 0;
    if (io->started) {
        push(io, (job){.stop = true, .buf = -1});
        pthread_join(io->thread, NULL);
        rc = writer_error(io);
    }
    pthread_mutex_destroy(&io->mu);
    pthread_cond_destroy(&io->cv);
    for (int i = 0; i < RING; i++) free(io->buf[i]);
    free(io->fbuf);
    free(io->lbuf);
    free(io->files);
    free(io->error);
    free(io);
    return rc;
}

/* Source row (outermost index) for output row r, with the rope permutation of `heads` heads
 * over n rows: output row h*d + 2i + j comes from input row h*d + j*d/2 + i. */
static inline int64_t source_row(int64_t r, int64_t n, int64_t heads);

/* The codec refused rows [r0, r0 + n / elems): say which value of the source tensor is not
 * finite (its row in the checkpoint, before any rope permutation), else keep the codec's
 * reason with the rows it was given (its row numbers count from r0). */
static int quantize_failed(const float *f, int64_t n, int64_t elems, int64_t r0, int64_t n_rows, const cv_item *it) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(f[i]))
            return sm_error("row %lld, column %lld: value %g is not finite (quantizing to %s)",
                            (long long)source_row(r0 + i / elems, n_rows, it->permute_heads), (long long)(i % elems),
                            (double)f[i], sm_type_name(it->type));
    return sm_error_ctx("rows %lld..%lld to %s", (long long)r0, (long long)(r0 + n / elems - 1),
                        sm_type_name(it->type));
}

static inline int64_t source_row(int64_t r, int64_t n, int64_t heads) {
    if (!heads) return r;
    int64_t d = n / heads, h = r / d, k = r % d;
    return h * d + (k & 1) * (d / 2) + k / 2;
}

/* NaN/Inf in n source values at elements [first, first+n) of t (rows of row_len): an error
 * naming row and column unless --allow-nonfinite. Runs on bytes about to be cast or written,
 * so it costs one pass over data already in cache. */
static int check_finite(const sm_tensor *t, int64_t first, int64_t n, int64_t row_len) {
    if (sm_allow_nonfinite()) return 0;
    if (t->n_dims < 2) row_len = 0; /* a vector: "element I" */
    const size_t es = sm_type_get(t->type)->block_bytes;
    const uint8_t *p = (const uint8_t *)t->data + (size_t)first * es;
    int64_t i = sm_first_nonfinite(t->type, p, n);
    return i < 0 ? 0 : sm_nonfinite_error(t->type, p + (size_t)i * es, first + i, row_len);
}

int cv_write_item(cv_io *io, const cv_item *it) {
    if (it->n_experts) { /* a stack: each expert's matrix in turn, as a tensor of its own */
        cv_item one = *it;
        one.experts = NULL;
        one.n_experts = 0;
        one.n_dims = 2;
        one.shape[0] = it->shape[1];
        one.shape[1] = it->shape[2];
        one.shape[2] = 0;
        one.nbytes = it->nbytes / (uint64_t)it->n_experts;
        for (int64_t e = 0; e < it->n_experts; e++) {
            one.src = it->experts[e];
            if (cv_write_item(io, &one)) return -1;
        }
        return 0;
    }
    if (!it->src) /* generated: F32 already */
        return push(io, (job){.data = (const uint8_t *)it->gen, .n = it->nbytes, .buf = -1}) ? writer_error(io) : 0;
    if (it->gptq[0]) { /* a GPTQ linear: decoded whole (one tensor's bytes at a time) */
        int b = take_buffer(io, (size_t)it->nbytes);
        if (b < 0) {
            writer_error(io);
            return -1;
        }
        if (cv_gptq_fill(it, io->buf[b])) {
            give_back(io, b);
            return sm_error_ctx("tensor %s", it->name);
        }
        return push(io, (job){.data = io->buf[b], .n = it->nbytes, .buf = b}) ? writer_error(io) : 0;
    }
    const sm_tensor *t = it->src;
    const uint8_t *base = t->data;
    const int64_t n_rows = t->n_dims ? t->shape[0] : 1;
    const int64_t elems = n_rows ? sm_tensor_nelements(t) / n_rows : 0; /* per outer row */
    const int64_t row_len = sm_tensor_row_len(t);
    const uint64_t in_row = (uint64_t)elems * sm_type_get(t->type)->block_bytes;
    const uint64_t out_row = n_rows ? it->nbytes / (uint64_t)n_rows : 0;
    if (n_rows == 0 || elems == 0) return 0;

    /* already in the output type, rows in order: straight from the mapping */
    if (t->type == it->type && !it->permute_heads && !it->n_loras) {
        for (uint64_t off = 0; off < t->nbytes; off += WRITE_BYTES) {
            uint64_t k = t->nbytes - off < WRITE_BYTES ? t->nbytes - off : WRITE_BYTES;
            read_ahead(io, base + off, k);
            const uint64_t es = sm_type_get(t->type)->block_bytes;
            if (!sm_type_get(t->type)->quantized && check_finite(t, (int64_t)(off / es), (int64_t)(k / es), elems))
                return sm_error_ctx("tensor %s", t->name);
            if (push(io, (job){.data = base + off, .n = k, .src = base + off, .src_n = k, .buf = -1}))
                return writer_error(io);
        }
        return 0;
    }

    /* chunk = whole rope heads when permuting (a head's rows are reordered among themselves) */
    const int64_t unit = it->permute_heads ? n_rows / it->permute_heads : 1;
    const bool quant = sm_type_get(it->type)->quantized, lora = it->n_loras > 0;
    int64_t per = quant || lora ? QUANT_ELEMS / (elems * unit) : (int64_t)(WRITE_BYTES / (out_row * (uint64_t)unit));
    if (per < 1) per = 1;
    const int64_t chunk = per * unit < n_rows ? per * unit : n_rows;
    if (quant && (size_t)(chunk * elems) > io->fcap) {
        float *f = realloc(io->fbuf, (size_t)(chunk * elems) * sizeof *f);
        if (!f) return sm_error("out of memory (%lld floats)", (long long)(chunk * elems));
        io->fbuf = f;
        io->fcap = (size_t)(chunk * elems);
    }
    if (lora && (size_t)(chunk * elems) > io->lcap) {
        float *f = realloc(io->lbuf, (size_t)(chunk * elems) * sizeof *f);
        if (!f) return sm_error("out of memory (%lld floats)", (long long)(chunk * elems));
        io->lbuf = f;
        io->lcap = (size_t)(chunk * elems);
    }

    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        const int64_t rows = n_rows - r0 < chunk ? n_rows - r0 : chunk;
        const uint8_t *src = base + (uint64_t)r0 * in_row; /* whole heads: exactly these rows are read */
        read_ahead(io, src, (uint64_t)rows * in_row);
        int b = take_buffer(io, (size_t)(out_row * (uint64_t)rows));
        if (b < 0) {
            writer_error(io); /* the writer's failure, if that is why; else out of memory */
            return -1;
        }
        uint8_t *out = io->buf[b];
        /* plain output: cast each source row straight into the chunk; quantized output: to
         * floats first, then the codec (which runs its own threads). The casts are
         * memory-bound SIMD loops that one thread runs faster than the disk takes them. */
        int rc = sm_type_get(t->type)->quantized ? 0 : check_finite(t, r0 * elems, rows * elems, elems);
        if (lora && !rc) { /* source rows to floats, deltas added in the checkpoint's row order */
            for (int64_t r = 0; r < rows && !rc; r++)
                rc = cv_cast_row(t->type, src + (uint64_t)r * in_row, SM_TYPE_F32, io->lbuf + r * elems, elems);
            if (!rc) rc = sm_lora_apply(it->loras, it->n_loras, t->name, io->lbuf, r0, rows, n_rows, elems);
            int64_t bad = rc || sm_allow_nonfinite() ? -1 : sm_first_nonfinite(SM_TYPE_F32, io->lbuf, rows * elems);
            if (bad >= 0) {
                sm_nonfinite_error(SM_TYPE_F32, io->lbuf + bad, r0 * elems + bad, elems);
                rc = sm_error_ctx("the LoRA merge gives a non-finite weight");
            }
        }
        for (int64_t r = 0; r < rows && !rc; r++) {
            int64_t sr = source_row(r0 + r, n_rows, it->permute_heads);
            if (lora) {
                const float *fp = io->lbuf + (sr - r0) * elems;
                rc = quant ? (memcpy(io->fbuf + r * elems, fp, (size_t)elems * sizeof *fp), 0)
                           : cv_cast_row(SM_TYPE_F32, fp, it->type, out + (uint64_t)r * out_row, elems);
                continue;
            }
            const uint8_t *sp = base + (uint64_t)sr * in_row;
            rc = quant ? cv_cast_row(t->type, sp, SM_TYPE_F32, io->fbuf + r * elems, elems)
                       : cv_cast_row(t->type, sp, it->type, out + (uint64_t)r * out_row, elems);
        }
        if (!rc && lora && !quant && !sm_allow_nonfinite()) { /* finite floats can still overflow f16 */
            int64_t bad = sm_first_nonfinite(it->type, out, rows * elems);
            if (bad >= 0) {
                int64_t sr = source_row(r0 + bad / elems, n_rows, it->permute_heads);
                sm_nonfinite_error(it->type, out + (uint64_t)bad * sm_type_get(it->type)->block_bytes,
                                   sr * elems + bad % elems, elems);
                rc = sm_error_ctx("the LoRA merge gives a weight beyond the range of %s", sm_type_name(it->type));
            }
        }
        if (!rc && quant) {
            int64_t nq = rows * elems / row_len;
            if (sm_quantize_rows(it->type, io->fbuf, out, nq, row_len, it->imatrix) !=
                sm_type_row_bytes(it->type, row_len) * (uint64_t)nq)
                rc = quantize_failed(io->fbuf, rows * elems, elems, r0, n_rows, it);
        }
        if (rc) {
            give_back(io, b);
            return sm_error_ctx("tensor %s", t->name);
        }
        if (push(io, (job){.data = out, .n = out_row * (uint64_t)rows, .src = src, .src_n = (uint64_t)rows * in_row,
                           .buf = b}))
            return writer_error(io);
    }
    return 0;
}
