/* imatrix_file.c - read and write llama.cpp importance-matrix files (GGUF and legacy .dat). */
#include "calib/calib.h"

#include "formats/formats.h"
#include "formats/sink.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTRIES 1000000
#define MAX_NAME 4096

static void compute_weights(sm_imatrix_entry *e, bool legacy) {
    int64_t per = e->n_values / e->n_mat;
    for (int64_t j = 0; j < e->n_mat; j++) {
        float count = (float)e->counts[j];
        for (int64_t i = 0; i < per; i++) {
            float s = e->sums[j * per + i];
            if (legacy) e->weights[j * per + i] = count > 0 ? s / count : s;
            else e->weights[j * per + i] = count > 0.0f ? s / count : 1.0f;
        }
    }
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const sm_imatrix_entry *)a)->name, ((const sm_imatrix_entry *)b)->name);
}

static sm_imatrix_entry *find_entry(const sm_imatrix *m, const char *name) {
    sm_imatrix_entry key = {.name = (char *)name};
    return m->n_entries ? bsearch(&key, m->entries, m->n_entries, sizeof key, cmp_entry) : NULL;
}

int sm_imatrix_add(sm_imatrix *m, const char *name, int64_t n_mat, int64_t n_per_row, const float *sums,
                   const int64_t *counts) {
    if (n_mat < 1 || n_per_row < 1 || n_mat > INT64_MAX / n_per_row) return sm_error("imatrix entry %s: bad size", name);
    if (strlen(name) > MAX_NAME) return sm_error("imatrix entry name too long");
    for (size_t i = 0; i < m->n_entries; i++)
        if (!strcmp(m->entries[i].name, name)) return sm_error("imatrix entry %s appears twice", name);
    sm_imatrix_entry *ne = realloc(m->entries, (m->n_entries + 1) * sizeof *ne);
    if (!ne) return sm_error("out of memory");
    m->entries = ne;
    sm_imatrix_entry *e = &ne[m->n_entries];
    memset(e, 0, sizeof *e);
    e->n_mat = n_mat;
    e->n_values = n_mat * n_per_row;
    e->name = strdup(name);
    e->sums = malloc((size_t)e->n_values * sizeof(float));
    e->weights = malloc((size_t)e->n_values * sizeof(float));
    e->counts = malloc((size_t)n_mat * sizeof(int64_t));
    if (!e->name || !e->sums || !e->weights || !e->counts) {
        free(e->name); free(e->sums); free(e->weights); free(e->counts);
        return sm_error("out of memory");
    }
    memcpy(e->sums, sums, (size_t)e->n_values * sizeof(float));
    memcpy(e->counts, counts, (size_t)n_mat * sizeof(int64_t));
    compute_weights(e, m->legacy);
    m->n_entries++;
    qsort(m->entries, m->n_entries, sizeof *m->entries, cmp_entry);
    return 0;
}

int sm_imatrix_add_dataset(sm_imatrix *m, const char *dataset) {
    char **nd = realloc(m->datasets, (m->n_datasets + 1) * sizeof *nd);
    if (!nd) return sm_error("out of memory");
    m->datasets = nd;
    if (!(nd[m->n_datasets] = strdup(dataset))) return sm_error("out of memory");
    m->n_datasets++;
    return 0;
}

void sm_imatrix_free(sm_imatrix *m) {
    for (size_t i = 0; i < m->n_entries; i++) {
        free(m->entries[i].name);
        free(m->entries[i].sums);
        free(m->entries[i].counts);
        free(m->entries[i].weights);
    }
    free(m->entries);
    for (size_t i = 0; i < m->n_datasets; i++) free(m->datasets[i]);
    free(m->datasets);
    memset(m, 0, sizeof *m);
}

const float *sm_imatrix_find(const sm_imatrix *m, const char *tensor_name, int64_t n_per_row, int64_t mat) {
    sm_imatrix_entry *e = find_entry(m, tensor_name);
    if (!e) {
        sm_error("importance matrix has no entry for %s", tensor_name);
        return NULL;
    }
    if (e->n_values != e->n_mat * n_per_row || mat < 0 || mat >= e->n_mat) {
        sm_error("importance matrix entry for %s has %lld values, the tensor needs %lld per matrix", tensor_name,
                 (long long)e->n_values, (long long)n_per_row);
        return NULL;
    }
    return e->weights + mat * n_per_row;
}

int sm_imatrix_for_tensor(const sm_imatrix *m, const char *path, const char *tensor_name, int64_t n_per_row,
                          const float **out) {
    return sm_imatrix_for_experts(m, path, tensor_name, n_per_row, 1, out);
}

int sm_imatrix_for_experts(const sm_imatrix *m, const char *path, const char *tensor_name, int64_t n_per_row,
                           int64_t n_mat, const float **out) {
    *out = NULL;
    const sm_imatrix_entry *e = find_entry(m, tensor_name);
    if (!e) {
        if (strncmp(tensor_name, "blk.", 4)) return 0;
        return sm_error("%s: the importance matrix has no entry for %s (%zu entries, e.g. %s): it was not made for "
                        "this model",
                        path, tensor_name, m->n_entries, m->n_entries ? m->entries[0].name : "none");
    }
    /* llama-imatrix's entry of an expert tensor holds n_mat rows of weights: one count per expert
     * in its GGUF format, a single ncall in the legacy .dat */
    if ((e->n_mat != 1 && e->n_mat != n_mat) || e->n_values != n_per_row * n_mat) {
        if (!strcmp(tensor_name, "token_embd.weight")) return 0;
        return sm_error("%s: the importance matrix entry for %s has %lld values (%lld matrices), the tensor's rows "
                        "have %lld columns (%lld matrices): it was not made for this model",
                        path, tensor_name, (long long)e->n_values, (long long)e->n_mat, (long long)n_per_row,
                        (long long)n_mat);
    }
    *out = e->weights;
    return 0;
}

/* ---- legacy .dat ---- */

typedef struct { const uint8_t *p; size_t n, off; const char *path; } reader;

static int rd_i32(reader *r, int32_t *v, const char *what) {
    if (r->n - r->off < 4)
        return sm_error("%s: offset %zu: file ends where %s (int32) was expected", r->path, r->off, what);
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return 0;
}

static int load_dat(const sm_mmap *mm, sm_imatrix *m) {
    reader r = {mm->data, mm->size, 0, mm->path};
    int32_t n = 0;
    if (rd_i32(&r, &n, "the entry count")) return -1;
    if (n < 1 || n > MAX_ENTRIES) return sm_error("%s: offset 0: entry count %d out of range [1, %d]", r.path, n, MAX_ENTRIES);
    m->legacy = true;
    for (int32_t i = 0; i < n; i++) {
        int32_t len = 0, ncall = 0, nval = 0;
        size_t at = r.off;
        if (rd_i32(&r, &len, "a name length")) return -1;
        if (len < 1 || len > MAX_NAME || (size_t)len > r.n - r.off)
            return sm_error("%s: offset %zu: entry %d name length %d invalid", r.path, at, i, len);
        char name[MAX_NAME + 1];
        memcpy(name, r.p + r.off, (size_t)len);
        name[len] = 0;
        if (strlen(name) != (size_t)len) return sm_error("%s: offset %zu: entry %d name contains NUL", r.path, r.off, i);
        r.off += (size_t)len;
        if (rd_i32(&r, &ncall, "ncall") || rd_i32(&r, &nval, "the value count")) return -1;
        if (nval < 1 || (size_t)nval > (r.n - r.off) / 4)
            return sm_error("%s: offset %zu: entry %s: %d values do not fit in the file", r.path, r.off - 4, name, nval);
        float *vals = malloc((size_t)nval * 4);
        if (!vals) return sm_error("out of memory");
        memcpy(vals, r.p + r.off, (size_t)nval * 4);
        r.off += (size_t)nval * 4;
        for (int32_t k = 0; k < nval; k++)
            if (!isfinite(vals[k])) {
                free(vals);
                return sm_error("%s: entry %s value %d is not finite", r.path, name, k);
            }
        int64_t cnt = ncall;
        int rc = sm_imatrix_add(m, name, 1, nval, vals, &cnt);
        free(vals);
        if (rc) return sm_error_ctx("%s", r.path);
    }
    if (r.off < r.n) { /* optional trailer: chunk count, dataset */
        int32_t chunks = 0, len = 0;
        if (rd_i32(&r, &chunks, "the chunk count")) return -1;
        m->chunk_count = chunks;
        if (r.off < r.n) {
            if (rd_i32(&r, &len, "the dataset name length")) return -1;
            if (len < 0 || (size_t)len > r.n - r.off || len > MAX_NAME)
                return sm_error("%s: offset %zu: dataset name length %d invalid", r.path, r.off - 4, len);
            if (len > 0) {
                char ds[MAX_NAME + 1];
                memcpy(ds, r.p + r.off, (size_t)len);
                ds[len] = 0;
                if (sm_imatrix_add_dataset(m, ds)) return -1;
            }
        }
    }
    return 0;
}

/* ---- GGUF ---- */

static int load_gguf(const char *path, sm_imatrix *m) {
    sm_gguf *g;
    if (sm_gguf_open(path, &g)) return -1;
    int rc = -1;
    const sm_gguf_value *ds = sm_gguf_find(g, "imatrix.datasets");
    const sm_gguf_value *cc = sm_gguf_find(g, "imatrix.chunk_count");
    const sm_gguf_value *cs = sm_gguf_find(g, "imatrix.chunk_size");
    if (!ds || !cc || !cs) {
        sm_error("%s: not an importance matrix: imatrix.datasets / chunk_count / chunk_size missing", path);
        goto done;
    }
    if (ds->type == SM_GGUF_ARRAY && ds->v.arr.type == SM_GGUF_STRING)
        for (uint64_t i = 0; i < ds->v.arr.n; i++)
            if (sm_imatrix_add_dataset(m, ds->v.arr.items[i].v.str.ptr)) goto done;
    uint64_t v;
    if (sm_gguf_get_u64(g, "imatrix.chunk_count", &v) == 0) m->chunk_count = (int32_t)v;
    if (sm_gguf_get_u64(g, "imatrix.chunk_size", &v) == 0) m->chunk_size = (int32_t)v;
    size_t nt = sm_gguf_n_tensors(g);
    if (nt < 1) {
        sm_error("%s: importance matrix has no tensors", path);
        goto done;
    }
    for (size_t i = 0; i < nt; i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        size_t len = strlen(t->name);
        const char *suf = ".in_sum2";
        if (len <= 8 || strcmp(t->name + len - 8, suf) != 0) {
            if (len > 7 && !strcmp(t->name + len - 7, ".counts")) continue;
            sm_error("%s: unexpected tensor %s in an importance matrix", path, t->name);
            goto done;
        }
        char base[MAX_NAME + 16], cname[MAX_NAME + 32];
        if (len - 8 > MAX_NAME) { sm_error("%s: tensor name too long", path); goto done; }
        memcpy(base, t->name, len - 8);
        base[len - 8] = 0;
        snprintf(cname, sizeof cname, "%s.counts", base);
        const sm_tensor *c = sm_gguf_find_tensor(g, cname);
        if (!c) { sm_error("%s: mismatched sums and counts for %s", path, base); goto done; }
        if (t->type != SM_TYPE_F32 || c->type != SM_TYPE_F32) {
            sm_error("%s: %s: sums and counts must be F32", path, base);
            goto done;
        }
        int64_t nval = sm_tensor_nelements(t), nmat = sm_tensor_nelements(c);
        if (nmat < 1 || nval < 1 || nval % nmat) {
            sm_error("%s: %s: %lld sums do not split into %lld matrices", path, base, (long long)nval, (long long)nmat);
            goto done;
        }
        int64_t *counts = malloc((size_t)nmat * sizeof *counts);
        float *sums = malloc((size_t)nval * sizeof *sums);
        if (!counts || !sums) { free(counts); free(sums); sm_error("out of memory"); goto done; }
        memcpy(sums, t->data, (size_t)nval * 4);
        bool ok = true;
        for (int64_t j = 0; j < nmat; j++) {
            float f;
            memcpy(&f, (const uint8_t *)c->data + 4 * j, 4);
            if (!isfinite(f) || f < 0) ok = false;
            counts[j] = ok ? llroundf(f) : 0;
        }
        for (int64_t j = 0; j < nval && ok; j++) ok = isfinite(sums[j]);
        int arc = ok ? sm_imatrix_add(m, base, nmat, nval / nmat, sums, counts) : -1;
        if (!ok) sm_error("%s: %s holds non-finite or negative values", path, base);
        free(counts);
        free(sums);
        if (arc) goto done;
    }
    if (m->n_entries == 0) { sm_error("%s: importance matrix has no entries", path); goto done; }
    rc = 0;
done:
    sm_gguf_close(g);
    return rc;
}

int sm_imatrix_load(const char *path, sm_imatrix *out) {
    memset(out, 0, sizeof *out);
    /* a file of another kind is named as such; an unrecognised one goes to the .dat reader,
     * whose errors say where it stopped making sense */
    const unsigned ok = SM_FILE_BIT(SM_FILE_GGUF) | SM_FILE_BIT(SM_FILE_IMATRIX_DAT) | SM_FILE_BIT(SM_FILE_UNKNOWN) |
                        SM_FILE_BIT(SM_FILE_MISSING) | SM_FILE_BIT(SM_FILE_UNREADABLE);
    if (sm_sniff_expect(path, ok, "an importance matrix (llama-imatrix's GGUF or legacy .dat)", NULL)) return -1;
    sm_mmap mm;
    if (sm_mmap_open(&mm, path)) return -1;
    bool is_gguf = mm.size >= 4 && !memcmp(mm.data, "GGUF", 4);
    int rc = is_gguf ? 0 : load_dat(&mm, out);
    sm_mmap_close(&mm);
    if (is_gguf) rc = load_gguf(path, out);
    if (rc) sm_imatrix_free(out);
    return rc;
}

int sm_imatrix_save_gguf(const sm_imatrix *m, const char *path) {
    sm_sink *w = sm_sink_open(path, NULL);
    if (!w) return -1;
    sm_meta *meta = sm_sink_meta(w);
    sm_meta_set_str(meta, "general.type", "imatrix");
    sm_meta_set_arr_str(meta, "imatrix.datasets", (const char *const *)m->datasets, m->n_datasets);
    sm_meta_set_u32(meta, "imatrix.chunk_count", (uint32_t)m->chunk_count);
    sm_meta_set_u32(meta, "imatrix.chunk_size", (uint32_t)m->chunk_size);
    char name[MAX_NAME + 32];
    for (size_t i = 0; i < m->n_entries; i++) { /* entries are sorted by name, as llama.cpp writes */
        const sm_imatrix_entry *e = &m->entries[i];
        /* ggml's tensors are [n_per_row, n_mat] and [1, n_mat]; gguf drops trailing 1s
         * (ggml_n_dims), so a dense entry is [n_per_row] and [1] */
        const bool dense = e->n_mat == 1;
        int64_t s1[2] = {e->n_mat, e->n_values / e->n_mat}, s2[2] = {e->n_mat, 1};
        snprintf(name, sizeof name, "%s.in_sum2", e->name);
        if (sm_sink_add(w, name, SM_TYPE_F32, dense ? 1 : 2, dense ? s1 + 1 : s1)) goto fail;
        snprintf(name, sizeof name, "%s.counts", e->name);
        if (sm_sink_add(w, name, SM_TYPE_F32, dense ? 1 : 2, dense ? s2 + 1 : s2)) goto fail;
    }
    if (sm_sink_begin(w)) goto fail;
    for (size_t i = 0; i < m->n_entries; i++) {
        const sm_imatrix_entry *e = &m->entries[i];
        float *c = malloc((size_t)e->n_mat * sizeof *c);
        if (!c) { sm_error("out of memory"); goto fail; }
        for (int64_t j = 0; j < e->n_mat; j++) c[j] = (float)e->counts[j];
        int rc = sm_sink_write(w, e->sums, (uint64_t)e->n_values * 4) ||
                 sm_sink_write(w, c, (uint64_t)e->n_mat * 4);
        free(c);
        if (rc) goto fail;
    }
    int frc = sm_sink_finish(w);
    sm_sink_close(w);
    return frc;
fail:
    sm_sink_close(w);
    return -1;
}

int sm_imatrix_save_dat(const sm_imatrix *m, const char *path) {
    sm_outfile *o = sm_outfile_open(path);
    if (!o) return -1;
    int32_t n = (int32_t)m->n_entries;
    int rc = sm_outfile_write(o, &n, 4);
    for (size_t i = 0; i < m->n_entries && !rc; i++) {
        const sm_imatrix_entry *e = &m->entries[i];
        int32_t len = (int32_t)strlen(e->name), nval = (int32_t)e->n_values;
        int64_t chunk = m->chunk_size > 0 ? m->chunk_size : 1, maxc = 0;
        for (int64_t j = 0; j < e->n_mat; j++) if (e->counts[j] > maxc) maxc = e->counts[j];
        int32_t ncall = (int32_t)((maxc + chunk - 1) / chunk); /* llama.cpp: ceiling division */
        rc = sm_outfile_write(o, &len, 4) || sm_outfile_write(o, e->name, (size_t)len) ||
             sm_outfile_write(o, &ncall, 4) || sm_outfile_write(o, &nval, 4);
        int64_t per = e->n_values / e->n_mat;
        for (int64_t k = 0; k < e->n_values && !rc; k++) {
            float count = (float)e->counts[k / per], value = e->sums[k];
            if (count == 0.0f) value = count = 1.0f;
            float out = (value / count) * (float)ncall;
            rc = sm_outfile_write(o, &out, 4);
        }
    }
    if (!rc) {
        int32_t chunks = m->chunk_count;
        const char *ds = m->n_datasets ? m->datasets[m->n_datasets - 1] : "";
        int32_t len = (int32_t)strlen(ds);
        rc = sm_outfile_write(o, &chunks, 4) || sm_outfile_write(o, &len, 4) || sm_outfile_write(o, ds, (size_t)len);
    }
    if (rc) {
        sm_outfile_abort(o);
        return -1;
    }
    return sm_outfile_commit(o);
}
