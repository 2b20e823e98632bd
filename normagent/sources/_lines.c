/* normagent.sources._lines: count the lines of a block (its b"\n" bytes) with memchr.
 *
 * Why compiled: every log collector's driver counts each block's lines (the lines_total metric,
 * "ignored" = lines - parsed - unparsed). bytes.count(b"\n") walks a byte at a time (about 3 GB/s
 * here), as long as a whole grep -c over the same file; glibc's memchr is vectorised (about
 * 14 GB/s on 240-byte lines). normagent/sources/lines.py falls back to bytes.count where this module was
 * not built, with the same answer (tests/unit/test_lines.py).
 *
 * count_lines_ascii counts them and tells whether every byte is ASCII in one pass, 64 bytes at a
 * time with SSE2 (every x86-64 has it; elsewhere a byte at a time): the driver checks each block
 * for UTF-8 (the invalid_utf8_lines metric), and an ASCII block needs no more. On auth.log's
 * ~105-byte lines memchr and bytes.isascii took 89 us a 1 MiB block, this 22 us.
 *
 * Memory safety: reads only inside the buffer it was given, which the buffer protocol keeps alive
 * and unmoved until PyBuffer_Release; no allocation but the result.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static PyObject *
count_lines(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *p = view.buf;
    const char *end = p + view.len;
    Py_ssize_t lines = 0;
    while (p < end) {
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        if (newline == NULL)
            break;
        lines++;
        p = newline + 1;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(lines);
}

static PyObject *
count_lines_ascii(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = view.buf;
    Py_ssize_t n = view.len, i = 0, lines = 0;
    unsigned high = 0;
#if defined(__SSE2__)
    const __m128i newline = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
    __m128i any = zero;
    while (n - i >= 64) {
        /* Newlines counted per byte lane (a match is -1: subtracted, it adds one), at most 4 a
         * lane per step: summed into `lines` every 63 steps, before a lane could overflow. No
         * popcount: baseline x86-64 has no instruction for it (a libgcc call per step). */
        __m128i counts = zero;
        for (int step = 0; step < 63 && n - i >= 64; step++, i += 64) { /* i + 64 <= n */
            __m128i a = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(p + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(p + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(p + i + 48));
            any = _mm_or_si128(any, _mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d)));
            counts = _mm_sub_epi8(counts, _mm_cmpeq_epi8(a, newline));
            counts = _mm_sub_epi8(counts, _mm_cmpeq_epi8(b, newline));
            counts = _mm_sub_epi8(counts, _mm_cmpeq_epi8(c, newline));
            counts = _mm_sub_epi8(counts, _mm_cmpeq_epi8(d, newline));
        }
        uint64_t sums[2];
        _mm_storeu_si128((__m128i *)sums, _mm_sad_epu8(counts, zero)); /* the lanes' sums, per half */
        lines += (Py_ssize_t)(sums[0] + sums[1]);
    }
    high = (unsigned)_mm_movemask_epi8(any); /* bit 7 of any byte */
#endif
    for (; i < n; i++) {
        lines += p[i] == '\n';
        high |= p[i] & 0x80u;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nO)", lines, high ? Py_False : Py_True);
}

static PyMethodDef methods[] = {
    {"count_lines_ascii", count_lines_ascii, METH_O,
     "count_lines_ascii(data, /)\n--\n\nThe number of b\"\\n\" bytes in data, and whether all its bytes are ASCII."},
    {"count_lines", count_lines, METH_O,
     "count_lines(data, /)\n--\n\nThe number of b\"\\n\" bytes in data (any contiguous bytes-like object)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "normagent.sources._lines",
    .m_doc = "Count a block's lines with memchr (see normagent/sources/lines.py).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    return PyModuleDef_Init(&module);
}
