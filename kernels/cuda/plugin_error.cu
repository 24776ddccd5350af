// plugin_error.cu - the plugin's error message (the loader copies it into smelt's).
#include "plugin.h"

#include <stdarg.h>
#include <stdio.h>

static thread_local char g_msg[1024];

extern "C" int smcu_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

extern "C" const char *smcu_last_error(void) { return g_msg; }
