/* checks.c - checks made before any work: can this path become an output? */
#include "core.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int sm_check_output_path(const char *path, bool dir_output) {
    if (!path || !*path) return sm_error("the output path is empty");
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!dir_output && S_ISDIR(st.st_mode))
            return sm_error("%s: is a directory; the output is a file (give a file name, e.g. %s%smodel.gguf)", path,
                            path, path[strlen(path) - 1] == '/' ? "" : "/");
        if (dir_output && !S_ISDIR(st.st_mode))
            return sm_error("%s: exists and is not a directory; the output is a model directory", path);
        if (!dir_output && !S_ISREG(st.st_mode))
            return sm_error("%s: exists and is not a regular file (smelt replaces outputs by renaming a "
                            "temporary file onto them)", path);
    } else if (errno != ENOENT) {
        return sm_error("%s: cannot use as output: %s", path, strerror(errno));
    }
    /* the parent directory: where the temporary is created and renamed */
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--; /* "out/" names the directory out */
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    char parent[PATH_MAX];
    if (s == 0) snprintf(parent, sizeof parent, ".");
    else if (s == 1) snprintf(parent, sizeof parent, "/");
    else if (s - 1 < sizeof parent) snprintf(parent, sizeof parent, "%.*s", (int)(s - 1), path);
    else return sm_error("%s: path too long", path);
    if (stat(parent, &st) != 0)
        return sm_error("%s: cannot create: the directory %s %s", path, parent,
                        errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode)) return sm_error("%s: cannot create: %s is not a directory", path, parent);
    if (access(parent, W_OK | X_OK) != 0)
        return sm_error("%s: cannot create: the directory %s is not writable (%s)", path, parent, strerror(errno));
    return 0;
}
