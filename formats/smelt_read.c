/* smelt_read.c - opening a .smelt: the preamble, the trailer, the header JSON and its directory,
 * every field checked against the file before use (the input is hostile). Decoding and
 * extraction are in smelt_extract.c. */
#include "formats/smelt_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define MAX_EXACT ((uint64_t)1 << 53) /* JSON numbers are doubles: integers up to here are exact */

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

typedef struct ctx {
    const sm_smelt *s;
    const char *where; /* "file 'x', tensor 'y'" */
} ctx;

static int bad(const ctx *c, const char *field, const char *expected) {
    return sm_error("%s: header: %s: field '%s': expected %s", c->s->path, c->where, field, expected);
}

static int get_u64(const ctx *c, const cJSON *o, const char *field, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > (double)MAX_EXACT ||
        v->valuedouble != floor(v->valuedouble))
        return bad(c, field, "a non-negative integer up to 2^53");
    *out = (uint64_t)v->valuedouble;
    return 0;
}

static const char *get_str(const ctx *c, const cJSON *o, const char *field) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!cJSON_IsString(v) || !v->valuestring) {
        bad(c, field, "a string");
        return NULL;
    }
    return v->valuestring;
}

static int get_hex(const ctx *c, const cJSON *o, const char *field, uint64_t *out) {
    const char *s = get_str(c, o, field);
    if (!s) return -1;
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] && i < 17; i++) {
        const char ch = s[i];
        const int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0) break;
        v = v << 4 | (uint64_t)d;
    }
    if (i != 16 || s[i]) return bad(c, field, "16 lowercase hexadecimal digits (an xxh3-64)");
    *out = v;
    return 0;
}

/* codec "zstd": planes, chunk_size, chunks */
static int parse_chunks(const ctx *c, const cJSON *o, smelt_tensor *t) {
    const char *planes = get_str(c, o, "planes");
    if (!planes) return -1;
    const int p = (int)smelt_planes_from_name(planes);
    if (p < 0) return bad(c, "planes", "one of none, b2, b4, bf16");
    t->planes = (smelt_planes)p;
    const uint64_t elem = (uint64_t)smelt_n_planes(t->planes);
    if (t->view.nbytes % elem) return bad(c, "planes", "a layout whose element size divides the tensor's size");
    if (get_u64(c, o, "chunk_size", &t->chunk_size)) return -1;
    if (t->chunk_size == 0 || t->chunk_size > SMELT_MAX_CHUNK || t->chunk_size % 4)
        return bad(c, "chunk_size", "a multiple of 4 from 4 to 64 MiB");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "chunks");
    const uint64_t want = (t->view.nbytes + t->chunk_size - 1) / t->chunk_size;
    if (!cJSON_IsArray(a) || (uint64_t)cJSON_GetArraySize(a) != want) {
        char buf[96];
        snprintf(buf, sizeof buf, "an array of %llu [offset, size] pairs (size / chunk_size rounded up)",
                 (unsigned long long)want);
        return bad(c, "chunks", buf);
    }
    t->n_chunks = (size_t)want;
    if (want && !(t->chunks = calloc((size_t)want, sizeof *t->chunks))) return sm_error("out of memory");
    size_t k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        const uint64_t raw = t->view.nbytes - k * t->chunk_size < t->chunk_size ? t->view.nbytes - k * t->chunk_size : t->chunk_size;
        const cJSON *x = cJSON_GetArrayItem(e, 0), *y = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsNumber(x) || !cJSON_IsNumber(y) ||
            !(x->valuedouble >= 0) || !(y->valuedouble >= 0) || x->valuedouble > (double)MAX_EXACT ||
            y->valuedouble > (double)MAX_EXACT || x->valuedouble != floor(x->valuedouble) ||
            y->valuedouble != floor(y->valuedouble))
            return bad(c, "chunks", "pairs of non-negative integers [offset, size]");
        smelt_chunk *ch = &t->chunks[k];
        ch->off = (uint64_t)x->valuedouble, ch->size = (uint64_t)y->valuedouble;
        if (ch->off < SMELT_PREAMBLE || ch->off > c->s->data_end || ch->size > c->s->data_end - ch->off)
            return sm_error("%s: header: %s: chunk %zu (offset %llu, %llu bytes) lies outside the data section "
                            "[%d, %llu)", c->s->path, c->where, k, (unsigned long long)ch->off,
                            (unsigned long long)ch->size, SMELT_PREAMBLE, (unsigned long long)c->s->data_end);
        if (ch->size > smelt_chunk_bound(t->planes, (size_t)raw))
            return sm_error("%s: header: %s: chunk %zu claims %llu stored bytes for %llu raw bytes (expected at most %zu)",
                            c->s->path, c->where, k, (unsigned long long)ch->size, (unsigned long long)raw,
                            smelt_chunk_bound(t->planes, (size_t)raw));
        k++;
    }
    return 0;
}

/* nbytes of a tensor from its type and shape, or UINT64_MAX if it does not fit */
static uint64_t tensor_bytes(const sm_tensor *t) {
    uint64_t n = 1;
    for (int d = 0; d < t->n_dims; d++)
        if (__builtin_mul_overflow(n, (uint64_t)t->shape[d], &n) || n > MAX_EXACT) return UINT64_MAX;
    const int64_t row = t->n_dims ? t->shape[t->n_dims - 1] : 1;
    if (row == 0) return 0;
    const uint64_t rb = sm_type_row_bytes(t->type, row);
    uint64_t total;
    if (!rb || __builtin_mul_overflow(rb, n / (uint64_t)row, &total)) return UINT64_MAX;
    return total;
}

static int parse_tensor(ctx *c, const cJSON *o, const smelt_file *f, smelt_tensor *t) {
    const char *name = get_str(c, o, "name");
    if (!name) return -1;
    if (!(t->view.name = strdup(name))) return sm_error("out of memory");
    char where[400];
    snprintf(where, sizeof where, "file '%s', tensor '%.200s'", f->name, name);
    c->where = where;
    uint64_t id = 0, v = 0;
    if (get_u64(c, o, "type_id", &id)) return -1;
    if (id > 1000 || !sm_type_get((sm_type)id)) return bad(c, "type_id", "a GGUF type number or a smelt dtype number");
    t->view.type = (sm_type)id;
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(o, "shape");
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > SM_MAX_DIMS) return bad(c, "shape", "an array of at most 8 sizes");
    const cJSON *e;
    cJSON_ArrayForEach(e, sh) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0) || e->valuedouble > (double)MAX_EXACT || e->valuedouble != floor(e->valuedouble))
            return bad(c, "shape", "non-negative integer sizes");
        t->view.shape[t->view.n_dims++] = (int64_t)e->valuedouble;
    }
    if (get_u64(c, o, "src_offset", &t->src_off) || get_u64(c, o, "size", &t->view.nbytes) || get_hex(c, o, "xxh3_64", &t->xxh))
        return -1;
    if (tensor_bytes(&t->view) != t->view.nbytes) return bad(c, "size", "the size its type and shape give");
    if (t->src_off > f->size || t->view.nbytes > f->size - t->src_off) return bad(c, "src_offset", "a range inside the file");
    const char *codec = get_str(c, o, "codec");
    if (!codec) return -1;
    if (!strcmp(codec, "raw")) {
        if (!f->raw) return bad(c, "codec", "\"zstd\" (raw tensors are stored only in raw-stored files)");
        if (get_u64(c, o, "offset", &v)) return -1;
        if (v != f->off + t->src_off) return bad(c, "offset", "the file's offset plus src_offset");
        t->raw = true, t->off = v;
        return 0;
    }
    if (strcmp(codec, "zstd") || f->raw) return bad(c, "codec", f->raw ? "\"raw\" in a raw-stored file" : "\"raw\" or \"zstd\"");
    return parse_chunks(c, o, t);
}

static int parse_file(sm_smelt *s, const cJSON *o, size_t idx, smelt_file *f) {
    char where[64];
    snprintf(where, sizeof where, "file %zu", idx);
    ctx c = {s, where};
    const char *name = get_str(&c, o, "name"), *kind = name ? get_str(&c, o, "kind") : NULL;
    if (!kind) return -1;
    if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) > 255)
        return bad(&c, "name", "a plain file name (no '/', not . or ..)");
    if (!(f->name = strdup(name)) || !(f->kind = strdup(kind))) return sm_error("out of memory");
    char where2[300];
    snprintf(where2, sizeof where2, "file '%s'", name);
    c.where = where2;
    if (get_u64(&c, o, "size", &f->size) || get_hex(&c, o, "xxh3_64", &f->xxh)) return -1;
    const char *storage = get_str(&c, o, "storage");
    if (!storage) return -1;
    if (!strcmp(storage, "raw")) {
        f->raw = true;
        if (get_u64(&c, o, "offset", &f->off)) return -1;
        if (f->off % SMELT_RAW_ALIGN || f->off < SMELT_PREAMBLE || f->off > s->data_end || f->size > s->data_end - f->off)
            return bad(&c, "offset", "a multiple of 4096 with the file inside the data section");
    } else if (strcmp(storage, "packed")) {
        return bad(&c, "storage", "\"raw\" or \"packed\"");
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "tensors");
    if (!cJSON_IsArray(ts)) return bad(&c, "tensors", "an array");
    const int n = cJSON_GetArraySize(ts);
    if (n && !(f->tensors = calloc((size_t)n, sizeof *f->tensors))) return sm_error("out of memory");
    uint64_t end = 0, covered = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ts) {
        smelt_tensor *t = &f->tensors[f->n_tensors++];
        if (parse_tensor(&c, e, f, t)) return -1;
        if (t->src_off < end)
            return sm_error("%s: header: file '%s', tensor '%s': src_offset %llu overlaps the previous tensor "
                            "(expected tensors in file order, at or after %llu)", s->path, f->name, t->view.name,
                            (unsigned long long)t->src_off, (unsigned long long)end);
        end = t->src_off + t->view.nbytes;
        covered += t->view.nbytes;
    }
    c.where = where2;
    if (f->raw) return 0;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rest");
    if (!cJSON_IsObject(r)) return bad(&c, "rest", "an object (the bytes between tensors)");
    char where3[300];
    snprintf(where3, sizeof where3, "file '%s', rest", name);
    c.where = where3;
    if (get_u64(&c, r, "size", &f->rest.view.nbytes) || get_hex(&c, r, "xxh3_64", &f->rest.xxh)) return -1;
    if (f->rest.view.nbytes != f->size - covered) return bad(&c, "size", "the file's size less its tensors' sizes");
    const char *codec = get_str(&c, r, "codec");
    if (!codec) return -1;
    if (strcmp(codec, "zstd")) return bad(&c, "codec", "\"zstd\"");
    return parse_chunks(&c, r, &f->rest);
}

static int parse(sm_smelt *s) {
    const uint8_t *b = s->base;
    if (s->size < SMELT_PREAMBLE + SMELT_TRAILER)
        return sm_error("%s: offset 0: file is %llu bytes, expected at least %d (preamble and trailer)", s->path,
                        (unsigned long long)s->size, SMELT_PREAMBLE + SMELT_TRAILER);
    if (memcmp(b, SM_SMELT_MAGIC, 8)) return sm_error("%s: offset 0: not a .smelt file (expected the magic \"SMELTPAK\")", s->path);
    const unsigned major = b[8] | (unsigned)b[9] << 8, minor = b[10] | (unsigned)b[11] << 8;
    if (major != SMELT_VERSION_MAJOR)
        return sm_error("%s: offset 8: format version %u.%u; this smelt reads version %d.x", s->path, major, minor,
                        SMELT_VERSION_MAJOR);
    const uint8_t *tr = b + s->size - SMELT_TRAILER;
    const uint64_t toff = s->size - SMELT_TRAILER;
    if (memcmp(tr + 32, SMELT_END_MAGIC, 8))
        return sm_error("%s: offset %llu: no trailer (expected \"SMELTEND\" at the end): the file is truncated or damaged",
                        s->path, (unsigned long long)(toff + 32));
    const uint64_t hoff = le64(tr), hlen = le64(tr + 8), hxxh = le64(tr + 16), fsize = le64(tr + 24);
    if (fsize != s->size)
        return sm_error("%s: offset %llu: the trailer says the file is %llu bytes; it is %llu (truncated or extended)",
                        s->path, (unsigned long long)(toff + 24), (unsigned long long)fsize, (unsigned long long)s->size);
    if (hoff < SMELT_PREAMBLE || hoff > toff || hlen != toff - hoff || hlen > SMELT_MAX_HEADER)
        return sm_error("%s: offset %llu: header at %llu, %llu bytes: expected it to end where the trailer starts (%llu)",
                        s->path, (unsigned long long)toff, (unsigned long long)hoff, (unsigned long long)hlen,
                        (unsigned long long)toff);
    s->data_end = hoff;
    const uint64_t got = XXH3_64bits(b + hoff, (size_t)hlen);
    if (got != hxxh)
        return sm_error("%s: offset %llu: header checksum mismatch (xxh3-64 %016llx, the trailer says %016llx)", s->path,
                        (unsigned long long)hoff, (unsigned long long)got, (unsigned long long)hxxh);
    s->header = cJSON_ParseWithLength((const char *)b + hoff, (size_t)hlen);
    if (!s->header || !cJSON_IsObject(s->header))
        return sm_error("%s: offset %llu: the header is not a JSON object", s->path, (unsigned long long)hoff);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(s->header, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "smelt"))
        return sm_error("%s: header: field 'format': expected \"smelt\"", s->path);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(s->header, "files");
    if (!cJSON_IsArray(files) || cJSON_GetArraySize(files) < 1)
        return sm_error("%s: header: field 'files': expected a non-empty array", s->path);
    const int n = cJSON_GetArraySize(files);
    if (!(s->files = calloc((size_t)n, sizeof *s->files))) return sm_error("out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, files) {
        if (parse_file(s, e, s->n_files, &s->files[s->n_files])) {
            s->n_files++;
            return -1;
        }
        for (size_t i = 0; i < s->n_files; i++)
            if (!strcmp(s->files[i].name, s->files[s->n_files].name)) {
                s->n_files++;
                return sm_error("%s: header: file name '%s' appears twice", s->path, s->files[i].name);
            }
        s->n_files++;
    }
    return 0;
}

static int open_common(sm_smelt *s, sm_smelt **out) {
    if (parse(s)) {
        sm_smelt_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

bool sm_smelt_is_file(const char *path) {
    if (!sm_is_file(path)) return false;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char m[8];
    const bool yes = fread(m, 1, 8, f) == 8 && !memcmp(m, SM_SMELT_MAGIC, 8);
    fclose(f);
    return yes;
}

int sm_smelt_open(const char *path, sm_smelt **out) {
    *out = NULL;
    sm_smelt *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return sm_error("%s: out of memory", path);
    }
    if (sm_mmap_open(&s->map, path)) {
        sm_smelt_close(s);
        return -1;
    }
    s->base = s->map.data;
    s->size = s->map.size;
    return open_common(s, out);
}

int sm_smelt_open_mem(const void *data, size_t size, const char *name, sm_smelt **out) {
    *out = NULL;
    sm_smelt *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(name ? name : "<memory>"))) {
        free(s);
        return sm_error("out of memory");
    }
    s->base = data;
    s->size = data ? size : 0;
    return open_common(s, out);
}

void sm_smelt_close(sm_smelt *s) {
    if (!s || s->refs-- > 0) return; /* a mapping (sm_smelt_map_lazy) still reads it */
    for (size_t i = 0; i < s->n_files; i++) smelt_file_clear(&s->files[i]);
    free(s->files);
    cJSON_Delete(s->header);
    sm_mmap_close(&s->map);
    free(s->path);
    free(s);
}

const cJSON *sm_smelt_header(const sm_smelt *s) { return s->header; }
size_t sm_smelt_n_files(const sm_smelt *s) { return s->n_files; }
const char *sm_smelt_file_name(const sm_smelt *s, size_t i) { return s->files[i].name; }
const char *sm_smelt_file_kind(const sm_smelt *s, size_t i) { return s->files[i].kind; }
uint64_t sm_smelt_file_size(const sm_smelt *s, size_t i) { return s->files[i].size; }
size_t sm_smelt_n_tensors(const sm_smelt *s, size_t file) { return s->files[file].n_tensors; }
const sm_tensor *sm_smelt_tensor(const sm_smelt *s, size_t file, size_t i) { return &s->files[file].tensors[i].view; }
const void *sm_smelt_tensor_data(const sm_smelt *s, size_t file, size_t i) {
    const smelt_tensor *t = &s->files[file].tensors[i];
    return t->raw ? s->base + t->off : NULL;
}
