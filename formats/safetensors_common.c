/* safetensors_common.c - what the safetensors reader and writer share: the dtype names and a
 * strict lexical check of JSON text that runs before cJSON (which is lenient about numbers,
 * control characters and \u0000, and cannot report where a string held a NUL). */
#include "formats/safetensors_internal.h"

#include <string.h>

static const struct { const char *dtype; sm_type type; } DTYPES[] = {
    {"F64", SM_TYPE_F64},        {"F32", SM_TYPE_F32},         {"F16", SM_TYPE_F16},
    {"BF16", SM_TYPE_BF16},      {"I64", SM_TYPE_I64},         {"I32", SM_TYPE_I32},
    {"I16", SM_TYPE_I16},        {"I8", SM_TYPE_I8},           {"U8", SM_TYPE_U8},
    {"BOOL", SM_TYPE_BOOL},      {"F8_E4M3", SM_TYPE_F8_E4M3}, {"F8_E5M2", SM_TYPE_F8_E5M2},
    {"U16", SM_TYPE_U16},        {"U32", SM_TYPE_U32},         {"U64", SM_TYPE_U64},
};

sm_type sm_st_dtype_type(const char *dtype) {
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (!strcmp(DTYPES[i].dtype, dtype)) return DTYPES[i].type;
    return SM_TYPE_INVALID;
}

const char *sm_st_type_dtype(sm_type t) {
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (DTYPES[i].type == t) return DTYPES[i].dtype;
    return NULL;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const uint8_t *s, size_t n) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < k || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return k;
}

bool sm_st_utf8_valid(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_seq(u + i, n - i))) return false;
    return true;
}

static bool is_hex(uint8_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

#define FAIL(at, msg) \
    do {              \
        *bad = (at);  \
        *what = (msg); \
        return -1;    \
    } while (0)

int sm_st_json_precheck(const uint8_t *s, size_t n, bool integers_only, size_t *bad, const char **what) {
    size_t i = 0;
    while (i < n) {
        uint8_t ch = s[i];
        if (ch == '"') {
            size_t start = i++;
            for (;;) {
                if (i >= n) FAIL(start, "expected a closing '\"' for this string");
                ch = s[i];
                if (ch == '"') {
                    i++;
                    break;
                }
                if (ch < 0x20) FAIL(i, "expected no control characters inside a string");
                if (ch == '\\') {
                    if (i + 1 >= n) FAIL(start, "expected a closing '\"' for this string");
                    uint8_t e = s[i + 1];
                    if (e == 'u') {
                        if (i + 6 > n || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) || !is_hex(s[i + 4]) ||
                            !is_hex(s[i + 5]))
                            FAIL(i, "expected four hex digits after \\u");
                        if (!memcmp(s + i + 2, "0000", 4)) FAIL(i, "expected no NUL (\\u0000) inside a string");
                        i += 6;
                    } else if (strchr("\"\\/bfnrt", e) && e) {
                        i += 2;
                    } else {
                        FAIL(i, "expected a valid escape sequence");
                    }
                } else {
                    size_t k = utf8_seq(s + i, n - i);
                    if (!k) FAIL(i, "expected valid UTF-8");
                    i += k;
                }
            }
        } else if (ch == '-' || (ch >= '0' && ch <= '9')) {
            size_t start = i;
            while (i < n && strchr("0123456789+-.eE", s[i]) && s[i]) i++;
            if (!integers_only) continue;
            size_t len = i - start;
            bool digits = true;
            for (size_t k = start; k < i; k++) digits &= s[k] >= '0' && s[k] <= '9';
            if (!digits || (len > 1 && s[start] == '0'))
                FAIL(start, "expected a non-negative integer (no sign, fraction, exponent or leading zero)");
            uint64_t v = 0;
            for (size_t k = start; k < i && v <= (1ull << 53); k++) v = v * 10 + (uint64_t)(s[k] - '0');
            if (v > (1ull << 53)) FAIL(start, "expected an integer of at most 2^53");
        } else if (ch >= 0x80) {
            FAIL(i, "expected JSON (a non-ASCII byte outside a string)");
        } else {
            i++;
        }
    }
    return 0;
}
