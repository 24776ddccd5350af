/* formats.h - bytes <-> tensors: safetensors, PyTorch zip/pickle, GGUF, llama2.c, tokenizer files.
 *
 * Every reader treats its input as hostile: sizes are checked before use, every offset is
 * bounds-checked against the mapped file, and errors name the file, the offset and what was
 * expected (see core.h for the error convention). Tensor data is never copied when the file
 * stores it in a usable layout: sm_tensor.data points into the mmapped file.
 */
#ifndef SMELT_FORMATS_H
#define SMELT_FORMATS_H

#include "core/core.h"

#include <cjson/cJSON.h>

/* ======================================================================================
 * What a path is (sniff.c), by its first bytes, before a reader parses it
 * ==================================================================================== */

typedef enum sm_file_kind {
    SM_FILE_MISSING, SM_FILE_UNREADABLE, SM_FILE_SPECIAL, /* not a file or directory */
    SM_FILE_HF_DIR,       /* a directory with config.json */
    SM_FILE_LORA_DIR,     /* a directory with adapter_config.json (and no config.json) */
    SM_FILE_DIR,          /* any other directory */
    SM_FILE_EMPTY,
    SM_FILE_GGUF,         /* "GGUF" */
    SM_FILE_SAFETENSORS,  /* u64 header length + '{' */
    SM_FILE_ZIP,          /* "PK\3\4": a PyTorch zip checkpoint */
    SM_FILE_PICKLE,       /* 0x80 protocol: a legacy torch.save file */
    SM_FILE_LLAMA2C,      /* a plausible legacy (version 0) llama2.c header (no magic) */
    SM_FILE_LLAMA2C_AK42, /* llama2.c version 1/2 export, magic "ak42" */
    SM_FILE_LOGITS,       /* "_logits_": llama-perplexity --kl-divergence-base */
    SM_FILE_IMATRIX_DAT,  /* legacy llama-imatrix .dat */
    SM_FILE_JSON,
    SM_FILE_SPM,          /* a SentencePiece .model (protobuf) */
    SM_FILE_SMELT,        /* a .smelt that is not read as the one GGUF/safetensors file it holds */
    SM_FILE_UNKNOWN,
} sm_file_kind;
#define SM_FILE_BIT(k) (1u << (unsigned)(k))
/* The kind of path (*version: GGUF's version, llama2.c's export version, else 0; may be NULL).
 * A .smelt holding one GGUF or safetensors file is reported as that kind (readers open it
 * through sm_smelt_mmap_open); any other .smelt is SM_FILE_SMELT. */
sm_file_kind sm_sniff(const char *path, int *version);
/* "a GGUF file", "a Hugging Face model directory", ... */
const char *sm_file_kind_name(sm_file_kind k);
/* 0 if path is one of the kinds in `accept` (SM_FILE_BIT masks); else -1 with
 * "PATH: this is <kind>; expected <wanted>". *kind (may be NULL) gets the kind either way. */
int sm_sniff_expect(const char *path, unsigned accept, const char *wanted, sm_file_kind *kind);

/* ======================================================================================
 * Checkpoints: a named set of tensors from one or more files (safetensors, PyTorch, llama2.c)
 * ==================================================================================== */

typedef enum sm_ckpt_kind {
    SM_CKPT_SAFETENSORS,
    SM_CKPT_PYTORCH,
    SM_CKPT_LLAMA2C, /* tensors carry GGUF names already, rope in ggml layout */
} sm_ckpt_kind;

typedef struct sm_ckpt {
    sm_ckpt_kind kind;
    char *path;         /* what was opened (file or directory) */
    size_t n_tensors;
    sm_tensor *tensors; /* in file order (sharded: shard by shard) */
    cJSON *metadata;    /* safetensors "__metadata__" (NULL if none) */
    void *priv;         /* the reader's own state (mmaps, strings) */
} sm_ckpt;

/* Open a checkpoint: a directory (model.safetensors, model.safetensors.index.json,
 * pytorch_model.bin, pytorch_model.bin.index.json, in that order of preference) or a file
 * (safetensors / PyTorch zip detected by content). */
int sm_ckpt_open(const char *path, sm_ckpt **out);
const sm_tensor *sm_ckpt_find(const sm_ckpt *c, const char *name);
void sm_ckpt_close(sm_ckpt *c);
/* Bytes [p, p+n) (tensor data) have been used: their pages of the checkpoint's file mappings
 * stop counting as resident memory (sm_mmap_release); they stay readable. No-op elsewhere. */
void sm_ckpt_release(const sm_ckpt *c, const void *p, uint64_t n);

/* Format-specific openers (sm_ckpt_open dispatches to these). A path may be a single file
 * or an index JSON (sharded). */
int sm_safetensors_open(const char *path, sm_ckpt **out);
int sm_pytorch_open(const char *path, sm_ckpt **out);

/* llama2.c checkpoint (`stories260K.bin`, version-0 fp32 export). Tensors are split per
 * layer and named as in GGUF (token_embd.weight, blk.N.attn_q.weight, ...); the hyper-
 * parameters are in the header and reported through sm_llama2c_config. */
typedef struct sm_llama2c_config {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    bool shared_classifier;
} sm_llama2c_config;
int sm_llama2c_open(const char *path, sm_ckpt **out, sm_llama2c_config *cfg);

/* Safetensors writer (streaming). Declare every tensor, then begin, then write each
 * tensor's bytes in declaration order, then finish (atomic rename). */
typedef struct sm_st_writer sm_st_writer;
sm_st_writer *sm_st_writer_new(void);
int sm_st_writer_add(sm_st_writer *w, const char *name, sm_type type, int n_dims, const int64_t *shape);
int sm_st_writer_set_metadata(sm_st_writer *w, const char *key, const char *value);
int sm_st_writer_begin(sm_st_writer *w, const char *path);
int sm_st_writer_write(sm_st_writer *w, const void *data, uint64_t nbytes);
int sm_st_writer_finish(sm_st_writer *w); /* frees w */
void sm_st_writer_abort(sm_st_writer *w); /* frees w, removes the temporary */

/* ======================================================================================
 * GGUF v3 (ggml's gguf.cpp is the reference for layout and key names)
 * ==================================================================================== */

typedef enum sm_gguf_vtype {
    SM_GGUF_UINT8 = 0,
    SM_GGUF_INT8 = 1,
    SM_GGUF_UINT16 = 2,
    SM_GGUF_INT16 = 3,
    SM_GGUF_UINT32 = 4,
    SM_GGUF_INT32 = 5,
    SM_GGUF_FLOAT32 = 6,
    SM_GGUF_BOOL = 7,
    SM_GGUF_STRING = 8,
    SM_GGUF_ARRAY = 9,
    SM_GGUF_UINT64 = 10,
    SM_GGUF_INT64 = 11,
    SM_GGUF_FLOAT64 = 12,
} sm_gguf_vtype;

/* A metadata value. Strings are NUL-terminated copies (len excludes the NUL). Arrays of
 * fixed-size elements keep them packed little-endian in `data`; arrays of strings or of
 * arrays use `items`. */
typedef struct sm_gguf_value {
    sm_gguf_vtype type;
    union {
        uint64_t u;  /* all unsigned ints and bool */
        int64_t i;   /* all signed ints */
        double f;    /* float32 and float64 */
        struct { char *ptr; uint64_t len; } str;
        struct {
            sm_gguf_vtype type;
            uint64_t n;
            void *data;                   /* fixed-size element types */
            struct sm_gguf_value *items;  /* STRING or ARRAY element types */
        } arr;
    } v;
} sm_gguf_value;

typedef struct sm_gguf sm_gguf; /* a GGUF file opened for reading */

/* True if path is a regular file that starts with the GGUF magic (false for directories and
 * files that cannot be read). */
bool sm_gguf_is_file(const char *path);
/* Open a GGUF file (mmapped; everything is validated before it is used). */
int sm_gguf_open(const char *path, sm_gguf **out);
/* Parse a GGUF image already in memory (`name` appears in errors). Does not take ownership:
 * `data` must outlive the sm_gguf (tensor data points into it). */
int sm_gguf_open_mem(const void *data, size_t size, const char *name, sm_gguf **out);
void sm_gguf_close(sm_gguf *g);
/* The same for a GGUF's mapping (streaming readers call it after using a tensor's bytes). */
void sm_gguf_release(const sm_gguf *g, const void *p, uint64_t n);
uint32_t sm_gguf_version(const sm_gguf *g);
uint64_t sm_gguf_alignment(const sm_gguf *g);
uint64_t sm_gguf_data_offset(const sm_gguf *g);
/* Where a tensor's data starts in the file (bytes from the file's start). */
uint64_t sm_gguf_tensor_file_offset(const sm_gguf *g, const sm_tensor *t);
const char *sm_gguf_path(const sm_gguf *g);

size_t sm_gguf_n_kv(const sm_gguf *g);
const char *sm_gguf_key(const sm_gguf *g, size_t i);
const sm_gguf_value *sm_gguf_val(const sm_gguf *g, size_t i);
const sm_gguf_value *sm_gguf_find(const sm_gguf *g, const char *key); /* NULL if absent */
/* Typed getters: 0 on success; -1 (with an error naming the key) if absent or of a type
 * that cannot represent the request (any integer type converts to an integer in range). */
int sm_gguf_get_u64(const sm_gguf *g, const char *key, uint64_t *out);
int sm_gguf_get_i64(const sm_gguf *g, const char *key, int64_t *out);
int sm_gguf_get_f64(const sm_gguf *g, const char *key, double *out);
int sm_gguf_get_bool(const sm_gguf *g, const char *key, bool *out);
const char *sm_gguf_get_str(const sm_gguf *g, const char *key); /* NULL if absent / not a string */

size_t sm_gguf_n_tensors(const sm_gguf *g);
const sm_tensor *sm_gguf_tensor(const sm_gguf *g, size_t i); /* shape outermost-first */
const sm_tensor *sm_gguf_find_tensor(const sm_gguf *g, const char *name);
/* "u8", "i32", "f32", "bool", "str", "arr", ... ("?" for an unknown type). */
const char *sm_gguf_vtype_name(sm_gguf_vtype t);

/* Metadata: an ordered key/value list (sm_meta) that producers fill and sinks (sink.h) write
 * in whatever format. Keys keep the order in which they were first set; setting a key again
 * replaces its value in place. A set_* call with a bad argument (empty key, NULL string, a
 * change after the output began, out of memory) is remembered: sm_meta_error returns it ("" if
 * none) and every writer refuses to begin with it. */
typedef struct sm_meta sm_meta;
sm_meta *sm_meta_new(void); /* NULL (sm_error) when out of memory */
void sm_meta_free(sm_meta *m);
void sm_meta_set_u8(sm_meta *m, const char *key, uint8_t v);
void sm_meta_set_u16(sm_meta *m, const char *key, uint16_t v);
void sm_meta_set_u32(sm_meta *m, const char *key, uint32_t v);
void sm_meta_set_i32(sm_meta *m, const char *key, int32_t v);
void sm_meta_set_u64(sm_meta *m, const char *key, uint64_t v);
void sm_meta_set_f32(sm_meta *m, const char *key, float v);
void sm_meta_set_bool(sm_meta *m, const char *key, bool v);
void sm_meta_set_str(sm_meta *m, const char *key, const char *v);
void sm_meta_set_arr_str(sm_meta *m, const char *key, const char *const *v, size_t n);
/* Fixed-size element array (elem_type not STRING/ARRAY); data packed little-endian. */
void sm_meta_set_arr(sm_meta *m, const char *key, sm_gguf_vtype elem_type, const void *data, size_t n);
/* Deep copy of any value (e.g. from a reader). */
void sm_meta_set_val(sm_meta *m, const char *key, const sm_gguf_value *v);
/* Every key of src, in order (and src's remembered error). */
void sm_meta_set_all(sm_meta *dst, const sm_meta *src);
void sm_meta_remove(sm_meta *m, const char *key);
size_t sm_meta_n(const sm_meta *m);
const char *sm_meta_key(const sm_meta *m, size_t i);
const sm_gguf_value *sm_meta_val(const sm_meta *m, size_t i);
const sm_gguf_value *sm_meta_find(const sm_meta *m, const char *key); /* NULL if absent */
const char *sm_meta_error(const sm_meta *m);
/* While frozen (an output began), changes are refused (remembered as errors). */
void sm_meta_freeze(sm_meta *m, bool frozen);
/* The metadata of a file quantized from src, in llama-quantize's order: every key of src
 * (split.* dropped), then general.quantization_version (2) and general.file_type last (ggml
 * moves a key it sets again to the end). */
void sm_meta_set_quantized(sm_meta *m, const sm_gguf *src, uint32_t file_type);
/* Its last step: general.quantization_version (2) and general.file_type set as the last keys. */
void sm_meta_set_quantization_keys(sm_meta *m, uint32_t file_type);

/* GGUF writer (the GGUF sink's serializer; producers use sink.h): declare tensors, begin
 * (header, metadata, tensor infos, padding go out), write each tensor's bytes in declaration
 * order, finish (atomic rename). A tensor's bytes (sm_type_row_bytes(type, row_len) * nrows)
 * may come in one call or in several, but one call never spans two tensors. Bad metadata
 * (sm_meta_error, general.alignment not a power of two or not u32, ...) is reported by begin.
 * The file is byte-for-byte what ggml's gguf_write_to_file writes for the same metadata and
 * tensors. */
typedef struct sm_gguf_writer sm_gguf_writer;
/* A writer with its own (empty) metadata, or one that writes `meta` (borrowed: it must outlive
 * the writer). */
sm_gguf_writer *sm_gguf_writer_new(void);
sm_gguf_writer *sm_gguf_writer_new_meta(sm_meta *meta);
sm_meta *sm_gguf_writer_meta(sm_gguf_writer *w);
/* Shape outermost-first. Returns -1 if the name repeats or the row does not fit the type. */
int sm_gguf_add_tensor(sm_gguf_writer *w, const char *name, sm_type type, int n_dims, const int64_t *shape);
int sm_gguf_writer_begin(sm_gguf_writer *w, const char *path);
/* As begin, with every byte of the file going to emit (in order) instead of a file; `name` is
 * used in errors. end then hands over no file (*out NULL). */
typedef int (*sm_gguf_emit_fn)(void *ctx, const void *data, size_t n);
int sm_gguf_writer_begin_fn(sm_gguf_writer *w, const char *name, sm_gguf_emit_fn emit, void *ctx);
/* After begin: tensor i's offset in the data section (which starts where begin's bytes end). */
uint64_t sm_gguf_writer_tensor_offset(const sm_gguf_writer *w, size_t i);
int sm_gguf_writer_write(sm_gguf_writer *w, const void *data, uint64_t nbytes);
int sm_gguf_writer_finish(sm_gguf_writer *w); /* frees w */
/* As finish, without the commit: the complete file is handed over (*out, to commit or abort). */
int sm_gguf_writer_end(sm_gguf_writer *w, sm_outfile **out); /* frees w */
void sm_gguf_writer_abort(sm_gguf_writer *w); /* frees w (after begin: removes the temporary) */

/* ======================================================================================
 * Tokenizer files -> vocabulary (the tokenization algorithms live in model/)
 * ==================================================================================== */

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum { SM_TOKEN_NORMAL = 1, SM_TOKEN_UNKNOWN = 2, SM_TOKEN_CONTROL = 3, SM_TOKEN_USER_DEFINED = 4,
       SM_TOKEN_UNUSED = 5, SM_TOKEN_BYTE = 6 };

typedef enum sm_vocab_kind {
    SM_VOCAB_SPM, /* SentencePiece BPE with byte fallback; GGUF tokenizer.ggml.model "llama" */
    SM_VOCAB_BPE, /* GPT-2 byte-level BPE; GGUF "gpt2" */
} sm_vocab_kind;

typedef struct sm_vocab {
    sm_vocab_kind kind;
    int32_t n_tokens;
    char **tokens;   /* UTF-8 piece text as stored in GGUF (SPM: with U+2581 for spaces) */
    float *scores;
    int32_t *types;
    int32_t n_merges;
    char **merges;   /* BPE only: "left right" */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    /* The order the source set the special ids in (0 bos, 1 eos, 2 unk, 3 pad), which is the
     * order convert_hf_to_gguf.py writes their keys in (gguf-py SpecialVocab: tokenizer_config's
     * tokens first, then config.json's *_token_id); n_id_order 0: bos, eos, unk, pad. */
    uint8_t n_id_order, id_order[4];
    bool add_bos, add_eos;
    bool add_sep;                    /* written only (llama.cpp's BERT-style flag); smelt adds no separator */
    /* the order the source stated add_bos / add_eos / add_sep in (0, 1, 2), as for id_order */
    uint8_t n_add_order, add_order[3];
    bool add_space_prefix;           /* SPM add_dummy_prefix */
    char pre[32];                    /* tokenizer.ggml.pre ("default", "llama-bpe", "qwen2", "gpt-2", ...) */
    /* Which of add_bos / add_eos / add_space_prefix the source states (SM_VOCAB_HAS_*); the
     * others hold llama.cpp's defaults for the tokenizer model (SPM: add_bos, add_space_prefix;
     * BPE: none, except that llama.cpp's llama3-family pre-tokenizers default to add_bos, which
     * sm_tokenizer_new applies). sm_vocab_to_gguf writes only the stated ones, as llama.cpp's
     * converter does. */
    unsigned explicit_flags;
    char *chat_template;             /* tokenizer.chat_template, NULL if none */
} sm_vocab;

enum { SM_VOCAB_HAS_ADD_BOS = 1, SM_VOCAB_HAS_ADD_EOS = 2, SM_VOCAB_HAS_ADD_SPACE_PREFIX = 4, SM_VOCAB_HAS_ADD_SEP = 128,
       SM_VOCAB_ADD_SPACE_PREFIX_LAST = 8, /* written after the other tokenizer keys (Gemma's set_vocab adds it
                                             after the SentencePiece vocabulary), not first */
       /* add_space_prefix came from tokenizer_config.json's add_prefix_space, which only some of
        * llama.cpp's converters write (sm_vocab_apply_arch undoes it for the others); before it,
        * the value was on / already stated */
       SM_VOCAB_PREFIX_FROM_TOKCFG = 16, SM_VOCAB_PREFIX_WAS_ON = 32, SM_VOCAB_PREFIX_WAS_STATED = 64 };

/* From an HF model directory, as llama.cpp's convert_hf_to_gguf.py makes it: tokenizer.model
 * (SPM) or else tokenizer.json (byte-level BPE: gpt-2, llama-bpe, qwen2 pre-tokenizers), plus
 * added_tokens.json, tokenizer_config.json, tokenizer.json's added_tokens / post_processor and
 * config.json for special ids, add_bos/add_eos and the chat template (gguf-py SpecialVocab's
 * rules; it reads neither special_tokens_map.json nor generation_config.json, nor do we). */
int sm_vocab_load_hf(const char *model_dir, sm_vocab *out);
/* A SentencePiece model file (protobuf). */
int sm_vocab_load_spm(const char *path, sm_vocab *out);
/* The same from memory (`name` is used in error messages). */
int sm_vocab_parse_spm(const void *data, size_t size, const char *name, sm_vocab *out);
/* A Hugging Face tokenizer.json (BPE model, byte-level pre-tokenizer) from memory, alone: ids
 * as in the file (no config.json vocab_size padding), no special ids, llama.cpp's defaults. */
int sm_vocab_parse_tokenizer_json(const char *json, size_t len, const char *name, sm_vocab *out);
/* From / to GGUF metadata (tokenizer.ggml.*). */
int sm_vocab_from_gguf(const sm_gguf *g, sm_vocab *out);
/* Any of the above by what `path` is: an HF model directory, a GGUF file, a tokenizer.json
 * (*.json), else a SentencePiece model. */
int sm_vocab_load(const char *path, sm_vocab *out);
void sm_vocab_to_meta(const sm_vocab *v, sm_meta *m);
void sm_vocab_free(sm_vocab *v);

/* ======================================================================================
 * HF GPTQ checkpoints (the layout AutoGPTQ, GPTQModel and transformers/optimum share)
 *
 * Per quantized Linear (out_features x in_features), next to its name prefix:
 *   qweight  I32 [in*bits/32, out]  codes packed along the INPUT dimension: for each output
 *            column o, input i's code sits at bit i*bits of the column's little-endian stream
 *            of 32-bit words (32/bits codes per word, lowest bits first; with bits 3, 32 codes
 *            fill 3 words and codes 10 and 21 straddle two words).
 *   qzeros   I32 [n_groups, out*bits/32]  zero points packed the same way along the OUTPUT
 *            dimension. checkpoint_format "gptq" (v1) stores zero-1 (AutoGPTQ's `zeros -= 1`
 *            before packing), "gptq_v2" the zero itself.
 *   scales   F16 [n_groups, out]
 *   g_idx    I32 [in]  the group of each input column (i / group_size without act-order)
 * and w[o][i] = scales[g][o] * (code[i][o] - zero[g][o]) with g = g_idx[i].
 * n_groups = ceil(in / group_size) (1 with group_size -1). The quantization config lives in
 * config.json's "quantization_config" (or AutoGPTQ's quantize_config.json).
 *
 * v1 zero points are decoded the way GPTQModel (and so transformers) does: bits 2/4/8 add
 * 0x55555555 / 0x11111111 / 0x01010101 to each whole word (carries included), bits 3 add 1 to
 * each field modulo 8. This reads AutoGPTQ's files and GPTQModel's v2->v1 exports (whose
 * zero-0 fields borrow from their neighbours) alike. The writer refuses a zero point of 0 in
 * v1, because per-field readers (exllama, vLLM, AutoGPTQ's kernels) cannot decode it;
 * quantize with sm_gptq_opts.v1_zero, or write gptq_v2.
 *
 * AutoAWQ "gemm" checkpoints (quant_method "awq", version "gemm", zero_point true, 4 bits;
 * AutoAWQ's WQLinear_GEMM.from_linear) share the tensor names, without g_idx, but pack
 * along the OUTPUT dimension:
 *   qweight  I32 [in, out/8]  word [i][o/8] holds the codes of outputs o/8*8 + ORDER[k] at
 *            bits 4k, ORDER = {0, 2, 4, 6, 1, 3, 5, 7}
 *   qzeros   I32 [in/group_size, out/8]  the zero points themselves, packed the same way
 *   scales   F16 [in/group_size, out]
 * and w[o][i] = scales[g][o] * (code - zero) with g = i / group_size (group_size divides in).
 * ==================================================================================== */

typedef struct sm_gptq_hf_config {
    int bits;            /* 2, 3, 4 or 8 */
    int group_size;      /* columns per group, -1: one group for the whole input */
    bool desc_act;       /* act-order (g_idx is then not i / group_size) */
    bool sym;
    bool v2;             /* checkpoint_format "gptq_v2" (else "gptq") */
    bool static_groups;
    bool true_sequential;
    double damp_percent;
    bool awq;            /* quant_method "awq": AutoAWQ's gemm layout (then sym is false) */
} sm_gptq_hf_config;

/* Parse a quantization_config object (`what` names it in errors). Refuses quant_method other
 * than "gptq" or "awq", pack_dtype other than "int32", unknown checkpoint formats and bad bit
 * widths; for "awq" anything but version "gemm" with zero_point true and 4 bits. */
int sm_gptq_hf_config_parse(const cJSON *qc, const char *what, sm_gptq_hf_config *out);
/* The quantization_config object for a config (NULL if out of memory). */
cJSON *sm_gptq_hf_config_to_json(const sm_gptq_hf_config *c);

/* The tensor shapes of an out x in linear; -1 (sm_error) unless in and out are multiples of
 * 32 (AutoGPTQ and GPTQModel size qweight and qzeros as in // 32 * bits, out // 32 * bits;
 * AWQ: out a multiple of 8 and group_size dividing in). */
int sm_gptq_hf_shapes(const sm_gptq_hf_config *c, int64_t out_f, int64_t in_f, int64_t *n_groups,
                      int64_t qweight_shape[2], int64_t qzeros_shape[2]);
/* codes [out, in] (as sm_gptq_result.codes) and zeros [n_groups, out] (real zero points) ->
 * qweight and qzeros in the shapes above. */
int sm_gptq_hf_pack(const sm_gptq_hf_config *c, int64_t out_f, int64_t in_f, const uint8_t *codes,
                    const int32_t *zeros, int32_t *qweight, int32_t *qzeros);
/* The inverse: codes [out, in] and real zero points [n_groups, out]. qweight and qzeros are
 * the packed little-endian int32 words, read byte-wise (they need not be aligned). */
int sm_gptq_hf_unpack(const sm_gptq_hf_config *c, int64_t out_f, int64_t in_f, const void *qweight,
                      const void *qzeros, uint8_t *codes, int32_t *zeros);
/* The float weight [out, in] of a GPTQ linear from its checkpoint tensors (g_idx may be NULL:
 * i / group_size). Shapes, dtypes, sizes and g_idx values are checked against each other and
 * the config. *out_f, *in_f get the dimensions; dst (out*in floats) may be NULL to only check
 * and get them. Each value is scale * (code - zero) computed exactly in float. */
int sm_gptq_hf_dequantize(const sm_gptq_hf_config *c, const sm_tensor *qweight, const sm_tensor *qzeros,
                          const sm_tensor *scales, const sm_tensor *g_idx, float *dst, int64_t *out_f,
                          int64_t *in_f);

/* (calibration section) The GPTQ config of a Hugging Face model directory: config.json's
 * quantization_config when its quant_method is "gptq" or "awq", else AutoGPTQ's
 * quantize_config.json.
 * 0 and *cfg filled for a GPTQ checkpoint, 1 for any other directory, -1 on a bad config. */
int sm_gptq_hf_config_load(const char *dir, sm_gptq_hf_config *cfg);

#endif
