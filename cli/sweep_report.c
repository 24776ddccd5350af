/* sweep_report.c - the files `smelt sweep` writes from its measured rows: report.csv,
 * report.md (a llama.cpp-style table), plot.svg (KLD, log scale, against bits per weight) and
 * report.html (one self-contained page: no network, no scripts, tooltips are SVG <title>s). */
#include "sweep.h"

#include "core/core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growing string ---- */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        const size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

/* Text with &, <, >, " escaped (HTML and SVG). */
static void sb_esc(sbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

int sweep_write_file(const char *path, const char *text) {
    sm_outfile *o = sm_outfile_open(path);
    if (!o) return -1;
    if (sm_outfile_write(o, text, strlen(text))) {
        sm_outfile_abort(o);
        return -1;
    }
    return sm_outfile_commit(o);
}

static int commit(const sweep_info *in, const char *name, sbuf *b) {
    if (b->oom) return sm_error("out of memory writing %s", name);
    char path[700];
    snprintf(path, sizeof path, "%s/%s", in->dir, name);
    int rc = sweep_write_file(path, b->p ? b->p : "");
    free(b->p);
    *b = (sbuf){0};
    return rc;
}

/* ---- rows as JSON ---- */
cJSON *sweep_row_json(const sweep_row *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", r->name);
    if (r->recipe[0]) cJSON_AddStringToObject(j, "recipe", r->recipe);
    else cJSON_AddNullToObject(j, "recipe");
    cJSON_AddStringToObject(j, "method", r->method);
    if (r->target_bpw > 0) cJSON_AddNumberToObject(j, "target_bpw", r->target_bpw);
    else cJSON_AddNullToObject(j, "target_bpw");
    cJSON_AddStringToObject(j, "file", r->file);
    cJSON_AddStringToObject(j, "command", r->command);
    const struct { const char *k; double v; } F[] = {
        {"bytes", (double)r->bytes}, {"n_params", (double)r->n_params}, {"bpw", r->bpw}, {"ppl", r->ppl},
        {"ppl_stderr", r->ppl_stderr}, {"delta_ppl", r->delta_ppl}, {"delta_ppl_stderr", r->delta_ppl_stderr},
        {"kld_mean", r->kld_mean}, {"kld_stderr", r->kld_stderr}, {"kld_p99", r->kld_p99},
        {"top1_agreement", r->top1}, {"top1_agreement_stderr", r->top1_stderr}, {"seconds", r->seconds},
        {"peak_rss_bytes", (double)r->peak_rss}};
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) cJSON_AddNumberToObject(j, F[i].k, F[i].v);
    cJSON_AddBoolToObject(j, "reused", r->reused);
    return j;
}

double sweep_json_num(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

void sweep_row_measures_from_json(const cJSON *j, sweep_row *r) {
    r->ppl = sweep_json_num(j, "ppl");
    r->ppl_stderr = sweep_json_num(j, "ppl_stderr");
    r->delta_ppl_stderr = sweep_json_num(j, "delta_ppl_stderr");
    r->kld_mean = sweep_json_num(j, "kld_mean");
    r->kld_stderr = sweep_json_num(j, "kld_stderr");
    r->kld_p99 = sweep_json_num(j, "kld_p99");
    r->top1 = sweep_json_num(j, "top1_agreement");
    r->top1_stderr = sweep_json_num(j, "top1_agreement_stderr");
}

void sweep_row_from_json(const cJSON *j, sweep_row *r) {
    r->bytes = (int64_t)sweep_json_num(j, "bytes");
    r->n_params = (int64_t)sweep_json_num(j, "n_params");
    r->bpw = sweep_json_num(j, "bpw");
    sweep_row_measures_from_json(j, r);
    r->delta_ppl = sweep_json_num(j, "delta_ppl");
    r->seconds = sweep_json_num(j, "seconds");
    r->peak_rss = (int64_t)sweep_json_num(j, "peak_rss_bytes");
}

bool sweep_on_front(const sweep_row *rows, size_t n, size_t i) {
    for (size_t k = 0; k < n; k++) {
        if (k == i) continue;
        const bool le = rows[k].bpw <= rows[i].bpw && rows[k].kld_mean <= rows[i].kld_mean;
        const bool lt = rows[k].bpw < rows[i].bpw || rows[k].kld_mean < rows[i].kld_mean;
        if (le && lt) return false;
    }
    return true;
}

/* ---- csv and markdown ---- */
static void write_csv(sbuf *b, const sweep_row *rows, size_t n) {
    sb_printf(b, "name,recipe,method,target_bpw,bytes,bpw,ppl,ppl_stderr,delta_ppl,delta_ppl_stderr,kld_mean,kld_stderr,"
                 "kld_p99,top1_agreement,seconds,peak_rss_bytes,on_front,command\n");
    for (size_t i = 0; i < n; i++) {
        const sweep_row *r = &rows[i];
        sb_printf(b, "%s,%s,%s,%g,%lld,%.4f,%.6f,%.6f,%.6f,%.6f,%.8f,%.8f,%.8f,%.6f,%.3f,%lld,%d,\"", r->name, r->recipe,
                  r->method, r->target_bpw, (long long)r->bytes, r->bpw, r->ppl, r->ppl_stderr, r->delta_ppl,
                  r->delta_ppl_stderr, r->kld_mean, r->kld_stderr, r->kld_p99, r->top1, r->seconds, (long long)r->peak_rss,
                  sweep_on_front(rows, n, i));
        for (const char *p = r->command; *p; p++) sb_printf(b, *p == '"' ? "\"\"" : "%c", *p);
        sb_printf(b, "\"\n");
    }
}

static const char MD_HEAD[] = "| artifact | method | size | bpw | PPL | ΔPPL | mean KLD | p99 KLD | same top | time | peak mem |";

static void write_md(sbuf *b, const sweep_info *in, const sweep_row *rows, size_t n) {
    sb_printf(b, "# smelt sweep: %s\n\n", in->model);
    sb_printf(b, "Measured on `%s` (%lld chunks of %lld tokens) against the base `%s` (%.2f bpw, PPL %.4f ± %.4f).\n"
                 "Mean KLD: KL divergence of the artifact's next-token distribution from the base's, averaged over "
                 "the scored tokens. ★ = on the Pareto front (no artifact is both smaller and closer).\n\n",
              in->eval, (long long)in->n_chunks, (long long)in->n_ctx, in->base_file, in->base_bpw, in->base_ppl,
              in->base_ppl_stderr);
    sb_printf(b, "%s\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", MD_HEAD);
    for (size_t i = 0; i < n; i++) {
        const sweep_row *r = &rows[i];
        sb_printf(b, "| %s%s | %s | %.2f MiB | %.3f | %.4f ± %.4f | %+.4f | %.6f | %.5f | %.2f %% | %.1f s | %.1f MiB |\n",
                  r->name, sweep_on_front(rows, n, i) ? " ★" : "", r->method, (double)r->bytes / 1048576.0, r->bpw, r->ppl,
                  r->ppl_stderr, r->delta_ppl, r->kld_mean, r->kld_p99, 100 * r->top1, r->seconds,
                  (double)r->peak_rss / 1048576.0);
    }
    sb_printf(b, "\nCommands:\n\n```sh\n");
    for (size_t i = 0; i < n; i++) sb_printf(b, "%s\n", rows[i].command);
    sb_printf(b, "```\n");
}

/* ---- the plot ---- */
enum { W = 760, H = 460, ML = 72, MR = 170, MT = 44, MB = 52 };

static const struct { const char *method, *colour, *shape; } STYLE[] = {
    {"rtn", "#1f77b4", "circle"}, {"imatrix", "#d95f02", "square"}, {"gptq", "#1b9e77", "triangle"}};

static int style_of(const char *method) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(STYLE[i].method, method)) return i;
    return 0;
}

static void marker(sbuf *b, int st, double x, double y, bool hollow) {
    const char *c = STYLE[st].colour;
    const char *fill = hollow ? "#ffffff" : c;
    if (st == 0) sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5.5\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.6\"/>", x, y, fill, c);
    else if (st == 1)
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.6\"/>",
                  x - 5, y - 5, fill, c);
    else
        sb_printf(b, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.6\"/>", x,
                  y - 6.5, x - 6, y + 4.5, x + 6, y + 4.5, fill, c);
}

static double kld_floor(double k) { return k > 1e-7 ? k : 1e-7; }

char *sweep_svg(const sweep_info *in, const sweep_row *rows, size_t n) {
    sbuf b = {0};
    double x0 = 1e9, x1 = -1e9, y0 = 1e9, y1 = -1e9;
    for (size_t i = 0; i < n; i++) {
        if (!(rows[i].bpw > 0) || !isfinite(rows[i].kld_mean)) continue;
        const double l = log10(kld_floor(rows[i].kld_mean));
        x0 = fmin(x0, rows[i].bpw), x1 = fmax(x1, rows[i].bpw), y0 = fmin(y0, l), y1 = fmax(y1, l);
    }
    if (x0 > x1) x0 = 2, x1 = 8, y0 = -4, y1 = -1;
    x0 = floor(x0 * 2 - 1) / 2, x1 = ceil(x1 * 2 + 1) / 2;
    y0 = floor(y0), y1 = ceil(y1);
    if (y1 - y0 < 1) y1 = y0 + 1;
    const double pw = W - ML - MR, ph = H - MT - MB;
#define PX(v) (ML + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (MT + (y1 - (v)) / (y1 - y0) * ph)
    sb_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" font-size=\"12\" role=\"img\">\n", W, H, W, H);
    sb_printf(&b, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
    sb_printf(&b, "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">KL divergence vs size: ", ML);
    const char *base = strrchr(in->model, '/');
    sb_esc(&b, base && base[1] ? base + 1 : in->model);
    sb_printf(&b, "</text>\n<text x=\"%d\" y=\"37\" font-size=\"11\" fill=\"#555\">lower left is better; mean KLD "
                  "against the base on ", ML);
    const char *ev = strrchr(in->eval, '/');
    sb_esc(&b, ev ? ev + 1 : in->eval);
    sb_printf(&b, " (log scale)</text>\n");
    /* grid and ticks */
    sb_printf(&b, "<g stroke=\"#e3e3e3\">\n");
    for (double d = y0; d <= y1 + 1e-9; d += 1) sb_printf(&b, "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", ML, ML + pw, PY(d), PY(d));
    const double xs = x1 - x0 > 6 ? 1.0 : 0.5;
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs)
        sb_printf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.0f\"/>\n", PX(v), PX(v), MT, MT + ph);
    sb_printf(&b, "</g>\n<g fill=\"#333\">\n");
    for (double d = y0; d <= y1 + 1e-9; d += 1)
        sb_printf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n", ML - 6, PY(d) + 4, (int)d);
    for (double v = ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs)
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n", PX(v), MT + ph + 16, v);
    sb_printf(&b, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">bits per weight</text>\n", ML + pw / 2, H - 12);
    sb_printf(&b, "<text transform=\"translate(16 %.0f) rotate(-90)\" text-anchor=\"middle\">mean KL divergence</text>\n",
              MT + ph / 2);
    sb_printf(&b, "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#888\"/>\n", ML, MT, pw, ph);
    /* the Pareto front, in order of size */
    size_t *ord = malloc((n ? n : 1) * sizeof *ord), nf = 0;
    if (ord) {
        for (size_t i = 0; i < n; i++)
            if (sweep_on_front(rows, n, i) && isfinite(rows[i].kld_mean)) ord[nf++] = i;
        for (size_t i = 1; i < nf; i++)
            for (size_t k = i; k > 0 && rows[ord[k]].bpw < rows[ord[k - 1]].bpw; k--) {
                size_t t = ord[k];
                ord[k] = ord[k - 1], ord[k - 1] = t;
            }
        sb_printf(&b, "<polyline class=\"front\" fill=\"none\" stroke=\"#777\" stroke-width=\"1.5\" stroke-dasharray=\"5 4\" points=\"");
        for (size_t i = 0; i < nf; i++)
            sb_printf(&b, "%.1f,%.1f ", PX(rows[ord[i]].bpw), PY(log10(kld_floor(rows[ord[i]].kld_mean))));
        sb_printf(&b, "\"/>\n");
        free(ord);
    }
    /* one marker per artifact, with its tooltip and label */
    for (size_t i = 0; i < n; i++) {
        const sweep_row *r = &rows[i];
        const double x = PX(r->bpw), y = PY(log10(kld_floor(r->kld_mean)));
        const int st = style_of(r->method);
        sb_printf(&b, "<g class=\"marker\" data-name=\"");
        sb_esc(&b, r->name);
        sb_printf(&b, "\"><title>");
        sb_esc(&b, r->name);
        sb_printf(&b, "\n%.3f bpw, %.2f MiB\nmean KLD %.6f (p99 %.5f)\nPPL %.4f (%+.4f), same top token %.2f%%\n", r->bpw,
                  (double)r->bytes / 1048576.0, r->kld_mean, r->kld_p99, r->ppl, r->delta_ppl, 100 * r->top1);
        sb_esc(&b, r->command);
        sb_printf(&b, "</title>");
        marker(&b, st, x, y, r->target_bpw > 0);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\">", x + 8, y + 3.5 + (st - 1) * 11.0, STYLE[st].colour);
        sb_esc(&b, r->recipe[0] ? r->recipe : r->name);
        sb_printf(&b, "</text></g>\n");
    }
    /* legend */
    const double lx = W - MR + 18;
    double ly = MT + 10;
    sb_printf(&b, "<g class=\"legend\">\n");
    for (int st = 0; st < 3; st++) {
        bool used = false;
        for (size_t i = 0; i < n; i++) used |= style_of(rows[i].method) == st;
        if (!used) continue;
        marker(&b, st, lx, ly, false);
        sb_printf(&b, "<text x=\"%.0f\" y=\"%.0f\">%s</text>\n", lx + 12, ly + 4,
                  st == 0 ? "round to nearest" : st == 1 ? "imatrix" : "GPTQ");
        ly += 22;
    }
    bool targeted = false;
    for (size_t i = 0; i < n; i++) targeted |= rows[i].target_bpw > 0;
    if (targeted) {
        marker(&b, 0, lx, ly, true);
        sb_printf(&b, "<text x=\"%.0f\" y=\"%.0f\">size-targeted</text>\n", lx + 12, ly + 4);
        ly += 22;
    }
    sb_printf(&b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#777\" stroke-width=\"1.5\" "
                  "stroke-dasharray=\"5 4\"/><text x=\"%.0f\" y=\"%.0f\">Pareto front</text>\n</g>\n",
              lx - 7, lx + 7, ly, ly, lx + 12, ly + 4);
    sb_printf(&b, "</svg>\n");
#undef PX
#undef PY
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- the page ---- */
static const char CSS[] =
    "body{font-family:sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}"
    "table{border-collapse:collapse;font-size:13px;margin:12px 0}th,td{border:1px solid #ccc;padding:3px 7px;"
    "text-align:right}th{background:#f2f2f2}td:first-child,td:nth-child(2){text-align:left}tr.front td:first-child"
    "{font-weight:bold}code{font-size:12px;background:#f6f6f6;padding:1px 3px}dl{font-size:14px}"
    "dt{font-weight:bold;margin-top:6px}.cmds code{display:block;white-space:pre-wrap;margin:2px 0}"
    "g.marker:hover text{font-weight:bold}";

static void write_html(sbuf *b, const sweep_info *in, const sweep_row *rows, size_t n, const char *svg) {
    sb_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>smelt sweep: ");
    sb_esc(b, in->model);
    sb_printf(b, "</title>\n<style>%s</style></head><body>\n<h1>Accuracy against size: ", CSS);
    sb_esc(b, in->model);
    sb_printf(b, "</h1>\n<p>Each point is one quantized copy of the model (an <em>artifact</em>), made with one "
                 "recipe (which quantization type each tensor gets) and one method: <b>round to nearest</b> (rtn), "
                 "round to nearest weighted by an <b>importance matrix</b> from calibration text (imatrix), or "
                 "<b>GPTQ</b>, which corrects each weight's rounding error using calibration text. Further right "
                 "means a bigger file (bits per weight); further down means the artifact's predictions are closer "
                 "to the original model's (mean KL divergence of its next-token distribution from the base's, on a "
                 "log scale). The dashed line joins the Pareto front: the artifacts that no other is both smaller "
                 "and closer than. Hover over a point for its numbers and the command that made it.</p>\n<dl>\n<dt>"
                 "model</dt><dd><code>");
    sb_esc(b, in->model);
    sb_printf(b, "</code> (base <code>");
    sb_esc(b, in->base_file);
    sb_printf(b, "</code>: %.2f bpw, %.2f MiB, %lld parameters, PPL %.4f ± %.4f)</dd>\n<dt>evaluation text</dt><dd><code>",
              in->base_bpw, (double)in->base_bytes / 1048576.0, (long long)in->n_params, in->base_ppl, in->base_ppl_stderr);
    sb_esc(b, in->eval);
    sb_printf(b, "</code>: %lld chunks of %lld tokens, the second half of each scored (llama-perplexity's protocol)</dd>\n",
              (long long)in->n_chunks, (long long)in->n_ctx);
    if (in->calib) {
        sb_printf(b, "<dt>calibration text</dt><dd><code>");
        sb_esc(b, in->calib);
        sb_printf(b, "</code> (imatrix and GPTQ)</dd>\n");
    }
    sb_printf(b, "<dt>made by</dt><dd>smelt %s</dd>\n</dl>\n<figure>\n%s</figure>\n", in->version, svg);
    sb_printf(b, "<h2>Table</h2>\n<p>PPL: perplexity ± standard error; ΔPPL: against the base; same top: how often "
                 "the artifact's most likely next token is the base's; time and peak memory: of the command that "
                 "made the artifact. Bold: on the Pareto front.</p>\n<table>\n<tr>");
    static const char *const cols[] = {"artifact", "method", "size", "bpw", "PPL", "ΔPPL", "mean KLD", "p99 KLD",
                                       "same top", "time", "peak mem"};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) sb_printf(b, "<th>%s</th>", cols[c]);
    sb_printf(b, "</tr>\n");
    for (size_t i = 0; i < n; i++) {
        const sweep_row *r = &rows[i];
        sb_printf(b, "<tr%s><td>", sweep_on_front(rows, n, i) ? " class=\"front\"" : "");
        sb_esc(b, r->name);
        sb_printf(b, "</td><td>%s</td><td>%.2f MiB</td><td>%.3f</td><td>%.4f ± %.4f</td><td>%+.4f</td><td>%.6f</td>"
                     "<td>%.5f</td><td>%.2f %%</td><td>%.1f s</td><td>%.1f MiB</td></tr>\n",
                  r->method, (double)r->bytes / 1048576.0, r->bpw, r->ppl, r->ppl_stderr, r->delta_ppl, r->kld_mean,
                  r->kld_p99, 100 * r->top1, r->seconds, (double)r->peak_rss / 1048576.0);
    }
    sb_printf(b, "</table>\n<h2>Reproducing an artifact</h2>\n<div class=\"cmds\">\n");
    for (size_t i = 0; i < n; i++) {
        sb_printf(b, "<code>");
        sb_esc(b, rows[i].command);
        sb_printf(b, "</code>\n");
    }
    sb_printf(b, "</div>\n<p>The numbers are also in report.json, report.csv and report.md beside this page.</p>\n"
                 "</body></html>\n");
}

int sweep_write_reports(const sweep_info *in, const sweep_row *rows, size_t n) {
    sbuf b = {0};
    write_csv(&b, rows, n);
    if (commit(in, "report.csv", &b)) return -1;
    write_md(&b, in, rows, n);
    if (commit(in, "report.md", &b)) return -1;
    char *svg = sweep_svg(in, rows, n);
    if (!svg) return sm_error("out of memory writing plot.svg");
    b.p = svg, b.n = strlen(svg), b.cap = b.n + 1;
    if (commit(in, "plot.svg", &b)) return -1;
    svg = sweep_svg(in, rows, n);
    if (!svg) return sm_error("out of memory writing report.html");
    write_html(&b, in, rows, n, svg);
    free(svg);
    return commit(in, "report.html", &b);
}
