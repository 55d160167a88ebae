/* The format code of the C consumer: a small JSON parser, the blob reader and the result writer. */
#define _POSIX_C_SOURCE 200809L
#include "vectors_io.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void *xalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) fprintf(stderr, "out of memory\n"), exit(2);
    return p;
}

static const char *skip_ws(const char *p) { while (isspace((unsigned char)*p)) p++; return p; }

static char *parse_string(const char **pp) {
    const char *p = *pp + 1, *end = p;
    while (*end && *end != '"') end += (*end == '\\' && end[1]) ? 2 : 1;
    char *s = xalloc((size_t)(end - p) + 1), *o = s;
    for (; p < end; p++) {
        if (*p != '\\') { *o++ = *p; continue; }
        switch (*++p) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'u': *o++ = '?'; p += 4; break;  /* only descriptive text is non-ASCII */
        default: *o++ = *p;                   /* \" \\ \/ */
        }
    }
    *pp = *end ? end + 1 : end;
    return s;
}

static Json *parse_value(const char **pp) {
    const char *p = skip_ws(*pp);
    Json *v = xalloc(sizeof *v);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        v->type = *p == '{' ? J_OBJECT : J_ARRAY;
        Json **tail = &v->child;
        for (p = skip_ws(p + 1); *p && *p != close; p = skip_ws(p)) {
            char *key = NULL;
            if (v->type == J_OBJECT) {
                key = parse_string(&p);
                p = skip_ws(p);
                if (*p == ':') p++;
            }
            Json *c = parse_value(&p);
            c->key = key;
            *tail = c, tail = &c->next, v->count++;
            p = skip_ws(p);
            if (*p == ',') p++;
        }
        if (*p == close) p++;
    } else if (*p == '"') {
        v->type = J_STRING, v->str = parse_string(&p);
    } else if (!strncmp(p, "true", 4) || !strncmp(p, "false", 5)) {
        v->type = J_BOOL, v->num = *p == 't', p += *p == 't' ? 4 : 5;
    } else if (!strncmp(p, "null", 4)) {
        v->type = J_NULL, p += 4;
    } else {
        char *end;
        v->type = J_NUMBER, v->num = strtod(p, &end);
        p = end == p ? p + 1 : end;           /* skip a stray character rather than loop */
    }
    *pp = p;
    return v;
}

const Json *json_get(const Json *o, const char *key) {
    for (const Json *c = o ? o->child : NULL; c; c = c->next)
        if (c->key && !strcmp(c->key, key)) return c;
    return NULL;
}

const Json *json_at(const Json *a, size_t i) {
    const Json *c = a ? a->child : NULL;
    while (c && i--) c = c->next;
    return c;
}

double json_num(const Json *o, const char *key, double fallback) {
    const Json *v = json_get(o, key);
    return v && (v->type == J_NUMBER || v->type == J_BOOL) ? v->num : fallback;
}

const char *json_str(const Json *o, const char *key) {
    const Json *v = json_get(o, key);
    return v && v->type == J_STRING ? v->str : NULL;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "%s: %s\n", path, strerror(errno)); return NULL; }
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f);
    unsigned char *buf = xalloc(n + 1);
    rewind(f);
    *size = fread(buf, 1, n, f);
    fclose(f);
    return buf;
}

int vectors_open(Vectors *v, const char *dir) {
    char path[4096];
    size_t n;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char *text = (char *)read_file(path, &n);
    if (!text) return 1;
    const char *p = text;
    v->manifest = parse_value(&p);
    const char *format = json_str(v->manifest, "format");
    if (!format || strcmp(format, "fdaref-golden-vectors/4")) {
        fprintf(stderr, "%s: not fdaref golden vectors format 2\n", path);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, json_str(json_get(v->manifest, "storage"), "file"));
    v->blob = read_file(path, &v->blob_size);
    return v->blob == NULL;
}

int array_read(const Vectors *v, const Json *desc, Array *a) {
    memset(a, 0, sizeof *a);
    if (!json_str(desc, "key")) return 0;                   /* an absent argument */
    const Json *shape = json_get(desc, "shape");
    const char *dtype = json_str(desc, "dtype");
    size_t off = (size_t)json_num(desc, "offset", 0), nbytes = (size_t)json_num(desc, "nbytes", 0);
    a->ndim = (int)shape->count, a->size = 1;
    for (int i = 0; i < a->ndim && i < 8; i++) a->size *= (size_t)(a->shape[i] = (long)json_at(shape, i)->num);
    size_t item = !strcmp(dtype, "float32") ? 4 : 8;
    if (off + nbytes > v->blob_size || nbytes != a->size * item || !strcmp(dtype, "uint64")) {
        fprintf(stderr, "%s: unreadable array (%s, %zu bytes at %zu)\n", json_str(desc, "key"), dtype, nbytes, off);
        return 1;
    }
    a->data = xalloc(a->size * sizeof(double));
    const unsigned char *src = v->blob + off;               /* little-endian host assumed (x86, ARM) */
    for (size_t i = 0; i < a->size; i++) {
        float f; double d; int64_t k;
        if (item == 4) memcpy(&f, src + 4 * i, 4), a->data[i] = f;
        else if (!strcmp(dtype, "int64")) memcpy(&k, src + 8 * i, 8), a->data[i] = (double)k;
        else memcpy(&d, src + 8 * i, 8), a->data[i] = d;
    }
    return 0;
}

void array_free(Array *a) { free(a->data); a->data = NULL; }

int result_write_raw(const char *outdir, const char *key, const void *bytes, size_t nbytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", outdir, key);
    for (char *s = path + 1; *s; s++)                       /* mkdir -p of every parent */
        if (*s == '/') { *s = 0; mkdir(path, 0777); *s = '/'; }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, nbytes, f) != nbytes) { fprintf(stderr, "%s: cannot write\n", path); return 1; }
    return fclose(f) != 0;
}

int result_write(const char *outdir, const char *key, const char *dtype, const double *values, size_t n) {
    if (strcmp(dtype, "float32")) return result_write_raw(outdir, key, values, n * 8);
    float *buf = xalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) buf[i] = (float)values[i];
    int rc = result_write_raw(outdir, key, buf, n * sizeof(float));
    free(buf);
    return rc;
}
