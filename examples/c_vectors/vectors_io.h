/* Reading fdaref golden vectors (manifest.json + vectors.bin, see conformance/VECTORS.md) and writing
 * results (RESULTS/<key>.bin). C11 + libc only. */
#ifndef VECTORS_IO_H
#define VECTORS_IO_H
#include <stddef.h>

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } JsonType;

typedef struct Json {             /* one JSON value; arrays and objects keep their children in a list */
    JsonType type;
    double num;                   /* J_NUMBER, J_BOOL (0 or 1) */
    char *str;                    /* J_STRING */
    char *key;                    /* the member name when the parent is an object */
    struct Json *child, *next;
    size_t count;                 /* number of children */
} Json;

const Json *json_get(const Json *object, const char *key);  /* NULL when absent */
const Json *json_at(const Json *array, size_t i);
double json_num(const Json *object, const char *key, double fallback);  /* null / absent: fallback */
const char *json_str(const Json *object, const char *key);              /* NULL unless a string */

typedef struct {
    Json *manifest;
    unsigned char *blob;
    size_t blob_size;
} Vectors;

typedef struct {                  /* an input array converted to double, C-order */
    double *data;                 /* NULL for an absent argument (key null) */
    size_t size;
    int ndim;
    long shape[8];
} Array;

int vectors_open(Vectors *v, const char *dir);                 /* 0 on success; prints the problem */
int array_read(const Vectors *v, const Json *desc, Array *out);  /* 0 on success */
void array_free(Array *a);
/* Write n values as `dtype` ("float32" or "float64") to outdir/<key>.bin; or raw bytes. 0 on success. */
int result_write(const char *outdir, const char *key, const char *dtype, const double *values, size_t n);
int result_write_raw(const char *outdir, const char *key, const void *bytes, size_t nbytes);

#endif
