/* cmd_inspect.c - `smelt inspect PATH [--json] [--all]`: what a GGUF file or a checkpoint
 * holds: its metadata, a table of tensors (name, shape outermost-first, type, bytes) and
 * totals (tensors, parameters, bytes, bits per weight). Long arrays and strings are
 * summarized unless --all. --json prints one object instead of text. */
#include "cli.h"
#include "formats/formats.h"
#include "quantize/quantize.h"

#include <math.h>
#include <regex.h>
#include <xxhash.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_ITEMS 6     /* array elements shown without --all */
#define SUMMARY_STRING 160  /* string bytes shown without --all */
#define JSON_SUMMARY_ITEMS 8

static const char USAGE[] =
    "usage: smelt inspect PATH [--json] [--all] [--filter REGEX]\n"
    "       smelt inspect A.gguf B.gguf --diff [--json] [--filter REGEX]\n"
    "\n"
    "Show what a model file holds. PATH: a GGUF file, a safetensors file, a sharded index\n"
    "(*.index.json), a PyTorch checkpoint, a llama2.c checkpoint, or a Hugging Face model directory.\n"
    "\n"
    "Prints the format, the metadata (GGUF key-values; safetensors __metadata__ or the llama2.c\n"
    "header, and a summary of config.json), one line per tensor (name, shape outermost-first, type, bytes) and totals:\n"
    "tensors, parameters, bytes and bits per weight.\n"
    "\n"
    "GGUF files also show the file size, general.file_type decoded to its recipe name\n"
    "(15 = Q4_K_M), and per tensor its bits per weight and data offset in the file.\n"
    "\n"
    "  --json          one JSON report (fields: docs/json.md): format, file_bytes, metadata,\n"
    "                  tensors [{name, shape, type, bytes, bpw, offset}], n_tensors, n_params,\n"
    "                  bytes, bpw (arrays longer than 8 become {type, n, first} unless --all)\n"
    "  --all           print arrays and strings in full (default: the first few elements)\n"
    "  --filter REGEX  only tensors whose name matches REGEX (POSIX extended); the totals\n"
    "                  are then those of the matching tensors\n"
    "  --diff          compare two GGUF files: metadata keys added, removed or changed, and per\n"
    "                  tensor: type, shape, a hash of the bytes, and the largest absolute\n"
    "                  difference of the dequantized values. Exit status 0 either way.\n"
    "  --quiet, -q     accepted for uniformity (inspect draws no progress bar, and its output\n"
    "                  is its result: there is no separate summary line)\n";

/* llama_ftype numbers (llama.h) as recipe names */
static const char *ftype_name(long ft) {
    static const struct { int ft; const char *name; } T[] = {
        {0, "F32"}, {1, "F16"}, {2, "Q4_0"}, {3, "Q4_1"}, {7, "Q8_0"}, {8, "Q5_0"}, {9, "Q5_1"},
        {10, "Q2_K"}, {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"}, {15, "Q4_K_M"},
        {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"}, {19, "IQ2_XXS"}, {20, "IQ2_XS"}, {21, "Q2_K_S"},
        {22, "IQ3_XS"}, {23, "IQ3_XXS"}, {24, "IQ1_S"}, {25, "IQ4_NL"}, {26, "IQ3_S"}, {27, "IQ3_M"},
        {28, "IQ2_S"}, {29, "IQ2_M"}, {30, "IQ4_XS"}, {31, "IQ1_M"}, {32, "BF16"}, {36, "TQ1_0"}, {37, "TQ2_0"},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (T[i].ft == ft) return T[i].name;
    return NULL;
}

/* general.file_type of a GGUF (an integer key), or -1 */
static long gguf_file_type(const sm_gguf *g) {
    const sm_gguf_value *v = sm_gguf_find(g, "general.file_type");
    if (!v) return -1;
    switch (v->type) {
    case SM_GGUF_UINT8: case SM_GGUF_UINT16: case SM_GGUF_UINT32: case SM_GGUF_UINT64: return (long)v->v.u;
    case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64: return (long)v->v.i;
    default: return -1;
    }
}

static double tensor_bpw(const sm_tensor *t) {
    const int64_t n = sm_tensor_nelements(t);
    return n ? 8.0 * (double)t->nbytes / (double)n : 0.0;
}

/* ---- totals over a tensor list ---- */

typedef struct totals {
    uint64_t n_tensors, n_params, bytes;
} totals;

static totals sum_tensors(const sm_tensor *const *ts, size_t n) {
    totals t = {n, 0, 0};
    for (size_t i = 0; i < n; i++) {
        t.n_params += (uint64_t)sm_tensor_nelements(ts[i]);
        t.bytes += ts[i]->nbytes;
    }
    return t;
}

static double bpw(const totals *t) { return t->n_params ? (double)t->bytes * 8.0 / (double)t->n_params : 0.0; }

static const char *human(double v, const char *const *units, double step, char *buf, size_t cap) {
    int u = 0;
    while (v >= step && units[u + 1]) {
        v /= step;
        u++;
    }
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f%s", v, units[u]);
    return buf;
}

/* offsets: each tensor's data offset in the file, or NULL (not shown) */
static void print_tensor_table(const sm_tensor *const *ts, size_t n, const uint64_t *offsets) {
    int w = 4;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(ts[i]->name);
        if (l > w) w = l;
    }
    if (w > 60) w = 60;
    printf("  %-*s  %-8s  %-20s  %12s  %7s%s\n", w, "name", "type", "shape", "bytes", "bpw", offsets ? "  offset" : "");
    for (size_t i = 0; i < n; i++) {
        char shape[160];
        printf("  %-*s  %-8s  %-20s  %12llu  %7.4f", w, ts[i]->name, sm_type_name(ts[i]->type),
               sm_shape_str(ts[i], shape, sizeof shape), (unsigned long long)ts[i]->nbytes, tensor_bpw(ts[i]));
        if (offsets) printf("  %llu", (unsigned long long)offsets[i]);
        printf("\n");
    }
}

static void print_totals(const sm_tensor *const *ts, size_t n) {
    totals t = sum_tensors(ts, n);
    static const char *const P_UNITS[] = {"", "K", "M", "B", "T", NULL};
    static const char *const B_UNITS[] = {" B", "KiB", "MiB", "GiB", "TiB", NULL};
    char pb[32], bb[32];
    printf("totals:    %llu tensors, %llu parameters (%s), %llu bytes (%s), %.4f bits per weight\n",
           (unsigned long long)t.n_tensors, (unsigned long long)t.n_params, human((double)t.n_params, P_UNITS, 1000, pb, sizeof pb),
           (unsigned long long)t.bytes, human((double)t.bytes, B_UNITS, 1024, bb, sizeof bb), bpw(&t));
    /* tensors per type, in type order */
    printf("types:    ");
    bool first = true;
    for (int ty = 0; ty < 128; ty++) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++) c += ts[i]->type == (sm_type)ty;
        if (c) printf("%s %s x%zu", first ? "" : ",", sm_type_name((sm_type)ty), c), first = false;
    }
    printf("\n");
}

static void add_json_totals(cJSON *o, const sm_tensor *const *ts, size_t n, const uint64_t *offsets) {
    cJSON *arr = cJSON_AddArrayToObject(o, "tensors");
    for (size_t i = 0; i < n; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", ts[i]->name);
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < ts[i]->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i]->shape[d]));
        cJSON_AddStringToObject(t, "type", sm_type_name(ts[i]->type));
        cJSON_AddNumberToObject(t, "bytes", (double)ts[i]->nbytes);
        cJSON_AddNumberToObject(t, "bpw", tensor_bpw(ts[i]));
        if (offsets) cJSON_AddNumberToObject(t, "offset", (double)offsets[i]);
        else cJSON_AddNullToObject(t, "offset");
        cJSON_AddItemToArray(arr, t);
    }
    totals t = sum_tensors(ts, n);
    cJSON_AddNumberToObject(o, "n_tensors", (double)t.n_tensors);
    cJSON_AddNumberToObject(o, "n_params", (double)t.n_params);
    cJSON_AddNumberToObject(o, "bytes", (double)t.bytes);
    cJSON_AddNumberToObject(o, "bpw", bpw(&t));
}

/* ---- GGUF values as text and JSON ---- */

/* The shortest decimal that reads back as the same float (f32) or double (f64); whole
 * numbers below 1e15 without an exponent. */
static const char *fmt_float(double v, bool f32, char *buf, size_t cap) {
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, cap, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (f32 ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v) break;
    }
    return buf;
}

static void print_string(const char *s, uint64_t len, bool all) {
    uint64_t shown = all || len <= SUMMARY_STRING ? len : SUMMARY_STRING;
    while (shown < len && shown && ((unsigned char)s[shown] & 0xc0) == 0x80) shown--; /* whole UTF-8 characters */
    putchar('"');
    for (uint64_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else if (c == '\r') printf("\\r");
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (shown < len) printf("... (%llu bytes)", (unsigned long long)len);
}

/* Element i of a fixed-size array as a scalar value. */
static sm_gguf_value arr_elem(const sm_gguf_value *a, uint64_t i) {
    sm_gguf_value e = {.type = a->v.arr.type};
    const uint8_t *p = a->v.arr.data;
    switch (a->v.arr.type) {
    case SM_GGUF_UINT8: case SM_GGUF_BOOL: e.v.u = p[i]; break;
    case SM_GGUF_INT8: e.v.i = ((const int8_t *)p)[i]; break;
    case SM_GGUF_UINT16: { uint16_t x; memcpy(&x, p + 2 * i, 2); e.v.u = x; break; }
    case SM_GGUF_INT16: { int16_t x; memcpy(&x, p + 2 * i, 2); e.v.i = x; break; }
    case SM_GGUF_UINT32: { uint32_t x; memcpy(&x, p + 4 * i, 4); e.v.u = x; break; }
    case SM_GGUF_INT32: { int32_t x; memcpy(&x, p + 4 * i, 4); e.v.i = x; break; }
    case SM_GGUF_UINT64: memcpy(&e.v.u, p + 8 * i, 8); break;
    case SM_GGUF_INT64: memcpy(&e.v.i, p + 8 * i, 8); break;
    case SM_GGUF_FLOAT32: { float x; memcpy(&x, p + 4 * i, 4); e.v.f = x; break; }
    case SM_GGUF_FLOAT64: memcpy(&e.v.f, p + 8 * i, 8); break;
    default: break;
    }
    return e;
}

/* "u32", "str[2048]", "arr[3]"; returns the length. */
static int type_str(const sm_gguf_value *v, char *buf, size_t cap) {
    if (v->type != SM_GGUF_ARRAY) return snprintf(buf, cap, "%s", sm_gguf_vtype_name(v->type));
    return snprintf(buf, cap, "%s[%llu]", sm_gguf_vtype_name(v->v.arr.type), (unsigned long long)v->v.arr.n);
}

static void print_value(const sm_gguf_value *v, bool all);

static void print_array(const sm_gguf_value *v, bool all) {
    uint64_t n = v->v.arr.n, shown = all || n <= SUMMARY_ITEMS ? n : SUMMARY_ITEMS;
    printf("[");
    for (uint64_t i = 0; i < shown; i++) {
        if (i) printf(", ");
        if (v->v.arr.items) {
            const sm_gguf_value *it = &v->v.arr.items[i];
            if (it->type == SM_GGUF_ARRAY) { /* nested: show each inner array's type too */
                char tb[48];
                type_str(it, tb, sizeof tb);
                printf("%s ", tb);
            }
            print_value(it, all);
        } else {
            sm_gguf_value e = arr_elem(v, i);
            print_value(&e, all);
        }
    }
    if (shown < n) printf("%s... %llu more", shown ? ", " : "", (unsigned long long)(n - shown));
    printf("]");
}

static void print_value(const sm_gguf_value *v, bool all) {
    char buf[64];
    switch (v->type) {
    case SM_GGUF_UINT8: case SM_GGUF_UINT16: case SM_GGUF_UINT32: case SM_GGUF_UINT64:
        printf("%llu", (unsigned long long)v->v.u);
        break;
    case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64:
        printf("%lld", (long long)v->v.i);
        break;
    case SM_GGUF_FLOAT32: printf("%s", fmt_float(v->v.f, true, buf, sizeof buf)); break;
    case SM_GGUF_FLOAT64: printf("%s", fmt_float(v->v.f, false, buf, sizeof buf)); break;
    case SM_GGUF_BOOL: printf("%s", v->v.u ? "true" : "false"); break;
    case SM_GGUF_STRING: print_string(v->v.str.ptr, v->v.str.len, all); break;
    case SM_GGUF_ARRAY: print_array(v, all); break;
    }
}

static cJSON *json_value(const sm_gguf_value *v, bool all) {
    char buf[64];
    switch (v->type) {
    case SM_GGUF_UINT8: case SM_GGUF_UINT16: case SM_GGUF_UINT32: case SM_GGUF_UINT64:
        if (v->v.u > ((uint64_t)1 << 53)) { /* not exact as a JSON number: keep the digits */
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)v->v.u);
            return cJSON_CreateString(buf);
        }
        return cJSON_CreateNumber((double)v->v.u);
    case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64:
        if (v->v.i > ((int64_t)1 << 53) || v->v.i < -((int64_t)1 << 53)) {
            snprintf(buf, sizeof buf, "%lld", (long long)v->v.i);
            return cJSON_CreateString(buf);
        }
        return cJSON_CreateNumber((double)v->v.i);
    case SM_GGUF_FLOAT32: return cJSON_CreateNumber(strtod(fmt_float(v->v.f, true, buf, sizeof buf), NULL));
    case SM_GGUF_FLOAT64: return cJSON_CreateNumber(v->v.f);
    case SM_GGUF_BOOL: return cJSON_CreateBool(v->v.u != 0);
    case SM_GGUF_STRING: return cJSON_CreateString(v->v.str.ptr);
    case SM_GGUF_ARRAY: {
        uint64_t n = v->v.arr.n, shown = all || n <= JSON_SUMMARY_ITEMS ? n : JSON_SUMMARY_ITEMS;
        cJSON *arr = cJSON_CreateArray();
        for (uint64_t i = 0; i < shown; i++) {
            if (v->v.arr.items) {
                cJSON_AddItemToArray(arr, json_value(&v->v.arr.items[i], all));
            } else {
                sm_gguf_value e = arr_elem(v, i);
                cJSON_AddItemToArray(arr, json_value(&e, all));
            }
        }
        if (shown == n) return arr;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", sm_gguf_vtype_name(v->v.arr.type));
        cJSON_AddNumberToObject(o, "n", (double)n);
        cJSON_AddItemToObject(o, "first", arr);
        return o;
    }
    }
    return cJSON_CreateNull();
}

typedef struct inspect_opts {
    bool json, all;
    regex_t *filter; /* NULL: every tensor */
} inspect_opts;

/* Keep the tensors whose name matches the filter (and their offsets); returns the count. */
static size_t filter_tensors(const sm_tensor **ts, uint64_t *offsets, size_t n, const regex_t *re) {
    if (!re) return n;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (regexec(re, ts[i]->name, 0, NULL, 0) == 0) {
            ts[k] = ts[i];
            if (offsets) offsets[k] = offsets[i];
            k++;
        }
    return k;
}

static cJSON *report_begin(const char *path) {
    const char *ins[1] = {path};
    cJSON *o = cli_report_new("inspect", ins, 1, NULL);
    cJSON_AddStringToObject(o, "path", path);
    cJSON_AddNumberToObject(o, "file_bytes", (double)cli_path_bytes(path));
    return o;
}

static int inspect_gguf(const char *path, const inspect_opts *io) {
    sm_gguf *g;
    if (sm_gguf_open(path, &g)) return cli_fail_last("inspect");
    size_t nt = sm_gguf_n_tensors(g), nk = sm_gguf_n_kv(g);
    const sm_tensor **ts = malloc((nt ? nt : 1) * sizeof *ts);
    uint64_t *offs = malloc((nt ? nt : 1) * sizeof *offs);
    if (!ts || !offs) {
        free(ts);
        free(offs);
        sm_gguf_close(g);
        return cli_fail("inspect", "out of memory");
    }
    for (size_t i = 0; i < nt; i++) {
        ts[i] = sm_gguf_tensor(g, i);
        offs[i] = sm_gguf_tensor_file_offset(g, ts[i]);
    }
    const size_t n_all = nt;
    nt = filter_tensors(ts, offs, nt, io->filter);
    const long ft = gguf_file_type(g);
    const char *ftn = ft >= 0 ? ftype_name(ft) : NULL;
    if (io->json) {
        cJSON *o = report_begin(path);
        cJSON_AddStringToObject(o, "format", "gguf");
        cJSON_AddNumberToObject(o, "version", sm_gguf_version(g));
        cJSON_AddNumberToObject(o, "alignment", (double)sm_gguf_alignment(g));
        cJSON_AddNumberToObject(o, "data_offset", (double)sm_gguf_data_offset(g));
        if (ft >= 0) cJSON_AddNumberToObject(o, "file_type", (double)ft);
        else cJSON_AddNullToObject(o, "file_type");
        if (ftn) cJSON_AddStringToObject(o, "file_type_name", ftn);
        else cJSON_AddNullToObject(o, "file_type_name");
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        for (size_t i = 0; i < nk; i++) cJSON_AddItemToObject(md, sm_gguf_key(g, i), json_value(sm_gguf_val(g, i), io->all));
        cJSON_AddNumberToObject(o, "n_tensors_in_file", (double)n_all);
        add_json_totals(o, ts, nt, offs);
        cli_report_print(o, NULL);
    } else {
        char b[32];
        printf("file:      %s (%llu bytes, %s)\n", path, (unsigned long long)cli_path_bytes(path),
               cli_bytes(b, sizeof b, (double)cli_path_bytes(path)));
        printf("format:    GGUF v%u, alignment %llu, tensor data at offset %llu\n", sm_gguf_version(g),
               (unsigned long long)sm_gguf_alignment(g), (unsigned long long)sm_gguf_data_offset(g));
        if (ft >= 0) printf("file type: %ld (%s)\n", ft, ftn ? ftn : "unknown to smelt");
        printf("metadata:  %zu keys\n", nk);
        int w = 8, tw = 4;
        for (size_t i = 0; i < nk; i++) {
            int l = (int)strlen(sm_gguf_key(g, i));
            if (l > w) w = l;
            char tb[48];
            l = type_str(sm_gguf_val(g, i), tb, sizeof tb);
            if (l > tw) tw = l;
        }
        if (w > 48) w = 48;
        for (size_t i = 0; i < nk; i++) {
            const sm_gguf_value *v = sm_gguf_val(g, i);
            char tb[48];
            type_str(v, tb, sizeof tb);
            printf("  %-*s  %-*s  ", w, sm_gguf_key(g, i), tw, tb);
            print_value(v, io->all);
            if (!strcmp(sm_gguf_key(g, i), "general.file_type") && ftn) printf(" (%s)", ftn);
            printf("\n");
        }
        if (io->filter) printf("tensors:   %zu of %zu match the filter (shapes outermost-first)\n", nt, n_all);
        else printf("tensors:   %zu (shapes outermost-first)\n", nt);
        print_tensor_table(ts, nt, offs);
        print_totals(ts, nt);
    }
    free(ts);
    free(offs);
    sm_gguf_close(g);
    return 0;
}

/* ---- checkpoints (safetensors, PyTorch) ---- */

static const char *kind_name(sm_ckpt_kind k) {
    switch (k) {
    case SM_CKPT_SAFETENSORS: return "safetensors";
    case SM_CKPT_PYTORCH: return "pytorch";
    case SM_CKPT_LLAMA2C: return "llama2c";
    }
    return "?";
}

/* config.json beside the checkpoint (in the directory, or beside the file); NULL if absent
 * or unreadable (a note goes to stderr for the latter). */
static cJSON *load_config(const char *path) {
    char *dir;
    if (sm_is_dir(path)) {
        dir = strdup(path);
    } else {
        const char *slash = strrchr(path, '/');
        dir = slash ? strndup(path, (size_t)(slash - path) + 1) : strdup(".");
    }
    char *cfg = dir ? sm_path_join(dir, "config.json") : NULL;
    free(dir);
    cJSON *root = NULL;
    if (cfg && sm_is_file(cfg)) {
        char *text = NULL;
        size_t len = 0;
        if (sm_read_file(cfg, (size_t)16 << 20, &text, &len) == 0) {
            root = cJSON_ParseWithLength(text, len);
            if (!root || !cJSON_IsObject(root)) {
                fprintf(stderr, "smelt inspect: note: %s is not a JSON object; ignored\n", cfg);
                cJSON_Delete(root);
                root = NULL;
            }
            free(text);
        } else {
            fprintf(stderr, "smelt inspect: note: %s; ignored\n", sm_last_error());
        }
    }
    free(cfg);
    return root;
}

static void print_config(const cJSON *cfg) {
    static const char *const KEYS[] = {
        "architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
        "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings",
        "rope_theta", "rope_scaling", "rms_norm_eps", "layer_norm_eps", "tie_word_embeddings", "torch_dtype",
        "bos_token_id", "eos_token_id",
    };
    printf("config:    config.json\n");
    for (size_t i = 0; i < sizeof KEYS / sizeof KEYS[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, KEYS[i]);
        if (!v) continue;
        char *txt = cJSON_PrintUnformatted(v);
        if (txt) printf("  %-24s  %s\n", KEYS[i], txt);
        free(txt);
    }
    /* a GPTQ checkpoint's quantization_config, one key a line; smelt's provenance object
     * ("smelt": how `smelt gptq --to hf` made it) as quantization_config.smelt.KEY */
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    for (const cJSON *v = cJSON_IsObject(qc) ? qc->child : NULL; v; v = v->next) {
        const bool prov = cJSON_IsObject(v) && !strcmp(v->string, "smelt");
        for (const cJSON *p = prov ? v->child : v; p; p = prov ? p->next : NULL) {
            char *txt = cJSON_PrintUnformatted(p), key[160];
            snprintf(key, sizeof key, "quantization_config.%s%s", prov ? "smelt." : "", p->string);
            if (txt) printf("  %-40s  %s\n", key, txt);
            free(txt);
        }
    }
}

/* A llama2.c checkpoint has no magic: it is tried for files that are none of the other
 * formats (zip, pickle, safetensors' '{' at byte 8); its reader checks that the header's sizes
 * add up to exactly the file size. Returns the checkpoint (NULL if not one) and its header as
 * JSON in *hdr. */
static sm_ckpt *try_llama2c(const char *path, cJSON **hdr) {
    *hdr = NULL;
    uint8_t head[9] = {0};
    FILE *f = sm_is_file(path) ? fopen(path, "rb") : NULL;
    size_t n = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (n < 9 || !memcmp(head, "PK\x03\x04", 4) || head[0] == 0x80 || head[8] == '{') return NULL;
    sm_ckpt *c;
    sm_llama2c_config cfg;
    if (sm_llama2c_open(path, &c, &cfg)) return NULL;
    *hdr = cJSON_CreateObject();
    cJSON_AddNumberToObject(*hdr, "dim", cfg.dim);
    cJSON_AddNumberToObject(*hdr, "hidden_dim", cfg.hidden_dim);
    cJSON_AddNumberToObject(*hdr, "n_layers", cfg.n_layers);
    cJSON_AddNumberToObject(*hdr, "n_heads", cfg.n_heads);
    cJSON_AddNumberToObject(*hdr, "n_kv_heads", cfg.n_kv_heads);
    cJSON_AddNumberToObject(*hdr, "vocab_size", cfg.vocab_size);
    cJSON_AddNumberToObject(*hdr, "seq_len", cfg.seq_len);
    cJSON_AddBoolToObject(*hdr, "shared_classifier", cfg.shared_classifier);
    return c;
}

static int inspect_ckpt(const char *path, const inspect_opts *io) {
    const bool json = io->json;
    cJSON *l2c_header;
    sm_ckpt *c = try_llama2c(path, &l2c_header);
    if (!c && sm_ckpt_open(path, &c)) return cli_fail_last("inspect");
    const cJSON *metadata = l2c_header ? l2c_header : c->metadata;
    cJSON *cfg = load_config(path);
    const sm_tensor **ts = malloc((c->n_tensors ? c->n_tensors : 1) * sizeof *ts);
    if (!ts) {
        cJSON_Delete(cfg);
        sm_ckpt_close(c);
        return cli_fail("inspect", "out of memory");
    }
    for (size_t i = 0; i < c->n_tensors; i++) ts[i] = &c->tensors[i];
    const size_t nt = filter_tensors(ts, NULL, c->n_tensors, io->filter);
    if (json) {
        cJSON *o = report_begin(path);
        cJSON_AddStringToObject(o, "format", kind_name(c->kind));
        cJSON_AddItemToObject(o, "metadata", metadata ? cJSON_Duplicate(metadata, true) : cJSON_CreateObject());
        if (cfg) {
            cJSON_AddItemToObject(o, "config", cfg);
            cfg = NULL;
        }
        cJSON_AddNumberToObject(o, "n_tensors_in_file", (double)c->n_tensors);
        add_json_totals(o, ts, nt, NULL);
        cli_report_print(o, NULL);
    } else {
        printf("file:      %s\n", path);
        printf("format:    %s\n", kind_name(c->kind));
        if (metadata && metadata->child) {
            printf("metadata:%s\n", l2c_header ? "  (llama2.c header)" : "");
            for (const cJSON *m = metadata->child; m; m = m->next) {
                char *txt = cJSON_PrintUnformatted(m);
                if (txt) printf("  %-24s  %s\n", m->string, txt);
                free(txt);
            }
        } else {
            printf("metadata:  none\n");
        }
        if (cfg) print_config(cfg);
        if (io->filter) printf("tensors:   %zu of %zu match the filter (shapes outermost-first)\n", nt, c->n_tensors);
        else printf("tensors:   %zu (shapes outermost-first)\n", nt);
        print_tensor_table(ts, nt, NULL);
        print_totals(ts, nt);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(l2c_header);
    free(ts);
    sm_ckpt_close(c);
    return 0;
}

/* ---- two GGUF files side by side ---- */

static char *value_text(const sm_gguf_value *v) {
    cJSON *j = json_value(v, true);
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return t;
}

static void shape_json(cJSON *o, const char *key, const sm_tensor *t) {
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)t->shape[d]));
}

static bool same_shape(const sm_tensor *a, const sm_tensor *b) {
    if (a->n_dims != b->n_dims) return false;
    for (int d = 0; d < a->n_dims; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

/* Largest |a - b| over the dequantized values, row by row; -1 when a type cannot be read. */
static double max_abs_diff(const sm_tensor *a, const sm_tensor *b) {
    const int64_t row = sm_tensor_row_len(a), nrows = sm_tensor_nrows(a);
    const uint64_t ra = sm_type_row_bytes(a->type, row), rb = sm_type_row_bytes(b->type, row);
    float *fa = malloc(sizeof(float) * (size_t)row), *fb = malloc(sizeof(float) * (size_t)row);
    double m = 0;
    for (int64_t r = 0; fa && fb && r < nrows; r++) {
        if (!ra || !rb || sm_dequantize_row(a->type, (const uint8_t *)a->data + (uint64_t)r * ra, fa, row) ||
            sm_dequantize_row(b->type, (const uint8_t *)b->data + (uint64_t)r * rb, fb, row)) {
            sm_clear_error();
            m = -1;
            break;
        }
        for (int64_t i = 0; i < row; i++) {
            const double d = fabs((double)fa[i] - (double)fb[i]);
            if (d > m || d != d) m = d;
        }
    }
    if (!fa || !fb) m = -1;
    free(fa);
    free(fb);
    return m;
}

static int inspect_diff(const char *pa, const char *pb, const inspect_opts *io) {
    if (!sm_gguf_is_file(pa) || !sm_gguf_is_file(pb))
        return cli_fail("inspect", "--diff compares two GGUF files; %s is not one", sm_gguf_is_file(pa) ? pb : pa);
    sm_gguf *ga = NULL, *gb = NULL;
    if (sm_gguf_open(pa, &ga) || sm_gguf_open(pb, &gb)) {
        sm_gguf_close(ga);
        return cli_fail_last("inspect");
    }
    const char *ins[2] = {pa, pb};
    cJSON *rep = cli_report_new("inspect", ins, 2, NULL);
    cJSON *md = cJSON_AddObjectToObject(rep, "metadata");
    cJSON *added = cJSON_AddArrayToObject(md, "added"), *removed = cJSON_AddArrayToObject(md, "removed"),
          *changed = cJSON_AddArrayToObject(md, "changed");
    if (!io->json) printf("--- %s\n+++ %s\nmetadata:\n", pa, pb);
    size_t n_md = 0;
    for (size_t i = 0; i < sm_gguf_n_kv(ga); i++) {
        const char *k = sm_gguf_key(ga, i);
        const sm_gguf_value *vb = sm_gguf_find(gb, k);
        char *ta = value_text(sm_gguf_val(ga, i));
        if (!vb) {
            cJSON_AddItemToArray(removed, cJSON_CreateString(k));
            if (!io->json) printf("  - %s = %.200s\n", k, ta ? ta : "?");
            n_md++;
        } else {
            char *tb = value_text(vb);
            if (!ta || !tb || strcmp(ta, tb) || vb->type != sm_gguf_val(ga, i)->type) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "key", k);
                cJSON_AddItemToObject(c, "a", json_value(sm_gguf_val(ga, i), io->all));
                cJSON_AddItemToObject(c, "b", json_value(vb, io->all));
                cJSON_AddItemToArray(changed, c);
                if (!io->json) printf("  ~ %s: %.200s -> %.200s\n", k, ta ? ta : "?", tb ? tb : "?");
                n_md++;
            }
            free(tb);
        }
        free(ta);
    }
    for (size_t i = 0; i < sm_gguf_n_kv(gb); i++) {
        const char *k = sm_gguf_key(gb, i);
        if (sm_gguf_find(ga, k)) continue;
        cJSON_AddItemToArray(added, cJSON_CreateString(k));
        if (!io->json) {
            char *tb = value_text(sm_gguf_val(gb, i));
            printf("  + %s = %.200s\n", k, tb ? tb : "?");
            free(tb);
        }
        n_md++;
    }
    if (!io->json && !n_md) printf("  (the same keys and values)\n");
    cJSON *tj = cJSON_AddArrayToObject(rep, "tensors");
    long long n_same = 0, n_changed = 0, n_only_a = 0, n_only_b = 0;
    if (!io->json) printf("tensors:\n");
    for (int side = 0; side < 2; side++) {
        const sm_gguf *g = side ? gb : ga, *other = side ? ga : gb;
        for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
            const sm_tensor *t = sm_gguf_tensor(g, i);
            if (io->filter && regexec(io->filter, t->name, 0, NULL, 0)) continue;
            const sm_tensor *u = sm_gguf_find_tensor(other, t->name);
            if (side && u) continue; /* common tensors: done from A's side */
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            if (!u) {
                cJSON_AddStringToObject(o, "status", side ? "only_b" : "only_a");
                cJSON_AddStringToObject(o, side ? "type_b" : "type_a", sm_type_name(t->type));
                shape_json(o, side ? "shape_b" : "shape_a", t);
                side ? n_only_b++ : n_only_a++;
                if (!io->json) printf("  %c %s (%s, only in %s)\n", side ? '+' : '-', t->name, sm_type_name(t->type), side ? pb : pa);
                cJSON_AddItemToArray(tj, o);
                continue;
            }
            const uint64_t ha = XXH64(t->data, t->nbytes, 0), hb = XXH64(u->data, u->nbytes, 0);
            const bool same_bytes = t->type == u->type && t->nbytes == u->nbytes && ha == hb &&
                                    !memcmp(t->data, u->data, t->nbytes);
            const bool shapes = same_shape(t, u);
            const double mad = same_bytes ? 0.0 : shapes ? max_abs_diff(t, u) : -1;
            char hs[2][24];
            snprintf(hs[0], sizeof hs[0], "%016llx", (unsigned long long)ha);
            snprintf(hs[1], sizeof hs[1], "%016llx", (unsigned long long)hb);
            cJSON_AddStringToObject(o, "status", same_bytes ? "same" : "changed");
            cJSON_AddStringToObject(o, "type_a", sm_type_name(t->type));
            cJSON_AddStringToObject(o, "type_b", sm_type_name(u->type));
            shape_json(o, "shape_a", t);
            shape_json(o, "shape_b", u);
            cJSON_AddStringToObject(o, "hash_a", hs[0]);
            cJSON_AddStringToObject(o, "hash_b", hs[1]);
            if (mad >= 0) cJSON_AddNumberToObject(o, "max_abs_diff", mad);
            else cJSON_AddNullToObject(o, "max_abs_diff");
            cJSON_AddItemToArray(tj, o);
            if (same_bytes) {
                n_same++;
                continue;
            }
            n_changed++;
            if (!io->json) {
                char sa[96], sb[96];
                printf("  ~ %s: %s -> %s", t->name, sm_type_name(t->type), sm_type_name(u->type));
                if (!shapes) printf(", shape %s -> %s", sm_shape_str(t, sa, sizeof sa), sm_shape_str(u, sb, sizeof sb));
                printf(", xxh64 %s -> %s", hs[0], hs[1]);
                if (mad >= 0) printf(", max |a-b| %.6g", mad);
                printf("\n");
            }
        }
    }
    cJSON_AddNumberToObject(rep, "n_same", (double)n_same);
    cJSON_AddNumberToObject(rep, "n_changed", (double)n_changed);
    cJSON_AddNumberToObject(rep, "n_only_a", (double)n_only_a);
    cJSON_AddNumberToObject(rep, "n_only_b", (double)n_only_b);
    if (io->json) {
        cli_report_print(rep, NULL);
    } else {
        printf("summary:   %lld tensors the same, %lld changed, %lld only in A, %lld only in B; %zu metadata differences\n",
               n_same, n_changed, n_only_a, n_only_b, n_md);
        cJSON_Delete(rep);
    }
    sm_gguf_close(ga);
    sm_gguf_close(gb);
    return 0;
}

/* ---- dispatch ---- */

static int run(int argc, char **argv) {
    cli_common com = {0};
    const char *filter = NULL;
    bool all = false, diff = false;
    const cli_option opts[] = {
        CLI_OPT_JSON(com),
        {"--all", CLI_FLAG, &all, 0, 0, NULL},
        {"--filter", CLI_STR, &filter, 0, 0, NULL},
        {"--diff", CLI_FLAG, &diff, 0, 0, NULL},
        {0},
    };
    const char *pos[2];
    int npos = 0;
    const int prc = cli_parse(&sm_cmd_inspect, NULL, argc, argv, opts, pos, 2, &npos);
    if (prc) return prc;
    if (!npos) return cli_usage_error(&sm_cmd_inspect, "missing PATH");
    if (npos == 2 && !diff) return cli_usage_error(&sm_cmd_inspect, "more than one PATH (%s, %s); --diff compares two", pos[0], pos[1]);
    if (diff && npos != 2) return cli_usage_error(&sm_cmd_inspect, "--diff needs two GGUF files");
    regex_t re;
    inspect_opts io = {.json = com.json, .all = all};
    if (filter) {
        const int e = regcomp(&re, filter, REG_EXTENDED | REG_NOSUB);
        if (e) {
            char msg[128];
            regerror(e, &re, msg, sizeof msg);
            return cli_usage_error(&sm_cmd_inspect, "--filter '%s': %s", filter, msg);
        }
        io.filter = &re;
    }
    const unsigned models = SM_FILE_BIT(SM_FILE_GGUF) | SM_FILE_BIT(SM_FILE_HF_DIR) | SM_FILE_BIT(SM_FILE_DIR) |
                            SM_FILE_BIT(SM_FILE_LORA_DIR) | SM_FILE_BIT(SM_FILE_SAFETENSORS) | SM_FILE_BIT(SM_FILE_ZIP) |
                            SM_FILE_BIT(SM_FILE_PICKLE) | SM_FILE_BIT(SM_FILE_LLAMA2C) | SM_FILE_BIT(SM_FILE_JSON);
    int rc = 0;
    for (int i = 0; i < npos && !rc; i++)
        if (!sm_is_file(pos[i]) && !sm_is_dir(pos[i])) rc = cli_fail("inspect", "%s: no such file or directory", pos[i]);
        else if (sm_sniff_expect(pos[i], models, "a model file (GGUF, safetensors, PyTorch, llama2.c) or directory", NULL))
            rc = cli_fail_last("inspect");
    if (!rc) {
        if (diff) rc = inspect_diff(pos[0], pos[1], &io);
        else if (sm_gguf_is_file(pos[0])) rc = inspect_gguf(pos[0], &io);
        else rc = inspect_ckpt(pos[0], &io);
    }
    if (filter) regfree(&re);
    return rc;
}

const sm_command sm_cmd_inspect = {"inspect", "show a model file's metadata and tensors", USAGE, run};
