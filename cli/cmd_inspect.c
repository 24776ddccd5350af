/* cmd_inspect.c - `smelt inspect PATH [--json] [--all]`: what a GGUF file or a checkpoint
 * holds: its metadata, a table of tensors (name, shape outermost-first, type, bytes) and
 * totals (tensors, parameters, bytes, bits per weight). Long arrays and strings are
 * summarized unless --all. --json prints one object instead of text. */
#include "cli.h"
#include "formats/formats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUMMARY_ITEMS 6     /* array elements shown without --all */
#define SUMMARY_STRING 160  /* string bytes shown without --all */
#define JSON_SUMMARY_ITEMS 8

static const char USAGE[] =
    "usage: smelt inspect PATH [--json] [--all]\n"
    "\n"
    "Show what a model file holds. PATH: a GGUF file, a safetensors file, a sharded index\n"
    "(*.index.json), a PyTorch checkpoint, a llama2.c checkpoint, or a Hugging Face model directory.\n"
    "\n"
    "Prints the format, the metadata (GGUF key-values; safetensors __metadata__ or the llama2.c\n"
    "header, and a summary of config.json), one line per tensor (name, shape outermost-first, type, bytes) and totals:\n"
    "tensors, parameters, bytes and bits per weight.\n"
    "\n"
    "  --json   one JSON object: format, metadata, tensors [{name, shape, type, bytes}],\n"
    "           n_tensors, n_params, bytes, bpw (arrays longer than 8 become\n"
    "           {type, n, first} unless --all)\n"
    "  --all    print arrays and strings in full (default: the first few elements)\n";

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

static void print_tensor_table(const sm_tensor *const *ts, size_t n) {
    int w = 4;
    for (size_t i = 0; i < n; i++) {
        int l = (int)strlen(ts[i]->name);
        if (l > w) w = l;
    }
    if (w > 60) w = 60;
    printf("  %-*s  %-8s  %-20s  %s\n", w, "name", "type", "shape", "bytes");
    for (size_t i = 0; i < n; i++) {
        char shape[160];
        printf("  %-*s  %-8s  %-20s  %llu\n", w, ts[i]->name, sm_type_name(ts[i]->type),
               sm_shape_str(ts[i], shape, sizeof shape), (unsigned long long)ts[i]->nbytes);
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

static void add_json_totals(cJSON *o, const sm_tensor *const *ts, size_t n) {
    cJSON *arr = cJSON_AddArrayToObject(o, "tensors");
    for (size_t i = 0; i < n; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", ts[i]->name);
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < ts[i]->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)ts[i]->shape[d]));
        cJSON_AddStringToObject(t, "type", sm_type_name(ts[i]->type));
        cJSON_AddNumberToObject(t, "bytes", (double)ts[i]->nbytes);
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

static int inspect_gguf(const char *path, bool json, bool all) {
    sm_gguf *g;
    if (sm_gguf_open(path, &g)) return cli_fail_last("inspect");
    size_t nt = sm_gguf_n_tensors(g), nk = sm_gguf_n_kv(g);
    const sm_tensor **ts = malloc((nt ? nt : 1) * sizeof *ts);
    if (!ts) {
        sm_gguf_close(g);
        return cli_fail("inspect", "out of memory");
    }
    for (size_t i = 0; i < nt; i++) ts[i] = sm_gguf_tensor(g, i);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "format", "gguf");
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddNumberToObject(o, "version", sm_gguf_version(g));
        cJSON_AddNumberToObject(o, "alignment", (double)sm_gguf_alignment(g));
        cJSON_AddNumberToObject(o, "data_offset", (double)sm_gguf_data_offset(g));
        cJSON *md = cJSON_AddObjectToObject(o, "metadata");
        for (size_t i = 0; i < nk; i++) cJSON_AddItemToObject(md, sm_gguf_key(g, i), json_value(sm_gguf_val(g, i), all));
        add_json_totals(o, ts, nt);
        cli_print_json(o);
    } else {
        printf("file:      %s\n", path);
        printf("format:    GGUF v%u, alignment %llu, tensor data at offset %llu\n", sm_gguf_version(g),
               (unsigned long long)sm_gguf_alignment(g), (unsigned long long)sm_gguf_data_offset(g));
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
            print_value(v, all);
            printf("\n");
        }
        printf("tensors:   %zu (shapes outermost-first)\n", nt);
        print_tensor_table(ts, nt);
        print_totals(ts, nt);
    }
    free(ts);
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

static int inspect_ckpt(const char *path, bool json) {
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
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "format", kind_name(c->kind));
        cJSON_AddStringToObject(o, "path", path);
        cJSON_AddItemToObject(o, "metadata", metadata ? cJSON_Duplicate(metadata, true) : cJSON_CreateObject());
        if (cfg) {
            cJSON_AddItemToObject(o, "config", cfg);
            cfg = NULL;
        }
        add_json_totals(o, ts, c->n_tensors);
        cli_print_json(o);
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
        printf("tensors:   %zu (shapes outermost-first)\n", c->n_tensors);
        print_tensor_table(ts, c->n_tensors);
        print_totals(ts, c->n_tensors);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(l2c_header);
    free(ts);
    sm_ckpt_close(c);
    return 0;
}

/* ---- dispatch ---- */

static int run(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, all = false;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv, &i, "--json")) json = true;
        else if (cli_flag(argv, &i, "--all")) all = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error(&sm_cmd_inspect, "unknown option %s", argv[i]);
        else if (path) return cli_usage_error(&sm_cmd_inspect, "more than one PATH (%s, %s)", path, argv[i]);
        else path = argv[i];
    }
    if (!path) return cli_usage_error(&sm_cmd_inspect, "missing PATH");
    if (!sm_is_file(path) && !sm_is_dir(path)) return cli_fail("inspect", "%s: no such file or directory", path);
    const unsigned models = SM_FILE_BIT(SM_FILE_GGUF) | SM_FILE_BIT(SM_FILE_HF_DIR) | SM_FILE_BIT(SM_FILE_DIR) |
                            SM_FILE_BIT(SM_FILE_LORA_DIR) | SM_FILE_BIT(SM_FILE_SAFETENSORS) | SM_FILE_BIT(SM_FILE_ZIP) |
                            SM_FILE_BIT(SM_FILE_PICKLE) | SM_FILE_BIT(SM_FILE_LLAMA2C) | SM_FILE_BIT(SM_FILE_JSON);
    if (sm_sniff_expect(path, models, "a model file (GGUF, safetensors, PyTorch, llama2.c) or directory", NULL))
        return cli_fail_last("inspect");
    if (sm_gguf_is_file(path)) return inspect_gguf(path, json, all);
    return inspect_ckpt(path, json);
}

const sm_command sm_cmd_inspect = {"inspect", "show a model file's metadata and tensors", USAGE, run};
