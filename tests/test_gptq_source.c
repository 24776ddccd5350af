/* test_gptq_source.c - `smelt gptq DIR --to gguf:*` reads the Hugging Face directory in place:
 * its output equals, byte for byte, the independent route `smelt convert DIR -o SRC.gguf`
 * (the weights' own precision) then `smelt gptq SRC.gguf` (llama: q/k rows permuted, normal
 * rope; qwen2: neither), and while it runs no file but the output's temporary appears beside
 * the output and the process writes about one output's worth of bytes (it used to write a
 * full-size OUT.src.PID.gguf copy of the model first). */
#include "testlib.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *calib(void) { return tl_asset("text/kjv-calib.txt"); }

/* gptq DIR and gptq (convert DIR --outtype own) give the same file */
static void same_as_convert_route(const char *dir_, const char *own, const char *recipe, const char *extra) {
    char args[8192], *out = NULL, dir[1024], src[1024], a[1024], b[1024], cal[1024];
    /* tl_asset / tl_tmp hand out shared static buffers: copies */
    snprintf(dir, sizeof dir, "%s", dir_);
    snprintf(cal, sizeof cal, "%s", calib());
    snprintf(src, sizeof src, "%s", tl_tmp("route-src.gguf"));
    snprintf(a, sizeof a, "%s", tl_tmp("route-a.gguf"));
    snprintf(b, sizeof b, "%s", tl_tmp("route-b.gguf"));
    remove(src);
    remove(a);
    remove(b);
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype %s --quiet", dir, src, own);
    CHECK_MSG(tl_run_smelt(args, &out) == 0, "convert failed: %s", out ? out : "");
    free(out);
    out = NULL;
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:%s -o '%s' --samples 4 --seqlen 64 --quiet %s", src,
             cal, recipe, a, extra);
    CHECK_MSG(tl_run_smelt(args, &out) == 0, "gptq of the converted GGUF failed: %s", out ? out : "");
    free(out);
    out = NULL;
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:%s -o '%s' --samples 4 --seqlen 64 --quiet %s", dir,
             cal, recipe, b, extra);
    CHECK_MSG(tl_run_smelt(args, &out) == 0, "gptq of the directory failed: %s", out ? out : "");
    free(out);
    CHECK_MSG(tl_same_file(a, b), "%s %s %s: gptq DIR differs from convert + gptq", dir, recipe, extra);
}

static void llama_dir_equals_convert_route(void) {
    char dir[1024]; /* BF16, q/k permuted by the converter */
    snprintf(dir, sizeof dir, "%s", tl_asset("models/tiny-llama-kjv"));
    same_as_convert_route(dir, "bf16", "Q4_K_M", "");
    same_as_convert_route(dir, "bf16", "Q4_0", "");
    same_as_convert_route(dir, "bf16", "Q8_0", "--no-true-sequential"); /* original q/k in the forward */
}

static void qwen2_dir_equals_convert_route(void) {
    const char *made = tl_make_qwen2_tiny(); /* F32, q/k/v biases, rotate_half kept */
    CHECK_MSG(made != NULL, "cannot make the Qwen2 fixture");
    if (!made) return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", made);
    same_as_convert_route(dir, "f32", "Q4_K_M", "");
    same_as_convert_route(dir, "f32", "Q8_0", "--no-true-sequential");
}

static long long proc_wchar(pid_t pid) {
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "wchar:", 6)) v = atoll(line + 6);
    fclose(f);
    return v;
}

/* While gptq DIR runs: only OUT and OUT.tmp.* appear in OUT's directory, and the bytes it
 * writes stay below 1.5 x the output's size. */
static void no_source_copy_written(void) {
    char dir[1024], cal[1024], outdir[1024], out[1100], tmp_prefix[1100];
    snprintf(dir, sizeof dir, "%s", tl_asset("models/tiny-llama-kjv"));
    snprintf(cal, sizeof cal, "%s", calib());
    snprintf(outdir, sizeof outdir, "%s", tl_tmp("nocopy"));
    mkdir(outdir, 0755);
    snprintf(out, sizeof out, "%s/q.gguf", outdir);
    snprintf(tmp_prefix, sizeof tmp_prefix, "q.gguf.tmp.");
    const pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        execl(tl_smelt_bin(), "smelt", "gptq", dir, "--calib", cal, "--to", "gguf:Q8_0", "-o", out, "--samples", "32",
              "--seqlen", "128", "--threads", "1", "--quiet", (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    if (pid <= 0) return;
    char stray[512] = "";
    long long wchar = -1;
    int polls = 0, status = 0;
    for (;;) {
        const pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        const long long w = proc_wchar(pid);
        if (w > wchar) wchar = w;
        DIR *d = opendir(outdir);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "q.gguf") &&
                    strncmp(e->d_name, tmp_prefix, strlen(tmp_prefix)) && !stray[0])
                    snprintf(stray, sizeof stray, "%s", e->d_name);
            closedir(d);
        }
        polls++;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "gptq DIR --to gguf:Q8_0 failed (status %d)", status);
    CHECK_MSG(!stray[0], "a file other than the output's temporary appeared beside the output: %s", stray);
    struct stat st;
    CHECK(stat(out, &st) == 0);
    if (wchar < 0) {
        printf("  note: /proc/PID/io not readable here; write volume not checked (%d polls)\n", polls);
        return;
    }
    CHECK_MSG((double)wchar < 1.5 * (double)st.st_size, "gptq wrote %lld bytes for a %lld-byte output", wchar,
              (long long)st.st_size);
    printf("  %d polls, %lld bytes written for a %lld-byte output\n", polls, wchar, (long long)st.st_size);
}

/* A NaN in a linear of the directory: refused before any layer runs, naming the checkpoint's
 * tensor, row and column (as smelt convert did when gptq converted the directory first). */
static void nonfinite_refused_before_work(void) {
    char m[1024], st[1100], out[1100], cal[1024], args[4096];
    snprintf(m, sizeof m, "%s", tl_tmp("nan-model"));
    snprintf(cal, sizeof cal, "%s", calib());
    snprintf(args, sizeof args, "rm -rf '%s' && cp -r '%s' '%s' && chmod -R u+w '%s'", m, tl_asset("models/tiny-llama-kjv"),
             m, m);
    CHECK(system(args) == 0);
    snprintf(st, sizeof st, "%s/model.safetensors", m);
    snprintf(out, sizeof out, "%s", tl_tmp("nan-gptq.gguf"));
    size_t n = 0;
    char *b = tl_slurp(st, &n);
    CHECK(b != NULL);
    if (!b) return;
    uint64_t hl;
    memcpy(&hl, b, 8);
    cJSON *h = cJSON_ParseWithLength(b + 8, (size_t)hl);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(h, "model.layers.2.self_attn.q_proj.weight");
    CHECK(t != NULL && !strcmp(cJSON_GetObjectItem(t, "dtype")->valuestring, "BF16"));
    if (t) {
        const uint64_t off = 8 + hl + (uint64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble;
        const int64_t cols = (int64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "shape"), 1)->valuedouble;
        const uint16_t nan = 0x7fc0;
        FILE *f = fopen(st, "r+b");
        CHECK(f && fseek(f, (long)(off + 2 * (5 * cols + 7)), SEEK_SET) == 0 && fwrite(&nan, 2, 1, f) == 1);
        if (f) fclose(f);
    }
    cJSON_Delete(h);
    free(b);
    char *log = NULL;
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:Q8_0 -o '%s' --samples 4 --seqlen 64", m, cal, out);
    const int rc = tl_run_smelt(args, &log);
    CHECK_MSG(rc != 0 && log && strstr(log, "model.layers.2.self_attn.q_proj.weight") && strstr(log, "row 5, column 7") &&
                  !strstr(log, "gptq: layer"),
              "rc %d: %s", rc, log ? log : "");
    CHECK(access(out, F_OK) != 0);
    free(log);
}

void run_tests(void) {
    TEST(nonfinite_refused_before_work);
    TEST(no_source_copy_written);
    TEST(llama_dir_equals_convert_route);
    TEST(qwen2_dir_equals_convert_route);
}
