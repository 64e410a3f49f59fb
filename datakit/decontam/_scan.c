/* The decontam scan kernel: one pass over a buffer of canonical (lowered) bytes doing what the numpy path of
 * datakit.decontam.content._scan_chunk does in ~15 passes: the word split, the polynomial word hash, the
 * line-number prefix rule, the 13-gram window hash and the bit-table probe + binary search of the index.
 *
 * Exactly the hashes of datakit.decontam.ngrams (so the shipped index stays valid), all uint64 with wrapping:
 *   word   [s, e):   splitmix64(1 + sum_j b_j * BYTE_BASE^(j - s))
 *   window of n:     splitmix64(n * GOLDEN + sum_k w_{i+k} * WORD_BASE^k)
 * The numpy path gets the same sums from prefix sums times inverse powers; here the word sum is accumulated
 * directly and the window sum rolled with WORD_BASE's inverse (exact: the base is odd, so invertible mod 2^64).
 *
 * Memory: nothing proportional to the buffer but the hits (and, for the test entry point, its outputs); the GIL
 * is released for the pass. Plain C function behind the CPython C API: no numpy headers needed to build it.
 *
 * Two helpers make the pass's input: join_canonical (a chunk's canonical bytes, code point by code point for the
 * texts where normalize.per_code_point allows it, normalize.canonical_bytes for the rest) and plain_flags
 * (normalize.is_plain over an Arrow string array's buffers, 8 bytes at a time).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BYTE_BASE ((uint64_t)0x100000001B3ULL * 2 + 1)
#define WORD_BASE ((uint64_t)0x9E3779B97F4A7C15ULL)
#define GOLDEN ((uint64_t)0x9E3779B97F4A7C15ULL)
#define MAX_LINE_NUMBER_DIGITS 7 /* normalize.MAX_LINE_NUMBER_DIGITS */
#define MAX_INDENT 12            /* normalize.MAX_INDENT */
#define MAX_N 1024               /* window sizes above this are refused (the ring lives on the stack) */

static uint8_t IS_WORD[256], IS_DIGIT[256], AFTER_NUMBER[256], INDENT[256], IN_ID[256];

static void init_tables(void) {
    /* content._word_mask: [0-9a-z_] and every non-ASCII byte (the buffer is lowered: no A-Z) */
    for (int c = 0; c < 256; c++) {
        IS_WORD[c] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
        IS_DIGIT[c] = c >= '0' && c <= '9';
        /* the class of content._INSTANCE_TAIL */
        IN_ID[c] = (c >= 'a' && c <= 'z') || IS_DIGIT[c] || c == '_' || c == '.' || c == '-';
    }
    AFTER_NUMBER[':'] = AFTER_NUMBER['\t'] = AFTER_NUMBER['|'] = 1;
    INDENT[' '] = INDENT['\t'] = INDENT['+'] = INDENT['-'] = INDENT['>'] = 1;
}

static inline uint64_t splitmix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

static uint64_t inverse(uint64_t b) { /* of an odd number mod 2^64 (Newton) */
    uint64_t x = b;
    for (int i = 0; i < 6; i++) x *= 2 - b * x;
    return x;
}

/* normalize.line_number_words for the word [s, e) of b[0:len]: all digits (<= 7), then ':', a tab or '|'
 * (optionally after one space), and only indentation or a '+'/'-'/'>' marker before it on its line. Past either
 * end of the buffer reads as a newline. */
static inline int line_number_word(const uint8_t *b, Py_ssize_t len, Py_ssize_t s, Py_ssize_t e) {
    if (e - s > MAX_LINE_NUMBER_DIGITS) return 0;
    for (Py_ssize_t j = s; j < e; j++)
        if (!IS_DIGIT[b[j]]) return 0;
    uint8_t after = e < len ? b[e] : '\n';
    if (!(AFTER_NUMBER[after] || (after == ' ' && (e + 1 < len ? b[e + 1] : '\n') == '|'))) return 0;
    for (Py_ssize_t k = 1; k <= MAX_INDENT + 1; k++) {
        uint8_t before = s - k >= 0 ? b[s - k] : '\n';
        if (before == '\n') return 1;
        if (!INDENT[before]) return 0;
    }
    return 0;
}

typedef struct {
    char *p;
    size_t len, cap;
} vec_t;

static int reserve(vec_t *v, size_t more) { /* room for `more` bytes after len: 0, or -1 out of memory */
    if (v->cap >= v->len + more) return 0;
    size_t cap = v->cap ? 2 * v->cap : 4096;
    while (cap < v->len + more) cap *= 2;
    char *p = realloc(v->p, cap);
    if (!p) return -1;
    v->p = p;
    v->cap = cap;
    return 0;
}

static int vec_push(vec_t *v, const void *x, size_t size) {
    if (reserve(v, size)) return -1;
    memcpy(v->p + v->len, x, size);
    v->len += size;
    return 0;
}

typedef struct { /* the index's membership structures (content._lookup, FingerprintIndex.buckets) */
    const uint8_t *bits;
    int shift;
    const uint64_t *hashes;
    Py_ssize_t nhashes;
    const uint32_t *buckets; /* hashes[buckets[t] : buckets[t + 1]] are those whose top bits are t */
    int bucket_shift;
} index_t;

/* Position of h in the sorted hashes, or -1 when absent: its bucket's few hashes, scanned. */
static inline Py_ssize_t find(const index_t *ix, uint64_t h) {
    uint64_t t = h >> ix->bucket_shift;
    Py_ssize_t end = ix->buckets[t + 1] < ix->nhashes ? ix->buckets[t + 1] : ix->nhashes; /* (memory-safe) */
    for (Py_ssize_t j = ix->buckets[t]; j < end; j++)
        if (ix->hashes[j] >= h) return ix->hashes[j] == h ? j : -1;
    return -1;
}

#define PIPELINE 16 /* windows between a bit-table prefetch and its probe: hides the cache miss (a power of 2) */

typedef struct {
    uint64_t g;
    int64_t doc, start, end;
} pending_t;

static inline int probe(const index_t *ix, const pending_t *w, vec_t *hits) {
    uint64_t i = w->g >> ix->shift;
    if (!((ix->bits[i >> 3] >> (i & 7)) & 1)) return 0;
    Py_ssize_t pos = find(ix, w->g);
    if (pos < 0) return 0;
    int64_t rec[4] = {w->doc, (int64_t)pos, w->start, w->end};
    return vec_push(hits, rec, sizeof rec);
}

static inline void prefetch(const void *p) {
#if defined(__GNUC__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

/* Documents that may name a SWE-bench instance: content._INSTANCE_TAIL (``__[a-z0-9_.-]+?-[0-9]+``) matches in a
 * document exactly when some "-<digit>" follows, inside one run of [a-z0-9_.-] bytes, a "__" with at least one
 * byte between them. Checked at each word that starts with a digit after '-': back from the '-' to the run's start
 * or to the previous check (whose run it then extends), so each byte is read at most once and most checks stop
 * after a few bytes. The exact rule then runs on those documents only. */
typedef struct {
    Py_ssize_t run_start, seen, first_dunder; /* the run before `seen`; the second '_' of its first "__", or -1 */
    Py_ssize_t doc, last_doc;
} ids_t;

static inline int id_event(const uint8_t *b, Py_ssize_t i, const int64_t *doc_start, Py_ssize_t ndocs, ids_t *st,
                           vec_t *cands) {
    Py_ssize_t q = i - 1, lo = st->seen, first = -1;
    for (; q >= lo; q--) {
        if (!IN_ID[b[q]]) break;
        if (b[q] == '_' && q > 0 && b[q - 1] == '_' && (q > lo || q - 1 >= st->run_start)) first = q;
    }
    if (q >= lo) { /* a new run starts after q */
        st->run_start = q + 1;
        st->first_dunder = first;
    } else if (st->first_dunder < 0) { /* the run goes on from before `seen`: an earlier "__" stays the first */
        st->first_dunder = first;
    }
    st->seen = i;
    if (st->first_dunder < 0 || st->first_dunder > i - 2) return 0;
    while (st->doc + 1 < ndocs && doc_start[st->doc + 1] <= i) st->doc++;
    if (st->doc == st->last_doc) return 0;
    st->last_doc = st->doc;
    int64_t d = st->doc;
    return vec_push(cands, &d, sizeof d);
}

/* The pass. Documents start at doc_start[0..ndocs) (a document start is a line start); windows never cross one.
 * With ix: one (doc, position in the index, first word start, last word end) int64 record per window found in
 * the index, in window order, to hits, and the documents that may name an instance (id_event) to cands.
 * Without: every kept word's (hash, start, end) to words and every window hash to windows (the test entry
 * point). Returns 0, or -1 when out of memory. */
static int scan(const uint8_t *b, Py_ssize_t len, const int64_t *doc_start, Py_ssize_t ndocs, int n,
                const index_t *ix, vec_t *hits, vec_t *cands, vec_t *words, vec_t *windows) {
    ids_t ids = {0, 0, -1, 0, -1};
    uint64_t ring_h[MAX_N];
    int64_t ring_s[MAX_N];
    uint64_t cinv = inverse(WORD_BASE), cpow_last = 1, salt = (uint64_t)n * GOLDEN, sum = 0;
    for (int k = 1; k < n; k++) cpow_last *= WORD_BASE;
    Py_ssize_t doc = 0, i = 0;
    int64_t count = 0; /* kept words of the current document */
    int slot = 0;      /* where the next word goes in the ring (= count % n) */
    pending_t pend[PIPELINE];
    uint64_t npend = 0;
    int64_t next_doc = ndocs > 1 ? doc_start[1] : INT64_MAX; /* where the document after `doc` starts */
    while (i < len) {
        while (i < len && !IS_WORD[b[i]]) i++;
        if (i >= len) break;
        Py_ssize_t s = i;
        uint64_t h = 0, p = 1;
        while (i < len && IS_WORD[b[i]]) {
            h += (uint64_t)b[i] * p;
            p *= BYTE_BASE;
            i++;
        }
        Py_ssize_t e = i;
        if (IS_DIGIT[b[s]]) {
            if (cands && s >= 2 && b[s - 1] == '-' && id_event(b, s - 1, doc_start, ndocs, &ids, cands)) return -1;
            if (line_number_word(b, len, s, e)) continue;
        }
        h = splitmix64(h + 1); /* + 1: no word maps to 0 before mixing */
        while (next_doc <= s) {
            doc++;
            next_doc = doc + 1 < ndocs ? doc_start[doc + 1] : INT64_MAX;
            count = 0;
            slot = 0;
        }
        if (words) {
            int64_t rec[3] = {(int64_t)h, (int64_t)s, (int64_t)e};
            if (vec_push(words, rec, sizeof rec)) return -1;
        }
        if (count >= n) sum = (sum - ring_h[slot]) * cinv + h * cpow_last; /* drop the oldest, add h */
        ring_h[slot] = h;
        ring_s[slot] = s;
        if (++slot == n) slot = 0;
        if (++count < n) continue;
        if (count == n) { /* the document's first window: sum_k w_k C^k */
            sum = 0;
            for (int k = n - 1; k >= 0; k--) sum = sum * WORD_BASE + ring_h[k];
        }
        uint64_t g = splitmix64(sum + salt);
        if (windows && vec_push(windows, &g, sizeof g)) return -1;
        if (ix) { /* the bit table (MBs) is read at random: prefetch now, probe PIPELINE windows later */
            uint64_t t = g >> ix->shift;
            prefetch(ix->bits + (t >> 3)); /* (not the bucket: ~3 % of the windows pass the bit table) */
            pending_t *w = pend + (npend & (PIPELINE - 1));
            if (npend >= PIPELINE && probe(ix, w, hits)) return -1;
            *w = (pending_t){g, (int64_t)doc, ring_s[slot], (int64_t)e}; /* slot: the window's oldest word */
            npend++;
        }
    }
    for (uint64_t k = npend > PIPELINE ? npend - PIPELINE : 0; ix && k < npend; k++) /* the last, in order */
        if (probe(ix, pend + (k & (PIPELINE - 1)), hits)) return -1;
    return 0;
}

static int get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: items of %zd bytes expected, got %zd", what, itemsize, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *vec_bytes(vec_t *v) {
    PyObject *out = PyBytes_FromStringAndSize(v->p ? v->p : "", (Py_ssize_t)v->len);
    free(v->p);
    v->p = NULL;
    return out;
}

/* (bytes of a, bytes of b), both vectors freed; MemoryError when the pass ran out of memory (rc). */
static PyObject *two_bytes(int rc, vec_t *a, vec_t *b) {
    if (rc) {
        free(a->p);
        free(b->p);
        return PyErr_NoMemory();
    }
    PyObject *x = vec_bytes(a), *y = vec_bytes(b);
    if (!x || !y) {
        Py_XDECREF(x);
        Py_XDECREF(y);
        return NULL;
    }
    return Py_BuildValue("(NN)", x, y);
}

PyDoc_STRVAR(scan_hits_doc,
"scan_hits(buf, doc_start, n, bits, shift, hashes, buckets, bucket_shift) -> (hits, candidates)\n\n"
"The windows of n kept words of the canonical bytes buf (documents at the int64 offsets doc_start) whose hash\n"
"is in the sorted uint64 hashes (bits: the index's bit table over the top 64 - shift bits; buckets: uint32,\n"
"where the hashes with each value of the top 64 - bucket_shift bits start, and len(hashes) last): int64\n"
"records (document, position in hashes, byte start of the first word, byte end of the last), in window order;\n"
"candidates: int64, the documents where content._INSTANCE_TAIL may match (all of those where it does).");

static PyObject *scan_hits(PyObject *self, PyObject *args) {
    PyObject *buf_o, *docs_o, *bits_o, *hashes_o, *buckets_o;
    int n, shift, bucket_shift;
    if (!PyArg_ParseTuple(args, "OOiOiOOi", &buf_o, &docs_o, &n, &bits_o, &shift, &hashes_o, &buckets_o,
                          &bucket_shift))
        return NULL;
    if (n < 1 || n > MAX_N) return PyErr_Format(PyExc_ValueError, "n must be in [1, %d]", MAX_N);
    if (shift < 40 || shift > 61 || bucket_shift < 40 || bucket_shift > 63)
        return PyErr_Format(PyExc_ValueError, "shift and bucket_shift must be in [40, 61] and [40, 63]");
    Py_buffer buf, docs, bits, hashes, buckets;
    if (get_buffer(buf_o, &buf, 1, "buf") < 0) return NULL;
    if (get_buffer(docs_o, &docs, 8, "doc_start") < 0) goto fail_buf;
    if (get_buffer(bits_o, &bits, 1, "bits") < 0) goto fail_docs;
    if (get_buffer(hashes_o, &hashes, 8, "hashes") < 0) goto fail_bits;
    if (get_buffer(buckets_o, &buckets, 4, "buckets") < 0) goto fail_hashes;
    if (bits.len != ((Py_ssize_t)1 << (64 - shift)) / 8 ||
        buckets.len != 4 * (((Py_ssize_t)1 << (64 - bucket_shift)) + 1)) {
        PyErr_SetString(PyExc_ValueError, "the bit table or the buckets do not have the size their shift says");
        goto fail_buckets;
    }
    index_t ix = {bits.buf, shift, hashes.buf, hashes.len / 8, buckets.buf, bucket_shift};
    vec_t hits = {0}, cands = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = scan(buf.buf, buf.len, docs.buf, docs.len / 8, n, &ix, &hits, &cands, NULL, NULL);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buckets);
    PyBuffer_Release(&hashes);
    PyBuffer_Release(&bits);
    PyBuffer_Release(&docs);
    PyBuffer_Release(&buf);
    return two_bytes(rc, &hits, &cands);
fail_buckets:
    PyBuffer_Release(&buckets);
fail_hashes:
    PyBuffer_Release(&hashes);
fail_bits:
    PyBuffer_Release(&bits);
fail_docs:
    PyBuffer_Release(&docs);
fail_buf:
    PyBuffer_Release(&buf);
    return NULL;
}

PyDoc_STRVAR(scan_words_doc,
"scan_words(buf, n) -> (words, windows)\n\n"
"The pass over one document (buf: its canonical bytes) without the index: int64 (hash, start, end) records\n"
"of its kept words (line-number prefixes left out) and the uint64 hash of every window of n of them.");

static PyObject *scan_words(PyObject *self, PyObject *args) {
    PyObject *buf_o;
    int n;
    if (!PyArg_ParseTuple(args, "Oi", &buf_o, &n)) return NULL;
    if (n < 1 || n > MAX_N) return PyErr_Format(PyExc_ValueError, "n must be in [1, %d]", MAX_N);
    Py_buffer buf;
    if (get_buffer(buf_o, &buf, 1, "buf") < 0) return NULL;
    int64_t zero = 0;
    vec_t words = {0}, windows = {0};
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = scan(buf.buf, buf.len, &zero, 1, n, NULL, NULL, NULL, &words, &windows);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return two_bytes(rc, &words, &windows);
}

/* ---- canonical bytes of a chunk's texts (normalize.canonical_bytes, joined) ---------------------------------
 * A code point's fate in canonical_bytes, once its text is known to be NFKC already and free of entities and NULs
 * (normalize.per_code_point checks that in Python): FOLD maps it to ASCII or deletes it, else str.lower() maps it to
 * one code point -- or the text takes the Python path (a multi-character lowering, which makes canonical_text skip
 * the whole text's lowering; the final sigma, lowered by context; a lone surrogate). `classify(cp)` (Python) says
 * which, once per code point: -1 the Python path, 0 deleted, else the code point it becomes. The answers are cached
 * in pages of 256 code points, for the process: one classify (normalize.code_point_fate) is assumed. */
#define CP_UNKNOWN INT32_MIN
static int32_t *cp_pages[0x110000 >> 8];

static int32_t cp_fate(uint32_t cp, PyObject *classify) {
    int32_t **page = &cp_pages[cp >> 8];
    if (!*page) {
        *page = malloc(256 * sizeof(int32_t));
        if (!*page) {
            PyErr_NoMemory();
            return CP_UNKNOWN;
        }
        for (int k = 0; k < 256; k++) (*page)[k] = CP_UNKNOWN;
    }
    int32_t v = (*page)[cp & 255];
    if (v != CP_UNKNOWN) return v;
    PyObject *r = PyObject_CallFunction(classify, "I", (unsigned int)cp);
    if (!r) return CP_UNKNOWN;
    long x = PyLong_AsLong(r);
    Py_DECREF(r);
    if (x == -1 && PyErr_Occurred()) return CP_UNKNOWN;
    if (x < -1 || x > 0x10FFFF) {
        PyErr_Format(PyExc_ValueError, "classify(%u) returned %ld: -1, 0 or a code point expected", cp, x);
        return CP_UNKNOWN;
    }
    (*page)[cp & 255] = (int32_t)x;
    return (int32_t)x;
}

static int put_utf8(vec_t *v, uint32_t cp) {
    uint8_t u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (uint8_t)cp; k = 1; }
    else if (cp < 0x800) { u[0] = 0xC0 | (cp >> 6); u[1] = 0x80 | (cp & 63); k = 2; }
    else if (cp < 0x10000) { u[0] = 0xE0 | (cp >> 12); u[1] = 0x80 | ((cp >> 6) & 63); u[2] = 0x80 | (cp & 63); k = 3; }
    else {
        u[0] = 0xF0 | (cp >> 18); u[1] = 0x80 | ((cp >> 12) & 63); u[2] = 0x80 | ((cp >> 6) & 63);
        u[3] = 0x80 | (cp & 63); k = 4;
    }
    return vec_push(v, u, k);
}

/* ASCII bytes onto `out` (room for them reserved): a copy that lowers (vectorised), then the escape rule in place
 * from the first "\\_" on (it becomes "_") */
static void put_ascii(vec_t *out, const uint8_t *src, Py_ssize_t len) {
    uint8_t *dst = (uint8_t *)out->p + out->len;
    for (Py_ssize_t j = 0; j < len; j++) dst[j] = src[j] + ((uint8_t)(src[j] - 'A') < 26) * 32;
    Py_ssize_t kept = len;
    const uint8_t *bs = memchr(dst, '\\', (size_t)len);
    while (bs && bs + 1 < dst + len && bs[1] != '_') bs = memchr(bs + 1, '\\', (size_t)(dst + len - bs - 1));
    if (bs && bs + 1 < dst + len) {
        Py_ssize_t w = bs - dst;
        for (Py_ssize_t r = w; r < len; r++) {
            if (dst[r] == '\\' && r + 1 < len && dst[r + 1] == '_') continue;
            dst[w++] = dst[r];
        }
        kept = w;
    }
    out->len += (size_t)kept;
}

/* One str part onto `out`: 1 done, 0 the Python path (out left as it was), -1 an error. The Markdown escape rule
 * (bytes.replace(b"\\_", b"_") before the NULs are deleted) is applied as the bytes are made: a deleted character
 * between a backslash and an underscore keeps the backslash, as there. */
static int put_str(vec_t *out, PyObject *x, PyObject *classify) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(x), start = (Py_ssize_t)out->len;
    int kind = PyUnicode_KIND(x);
    const void *data = PyUnicode_DATA(x);
    uint32_t prev = 0; /* the previous character after folding and lowering, a deleted one included (as 0) */
    if (reserve(out, (size_t)len)) { /* room for the ASCII case; vec_push grows it past that */
        PyErr_NoMemory();
        return -1;
    }
    if (kind == PyUnicode_1BYTE_KIND && PyUnicode_IS_ASCII(x)) { /* most texts */
        put_ascii(out, data, len);
        return 1;
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        uint32_t c = PyUnicode_READ(kind, data, i);
        if (c >= 0x80) {
            int32_t f = cp_fate(c, classify);
            if (f == CP_UNKNOWN) return -1;
            if (f < 0) {
                out->len = (size_t)start;
                return 0;
            }
            c = (uint32_t)f;
            if (c == 0) {
                prev = 0;
                continue;
            }
            if (c >= 0x80) {
                if (put_utf8(out, c)) goto nomem;
                prev = c;
                continue;
            }
        }
        c += ((uint32_t)(c - 'A') < 26) * 32;
        if (c == '_' && prev == '\\') { /* "\\_" -> "_": the backslash becomes the underscore */
            out->p[out->len - 1] = '_';
        } else {
            uint8_t b = (uint8_t)c;
            if (out->len < out->cap) out->p[out->len++] = (char)b;
            else if (vec_push(out, &b, 1)) goto nomem;
        }
        prev = c;
    }
    return 1;
nomem:
    PyErr_NoMemory();
    return -1;
}

/* join_canonical's `rows`: an Arrow string array's offsets and data, and which rows the None parts are */
typedef struct {
    int on, wide;
    Py_buffer offs, data_buf, ids_buf;
    const uint8_t *bytes;
    const int64_t *ids;
    Py_ssize_t nrows, noffs;
} arrow_rows_t;

static inline int64_t arrow_offset(const arrow_rows_t *a, int64_t i) {
    return a->wide ? ((const int64_t *)a->offs.buf)[i] : ((const int32_t *)a->offs.buf)[i];
}

static void arrow_rows_release(arrow_rows_t *a) {
    if (!a->on) return;
    PyBuffer_Release(&a->ids_buf);
    PyBuffer_Release(&a->data_buf);
    PyBuffer_Release(&a->offs);
    a->on = 0;
}

static int arrow_rows_get(PyObject *o, arrow_rows_t *a) {
    memset(a, 0, sizeof *a);
    if (o == Py_None) return 0;
    PyObject *offs_o, *data_o, *ids_o;
    int wide;
    if (!PyArg_ParseTuple(o, "OOpO", &offs_o, &data_o, &wide, &ids_o)) return -1;
    if (PyObject_GetBuffer(offs_o, &a->offs, PyBUF_SIMPLE) < 0) return -1;
    if (PyObject_GetBuffer(data_o, &a->data_buf, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&a->offs);
        return -1;
    }
    if (get_buffer(ids_o, &a->ids_buf, 8, "row_ids") < 0) {
        PyBuffer_Release(&a->data_buf);
        PyBuffer_Release(&a->offs);
        return -1;
    }
    a->on = 1;
    a->wide = wide;
    a->bytes = a->data_buf.buf;
    a->ids = a->ids_buf.buf;
    a->nrows = a->ids_buf.len / 8;
    a->noffs = a->offs.len / (wide ? 8 : 4);
    return 0;
}

/* the length of part k's row, its bounds checked (-1 and an error when they are not inside the buffers) */
static Py_ssize_t arrow_row_len(const arrow_rows_t *a, Py_ssize_t k) {
    int64_t r = a->ids[k];
    if (r < 0 || r + 1 >= a->noffs) {
        PyErr_Format(PyExc_ValueError, "join_canonical: row %lld is not in the array", (long long)r);
        return -1;
    }
    int64_t lo = arrow_offset(a, r), hi = arrow_offset(a, r + 1);
    if (lo < 0 || hi < lo || hi > a->data_buf.len) {
        PyErr_Format(PyExc_ValueError, "join_canonical: row %lld is outside the data buffer", (long long)r);
        return -1;
    }
    return (Py_ssize_t)(hi - lo);
}

PyDoc_STRVAR(join_canonical_doc,
"join_canonical(parts, classify=None, fallback=None, originals=None, rows=None) -> (buf, doc_start)\n\n"
"content._canonical_buffer's layout in one pass: b'\\n' + the canonical bytes of every part, each followed by\n"
"b'\\n'; doc_start: int64 offsets (after the lead) where each part starts, and the end. A bytes part is canonical\n"
"bytes already (it is only ASCII-lowered); a str part is an NFKC text without entities or NULs: ASCII is lowered,\n"
"'\\\\_' becomes '_', other code points as classify(cp) says (see cp_fate), and a text that must take the Python\n"
"path is replaced by fallback(text) (its canonical bytes; fallback(originals[k]) when originals is given: the\n"
"texts the parts were made from). Without classify, a non-ASCII str part is an error. rows = (offsets, data, wide,\n"
"row_ids): a None part is row row_ids[k] of that Arrow string array (int32 offsets, int64 when wide), a plain\n"
"ASCII text (content.plain_mask) copied from its buffer, no Python str made.");

static PyObject *join_canonical(PyObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"parts", "classify", "fallback", "originals", "rows", NULL};
    PyObject *arg, *classify = Py_None, *fallback = Py_None, *originals = Py_None, *rows_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOO", names, &arg, &classify, &fallback, &originals, &rows_o))
        return NULL;
    arrow_rows_t ar;
    if (arrow_rows_get(rows_o, &ar) < 0) return NULL;
    PyObject *seq = PySequence_Fast(arg, "join_canonical: a sequence of str or bytes expected");
    if (!seq) {
        arrow_rows_release(&ar);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), total = 1;
    if (originals != Py_None && (!PyList_Check(originals) || PyList_GET_SIZE(originals) != n)) {
        PyErr_Format(PyExc_TypeError, "join_canonical: originals must be a list as long as parts");
        goto fail_early;
    }
    if (ar.on && ar.nrows != n) {
        PyErr_Format(PyExc_ValueError, "join_canonical: rows' row_ids must be as long as parts");
        goto fail_early;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *x = items[k];
        if (PyUnicode_Check(x)) {
            if (!PyUnicode_IS_ASCII(x) && (classify == Py_None || fallback == Py_None)) {
                PyErr_Format(PyExc_TypeError, "join_canonical: part %zd is not ASCII (give classify and fallback)", k);
                goto fail_early;
            }
            total += PyUnicode_GET_LENGTH(x) + 1;
        } else if (PyBytes_Check(x)) {
            total += PyBytes_GET_SIZE(x) + 1;
        } else if (x == Py_None && ar.on) {
            Py_ssize_t len = arrow_row_len(&ar, k);
            if (len < 0) goto fail_early;
            total += len + 1;
        } else {
            PyErr_Format(PyExc_TypeError, "join_canonical: part %zd is neither str nor bytes%s", k,
                         ar.on ? " nor None" : "");
            goto fail_early;
        }
    }
    vec_t out = {0};
    PyObject *docs = PyBytes_FromStringAndSize(NULL, (n + 1) * 8);
    out.p = malloc((size_t)total);
    if (!docs || !out.p) {
        if (docs) PyErr_NoMemory();
        Py_XDECREF(docs);
        free(out.p);
        goto fail_early;
    }
    out.cap = (size_t)total;
    int64_t *starts = (int64_t *)PyBytes_AS_STRING(docs);
    out.p[out.len++] = '\n';
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *x = items[k], *alt = NULL;
        starts[k] = (int64_t)out.len - 1;
        if (x == Py_None) { /* a plain row of the Arrow array (its bounds checked above) */
            int64_t r = ar.ids[k], lo = arrow_offset(&ar, r), len = arrow_offset(&ar, r + 1) - lo;
            if (reserve(&out, (size_t)len)) { /* (the parts before may have grown past their estimate) */
                PyErr_NoMemory();
                goto fail;
            }
            put_ascii(&out, ar.bytes + lo, (Py_ssize_t)len);
            uint8_t nl = '\n';
            if (vec_push(&out, &nl, 1)) {
                PyErr_NoMemory();
                goto fail;
            }
            continue;
        }
        int done = PyUnicode_Check(x) ? put_str(&out, x, classify) : 2;
        if (done < 0) goto fail;
        if (done == 0) { /* the Python path's canonical bytes */
            alt = PyObject_CallOneArg(fallback, originals == Py_None ? x : PyList_GET_ITEM(originals, k));
            if (!alt) goto fail;
            if (!PyBytes_Check(alt)) {
                Py_DECREF(alt);
                PyErr_SetString(PyExc_TypeError, "join_canonical: fallback must return bytes");
                goto fail;
            }
            x = alt;
        }
        if (PyBytes_Check(x)) {
            Py_ssize_t len = PyBytes_GET_SIZE(x), at = (Py_ssize_t)out.len;
            const uint8_t *src = (const uint8_t *)PyBytes_AS_STRING(x);
            if (vec_push(&out, src, (size_t)len)) {
                Py_XDECREF(alt);
                PyErr_NoMemory();
                goto fail;
            }
            uint8_t *dst = (uint8_t *)out.p + at;
            for (Py_ssize_t j = 0; j < len; j++) dst[j] = src[j] + ((uint8_t)(src[j] - 'A') < 26) * 32;
        }
        Py_XDECREF(alt);
        uint8_t nl = '\n';
        if (vec_push(&out, &nl, 1)) {
            PyErr_NoMemory();
            goto fail;
        }
    }
    starts[n] = (int64_t)out.len - 1;
    Py_DECREF(seq);
    arrow_rows_release(&ar);
    PyObject *buf = PyBytes_FromStringAndSize(out.p, (Py_ssize_t)out.len);
    free(out.p);
    if (!buf) {
        Py_DECREF(docs);
        return NULL;
    }
    return Py_BuildValue("(NN)", buf, docs);
fail:
    free(out.p);
    Py_DECREF(docs);
fail_early:
    Py_DECREF(seq);
    arrow_rows_release(&ar);
    return NULL;
}

/* ---- normalize.is_plain of every text of an Arrow string array, from its buffers ---------------------------- */

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static inline int is_alpha(uint8_t c) { return (uint8_t)((c | 32) - 'a') < 26; }
static inline int is_hex(uint8_t c) { return is_digit(c) || (uint8_t)((c | 32) - 'a') < 6; }

/* normalize._ENTITY at s[i] == '&' (s[i:end]): &#<1-7 digits>; or &#x<1-6 hex digits>; or &<letter><1-31 letters or
 * digits>; -- each run maximal, as the regex's bounded repeats then need the ';' right after it */
static int entity_at(const uint8_t *s, Py_ssize_t i, Py_ssize_t end) {
    Py_ssize_t j = i + 1, k;
    if (j >= end) return 0;
    if (s[j] == '#') {
        j++;
        if (j < end && (s[j] == 'x' || s[j] == 'X')) {
            j++;
            for (k = j; k < end && k - j < 6 && is_hex(s[k]); k++) {}
        } else {
            for (k = j; k < end && k - j < 7 && is_digit(s[k]); k++) {}
        }
        return k > j && k < end && s[k] == ';';
    }
    if (!is_alpha(s[j])) return 0;
    j++;
    for (k = j; k < end && k - j < 31 && (is_alpha(s[k]) || is_digit(s[k])); k++) {}
    return k > j && k < end && s[k] == ';';
}

#define ONES ((uint64_t)0x0101010101010101ULL)
#define HIGHS ((uint64_t)0x8080808080808080ULL)
/* a byte of v is zero / equal to c (the classic bit trick: exact as a "some byte" test) */
static inline uint64_t zero_byte(uint64_t v) { return (v - ONES) & ~v & HIGHS; }
static inline uint64_t byte_is(uint64_t v, uint8_t c) { return zero_byte(v ^ (ONES * c)); }

/* normalize.is_plain of d[lo:hi]: 8 bytes at a time; a word holding a NUL, '\\' or '&' is looked at byte by byte */
static int plain_text(const uint8_t *d, int64_t lo, int64_t hi) {
    int64_t j = lo;
    uint64_t high = 0;
    for (; j + 8 <= hi; j += 8) {
        uint64_t v;
        memcpy(&v, d + j, 8);
        high |= v;
        if (!(zero_byte(v) | byte_is(v, '\\') | byte_is(v, '&'))) continue;
        for (int64_t k = j; k < j + 8; k++) {
            uint8_t c = d[k];
            if (c == 0 || (c == '\\' && k + 1 < hi && d[k + 1] == '_') || (c == '&' && entity_at(d, k, hi))) return 0;
        }
    }
    for (; j < hi; j++) {
        uint8_t c = d[j];
        high |= c;
        if (c == 0 || (c == '\\' && j + 1 < hi && d[j + 1] == '_') || (c == '&' && entity_at(d, j, hi))) return 0;
    }
    return !(high & HIGHS);
}

PyDoc_STRVAR(plain_flags_doc,
"plain_flags(offsets, data, validity, offset, length, wide) -> bytes\n\n"
"content.plain_mask from an Arrow string array's buffers (offsets: int32, or int64 when wide; validity: the null\n"
"bitmap or None; offset, length: the array's): per text 1 when it is ASCII without NUL, '\\\\_' or an HTML entity\n"
"(normalize.is_plain), else 0 (a null too).");

static PyObject *plain_flags(PyObject *self, PyObject *args) {
    PyObject *off_o, *data_o, *valid_o;
    Py_ssize_t offset, length;
    int wide;
    if (!PyArg_ParseTuple(args, "OOOnnp", &off_o, &data_o, &valid_o, &offset, &length, &wide)) return NULL;
    if (offset < 0 || length < 0) return PyErr_Format(PyExc_ValueError, "offset and length must be >= 0");
    Py_buffer offs, data, valid = {0};
    int has_valid = valid_o != Py_None;
    if (PyObject_GetBuffer(off_o, &offs, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(data_o, &data, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&offs);
        return NULL;
    }
    if (has_valid && PyObject_GetBuffer(valid_o, &valid, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&offs);
        return NULL;
    }
    PyObject *flags = NULL;
    Py_ssize_t w = wide ? 8 : 4;
    if (offs.len < (offset + length + 1) * w || (has_valid && valid.len * 8 < offset + length)) {
        PyErr_SetString(PyExc_ValueError, "plain_flags: the buffers are shorter than offset + length says");
        goto done;
    }
    flags = PyBytes_FromStringAndSize(NULL, length);
    if (!flags) goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(flags);
    const uint8_t *d = data.buf, *vb = valid.buf;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < length; r++) {
        Py_ssize_t i = offset + r;
        int64_t lo = wide ? ((const int64_t *)offs.buf)[i] : ((const int32_t *)offs.buf)[i];
        int64_t hi = wide ? ((const int64_t *)offs.buf)[i + 1] : ((const int32_t *)offs.buf)[i + 1];
        if (lo < 0 || hi < lo || hi > data.len) {
            bad = 1;
            break;
        }
        if (has_valid && !((vb[i >> 3] >> (i & 7)) & 1)) {
            out[r] = 0;
            continue;
        }
        out[r] = plain_text(d, lo, hi);
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        Py_CLEAR(flags);
        PyErr_SetString(PyExc_ValueError, "plain_flags: an offset is outside the data buffer");
    }
done:
    if (has_valid) PyBuffer_Release(&valid);
    PyBuffer_Release(&data);
    PyBuffer_Release(&offs);
    return flags;
}

static PyMethodDef methods[] = {
    {"scan_hits", scan_hits, METH_VARARGS, scan_hits_doc},
    {"scan_words", scan_words, METH_VARARGS, scan_words_doc},
    {"join_canonical", (PyCFunction)(void (*)(void))join_canonical, METH_VARARGS | METH_KEYWORDS, join_canonical_doc},
    {"plain_flags", plain_flags, METH_VARARGS, plain_flags_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_scan", "The decontam scan kernel (see _scan.c).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__scan(void) {
    init_tables();
    return PyModule_Create(&module);
}
