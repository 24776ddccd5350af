/* unicode.c - UTF-8 decoding, category and White_Space lookups, GPT-2's byte alphabet. */
#include "unicode_internal.h"

int sm_ucat(uint32_t cp) {
    if (cp >= 0x110000) return SM_UCAT_UNASSIGNED;
    /* last range whose first code point is <= cp */
    size_t lo = 0, hi = sm_ucat_n_ranges;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((sm_ucat_ranges[mid] >> 4) <= cp) lo = mid;
        else hi = mid;
    }
    return (int)(sm_ucat_ranges[lo] & 15);
}

bool sm_uspace(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20;
    for (size_t i = 0; i < sm_n_white_space; i++)
        if (sm_white_space[i] == cp) return true;
    return false;
}

uint32_t sm_utf8_decode(const uint8_t *s, size_t n, size_t *pos) {
    size_t i = *pos;
    uint8_t b = s[i];
    if (b < 0x80) {
        *pos = i + 1;
        return b;
    }
    size_t len;
    uint32_t cp;
    if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1F; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0F; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07; }
    else goto bad; /* continuation byte or 0xF8..0xFF */
    if (n - i < len) goto bad;
    for (size_t k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) goto bad;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp > 0x10FFFF) goto bad;
    *pos = i + len;
    return cp;
bad:
    *pos = i + 1;
    return 0xFFFD;
}

size_t sm_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 keeps the printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF as themselves and maps the
 * other 68 bytes, in increasing order, to U+0100, U+0101, ... */
static bool gpt2_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t sm_gpt2_byte_cp(uint8_t b) {
    if (gpt2_printable(b)) return b;
    uint32_t k = 0; /* non-printable bytes before b */
    for (unsigned c = 0; c < b; c++) k += !gpt2_printable(c);
    return 0x100 + k;
}

int sm_gpt2_cp_byte(uint32_t cp) {
    if (cp < 0x100) return gpt2_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (unsigned c = 0; c < 256; c++)
        if (!gpt2_printable(c) && k-- == 0) return (int)c;
    return -1;
}
