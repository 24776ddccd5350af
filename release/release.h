/* release.h - release artifacts: file digests and manifests (docs/manifest.md).
 *
 * A manifest is a JSON file that ties artifacts (the files a command wrote) to what they were
 * made from and how: per artifact its size, SHA-256 and XXH3-128; the source model's files and
 * their digests; the recipe and method; the calibration text's digest; the smelt version and
 * command line; and, once `smelt ppl ... --manifest` ran, the measured quality. `smelt verify
 * --manifest` recomputes what it claims.
 */
#ifndef SMELT_RELEASE_H
#define SMELT_RELEASE_H

#include "core/core.h"

#include <cjson/cJSON.h>

#define SM_MANIFEST_SCHEMA 1

/* ---- digests (hash.c): one streaming pass, bounded memory ---- */
typedef struct sm_file_hashes {
    uint64_t size;
    char sha256[65];   /* lowercase hex */
    char xxh3_128[33]; /* lowercase hex of XXH128_canonical_t (big-endian: high 64 bits first) */
} sm_file_hashes;
int sm_hash_file(const char *path, sm_file_hashes *out);
/* n files on up to 8 threads; the first error (naming its file) is returned. */
int sm_hash_files(const char *const *paths, size_t n, sm_file_hashes *out);

/* ---- manifests (manifest.c) ---- */

/* A new manifest: {"schema_version": 1, "generator": "smelt VERSION", "artifacts": []}. */
cJSON *sm_manifest_new(void);
/* The manifest at path if the file exists (sm_manifest_load), else a new one. */
int sm_manifest_open_or_new(const char *path, cJSON **out);
/* A "provenance" object: command, command_line (argv as given, "smelt" first), smelt_version
 * and an empty "sources" array; the caller adds recipe, method, calibration. */
cJSON *sm_manifest_provenance(const char *command, int argc, char **argv);
/* Add the artifacts `paths` (a directory: its regular files) with size and digests (an entry of the same path is updated:
 * its digests replaced, its other fields kept unless provenance is given, which replaces
 * the entry's provenance and drops its validation). Paths are stored relative to the
 * manifest's directory. Returns 0 or -1 (naming the file). */
int sm_manifest_add_artifacts(cJSON *m, const char *manifest_path, const char *const *paths, size_t n,
                              const cJSON *provenance);
/* The entry of the artifact at `path` (NULL if absent). */
cJSON *sm_manifest_find_artifact(const cJSON *m, const char *manifest_path, const char *path);
/* Into provenance.sources: a file with its digests; a directory as its regular files (sorted,
 * not recursive); NULL inputs are skipped. */
int sm_manifest_add_sources(cJSON *prov, const char *manifest_path, const char *const *inputs, size_t n);
/* obj[key] = {"path", "size", "sha256", "xxh3_128"} of a file (calibration text, imatrix). */
int sm_manifest_set_file(cJSON *obj, const char *key, const char *manifest_path, const char *path);
/* A file's digests as an object {"path", "size", "sha256", "xxh3_128"}; NULL on error. */
cJSON *sm_manifest_file_entry(const char *manifest_path, const char *path);
/* Write atomically (temporary + rename), pretty-printed, keys in insertion order. */
int sm_manifest_save(const cJSON *m, const char *path);
/* Read and check: a JSON object whose schema_version is SM_MANIFEST_SCHEMA (another version:
 * "FILE: manifest schema_version N is not supported (this smelt reads 1)"). */
int sm_manifest_load(const char *path, cJSON **out);
/* An entry's "path" resolved against the manifest's directory (malloc'ed). */
char *sm_manifest_resolve(const char *manifest_path, const char *entry_path);
/* Recompute size and digests of the artifacts named (all of the manifest's when n == 0): 0
 * when all match, else -1 with "ARTIFACT: sha256 is X, the manifest says Y" for the first
 * mismatch (or "ARTIFACT: not listed in MANIFEST"). *n_checked (may be NULL) counts files. */
int sm_manifest_verify_hashes(const cJSON *m, const char *manifest_path, const char *const *artifacts, size_t n,
                              size_t *n_checked);

/* ---- release matrices (matrix.c): what a release builds, described once (docs/sweep.md) ----
 * A small JSON object read by `smelt sweep --matrix FILE`, locally or on Slurm:
 *   {"models": ["DIR" | {"path": "DIR", "name": "NAME"}, ...], "eval": "TEXT", "calib": "TEXT",
 *    "recipes": ["Q4_K_M", ...], "methods": ["rtn", "imatrix", "gptq"], "target_bpw": [4.5, ...],
 *    "ctx": 512, "chunks": 0, "calib_chunks": 0, "samples": 64, "keep": false}
 * Relative paths are taken from the matrix file's directory. Every field is checked (type,
 * range, known recipe and method, unique names usable as directory names); an unknown key is
 * an error. */
#define SM_MATRIX_MAX_MODELS 256
#define SM_MATRIX_MAX_LIST 64
typedef struct sm_matrix_model {
    char *name; /* the sweep's directory under the output: [A-Za-z0-9._-], not starting with '.' */
    char *path;
} sm_matrix_model;
typedef struct sm_matrix {
    sm_matrix_model *models;
    size_t n_models;
    char *eval, *calib;            /* calib NULL when absent */
    char **recipes, **methods;     /* NULL when absent (the sweep's defaults) */
    size_t n_recipes, n_methods;
    double *target_bpw;
    size_t n_target_bpw;
    long ctx, chunks, calib_chunks, samples; /* 0 when absent */
    bool keep;
} sm_matrix;
/* Parse `len` bytes of JSON (messages name `path`; relative paths are resolved against its
 * directory). 0, or -1 with an error naming the file and the field. */
int sm_matrix_parse(const char *text, size_t len, const char *path, sm_matrix *out);
/* Read (at most 1 MiB) and parse the file. */
int sm_matrix_load(const char *path, sm_matrix *out);
void sm_matrix_free(sm_matrix *m);

#endif
