/* sniff.c - what a path is, told by its first bytes (magic numbers and header shapes), before
 * any reader parses it: so that a command handed the wrong kind of file says what the file is
 * and what it wanted, instead of a reader's complaint about a field it misread. */
#include "formats.h"
#include "formats/smelt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HEAD 64

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* llama2.c's legacy (version 0) header: seven int32 whose values make a model; the exact
 * file size is the reader's business (a truncated file is still reported as this kind). */
static bool llama2c_header(const unsigned char *h, size_t n) {
    if (n < 28) return false;
    int32_t v[7];
    for (int i = 0; i < 7; i++) v[i] = (int32_t)le32(h + 4 * i);
    const int32_t vocab = v[5] < 0 ? -v[5] : v[5];
    if (v[0] <= 0 || v[0] > (1 << 20) || v[1] <= 0 || v[1] > (1 << 20) || v[2] <= 0 || v[2] > 4096 || v[3] <= 0 ||
        v[3] > v[0] || v[4] <= 0 || v[4] > v[3] || vocab <= 0 || vocab > (1 << 20) || v[6] <= 0 || v[6] > (1 << 20))
        return false;
    return v[0] % v[3] == 0 && v[3] % v[4] == 0;
}

/* Legacy imatrix .dat: int32 entry count, then int32 name length and the name (a tensor name). */
static bool imatrix_dat(const unsigned char *h, size_t n) {
    if (n < 12) return false;
    const int32_t entries = (int32_t)le32(h), len = (int32_t)le32(h + 4);
    if (entries < 1 || entries > (1 << 20) || len < 1 || len > 1024) return false;
    const size_t k = (size_t)len < n - 8 ? (size_t)len : n - 8;
    for (size_t i = 0; i < k; i++)
        if (h[8 + i] < 0x21 || h[8 + i] > 0x7e) return false;
    return true;
}

/* safetensors: u64 header length, then a JSON object (a length beyond the file is the
 * reader's to report, as a truncated safetensors file). */
static bool safetensors_header(const unsigned char *h, size_t n) {
    if (n < 9) return false;
    const uint64_t len = (uint64_t)le32(h) | (uint64_t)le32(h + 4) << 32;
    return h[8] == '{' && len >= 2;
}

sm_file_kind sm_sniff(const char *path, int *version) {
    if (version) *version = 0;
    struct stat st;
    if (stat(path, &st) != 0) return errno == ENOENT || errno == ENOTDIR ? SM_FILE_MISSING : SM_FILE_UNREADABLE;
    if (S_ISDIR(st.st_mode)) {
        static const char *const names[] = {"config.json", "adapter_config.json"};
        for (int i = 0; i < 2; i++) {
            char *p = sm_path_join(path, names[i]);
            const bool yes = p && sm_is_file(p);
            free(p);
            if (yes) return i == 0 ? SM_FILE_HF_DIR : SM_FILE_LORA_DIR;
        }
        return SM_FILE_DIR;
    }
    if (!S_ISREG(st.st_mode)) return SM_FILE_SPECIAL;
    FILE *f = fopen(path, "rb");
    if (!f) return SM_FILE_UNREADABLE;
    unsigned char h[HEAD] = {0};
    const size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    if (n == 0) return SM_FILE_EMPTY;
    if (n >= 8 && !memcmp(h, SM_SMELT_MAGIC, 8)) {
        const char *inner = sm_smelt_inner_kind(path);
        if (inner && !strcmp(inner, "gguf") && version) *version = 3; /* the GGUF reader checks it */
        return !inner ? SM_FILE_SMELT : !strcmp(inner, "gguf") ? SM_FILE_GGUF
               : !strcmp(inner, "safetensors") ? SM_FILE_SAFETENSORS : SM_FILE_SMELT;
    }
    if (n >= 4 && !memcmp(h, "GGUF", 4)) {
        if (version && n >= 8) *version = (int)le32(h + 4);
        return SM_FILE_GGUF;
    }
    if (n >= 8 && le32(h) == 0x616b3432u) { /* llama2.c export.py: struct.pack('I', 0x616b3432) */
        if (version) *version = (int)le32(h + 4);
        return SM_FILE_LLAMA2C_AK42;
    }
    if (n >= 8 && !memcmp(h, "_logits_", 8)) return SM_FILE_LOGITS;
    if (n >= 4 && (!memcmp(h, "PK\x03\x04", 4) || !memcmp(h, "PK\x05\x06", 4))) return SM_FILE_ZIP;
    /* llama2.c has no magic: its header first (a dim of 640 starts with the bytes 80 02, as a
     * pickle does; the other kinds' first words are far beyond any plausible dim) */
    if (llama2c_header(h, n)) return SM_FILE_LLAMA2C;
    if (safetensors_header(h, n)) return SM_FILE_SAFETENSORS;
    if (n >= 2 && h[0] == 0x80 && h[1] >= 2 && h[1] <= 5) return SM_FILE_PICKLE;
    if (imatrix_dat(h, n)) return SM_FILE_IMATRIX_DAT;
    size_t i = 0;
    while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r')) i++;
    if (i < n && (h[i] == '{' || h[i] == '[')) return SM_FILE_JSON;
    /* SentencePiece ModelProto: field 1 (pieces), length-delimited, whose first field is the
     * piece string (field 1, length-delimited) */
    if (n >= 4 && h[0] == 0x0a) {
        size_t k = 1;
        while (k < n && (h[k] & 0x80)) k++;
        if (k + 1 < n && h[k + 1] == 0x0a) return SM_FILE_SPM;
    }
    return SM_FILE_UNKNOWN;
}

const char *sm_file_kind_name(sm_file_kind k) {
    switch (k) {
    case SM_FILE_MISSING: return "no such file or directory";
    case SM_FILE_UNREADABLE: return "unreadable";
    case SM_FILE_SPECIAL: return "not a regular file or directory";
    case SM_FILE_HF_DIR: return "a Hugging Face model directory";
    case SM_FILE_LORA_DIR: return "a PEFT LoRA adapter directory";
    case SM_FILE_DIR: return "a directory without config.json (not a Hugging Face model directory)";
    case SM_FILE_EMPTY: return "an empty file";
    case SM_FILE_GGUF: return "a GGUF file";
    case SM_FILE_SAFETENSORS: return "a safetensors file";
    case SM_FILE_ZIP: return "a zip archive (PyTorch checkpoint)";
    case SM_FILE_PICKLE: return "a pickle (legacy PyTorch checkpoint)";
    case SM_FILE_LLAMA2C: return "a llama2.c checkpoint";
    case SM_FILE_LLAMA2C_AK42: return "a llama2.c version 1/2 export (magic \"ak42\")";
    case SM_FILE_LOGITS: return "a log-probability file (smelt ppl --save-logits / llama-perplexity --kl-divergence-base)";
    case SM_FILE_IMATRIX_DAT: return "an importance matrix (.dat)";
    case SM_FILE_JSON: return "a JSON file";
    case SM_FILE_SPM: return "a SentencePiece tokenizer model";
    case SM_FILE_SMELT: return "a .smelt of a model directory, or a damaged .smelt (smelt verify checks it; smelt unpack rebuilds it)";
    case SM_FILE_UNKNOWN: break;
    }
    return "not a file kind smelt knows (not GGUF, safetensors, PyTorch, llama2.c, imatrix or JSON)";
}

int sm_sniff_expect(const char *path, unsigned accept, const char *wanted, sm_file_kind *kind) {
    int version = 0;
    const sm_file_kind k = sm_sniff(path, &version);
    if (kind) *kind = k;
    if (accept & SM_FILE_BIT(k)) return 0;
    if (k == SM_FILE_MISSING) return sm_error("%s: no such file or directory", path);
    if (k == SM_FILE_UNREADABLE) return sm_error("%s: cannot read: %s", path, strerror(errno));
    if (k == SM_FILE_LLAMA2C_AK42)
        return sm_error("%s: this is a llama2.c version %d export (magic \"ak42\"), which smelt does not read; "
                        "expected %s (of llama2.c checkpoints, the legacy version-0 export: export.py --version 0)",
                        path, version, wanted);
    if (k == SM_FILE_SMELT) { /* a damaged one: its reader says where */
        sm_smelt *s;
        if (sm_smelt_open(path, &s)) return -1;
        sm_smelt_close(s);
        return sm_error("%s: this is a .smelt of a model directory (%s); unpack it first (smelt unpack %s -o DIR)",
                        path, wanted, path);
    }
    if (k == SM_FILE_GGUF && version != 3 && (accept & SM_FILE_BIT(SM_FILE_GGUF)))
        return 0; /* the GGUF reader names the version it wants */
    return sm_error("%s: this is %s; expected %s", path, sm_file_kind_name(k), wanted);
}
