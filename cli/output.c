/* output.c - the output options every producing command shares: --split-max-size and
 * --split-max-tensors (a GGUF split set, formats/sink.h), --level / --raw (a .smelt output) and
 * --manifest (release/release.h). */
#include "cli.h"

#include "formats/smelt.h"
#include "release/release.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void collect(void *ctx, const char *path) {
    cli_output *o = ctx;
    char **f = realloc(o->files, (o->n_files + 1) * sizeof *f);
    if (!f) return;
    o->files = f;
    if ((f[o->n_files] = strdup(path))) o->n_files++;
}

/* "N", "NK", "NM" or "NG" (decimal units, as llama-gguf-split: M = 1000^2) -> bytes. */
static int parse_size(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1000, end++;
    else if (*end == 'M' || *end == 'm') mul = 1000 * 1000, end++;
    else if (*end == 'G' || *end == 'g') mul = 1000 * 1000 * 1000, end++;
    if (end == s || *end || n == 0 || errno || n > UINT64_MAX / mul) return -1;
    *out = n * mul;
    return 0;
}

int cli_output_setup(const sm_command *c, cli_output *o, sm_sink_opts *s) {
    if (o->split_size && parse_size(o->split_size, &s->split_max_bytes))
        return cli_usage_error(c, "--split-max-size %s: expected a positive size N, NK, NM or NG (decimal: 1M = 1000000 bytes)",
                               o->split_size);
    if (o->split_tensors) s->split_max_tensors = (uint64_t)o->split_tensors;
    if (o->raw && o->level) return cli_usage_error(c, "--raw stores the .smelt uncompressed: --level does not apply");
    s->level = (int)o->level;
    s->raw = o->raw;
    if (o->manifest) {
        s->on_file = collect;
        s->on_file_ctx = o;
    }
    return 0;
}

cJSON *cli_output_provenance(const cli_output *o, const char *command, int argc, char **argv,
                             const char *const *sources, size_t n_sources) {
    if (!o->manifest) return NULL;
    cJSON *p = sm_manifest_provenance(command, argc, argv);
    if (p && sm_manifest_add_sources(p, o->manifest, sources, n_sources)) {
        cJSON_Delete(p);
        return NULL;
    }
    if (!p) sm_error("out of memory");
    return p;
}

int cli_output_finish(const char *cmd, cli_output *o, const char *out, cJSON *prov) {
    int rc = 0;
    if (o->manifest) {
        cJSON *m = NULL;
        const char *one[1] = {out};
        const char *const *files = o->n_files ? (const char *const *)o->files : one;
        size_t n = o->n_files ? o->n_files : 1;
        if (!prov || sm_manifest_open_or_new(o->manifest, &m) || sm_manifest_add_artifacts(m, o->manifest, files, n, prov) ||
            sm_manifest_save(m, o->manifest))
            rc = cli_fail(cmd, "--manifest: %s", sm_last_error());
        cJSON_Delete(m);
    }
    cJSON_Delete(prov);
    cli_output_free(o);
    return rc;
}

void cli_output_free(cli_output *o) {
    for (size_t i = 0; i < o->n_files; i++) free(o->files[i]);
    free(o->files);
    o->files = NULL;
    o->n_files = 0;
}

void cli_report_smelt(cJSON *report, const char *smelt_path) {
    sm_smelt *s;
    size_t nf = 0, nt = 0;
    if (!sm_smelt_open(smelt_path, &s)) {
        nf = sm_smelt_n_files(s);
        for (size_t i = 0; i < nf; i++) nt += sm_smelt_n_tensors(s, i);
        sm_smelt_close(s);
    }
    sm_clear_error();
    cJSON_AddNumberToObject(report, "n_files", (double)nf);
    cJSON_AddNumberToObject(report, "n_tensors", (double)nt);
}
