/* The tokens stage's text check, in one pass over each text's bytes: is it exactly the UTF-8 of a text that NFC
 * leaves as it is? Such a text goes to the engine as its bytes: no str decoded, no NFC pass, no UTF-8 copy made
 * again by the engine (~5.7 ns per byte of non-ASCII text in Python; BENCHMARKS.md, "tokens: tenth pass").
 *
 * stable(texts, table) -> bytes: one byte per item, 1 where the item is a bytes object that is
 *   - non-empty, without a NUL byte (the stage quarantines those, as `empty` / `nul_byte`),
 *   - valid UTF-8 as Python's strict decoder takes it (RFC 3629: no overlong form, no surrogate U+D800..DFFF,
 *     nothing above U+10FFFF),
 *   - made of code points below U+20000 whose bit is set in `table` (a bitmap, bit cp & 7 of byte cp >> 3): the
 *     NFC-stable ones of datakit.tokens.utf8 (quick check Yes and combining class 0, so NFC keeps the text);
 * 0 for anything else, which the caller checks and normalises in Python as before. 8 bytes at a time while they
 * are ASCII without NUL. The GIL is held (the items are Python objects); each text is scanned once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TABLE_CODE_POINTS 0x20000
#define HIGH_BITS 0x8080808080808080ULL
#define LOW_BITS 0x0101010101010101ULL

static int stable_text(const unsigned char *s, Py_ssize_t n, const unsigned char *table) {
    Py_ssize_t i = 0;
    if (n == 0)
        return 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            /* no high bit and no zero byte among the 8: all ASCII, no NUL */
            if (!(w & HIGH_BITS) && !((w - LOW_BITS) & ~w & HIGH_BITS)) {
                i += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return 0;
            i++;
            continue;
        }
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n)
                return 0;
            unsigned char c1 = s[i + 1], c2 = s[i + 2];
            unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
            if (c1 < lo || c1 > hi || (c2 & 0xC0) != 0x80)
                return 0;
            cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(c1 & 0x3F) << 6) | (c2 & 0x3F);
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n)
                return 0;
            unsigned char c1 = s[i + 1], c2 = s[i + 2], c3 = s[i + 3];
            unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
            if (c1 < lo || c1 > hi || (c2 & 0xC0) != 0x80 || (c3 & 0xC0) != 0x80)
                return 0;
            cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(c1 & 0x3F) << 12) | ((uint32_t)(c2 & 0x3F) << 6) |
                 (c3 & 0x3F);
            i += 4;
        } else {
            return 0; /* a continuation byte first, an overlong lead (C0, C1) or F5..FF */
        }
        if (cp >= TABLE_CODE_POINTS || !(table[cp >> 3] & (1u << (cp & 7))))
            return 0;
    }
    return 1;
}

static PyObject *stable(PyObject *self, PyObject *args) {
    PyObject *texts;
    Py_buffer table;
    if (!PyArg_ParseTuple(args, "Oy*", &texts, &table))
        return NULL;
    if (table.len != TABLE_CODE_POINTS / 8) {
        PyBuffer_Release(&table);
        return PyErr_Format(PyExc_ValueError, "table: %d bytes expected, got %zd", TABLE_CODE_POINTS / 8, table.len);
    }
    PyObject *seq = PySequence_Fast(texts, "texts must be a sequence");
    if (seq == NULL) {
        PyBuffer_Release(&table);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        char *flags = PyBytes_AS_STRING(out);
        PyObject **items = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t k = 0; k < n; k++) {
            PyObject *t = items[k];
            flags[k] = PyBytes_CheckExact(t) &&
                       stable_text((const unsigned char *)PyBytes_AS_STRING(t), PyBytes_GET_SIZE(t), table.buf);
        }
    }
    Py_DECREF(seq);
    PyBuffer_Release(&table);
    return out;
}

static PyMethodDef METHODS[] = {
    {"stable", stable, METH_VARARGS,
     "stable(texts, table) -> bytes: 1 per item that is non-empty UTF-8 without NUL, every code point in table"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_utf8", NULL, -1, METHODS};

PyMODINIT_FUNC PyInit__utf8(void) { return PyModule_Create(&MODULE); }
