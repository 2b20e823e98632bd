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
 * BlockCopies hands out a reader's blocks: each block's complete lines copied out of the read
 * buffer into a `bytes` of the block's size. A fresh 1 MiB object per block is faulted in page by
 * page (glibc gives the freed block back to the kernel at once: brk trims the heap's top), ~0.2 ms
 * a block, more than the rest of the copy. So it keeps two `bytes` of the block size and writes a
 * block into one that nobody but itself holds any more (its reference count is 1: no other object
 * or frame can see it, so no one sees it change), with its length, its terminating NUL and its
 * cached hash set as for a new object; when both are held elsewhere (a parser kept a block), a new
 * one takes the place of the older. The memory behind a kept object is the block size it was made
 * with; its length is only ever set at most to that. The pure-Python fallback (lines.py) copies
 * into a fresh object each time: the same bytes either way (tests/unit/test_lines.py).
 * `pread` reads a block from a file straight into such an object and keeps its complete lines:
 * no read buffer and no copy out of it for a plain file's usual block.
 *
 * Memory safety: reads only inside the buffer it was given, which the buffer protocol keeps alive
 * and unmoved until PyBuffer_Release; writes only into objects it made, within their size.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>
#include <errno.h>
#include <unistd.h>
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

typedef struct {
    PyObject_HEAD
    Py_ssize_t capacity; /* the block size: kept objects were made this long */
    PyObject *kept[2];   /* bytes of `capacity` bytes (their length set per block), or NULL */
    int next;            /* which one a new object replaces */
} BlockCopies;

static PyObject *
copies_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"capacity", NULL};
    Py_ssize_t capacity;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n:BlockCopies", names, &capacity))
        return NULL;
    if (capacity < 2) {
        PyErr_SetString(PyExc_ValueError, "BlockCopies: capacity must be 2 bytes or more");
        return NULL;
    }
    BlockCopies *self = (BlockCopies *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->capacity = capacity;
    return (PyObject *)self;
}

static void
copies_dealloc(PyObject *op)
{
    BlockCopies *self = (BlockCopies *)op;
    Py_CLEAR(self->kept[0]);
    Py_CLEAR(self->kept[1]);
    Py_TYPE(op)->tp_free(op);
}

/* A kept object nobody else holds, or NULL. A reference count of 1 is this object's own: no other
 * object, frame or C caller holds it (a memoryview or buffer export holds a reference too). */
static PyObject *
copies_free_one(BlockCopies *self)
{
#ifdef Py_GIL_DISABLED
    (void)self;
    return NULL; /* reference counts are not a reliable "nobody else" there */
#else
    for (int i = 0; i < 2; i++)
        if (self->kept[i] != NULL && Py_REFCNT(self->kept[i]) == 1)
            return self->kept[i];
    return NULL;
#endif
}

/* A kept object to write a block of up to `capacity` bytes into (a new reference), or NULL
 * with MemoryError set. */
static PyObject *
copies_take(BlockCopies *self)
{
    PyObject *out = copies_free_one(self);
    if (out != NULL)
        return Py_NewRef(out);
    out = PyBytes_FromStringAndSize(NULL, self->capacity);
    if (out != NULL) {
        Py_XSETREF(self->kept[self->next], Py_NewRef(out));
        self->next ^= 1;
    }
    return out;
}

/* Set a kept object's length to n (<= its capacity), as a new object of n bytes would be. */
static void
copies_settle(PyObject *out, Py_ssize_t n)
{
    Py_SET_SIZE(out, n);
    PyBytes_AS_STRING(out)[n] = '\0';
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
    ((PyBytesObject *)out)->ob_shash = -1; /* as a new object: hash not computed yet */
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
}

static PyObject *
copies_copy(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    BlockCopies *self = (BlockCopies *)op;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "copy() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    Py_ssize_t n = PyNumber_AsSsize_t(args[1], PyExc_OverflowError);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (n < 0 || n > view.len) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "copy(): %zd bytes asked of a buffer of %zd", n, view.len);
        return NULL;
    }
    PyObject *out;
    if (n < 2 || n > self->capacity) { /* 0 and 1 byte: CPython's shared objects; longer: a fresh one */
        out = PyBytes_FromStringAndSize(view.buf, n);
    } else {
        out = copies_take(self);
        if (out != NULL) {
            memcpy(PyBytes_AS_STRING(out), view.buf, (size_t)n);
            copies_settle(out, n);
        }
    }
    PyBuffer_Release(&view);
    return out;
}

/* pread(fd, offset, size): one pread(2) of up to `size` (<= capacity) bytes at `offset` into a
 * kept object, as os.pread does it (retried on EINTR after the signal handlers ran; OSError
 * otherwise); returns (the bytes read up to and with their last newline, or None when they hold
 * none, how many bytes were read). */
static PyObject *
copies_pread(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    BlockCopies *self = (BlockCopies *)op;
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "pread() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    int fd = PyObject_AsFileDescriptor(args[0]);
    if (fd < 0)
        return NULL;
    long long offset = PyLong_AsLongLong(args[1]);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t size = PyNumber_AsSsize_t(args[2], PyExc_OverflowError);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (offset < 0 || (long long)(off_t)offset != offset || size < 0 || size > self->capacity) {
        PyErr_Format(PyExc_ValueError, "pread(): offset %lld or size %zd out of range (capacity %zd)", offset, size,
                     self->capacity);
        return NULL;
    }
    PyObject *out = copies_take(self); /* held by this call only while the GIL is released */
    if (out == NULL)
        return NULL;
    char *buf = PyBytes_AS_STRING(out);
    ssize_t n;
    int failed = 0;
    do {
        Py_BEGIN_ALLOW_THREADS
        n = pread(fd, buf, (size_t)size, (off_t)offset);
        Py_END_ALLOW_THREADS
    } while (n < 0 && errno == EINTR && !(failed = PyErr_CheckSignals()));
    if (n < 0) {
        if (!failed)
            PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(out);
        return NULL;
    }
    Py_ssize_t cut = (Py_ssize_t)n;
    while (cut > 0 && buf[cut - 1] != '\n') /* the last newline: within the last line's length of the end */
        cut--;
    if (cut == 0) {
        Py_DECREF(out); /* back to the keeper alone: written again next time */
        return Py_BuildValue("(On)", Py_None, (Py_ssize_t)n);
    }
    copies_settle(out, cut);
    PyObject *result = Py_BuildValue("(On)", out, (Py_ssize_t)n);
    Py_DECREF(out);
    return result;
}

static PyMethodDef copies_methods[] = {
    {"pread", (PyCFunction)(void (*)(void))copies_pread, METH_FASTCALL,
     "pread(fd, offset, size, /)\n--\n\nOne read of up to size bytes at offset: (its complete lines or None, bytes read)."},
    {"copy", (PyCFunction)(void (*)(void))copies_copy, METH_FASTCALL,
     "copy(buffer, n, /)\n--\n\nThe first n bytes of buffer as bytes (written into a kept object nobody else holds)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef copies_members[] = {
    {"capacity", T_PYSSIZET, offsetof(BlockCopies, capacity), READONLY, "The block size the kept objects were made with."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject BlockCopiesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "normagent.sources._lines.BlockCopies",
    .tp_basicsize = sizeof(BlockCopies),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "BlockCopies(capacity)\n--\n\nCopies of a reader's blocks, into kept objects where nobody else holds one.",
    .tp_new = copies_new,
    .tp_dealloc = copies_dealloc,
    .tp_methods = copies_methods,
    .tp_members = copies_members,
};

static int
lines_exec(PyObject *m)
{
    if (PyType_Ready(&BlockCopiesType) < 0)
        return -1;
    return PyModule_AddObjectRef(m, "BlockCopies", (PyObject *)&BlockCopiesType);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, lines_exec},
    {0, NULL},
};

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
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__lines(void)
{
    return PyModuleDef_Init(&module);
}
