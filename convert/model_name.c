/* model_name.c - general.name, .organization, .basename, .finetune, .version and .size_label
 * from a model id, as gguf-py's Metadata derives them (Metadata.get_model_id_components and
 * apply_metadata_heuristic): first from config.json's _name_or_path when it has at most one
 * '/', then from the directory's name for what is still unset.
 *
 * The regular expressions gguf-py uses are matched by hand (one pass over each part, no
 * backtracking). Letters and digits are ASCII: where Python's Unicode-aware re / str methods
 * would treat a non-ASCII character as a digit or a case-folded letter, this does not; a part
 * starting with a non-ASCII byte counts as starting with a letter (CJK and accented letters).
 *
 * Not read yet: the model card (README.md's YAML front matter: name, basename, finetune,
 * size_label, license, tags, base_model, ... which gguf-py reads first and prefers),
 * generation_config.json's sampling keys and --metadata override files. */
#include "convert_internal.h"

#include <stdlib.h>
#include <string.h>

enum { T_BASENAME = 1, T_SIZE = 2, T_FINETUNE = 4, T_VERSION = 8, T_TYPE = 16 };

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
static char upper(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }
static bool is_word(char c) { return is_alpha(c) || is_digit(c) || c == '_'; }

/* case-insensitive: does s start with the lowercase word w (n bytes of s available)? */
static bool prefix_ci(const char *s, size_t n, const char *w) {
    size_t k = strlen(w);
    if (k > n) return false;
    for (size_t i = 0; i < k; i++)
        if (lower(s[i]) != w[i]) return false;
    return true;
}
static bool equal_ci(const char *s, size_t n, const char *w) { return strlen(w) == n && prefix_ci(s, n, w); }

/* digits from *i; false when none */
static bool digits(const char *s, size_t n, size_t *i) {
    size_t j = *i;
    while (j < n && is_digit(s[j])) j++;
    if (j == *i) return false;
    *i = j;
    return true;
}

/* (v|iter)?\d+([.]\d+)* */
static bool is_version(const char *s, size_t n) {
    size_t i = 0;
    if (prefix_ci(s, n, "iter")) i = 4;
    else if (n && lower(s[0]) == 'v') i = 1;
    if (!digits(s, n, &i)) return false;
    while (i < n) {
        if (s[i] != '.') return false;
        i++;
        if (!digits(s, n, &i)) return false;
    }
    return true;
}

/* i?q\d(_\w)*|b?fp?(16|32) */
static bool is_quant_type(const char *s, size_t n) {
    size_t i = 0;
    if (n && lower(s[0]) == 'i') i = 1;
    if (i < n && lower(s[i]) == 'q') {
        if (++i >= n || !is_digit(s[i])) return false;
        for (i++; i < n; i += 2)
            if (s[i] != '_' || i + 1 >= n || !is_word(s[i + 1])) return false;
        return true;
    }
    i = 0;
    if (n && lower(s[0]) == 'b') i = 1;
    if (i >= n || lower(s[i]) != 'f') return false;
    i++;
    if (i < n && lower(s[i]) == 'p') i++;
    return n - i == 2 && (!memcmp(s + i, "16", 2) || !memcmp(s + i, "32", 2));
}

/* (([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl) */
static bool is_size(const char *s, size_t n) {
    static const char *const words[] = {"small", "mini", "medium", "large", "xl", "xxl"};
    for (size_t w = 0; w < sizeof words / sizeof *words; w++)
        if (equal_ci(s, n, words[w])) return true;
    size_t i = 0;
    if (n && lower(s[0]) == 'a') {
        i = 1;
    } else {
        size_t j = 0;
        if (digits(s, n, &j) && j < n && lower(s[j]) == 'x') i = j + 1;
    }
    if (!digits(s, n, &i)) return false;
    if (i + 1 < n && (s[i] == '.' || s[i] == '_') && is_digit(s[i + 1])) {
        i++;
        digits(s, n, &i);
    }
    if (i >= n || !strchr("kmbt", lower(s[i]))) return false;
    i++;
    if (i < n && is_digit(s[i])) i++;
    return i == n;
}

/* Python's float(s) for what a size label can hold: \d+(\.\d+)? parses, anything else is a ValueError */
static bool parse_float(const char *s, size_t n, double *v) {
    size_t i = 0;
    if (!digits(s, n, &i)) return false;
    if (i < n && s[i] == '.') {
        i++;
        if (!digits(s, n, &i)) return false;
    }
    if (i != n) return false;
    char buf[64];
    if (n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    *v = strtod(buf, NULL);
    return true;
}

typedef struct part {
    char *s; /* NUL-terminated, may grow by one byte (bloom's 7b1 -> 7.1b) */
    size_t n;
    unsigned t;
} part;

/* a size part normalized as gguf-py does; *t gets T_FINETUNE when it is far from total_params */
static void size_part(part *p, int64_t total) {
    char *s = p->s;
    for (size_t i = 0; i < p->n; i++)
        if (s[i] == '_') s[i] = '.';
    if (is_digit(s[p->n - 1])) { /* "7b1" -> "7.1b" */
        char d = s[p->n - 1], u = s[p->n - 2];
        s[p->n - 2] = '.';
        s[p->n - 1] = d;
        s[p->n] = u;
        s[++p->n] = 0;
    }
    if (p->n > 1 && is_digit(s[p->n - 2]) && strchr("kmbt", s[p->n - 1])) s[p->n - 1] = upper(s[p->n - 1]);
    double v;
    const char *where = strchr(" KMBT", s[p->n - 1]);
    if (total != 0 && where && parse_float(s, p->n - 1, &v)) {
        static const double scale[] = {1, 1e3, 1e6, 1e9, 1e12}; /* pow(1000, " KMBT".find(suffix)) */
        const double label = v * scale[where - " KMBT"];
        bool far = (total < 0 && label < (double)(-total / 8)) ||
                   (total > 0 && (label - (double)total < 0 ? (double)total - label : label - (double)total) >
                                     (double)(7 * total / 8));
        if (far) {
            p->t |= T_FINETUNE;
            s[p->n - 1] = lower(s[p->n - 1]);
        }
    }
    if (!p->t) p->t = T_SIZE;
}

static void classify(part *p, size_t i, int64_t total) {
    if (is_version(p->s, p->n)) {
        p->t |= T_VERSION;
    } else if (is_quant_type(p->s, p->n)) {
        p->t |= T_TYPE;
        for (size_t k = 0; k < p->n; k++) p->s[k] = upper(p->s[k]);
    } else if (i > 0 && is_size(p->s, p->n)) {
        size_part(p, total);
    } else if (i > 0 && (equal_ci(p->s, p->n, "chat") || equal_ci(p->s, p->n, "instruct") ||
                         equal_ci(p->s, p->n, "vision") || equal_ci(p->s, p->n, "lora"))) {
        p->t |= total < 0 && equal_ci(p->s, p->n, "lora") ? T_TYPE : T_FINETUNE;
    }
}

/* "-".join of the parts with all of `want` and none of `not`, or NULL when that is empty
 * (dedup: each distinct string once, as the size labels' dict.fromkeys) */
static char *join(const part *ps, size_t n, unsigned want, unsigned not, bool dedup) {
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += ps[i].n + 1;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((ps[i].t & want) != want || (ps[i].t & not)) continue;
        bool seen = false;
        for (size_t j = 0; dedup && j < i && !seen; j++)
            seen = (ps[j].t & want) == want && !(ps[j].t & not) && !strcmp(ps[j].s, ps[i].s);
        if (seen) continue;
        if (k) out[k++] = '-';
        memcpy(out + k, ps[i].s, ps[i].n);
        k += ps[i].n;
    }
    out[k] = 0;
    if (!k) {
        free(out);
        return NULL;
    }
    return out;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

void cv_model_id_free(cv_model_id *m) {
    free(m->name);
    free(m->organization);
    free(m->basename);
    free(m->finetune);
    free(m->version);
    free(m->size_label);
    memset(m, 0, sizeof *m);
}

int cv_model_id_components(const char *id, int64_t total, cv_model_id *m) {
    memset(m, 0, sizeof *m);
    if (!id) return 0;
    if (strchr(id, ' ')) { /* a sentence: the name only */
        m->name = strdup(id);
        return m->name ? 0 : sm_error("out of memory");
    }
    const char *full = id, *slash = strchr(id, '/');
    if (slash) {
        full = slash + 1;
        if (id[0] != '.') {
            m->organization = dup_n(id, (size_t)(slash - id));
            if (!m->organization) return sm_error("out of memory");
        }
    }
    m->name = strdup(full);
    size_t len = strlen(full), n_parts = 0;
    char *buf = malloc(2 * len + 2); /* every part keeps one spare byte */
    part *ps = calloc(len / 2 + 1, sizeof *ps);
    if (!m->name || !buf || !ps) {
        free(buf);
        free(ps);
        cv_model_id_free(m);
        return sm_error("out of memory");
    }
    char *b = buf;
    for (const char *p = full; *p;) {
        const char *e = strchr(p, '-');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) {
            memcpy(b, p, n);
            b[n] = 0;
            ps[n_parts++] = (part){b, n, 0};
            b += n + 2;
        }
        p += n + (e != NULL);
    }
    for (size_t i = 0; i < n_parts; i++) classify(&ps[i], i, total);
    /* word size labels go when a size label with a digit is there */
    bool numeric = false;
    for (size_t i = 0; i < n_parts; i++)
        if (ps[i].t & T_SIZE)
            for (size_t k = 0; k < ps[i].n; k++) numeric |= is_digit(ps[i].s[k]);
    for (size_t i = 0; numeric && i < n_parts; i++) {
        bool alpha = true;
        for (size_t k = 0; k < ps[i].n; k++) alpha &= is_alpha(ps[i].s[k]);
        if ((ps[i].t & T_SIZE) && alpha) ps[i].t &= ~(unsigned)T_SIZE;
    }
    bool at_start = true;
    for (size_t i = 0; i < n_parts; i++) {
        const bool letter = is_alpha(ps[i].s[0]) || (unsigned char)ps[i].s[0] >= 0x80;
        if (at_start && ((!ps[i].t && letter) || (ps[i].t & T_VERSION))) {
            ps[i].t |= T_BASENAME;
        } else {
            at_start = false;
            if (!ps[i].t) ps[i].t = T_FINETUNE;
        }
    }
    for (size_t i = n_parts; i-- > 0;) { /* a trailing version is no part of the basename */
        if ((ps[i].t & T_BASENAME) && ps[i].t != T_BASENAME) ps[i].t &= ~(unsigned)T_BASENAME;
        else break;
    }
    m->basename = join(ps, n_parts, T_BASENAME, 0, false);
    m->size_label = join(ps, n_parts, T_SIZE, 0, true);
    m->finetune = join(ps, n_parts, T_FINETUNE, 0, false);
    m->version = join(ps, n_parts, T_VERSION, T_BASENAME, false);
    if (!m->size_label && !m->finetune && !m->version) { /* too ambiguous */
        free(m->basename);
        m->basename = NULL;
    }
    free(buf);
    free(ps);
    return 0;
}

static int title(const char *id, char **out) { /* id_to_title: never longer than id */
    *out = malloc(strlen(id) + 1);
    if (!*out) return -1;
    cv_id_to_title(id, *out, strlen(id) + 1);
    return 0;
}

/* where the first source left a field unset, the second's value */
static void fill(char **dst, char **src) {
    if (!*dst) {
        *dst = *src;
        *src = NULL;
    }
}

int cv_model_meta(const char *name_or_path, const char *dir_name, int64_t total, cv_model_id *m) {
    memset(m, 0, sizeof *m);
    const char *ids[2] = {NULL, dir_name};
    if (name_or_path) {
        const char *s = strchr(name_or_path, '/');
        if (!s || !strchr(s + 1, '/')) ids[0] = name_or_path;
    }
    for (int k = 0; k < 2; k++) {
        cv_model_id c;
        if (cv_model_id_components(ids[k], total, &c)) {
            cv_model_id_free(m);
            return -1;
        }
        int rc = 0;
        if (c.name && !m->name) rc |= title(c.name, &m->name);
        if (c.organization && !m->organization) rc |= title(c.organization, &m->organization);
        if (rc) {
            cv_model_id_free(&c);
            cv_model_id_free(m);
            return sm_error("out of memory");
        }
        fill(&m->basename, &c.basename);
        fill(&m->finetune, &c.finetune);
        fill(&m->version, &c.version);
        fill(&m->size_label, &c.size_label);
        cv_model_id_free(&c);
    }
    return 0;
}
