/* A C11 implementation of four fdaref ops, checked with fdaref's golden vectors:
 *     c_vectors VECTORS_DIR RESULTS_DIR      then     fdaref vectors check VECTORS_DIR RESULTS_DIR --ops ...
 * sign (SPEC 1), surrogate with the six estimators (SPEC 2), pack_signs (SPEC 9) and quantize_forward
 * (Eq. 13-14), and a training loop's schedules (SPEC 6). Cases of other ops are skipped. Everything is computed in double and written in the
 * output's result_dtype; a double argument omega*x keeps its phase, so fda needs no extra range reduction
 * here (a float32 closed form would: reduce omega*x modulo pi first). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vectors_io.h"

static const double PI = 3.14159265358979323846;

static double sign_of(double x, double zero) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x == 0 ? zero : x; }

/* d sign / dx under `estimator` (SPEC 2); params holds n, omega, clip (fda) or beta; `f32`: x is a float32
   value (the clip is then compared as a float32, SEMANTICS 10: x == (float)clip keeps its gradient). */
static double surrogate_of(double x, const char *estimator, const Json *params, int f32) {
    double ax = fabs(x);
    if (!strcmp(estimator, "ste")) return 1.0;
    if (!strcmp(estimator, "clipped_ste")) return ax <= 1.0 ? 1.0 : 0.0;
    if (!strcmp(estimator, "approx_sign")) return ax <= 1.0 ? 2.0 - 2.0 * ax : 0.0;
    if (!strcmp(estimator, "sign_swish")) {
        double b = json_num(params, "beta", 5.0), bx = b * x;
        return b * (2.0 - bx * tanh(bx / 2.0)) / (1.0 + cosh(bx));
    }
    if (!strcmp(estimator, "tanh")) {
        double b = json_num(params, "beta", 2.0), t = tanh(b * x);
        return b * (1.0 - t * t);
    }
    if (!strcmp(estimator, "fda")) {  /* Eq. 10: n + 1 cosine terms, i = 0 .. n inclusive */
        int n = (int)json_num(params, "n", 9);
        double omega = json_num(params, "omega", 0.1), clip = json_num(params, "clip", -1.0), sum = 0.0;
        if (isnan(x)) return x;
        if (f32) clip = (float)clip;
        if (clip >= 0.0 && ax > clip) return 0.0;
        for (int i = 0; i <= n; i++) sum += cos((2 * i + 1) * omega * x);
        return 4.0 * omega / PI * sum;
    }
    fprintf(stderr, "unknown estimator %s\n", estimator);
    exit(2);
}

/* e(t) of Eq. 13 for every row of t, added to z with weight alpha (SPEC 3 rows). */
static void add_noise(double *z, const Array *t, const Array *w1, const Array *w2, const char *layout,
                      const char *eta, double a, double alpha) {
    int act4 = !strcmp(layout, "activation") && t->ndim == 4;
    size_t d = !strcmp(layout, "weight") ? t->size / (size_t)t->shape[0] : (size_t)t->shape[1];
    size_t rows = t->size / d, m = (size_t)w1->shape[1], hw = act4 ? (size_t)(t->shape[2] * t->shape[3]) : 1;
    double *row = malloc(d * sizeof *row), *h = malloc(m * sizeof *h);
    size_t *where = malloc(d * sizeof *where);
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < d; j++) {  /* activation (B, C, H, W): row (b, pixel), entry c */
            where[j] = act4 ? (r / hw * d + j) * hw + r % hw : r * d + j;
            row[j] = t->data[where[j]];
        }
        for (size_t k = 0; k < m; k++) {
            double s = 0.0;
            for (size_t j = 0; j < d; j++) s += row[j] * w1->data[j * m + k];
            h[k] = s > 0.0 || isnan(s) ? s : 0.0;   /* relu(NaN) = NaN (SEMANTICS 10): the whole row is NaN */
        }
        for (size_t j = 0; j < d; j++) {
            double e = !strcmp(eta, "sin") ? a * sin(row[j]) : !strcmp(eta, "linear") ? a * row[j] : 0.0;
            for (size_t k = 0; k < m; k++) e += h[k] * w2->data[k * d + j];
            z[where[j]] += alpha * e;
        }
    }
    free(row), free(h), free(where);
}

/* pack_signs: the other axes in order, then ceil(C / 64) words; bit c % 64 of word c / 64 set for -1. */
static uint64_t *pack(const Array *x, int axis, double zero, size_t *nwords) {
    size_t outer = 1, inner = 1, c = (size_t)x->shape[axis], nw = (c + 63) / 64;
    for (int i = 0; i < axis; i++) outer *= (size_t)x->shape[i];
    for (int i = axis + 1; i < x->ndim; i++) inner *= (size_t)x->shape[i];
    uint64_t *w = calloc(outer * inner * nw + 1, sizeof *w);
    for (size_t o = 0; o < outer; o++)
        for (size_t k = 0; k < c; k++)
            for (size_t i = 0; i < inner; i++) {
                double v = x->data[(o * c + k) * inner + i];
                if (v < 0 || (v == 0 && zero < 0)) w[(o * inner + i) * nw + k / 64] |= (uint64_t)1 << (k % 64);
            }
    *nwords = outer * inner * nw;
    return w;
}

static int run_case(const Vectors *v, const Json *c, const char *outdir) {
    const char *op = json_str(c, "op");
    const Json *kw = json_get(c, "kwargs"), *ins = json_get(c, "inputs"), *out = json_at(json_get(c, "outputs"), 0);
    Array in[3] = {{0}};
    int rc = 0;
    for (size_t i = 0; i < ins->count && i < 3; i++) rc |= array_read(v, json_at(ins, i), &in[i]);
    if (rc) return rc;
    double *y = malloc((in[0].size + 1) * sizeof *y);
    if (!strcmp(op, "pack_signs")) {
        int axis = (int)json_num(kw, "axis", 0);
        size_t n;
        uint64_t *w = pack(&in[0], axis < 0 ? axis + in[0].ndim : axis, json_num(kw, "zero", -1), &n);
        rc = result_write_raw(outdir, json_str(out, "key"), w, n * sizeof *w);
        free(w);
    } else {
        int f32 = !strcmp(json_str(out, "result_dtype"), "float32");
        for (size_t i = 0; i < in[0].size; i++) {
            double x = in[0].data[i];
            y[i] = !strcmp(op, "surrogate") ? surrogate_of(x, json_str(kw, "estimator"), json_get(kw, "params"), f32)
                                            : sign_of(x, json_num(kw, "zero", -1));
        }
        double alpha = json_num(kw, "alpha", 0);
        if (!strcmp(op, "quantize_forward") && json_num(kw, "training", 0) && in[1].data && alpha != 0)
            add_noise(y, &in[0], &in[1], &in[2], json_str(kw, "layout"), json_str(kw, "eta_kind"),
                      json_num(kw, "a", 0.1), alpha);
        rc = result_write(outdir, json_str(out, "key"), json_str(out, "result_dtype"), y, in[0].size);
    }
    free(y);
    for (int i = 0; i < 3; i++) array_free(&in[i]);
    return rc;
}

/* SPEC 6 per preset: n_e (paper reaches n_p = 18 at the last epoch; bibench: 9 + floor(9 e / E); release
   has no n) and alpha_e, the cosine from alpha_0 = 0.1 to 0 (release has no noise module: 0). */
static long n_of(const char *preset, long e, long E) {
    if (!strcmp(preset, "paper")) return E == 1 ? 18 : 9 + 9 * e / (E - 1);
    return 9 + 9 * e / E;
}

static double alpha_of(const char *preset, long e, long E) {
    return strcmp(preset, "release") ? 0.05 * (1.0 + cos(PI * (double)(e + 1) / (double)E)) : 0.0;
}

/* RESULTS/schedules/<preset>/<E>/{n,alpha}.bin (int64, float64) for each run length E the manifest lists. */
static int write_schedules(const Json *schedules, const char *outdir) {
    int rc = 0;
    for (const Json *p = schedules ? schedules->child : NULL; p; p = p->next) {
        int has_n = !strcmp(p->key, "paper") || !strcmp(p->key, "bibench");
        if (!has_n && strcmp(p->key, "release")) continue;           /* a preset this port does not know */
        for (const Json *run = p->child; run; run = run->next) {
            long E = strtol(run->key, NULL, 10);
            int64_t *n = malloc(E * sizeof *n);
            double *alpha = malloc(E * sizeof *alpha);
            for (long e = 0; e < E; e++) n[e] = n_of(p->key, e, E), alpha[e] = alpha_of(p->key, e, E);
            char key[256];
            snprintf(key, sizeof key, "schedules/%s/%ld/alpha", p->key, E);
            rc |= result_write(outdir, key, "float64", alpha, (size_t)E);
            snprintf(key, sizeof key, "schedules/%s/%ld/n", p->key, E);
            if (has_n) rc |= result_write_raw(outdir, key, n, (size_t)E * sizeof *n);
            free(n);
            free(alpha);
        }
    }
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s VECTORS_DIR RESULTS_DIR\n", argv[0]);
        return 2;
    }
    Vectors v;
    if (vectors_open(&v, argv[1])) return 2;
    const char *ops[] = {"sign", "surrogate", "pack_signs", "quantize_forward"};
    const Json *cases = json_get(v.manifest, "cases");
    int written = 0, failed = 0;
    for (size_t i = 0; i < cases->count; i++) {
        const Json *c = json_at(cases, i);
        for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
            if (!strcmp(json_str(c, "op"), ops[k])) {
                int rc = run_case(&v, c, argv[2]);
                failed += rc != 0, written += rc == 0;
            }
    }
    int schedules_failed = write_schedules(json_get(v.manifest, "schedules"), argv[2]);
    printf("c_vectors: %d cases written, %d failed; schedules %s\n", written, failed,
           schedules_failed ? "not written" : "written");
    return failed != 0 || schedules_failed;
}
