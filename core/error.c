/* error.c - one thread-local message describing the latest failure. */
#include "core.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char g_msg[2048];

int sm_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int sm_error_ctx(const char *fmt, ...) {
    char prev[sizeof g_msg];
    memcpy(prev, g_msg, sizeof prev);
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < sizeof g_msg && prev[0]) { /* ": prev", cut to fit as snprintf would */
        size_t room = sizeof g_msg - 1 - (size_t)k, n = strlen(prev);
        char *d = g_msg + k;
        if (room >= 2) {
            memcpy(d, ": ", 2);
            d += 2, room -= 2;
            if (n > room) n = room;
            memcpy(d, prev, n);
            d += n;
        } else if (room == 1) {
            *d++ = ':';
        }
        *d = 0;
    }
    return -1;
}

const char *sm_last_error(void) { return g_msg[0] ? g_msg : "unknown error"; }
void sm_clear_error(void) { g_msg[0] = 0; }
