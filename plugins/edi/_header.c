/* The EDI header reader's fast path in C: a bare MsgHead or AppRec, or a SOAP/ebXML envelope
 * (with such a payload in its Body, or none), read as plugins/edi/parse.py's expat reader
 * (_HeaderReader) reads it, or None when this scan is not sure it would.
 *
 * scan(data: bytes) -> (kind, version, fields, sender_her, receiver_her, errors, soap) | None
 *
 *     kind "msghead", "apprec" or "soap"; version "" or the AppRec's "1.0"/"1.1"; fields the
 *     reader's ``fields`` dict when it stopped; sender_her/receiver_her its two lists per party
 *     (level 1, level 2); errors the AppRec's Error elements as raw (V, S) attribute pairs; soap
 *     None, or for an envelope (from_her, to_her, transport errors as raw (errorCode, severity,
 *     location), signal, payload state, the payload's kind or "", its version).
 *
 * parse.py's expat path is the reference and the fallback (where this module was not built, and
 * whenever this returns None); the tests hold the two to the same Parsed on every input they draw.
 * Why C: expat with a Python handler per element was about half of a first index's CPU (about 60
 * elements per header); this scan reads the same header in a few microseconds.
 *
 * What it accepts, and only that (anything else: None, and expat decides): the whole document
 * in ``data``; an optional UTF-8 byte order mark; an optional XML declaration of version 1.0 with
 * encoding UTF-8 or ISO-8859-1 (as expat, case-insensitive); then, after blanks and comments only,
 * the root element: MsgHead or AppRec or a SOAP 1.1/1.2 Envelope in its namespace; ASCII names
 * with at most a prefix, bound (``xml`` too for an attribute); namespace declarations that bind a
 * prefix or the default to a URI without blanks (no undeclaring, no reserved prefix or URI); no
 * entity or character reference, CDATA section, processing instruction or document type
 * declaration (comments are skipped, except inside a field being read); only characters XML
 * allows (C1 controls refused too), valid UTF-8; no ``]]>`` in text; no element inside a field
 * being read; at most MAX_DEPTH levels; and the header complete (the point where the expat reader
 * stops) within ``data``. Everything before that point is checked as expat checks it
 * (well-formedness, matching end tags, duplicate attributes, bound prefixes); nothing after it is
 * looked at, as expat does not get to it either.
 *
 * Rules kept: forward scans with every index checked against the end, no recursion, no buffer
 * filled from the input beyond its own size, no strlen/sscanf on the input; the GIL is held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

typedef const unsigned char *Ptr;

#define MAX_DEPTH 64
#define MAX_ATTRS 24
#define FIELD_DEPTH 6

static const char NS_MSGHEAD[] = "http://www.kith.no/xmlstds/msghead/2006-05-24";
static const char NS_APPREC_10[] = "http://www.kith.no/xmlstds/apprec/2004-11-21";
static const char NS_APPREC_11[] = "http://www.kith.no/xmlstds/apprec/2012-02-15";
static const char NS_SOAP[] = "http://schemas.xmlsoap.org/soap/envelope/";
static const char NS_SOAP12[] = "http://www.w3.org/2003/05/soap-envelope";
static const char NS_XML[] = "http://www.w3.org/XML/1998/namespace";
static const char NS_XMLNS[] = "http://www.w3.org/2000/xmlns/";

/* ------------------------------------------------------------------------------------------ */
/* element names the reader looks at */

enum {
    N_OTHER,
    N_MsgInfo, N_Type, N_Ack, N_MIGversion, N_GenDate, N_MsgId, N_Patient, N_ConversationRef,
    N_RefToParent, N_RefToConversation, N_Sender, N_Receiver, N_Organisation, N_HealthcareProfessional,
    N_Ident, N_Id, N_TypeId, N_Status, N_Error, N_OriginalMsgId, N_MsgType, N_IssueDate, N_HCP, N_Inst,
    N_Dept, N_HCPerson, N_Header, N_Body, N_Acknowledgment, N_ErrorList, N_MessageHeader, N_RefToMessageId,
    N_CPAId, N_Service, N_Action, N_ConversationId, N_MessageData, N_MessageId, N_Timestamp, N_From, N_To,
    N_PartyId, N_EncryptedData, N_Manifest, N_MsgHead, N_AppRec,
    N_COUNT
};

static const char *const NAMES[N_COUNT] = {
    "", "MsgInfo", "Type", "Ack", "MIGversion", "GenDate", "MsgId", "Patient", "ConversationRef",
    "RefToParent", "RefToConversation", "Sender", "Receiver", "Organisation", "HealthcareProfessional",
    "Ident", "Id", "TypeId", "Status", "Error", "OriginalMsgId", "MsgType", "IssueDate", "HCP", "Inst",
    "Dept", "HCPerson", "Header", "Body", "Acknowledgment", "ErrorList", "MessageHeader", "RefToMessageId",
    "CPAId", "Service", "Action", "ConversationId", "MessageData", "MessageId", "Timestamp", "From", "To",
    "PartyId", "EncryptedData", "Manifest", "MsgHead", "AppRec",
};

static unsigned char NAME_LENS[N_COUNT];  /* set once at import */

static int name_id(Ptr s, Py_ssize_t n)
{
    for (int i = 1; i < N_COUNT; i++)
        if (n == NAME_LENS[i] && s[0] == (unsigned char)NAMES[i][0] && memcmp(s, NAMES[i], (size_t)n) == 0)
            return i;
    return N_OTHER;
}

/* the reader's ``fields`` keys */
enum {
    F_type, F_ack, F_MIGversion, F_GenDate, F_MsgId, F_RefToParent, F_RefToConversation, F_ident_id,
    F_status, F_orig_type, F_orig_IssueDate, F_orig_Id, F_Id, F_hcp_id_4, F_hcp_id_5, F_hcp_type_4,
    F_hcp_type_5, F_CPAId, F_Service, F_Action, F_ConversationId, F_MessageId, F_Timestamp, F_RefToMessageId,
    F_ack_ref, F_party_From, F_party_To,
    F_COUNT
};

static const char *const FIELD_KEYS[F_COUNT] = {
    "type", "ack", "MIGversion", "GenDate", "MsgId", "RefToParent", "RefToConversation", "ident_id",
    "status", "orig_type", "orig_IssueDate", "orig_Id", "Id", "hcp_id_4", "hcp_id_5", "hcp_type_4",
    "hcp_type_5", "CPAId", "Service", "Action", "ConversationId", "MessageId", "Timestamp", "RefToMessageId",
    "ack_ref", "party_From", "party_To",
};

/* ------------------------------------------------------------------------------------------ */
/* characters */

static int is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
static int name_start(unsigned char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static int name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* The length of the valid character at p (a multi-byte UTF-8 sequence, or one Latin-1 byte),
 * 0 if it is not one this scan accepts. */
static Py_ssize_t high_char(Ptr p, Ptr end, int latin1)
{
    unsigned char c = p[0];
    if (latin1)
        return c >= 0xA0 ? 1 : 0;
    Py_ssize_t left = end - p;
    if (c >= 0xC2 && c <= 0xDF) {
        if (left < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        if (c == 0xC2 && p[1] < 0xA0)
            return 0;  /* U+0080..U+009F: C1 controls, left to expat */
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0;  /* overlong */
        if (c == 0xED && p[1] >= 0xA0)
            return 0;  /* surrogates */
        if (c == 0xEF && p[1] == 0xBF && p[2] >= 0xBE)
            return 0;  /* U+FFFE, U+FFFF */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0;  /* overlong */
        if (c == 0xF4 && p[1] >= 0x90)
            return 0;  /* beyond U+10FFFF */
        return 4;
    }
    return 0;
}

/* Character data from p up to the next '<' (returned), or NULL if it holds something this scan
 * leaves to expat (a reference, a control character, "]]>", a bad sequence) or never ends. */
static Ptr scan_text(Ptr p, Ptr end, int latin1)
{
    while (p < end) {
        unsigned char c = *p;
        if (c == '<')
            return p;
        if (c >= 0x80) {
            Py_ssize_t n = high_char(p, end, latin1);
            if (n == 0)
                return NULL;
            p += n;
            continue;
        }
        if (c == '&' || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
            return NULL;
        if (c == ']' && end - p >= 3 && p[1] == ']' && p[2] == '>')
            return NULL;
        p++;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* tags */

typedef struct {
    Ptr prefix;  /* NULL: none */
    Py_ssize_t prefix_len;
    Ptr local;
    Py_ssize_t local_len;
    Ptr value;  /* between the quotes */
    Py_ssize_t value_len;
} Attr;

typedef struct {
    Ptr name;  /* the qualified name as written */
    Py_ssize_t name_len;
    Ptr prefix;  /* NULL: none */
    Py_ssize_t prefix_len;
    Ptr local;
    Py_ssize_t local_len;
    int empty;  /* ends with "/>" */
    int n_attrs;
    Attr attrs[MAX_ATTRS];
} Tag;

static Ptr scan_ncname(Ptr p, Ptr end)
{
    if (p >= end || !name_start(*p))
        return NULL;
    p++;
    while (p < end && name_char(*p))
        p++;
    return p;
}

static Ptr skip_blanks(Ptr p, Ptr end)
{
    while (p < end && is_blank(*p))
        p++;
    return p;
}

static int same(Ptr a, Py_ssize_t an, Ptr b, Py_ssize_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, (size_t)an) == 0);
}

static int is_lit(Ptr a, Py_ssize_t an, const char *lit)
{
    size_t n = strlen(lit);  /* our own constants */
    return (size_t)an == n && memcmp(a, lit, n) == 0;
}

/* A name with at most one prefix: the position after it, or NULL. */
static Ptr scan_qname(Ptr p, Ptr end, Ptr *prefix, Py_ssize_t *prefix_len, Ptr *local, Py_ssize_t *local_len)
{
    Ptr q = scan_ncname(p, end);
    if (q == NULL)
        return NULL;
    if (q < end && *q == ':') {
        *prefix = p;
        *prefix_len = q - p;
        *local = q + 1;
        q = scan_ncname(q + 1, end);
        if (q == NULL)
            return NULL;
        *local_len = q - *local;
    } else {
        *prefix = NULL;
        *prefix_len = 0;
        *local = p;
        *local_len = q - p;
    }
    return q;
}

/* A start tag from just after '<'; returns the position after it, or NULL (left to expat). */
static Ptr scan_start_tag(Ptr p, Ptr end, int latin1, Tag *tag)
{
    Ptr q = scan_qname(p, end, &tag->prefix, &tag->prefix_len, &tag->local, &tag->local_len);
    if (q == NULL || q >= end)
        return NULL;
    tag->name = p;
    tag->name_len = q - p;
    tag->n_attrs = 0;
    tag->empty = 0;
    p = q;
    for (;;) {
        Ptr after = skip_blanks(p, end);
        if (after >= end)
            return NULL;
        if (*after == '>')
            return after + 1;
        if (*after == '/') {
            if (after + 1 >= end || after[1] != '>')
                return NULL;
            tag->empty = 1;
            return after + 2;
        }
        if (after == p || tag->n_attrs >= MAX_ATTRS)
            return NULL;  /* an attribute must follow a blank */
        Attr *a = &tag->attrs[tag->n_attrs];
        q = scan_qname(after, end, &a->prefix, &a->prefix_len, &a->local, &a->local_len);
        if (q == NULL)
            return NULL;
        q = skip_blanks(q, end);
        if (q >= end || *q != '=')
            return NULL;
        q = skip_blanks(q + 1, end);
        if (q >= end || (*q != '"' && *q != '\''))
            return NULL;
        unsigned char quote = *q++;
        a->value = q;
        while (q < end && *q != quote) {
            unsigned char c = *q;
            if (c >= 0x80) {
                Py_ssize_t n = high_char(q, end, latin1);
                if (n == 0)
                    return NULL;
                q += n;
                continue;
            }
            if (c == '<' || c == '&' || (c < 0x20 && c != '\t' && c != '\n' && c != '\r'))
                return NULL;
            q++;
        }
        if (q >= end)
            return NULL;
        a->value_len = q - a->value;
        tag->n_attrs++;
        p = q + 1;
    }
}

static int is_xmlns(const Attr *a)
{
    return a->prefix != NULL ? is_lit(a->prefix, a->prefix_len, "xmlns") : is_lit(a->local, a->local_len, "xmlns");
}

/* The namespace declarations in scope: a stack (an element's own are dropped at its end). */
#define MAX_DECLS 64
typedef struct {
    int n;
    Ptr prefix[MAX_DECLS];
    Py_ssize_t prefix_len[MAX_DECLS];
    Ptr uri[MAX_DECLS];
    Py_ssize_t uri_len[MAX_DECLS];
} Decls;

/* The innermost declaration of ``prefix`` (its index in ``decls``), or -1: unbound, or one this
 * scan leaves to expat (``xml``, ``xmlns`` on an element). */
static int bound_uri(const Decls *decls, Ptr prefix, Py_ssize_t len)
{
    for (int k = decls->n - 1; k >= 0; k--)
        if (same(prefix, len, decls->prefix[k], decls->prefix_len[k]))
            return k;
    return -1;
}

/* A start tag's attributes: its namespace declarations pushed on ``decls`` (the default one into
 * ``dns``/``dns_len``), every prefix bound. 0: something expat refuses or expands in a way this
 * scan does not follow; the document is left to expat. */
static int check_attrs(const Tag *tag, Decls *decls, Ptr *dns, Py_ssize_t *dns_len)
{
    for (int i = 0; i < tag->n_attrs; i++) {
        const Attr *a = &tag->attrs[i];
        for (int j = 0; j < i; j++) {
            const Attr *b = &tag->attrs[j];
            if (same(a->local, a->local_len, b->local, b->local_len) && (is_xmlns(a) == is_xmlns(b)))
                return 0;  /* a duplicate, or one after namespace expansion: expat says which */
        }
        if (is_xmlns(a)) {
            if (a->value_len == 0)
                return 0;  /* undeclaring: expat's way */
            for (Py_ssize_t k = 0; k < a->value_len; k++)
                if (is_blank(a->value[k]))
                    return 0;  /* a URI holding the namespace separator (a space): expat refuses it */
            if (is_lit(a->value, a->value_len, NS_XML) || is_lit(a->value, a->value_len, NS_XMLNS))
                return 0;
            if (a->prefix == NULL) {
                *dns = a->value;
                *dns_len = a->value_len;
            } else {
                if (is_lit(a->local, a->local_len, "xml") || is_lit(a->local, a->local_len, "xmlns") ||
                    decls->n >= MAX_DECLS)
                    return 0;
                decls->prefix[decls->n] = a->local;
                decls->prefix_len[decls->n] = a->local_len;
                decls->uri[decls->n] = a->value;
                decls->uri_len[decls->n] = a->value_len;
                decls->n++;
            }
        } else if (is_lit(a->local, a->local_len, "xmlns")) {
            return 0;
        }
    }
    /* every prefix bound (an element's declarations are in scope for all its attributes) */
    if (tag->prefix != NULL && bound_uri(decls, tag->prefix, tag->prefix_len) < 0)
        return 0;
    for (int i = 0; i < tag->n_attrs; i++) {
        const Attr *a = &tag->attrs[i];
        if (a->prefix == NULL || is_xmlns(a) || is_lit(a->prefix, a->prefix_len, "xml"))
            continue;
        if (bound_uri(decls, a->prefix, a->prefix_len) < 0)
            return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* values as the reader gets them */

/* Text or an attribute value decoded as expat reports it: line ends normalised ("\r\n" and "\r"
 * to "\n"), and in an attribute value every blank made a space. */
static PyObject *decode(Ptr s, Py_ssize_t n, int latin1, int attribute)
{
    int plain = 1;
    for (Py_ssize_t i = 0; i < n && plain; i++)
        if (s[i] == '\r' || (attribute && (s[i] == '\n' || s[i] == '\t')))
            plain = 0;
    if (plain)
        return latin1 ? PyUnicode_DecodeLatin1((const char *)s, n, "strict")
                      : PyUnicode_DecodeUTF8((const char *)s, n, "strict");
    char *buf = PyMem_Malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL)
        return PyErr_NoMemory();
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '\r') {
            if (i + 1 < n && s[i + 1] == '\n')
                i++;
            c = '\n';
        }
        if (attribute && (c == '\n' || c == '\t'))
            c = ' ';
        buf[m++] = (char)c;
    }
    PyObject *out = latin1 ? PyUnicode_DecodeLatin1(buf, m, "strict") : PyUnicode_DecodeUTF8(buf, m, "strict");
    PyMem_Free(buf);
    return out;
}

/* The reader's _attr(attrs, key): the last attribute whose local name is ``key``, else "". */
static PyObject *attr_value(const Tag *tag, const char *key, int latin1)
{
    const Attr *found = NULL;
    for (int i = 0; i < tag->n_attrs; i++) {
        const Attr *a = &tag->attrs[i];
        if (!is_xmlns(a) && is_lit(a->local, a->local_len, key))
            found = a;
    }
    if (found == NULL)
        return PyUnicode_FromStringAndSize("", 0);
    return decode(found->value, found->value_len, latin1, 1);
}

/* text.strip().upper() == "HER" and ident (as the reader's Ident ends decide) */
static int is_her(PyObject *kind, PyObject *ident)
{
    if (ident == NULL || PyUnicode_GET_LENGTH(ident) == 0)
        return 0;
    if (kind == NULL)
        return 0;
    if (PyUnicode_CompareWithASCIIString(kind, "HER") == 0)
        return 1;
    PyObject *stripped = PyObject_CallMethod(kind, "strip", NULL);
    if (stripped == NULL)
        return -1;
    PyObject *upper = PyObject_CallMethod(stripped, "upper", NULL);
    Py_DECREF(stripped);
    if (upper == NULL)
        return -1;
    int her = PyUnicode_CompareWithASCIIString(upper, "HER") == 0;
    Py_DECREF(upper);
    return her;
}

/* ------------------------------------------------------------------------------------------ */
/* the reader */

enum { H_MSGHEAD, H_APPREC, H_SOAP };  /* the handlers in use (the reader's StartElementHandler) */
enum { D_NONE, D_MSGHEAD, D_APPREC };  /* a document read: its kind */

typedef struct {
    int latin1;
    int doc;  /* the root: D_MSGHEAD, D_APPREC, or D_NONE for a SOAP envelope */
    const char *version;  /* the root AppRec's "1.0"/"1.1" */
    int handler;
    int base;  /* the depth of the MsgHead's or AppRec's root (1, or inside a SOAP Body) */
    int nested;  /* the document inside a SOAP Body */
    const char *nested_version;
    int depth;
    int stack[MAX_DEPTH + 1];
    Ptr names[MAX_DEPTH + 1];
    Py_ssize_t name_lens[MAX_DEPTH + 1];
    int saved_decls[MAX_DEPTH + 1];  /* decls.n before the element's own declarations */
    Ptr dns[MAX_DEPTH + 1];  /* the default namespace in the element (NULL: none) */
    Py_ssize_t dns_len[MAX_DEPTH + 1];
    PyObject *fields[F_COUNT];
    int capture;  /* a field key, -1: none */
    Ptr capture_from;
    int ident;  /* MsgHead: an Ident is being read */
    PyObject *ident_type;
    PyObject *her[2][2];  /* sender, receiver; level 1, level 2 (lists) */
    PyObject *errors;  /* list of (V, S) */
    /* SOAP */
    PyObject *party_her[2];  /* From, To (lists) */
    PyObject *transport_errors;  /* list of (errorCode, severity, location) */
    PyObject *party_type;
    const char *signal;
    const char *payload_state;
    int stop;
} Reader;

static void set_field(Reader *r, int key, PyObject *value)
{
    Py_XSETREF(r->fields[key], value);
}

static PyObject *pop_field(Reader *r, int key)
{
    PyObject *value = r->fields[key];
    r->fields[key] = NULL;
    return value;
}

static void want(Reader *r, int key, Ptr after)
{
    r->capture = key;
    r->capture_from = after;
}

/* fields[key] = _attr(attrs, name) */
static int field_from_attr(Reader *r, const Tag *tag, const char *name, int key)
{
    PyObject *v = attr_value(tag, name, r->latin1);
    if (v == NULL)
        return -1;
    set_field(r, key, v);
    return 0;
}

static int append_if_her(PyObject *list, PyObject *ident, PyObject *kind)
{
    int her = is_her(kind, ident);
    if (her < 0)
        return -1;
    if (her && PyList_Append(list, ident) < 0)
        return -1;
    return 0;
}

/* ``_start_msghead``: the element just pushed; 0 or -1 (error set) */
static int start_msghead(Reader *r, const Tag *tag, Ptr after)
{
    int *stack = r->stack;
    int depth = r->depth, b = r->base;
    int leaf = stack[depth - 1];
    int n = depth - b;
    if (n < 2) {
        if (n == 1 && leaf != N_MsgInfo)
            r->stop = 1;  /* Document/PatientReport come after MsgInfo */
        return 0;
    }
    if (n > FIELD_DEPTH || stack[b] != N_MsgInfo)
        return 0;
    if (n == 2) {
        if (leaf == N_Type || leaf == N_Ack) {
            if (field_from_attr(r, tag, "V", leaf == N_Type ? F_type : F_ack) < 0)
                return -1;
        } else if (leaf == N_MIGversion) {
            want(r, F_MIGversion, after);
        } else if (leaf == N_GenDate) {
            want(r, F_GenDate, after);
        } else if (leaf == N_MsgId) {
            want(r, F_MsgId, after);
        } else if (leaf == N_Patient) {
            r->stop = 1;
        }
        return 0;
    }
    int party = stack[b + 1];
    if (party == N_ConversationRef) {
        if (n == 3 && leaf == N_RefToParent)
            want(r, F_RefToParent, after);
        else if (n == 3 && leaf == N_RefToConversation)
            want(r, F_RefToConversation, after);
        return 0;
    }
    if ((party == N_Sender || party == N_Receiver) && stack[b + 2] == N_Organisation) {
        if (leaf == N_Ident &&
            (n == 4 || (n == 5 && (stack[b + 3] == N_Organisation || stack[b + 3] == N_HealthcareProfessional)))) {
            r->ident = 1;
            Py_CLEAR(r->ident_type);
        } else if (r->ident && stack[depth - 2] == N_Ident) {
            if (leaf == N_Id) {
                want(r, F_ident_id, after);
            } else if (leaf == N_TypeId) {
                PyObject *v = attr_value(tag, "V", r->latin1);
                if (v == NULL)
                    return -1;
                Py_XSETREF(r->ident_type, v);
            }
        }
    }
    return 0;
}

/* ``_end_msghead``, before the pop */
static int end_msghead(Reader *r)
{
    int *stack = r->stack;
    int depth = r->depth, b = r->base;
    int n = depth - b;
    if (n == 0 && r->nested) {
        r->stop = 1;  /* the embedded document ended before its header did */
        return 0;
    }
    if (n == 1) {
        if (stack[b] == N_MsgInfo)
            r->stop = 1;
    } else if ((n == 4 || n == 5) && stack[depth - 1] == N_Ident && r->ident && stack[b] == N_MsgInfo) {
        PyObject *id = pop_field(r, F_ident_id);
        if (id == NULL) {
            id = PyUnicode_FromStringAndSize("", 0);
            if (id == NULL)
                return -1;
        }
        int rc = append_if_her(r->her[stack[b + 1] == N_Sender ? 0 : 1][n == 4 ? 0 : 1], id, r->ident_type);
        Py_DECREF(id);
        if (rc < 0)
            return -1;
        r->ident = 0;
        Py_CLEAR(r->ident_type);
    }
    if (depth == 1)
        r->stop = 1;
    return 0;
}

/* ``_start_apprec`` */
static int start_apprec(Reader *r, const Tag *tag, Ptr after)
{
    int *stack = r->stack;
    int depth = r->depth, b = r->base;
    int leaf = stack[depth - 1];
    int n = depth - b;
    if (n == 1) {
        if (leaf == N_MIGversion) {
            want(r, F_MIGversion, after);
        } else if (leaf == N_GenDate) {
            want(r, F_GenDate, after);
        } else if (leaf == N_Id) {
            want(r, F_Id, after);
        } else if (leaf == N_Status) {
            if (field_from_attr(r, tag, "V", F_status) < 0)
                return -1;
        } else if (leaf == N_Error) {
            PyObject *v = attr_value(tag, "V", r->latin1);
            if (v == NULL)
                return -1;
            PyObject *s = attr_value(tag, "S", r->latin1);
            if (s == NULL) {
                Py_DECREF(v);
                return -1;
            }
            PyObject *pair = PyTuple_Pack(2, v, s);
            Py_DECREF(v);
            Py_DECREF(s);
            if (pair == NULL)
                return -1;
            int rc = PyList_Append(r->errors, pair);
            Py_DECREF(pair);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    if (n < 1 || n > FIELD_DEPTH)
        return 0;
    int first = stack[b];
    if (first == N_OriginalMsgId) {
        if (n == 2) {
            if (leaf == N_MsgType) {
                if (field_from_attr(r, tag, "V", F_orig_type) < 0)
                    return -1;
            } else if (leaf == N_IssueDate) {
                want(r, F_orig_IssueDate, after);
            } else if (leaf == N_Id) {
                want(r, F_orig_Id, after);
            }
        }
        return 0;
    }
    if ((first == N_Sender || first == N_Receiver) && n >= 4 && stack[b + 1] == N_HCP && stack[b + 2] == N_Inst) {
        if (leaf == N_Id && n <= 5) {
            want(r, n == 4 ? F_hcp_id_4 : F_hcp_id_5, after);
        } else if (leaf == N_TypeId && n <= 5) {
            if (field_from_attr(r, tag, "V", n == 4 ? F_hcp_type_4 : F_hcp_type_5) < 0)
                return -1;
        }
    }
    return 0;
}

/* ``_end_apprec``, before the pop */
static int end_apprec(Reader *r)
{
    int *stack = r->stack;
    int depth = r->depth, b = r->base;
    int n = depth - b;
    if (n == 0 && r->nested) {
        r->stop = 1;
        return 0;
    }
    if (n == 1) {
        if (stack[b] == N_OriginalMsgId)
            r->stop = 1;
    } else if ((n == 3 || n == 4) &&
               (stack[depth - 1] == N_Inst || stack[depth - 1] == N_Dept || stack[depth - 1] == N_HCPerson) &&
               (stack[b] == N_Sender || stack[b] == N_Receiver) && stack[b + 1] == N_HCP) {
        PyObject *id = pop_field(r, n == 3 ? F_hcp_id_4 : F_hcp_id_5);
        PyObject *kind = pop_field(r, n == 3 ? F_hcp_type_4 : F_hcp_type_5);
        int rc = append_if_her(r->her[stack[b] == N_Sender ? 0 : 1][n == 3 ? 0 : 1], id, kind);
        Py_XDECREF(id);
        Py_XDECREF(kind);
        if (rc < 0)
            return -1;
    }
    if (depth == 1)
        r->stop = 1;
    return 0;
}

/* A MsgHead or AppRec root (its local name and namespace): its kind and version, or D_NONE. */
static int document_kind(int leaf, Ptr ns, Py_ssize_t ns_len, const char **version)
{
    if (ns == NULL)
        return D_NONE;
    if (leaf == N_MsgHead && is_lit(ns, ns_len, NS_MSGHEAD)) {
        *version = "";
        return D_MSGHEAD;
    }
    if (leaf == N_AppRec && is_lit(ns, ns_len, NS_APPREC_10)) {
        *version = "1.0";
        return D_APPREC;
    }
    if (leaf == N_AppRec && is_lit(ns, ns_len, NS_APPREC_11)) {
        *version = "1.1";
        return D_APPREC;
    }
    return D_NONE;
}

/* ``_soap_start`` (``n`` elements below the Envelope are open, the last has namespace ``ns``) */
static int start_soap(Reader *r, const Tag *tag, Ptr after, Ptr ns, Py_ssize_t ns_len)
{
    int *stack = r->stack;
    int depth = r->depth;
    int leaf = stack[depth - 1];
    int n = depth - 1;
    if (n > FIELD_DEPTH)
        return 0;
    int part = stack[1];
    if (part == N_Body) {
        if (n == 2) {
            const char *version = "";
            int kind = document_kind(leaf, ns, ns_len, &version);
            if (kind != D_NONE) {
                r->payload_state = "readable";
                r->nested = kind;
                r->nested_version = version;
                r->base = depth;
                r->handler = kind == D_MSGHEAD ? H_MSGHEAD : H_APPREC;
            } else if (leaf == N_EncryptedData) {
                r->payload_state = "encrypted";
            } else if (leaf == N_Manifest && strcmp(r->payload_state, "none") == 0) {
                r->payload_state = "external";
            }
        }
        return 0;
    }
    if (part != N_Header || n < 2)
        return 0;
    int section = stack[2];
    if (section == N_Acknowledgment) {
        r->signal = "acknowledgment";
        if (n == 3 && leaf == N_RefToMessageId)
            want(r, F_ack_ref, after);
        return 0;
    }
    if (section == N_ErrorList) {
        r->signal = "message_error";
        if (n == 3 && leaf == N_Error) {
            PyObject *code = attr_value(tag, "errorCode", r->latin1);
            PyObject *severity = code != NULL ? attr_value(tag, "severity", r->latin1) : NULL;
            PyObject *location = severity != NULL ? attr_value(tag, "location", r->latin1) : NULL;
            PyObject *triple = location != NULL ? PyTuple_Pack(3, code, severity, location) : NULL;
            Py_XDECREF(code);
            Py_XDECREF(severity);
            Py_XDECREF(location);
            if (triple == NULL)
                return -1;
            int rc = PyList_Append(r->transport_errors, triple);
            Py_DECREF(triple);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    if (section != N_MessageHeader || n < 3)
        return 0;
    if (n == 3) {
        if (leaf == N_CPAId)
            want(r, F_CPAId, after);
        else if (leaf == N_Service)
            want(r, F_Service, after);
        else if (leaf == N_Action)
            want(r, F_Action, after);
        else if (leaf == N_ConversationId)
            want(r, F_ConversationId, after);
    } else if (n == 4) {
        int group = stack[3];
        if (group == N_MessageData && leaf == N_MessageId) {
            want(r, F_MessageId, after);
        } else if (group == N_MessageData && leaf == N_Timestamp) {
            want(r, F_Timestamp, after);
        } else if (group == N_MessageData && leaf == N_RefToMessageId) {
            want(r, F_RefToMessageId, after);
        } else if ((group == N_From || group == N_To) && leaf == N_PartyId) {
            PyObject *v = attr_value(tag, "type", r->latin1);
            if (v == NULL)
                return -1;
            Py_XSETREF(r->party_type, v);
            want(r, group == N_From ? F_party_From : F_party_To, after);
        }
    }
    return 0;
}

/* The reader's ``_is_signal`` */
static int is_signal(Reader *r)
{
    if (strcmp(r->signal, "payload") != 0)
        return 1;
    PyObject *action = r->fields[F_Action];  /* stripped when read */
    return action != NULL && (PyUnicode_CompareWithASCIIString(action, "Acknowledgment") == 0 ||
                              PyUnicode_CompareWithASCIIString(action, "MessageError") == 0);
}

/* The reader's ``end`` for an envelope (``_soap_end``), before the pop */
static int end_soap(Reader *r)
{
    int *stack = r->stack;
    int depth = r->depth;
    int n = depth - 1;
    if (n >= 1 && n <= FIELD_DEPTH) {
        if (n == 4 && stack[depth - 1] == N_PartyId && (stack[3] == N_From || stack[3] == N_To)) {
            int from = stack[3] == N_From;
            PyObject *value = pop_field(r, from ? F_party_From : F_party_To);
            int rc = append_if_her(r->party_her[from ? 0 : 1], value, r->party_type);
            Py_XDECREF(value);
            Py_CLEAR(r->party_type);
            if (rc < 0)
                return -1;
        } else if (n == 1 && (stack[1] == N_Header || stack[1] == N_Body)) {
            if (stack[1] == N_Body || is_signal(r))
                r->stop = 1;  /* a signal has an empty Body; a payload's header is done once the Body ends */
        }
    }
    if (depth == 1)
        r->stop = 1;
    return 0;
}

static int start_element(Reader *r, const Tag *tag, Ptr after, Ptr ns, Py_ssize_t ns_len)
{
    switch (r->handler) {
    case H_MSGHEAD:
        return start_msghead(r, tag, after);
    case H_APPREC:
        return start_apprec(r, tag, after);
    default:
        return start_soap(r, tag, after, ns, ns_len);
    }
}

static int end_element(Reader *r)
{
    switch (r->handler) {
    case H_MSGHEAD:
        return end_msghead(r);
    case H_APPREC:
        return end_apprec(r);
    default:
        return end_soap(r);
    }
}

/* The captured field's text ends at ``lt`` (an end tag): the reader's _flush, whose
 * ``str.strip()`` is done here on the bytes when they are ASCII (where it strips only blanks:
 * the other ASCII characters it strips are never accepted), else by Python's. */
static int flush(Reader *r, Ptr lt)
{
    if (r->capture < 0)
        return 0;
    Ptr a = r->capture_from, b = lt;
    int ascii = 1;
    for (Ptr q = a; q < b && ascii; q++)
        ascii = *q < 0x80;
    if (ascii) {
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
    }
    PyObject *text = decode(a, b - a, r->latin1, 0);
    if (text == NULL)
        return -1;
    if (!ascii) {
        PyObject *stripped = PyObject_CallMethod(text, "strip", NULL);
        Py_DECREF(text);
        if (stripped == NULL)
            return -1;
        text = stripped;
    }
    set_field(r, r->capture, text);
    r->capture = -1;
    return 0;
}

/* 1: ``n`` bytes at ``p`` are ``lit`` compared without case (ASCII), as expat compares encodings */
static int equal_ci(Ptr p, Py_ssize_t n, const char *lit)
{
    size_t len = strlen(lit);
    if ((size_t)n != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

/* A pseudo-attribute of the XML declaration: S name Eq quoted value. Returns the position after
 * it, or NULL; ``value``/``len`` what was between the quotes. */
static Ptr decl_item(Ptr p, Ptr end, const char *name, Ptr *value, Py_ssize_t *len)
{
    Ptr q = skip_blanks(p, end);
    if (q == p)
        return NULL;
    size_t n = strlen(name);
    if ((size_t)(end - q) < n || memcmp(q, name, n) != 0)
        return NULL;
    q = skip_blanks(q + n, end);
    if (q >= end || *q != '=')
        return NULL;
    q = skip_blanks(q + 1, end);
    if (q >= end || (*q != '"' && *q != '\''))
        return NULL;
    unsigned char quote = *q++;
    Ptr v = q;
    while (q < end && *q != quote && *q != '?' && *q != '<' && *q != '>')
        q++;
    if (q >= end || *q != quote)
        return NULL;
    *value = v;
    *len = q - v;
    return q + 1;
}

/* A comment from its "<!--": the position after its "-->", or NULL (it holds "--" elsewhere, a
 * character this scan leaves to expat, or does not end). */
static Ptr skip_comment(Ptr p, Ptr end, int latin1)
{
    Ptr q = p + 4;
    while (q < end) {
        unsigned char c = *q;
        if (c == '-' && end - q >= 2 && q[1] == '-')
            return end - q >= 3 && q[2] == '>' ? q + 3 : NULL;
        if (c >= 0x80) {
            Py_ssize_t n = high_char(q, end, latin1);
            if (n == 0)
                return NULL;
            q += n;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return NULL;
        q++;
    }
    return NULL;
}

static int is_comment(Ptr p, Ptr end)
{
    return end - p >= 4 && p[0] == '<' && p[1] == '!' && p[2] == '-' && p[3] == '-';
}

/* The prolog: byte order mark, XML declaration, blanks and comments. Returns the root's '<', or
 * NULL. */
static Ptr prolog(Ptr p, Ptr end, int *latin1)
{
    int bom = 0;
    *latin1 = 0;
    if (end - p >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
        bom = 1;
        p += 3;
    }
    if (end - p >= 2 && p[0] == '<' && p[1] == '?') {
        if (end - p < 6 || memcmp(p, "<?xml", 5) != 0 || !is_blank(p[5]))
            return NULL;
        Ptr v;
        Py_ssize_t n;
        Ptr q = decl_item(p + 5, end, "version", &v, &n);
        if (q == NULL || !is_lit(v, n, "1.0"))
            return NULL;
        Ptr r = decl_item(q, end, "encoding", &v, &n);
        if (r != NULL) {
            if (equal_ci(v, n, "iso-8859-1") && !bom)
                *latin1 = 1;
            else if (!equal_ci(v, n, "utf-8"))
                return NULL;
            q = r;
        }
        r = decl_item(q, end, "standalone", &v, &n);
        if (r != NULL) {
            if (!is_lit(v, n, "yes") && !is_lit(v, n, "no"))
                return NULL;
            q = r;
        }
        q = skip_blanks(q, end);
        if (end - q < 2 || q[0] != '?' || q[1] != '>')
            return NULL;
        p = q + 2;
    }
    for (;;) {
        p = skip_blanks(p, end);
        if (!is_comment(p, end))
            break;
        p = skip_comment(p, end, *latin1);
        if (p == NULL)
            return NULL;
    }
    if (p >= end || *p != '<')
        return NULL;
    return p;
}

static void reader_clear(Reader *r)
{
    for (int i = 0; i < F_COUNT; i++)
        Py_CLEAR(r->fields[i]);
    Py_CLEAR(r->ident_type);
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++)
            Py_CLEAR(r->her[i][j]);
        Py_CLEAR(r->party_her[i]);
    }
    Py_CLEAR(r->errors);
    Py_CLEAR(r->transport_errors);
    Py_CLEAR(r->party_type);
}

static const char *kind_name(int kind)
{
    return kind == D_MSGHEAD ? "msghead" : kind == D_APPREC ? "apprec" : "";
}

/* The reader's state once it stopped:
 * (kind, version, fields, sender_her, receiver_her, errors, soap) with soap None for a bare
 * document, else (from_her, to_her, transport_errors, signal, payload_state, payload kind or "",
 * payload version). */
static PyObject *result(Reader *r)
{
    PyObject *fields = PyDict_New();
    if (fields == NULL)
        return NULL;
    for (int i = 0; i < F_COUNT; i++) {
        if (r->fields[i] != NULL && PyDict_SetItemString(fields, FIELD_KEYS[i], r->fields[i]) < 0) {
            Py_DECREF(fields);
            return NULL;
        }
    }
    PyObject *soap;
    if (r->doc != D_NONE) {
        soap = Py_None;
        Py_INCREF(soap);
    } else {
        soap = Py_BuildValue("(OOOssss)", r->party_her[0], r->party_her[1], r->transport_errors, r->signal,
                             r->payload_state, kind_name(r->nested), r->nested ? r->nested_version : "");
        if (soap == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
    }
    return Py_BuildValue("(ssN[OO][OO]ON)", r->doc != D_NONE ? kind_name(r->doc) : "soap",
                         r->doc != D_NONE ? r->version : "", fields, r->her[0][0], r->her[0][1], r->her[1][0],
                         r->her[1][1], r->errors, soap);
}

/* A start tag's element pushed (its declarations in scope); 0: left to expat. ``ns`` is set to
 * its namespace (NULL: none). */
static int push(Reader *r, Decls *decls, const Tag *tag, Ptr *ns, Py_ssize_t *ns_len)
{
    int d = r->depth;
    if (d >= MAX_DEPTH)
        return 0;
    int saved = decls->n;
    Ptr dns = d > 0 ? r->dns[d - 1] : NULL;
    Py_ssize_t dns_len = d > 0 ? r->dns_len[d - 1] : 0;
    if (!check_attrs(tag, decls, &dns, &dns_len))
        return 0;
    if (tag->prefix != NULL) {
        int k = bound_uri(decls, tag->prefix, tag->prefix_len);  /* bound: check_attrs made sure */
        *ns = decls->uri[k];
        *ns_len = decls->uri_len[k];
    } else {
        *ns = dns;
        *ns_len = dns_len;
    }
    r->stack[d] = name_id(tag->local, tag->local_len);
    r->names[d] = tag->name;
    r->name_lens[d] = tag->name_len;
    r->saved_decls[d] = saved;
    r->dns[d] = dns;
    r->dns_len[d] = dns_len;
    r->depth = d + 1;
    return 1;
}

/* Returns 1 (the reader stopped), 0 (leave it to expat), -1 on an error (set). */
static int read_document(Reader *r, Ptr p, Ptr end)
{
    Tag tag;
    Decls decls;
    decls.n = 0;
    Ptr ns;
    Py_ssize_t ns_len;
    /* the root */
    Ptr q = scan_start_tag(p + 1, end, r->latin1, &tag);
    if (q == NULL || !push(r, &decls, &tag, &ns, &ns_len) || ns == NULL)
        return 0;
    int leaf = r->stack[0];
    r->doc = document_kind(leaf, ns, ns_len, &r->version);
    if (r->doc != D_NONE) {
        r->handler = r->doc == D_MSGHEAD ? H_MSGHEAD : H_APPREC;
        r->base = 1;
    } else if (is_lit(tag.local, tag.local_len, "Envelope") &&
               (is_lit(ns, ns_len, NS_SOAP) || is_lit(ns, ns_len, NS_SOAP12))) {
        r->handler = H_SOAP;
    } else {
        return 0;
    }
    for (;;) {
        if (tag.empty) {
            if (flush(r, q) < 0 || end_element(r) < 0)
                return -1;
            decls.n = r->saved_decls[--r->depth];
            if (r->stop)
                return 1;
        }
        p = q;
        Ptr lt;
        for (;;) {
            lt = scan_text(p, end, r->latin1);
            if (lt == NULL || end - lt < 2)
                return 0;
            if (!is_comment(lt, end) || r->capture >= 0)
                break;
            p = skip_comment(lt, end, r->latin1);
            if (p == NULL)
                return 0;
        }
        if (lt[1] == '/') {
            /* an end tag */
            Ptr name = lt + 2, pre, loc;
            Py_ssize_t pre_len, loc_len;
            Ptr ne = scan_qname(name, end, &pre, &pre_len, &loc, &loc_len);
            if (ne == NULL)
                return 0;
            Ptr gt = skip_blanks(ne, end);
            if (gt >= end || *gt != '>')
                return 0;
            int d = r->depth;
            if (!same(name, ne - name, r->names[d - 1], r->name_lens[d - 1]))
                return 0;
            if (flush(r, lt) < 0 || end_element(r) < 0)
                return -1;
            decls.n = r->saved_decls[--r->depth];
            if (r->stop || r->depth == 0)
                return 1;
            q = gt + 1;
            tag.empty = 0;
            continue;
        }
        if (!name_start(lt[1]))
            return 0;  /* a comment in a field, CDATA, processing instruction, declaration or bad name */
        if (r->capture >= 0)
            return 0;  /* an element inside a field: the reader's buffer spans it; expat's way */
        q = scan_start_tag(lt + 1, end, r->latin1, &tag);
        if (q == NULL || !push(r, &decls, &tag, &ns, &ns_len))
            return 0;
        if (start_element(r, &tag, q, ns, ns_len) < 0)
            return -1;
        if (r->stop)
            return 1;
    }
}

static PyObject *scan(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "scan() takes bytes");
        return NULL;
    }
    Ptr data = (Ptr)PyBytes_AS_STRING(arg);
    Ptr end = data + PyBytes_GET_SIZE(arg);
    Reader r;
    memset(&r, 0, sizeof r);
    r.capture = -1;
    r.version = "";
    r.nested_version = "";
    r.signal = "payload";
    r.payload_state = "none";
    Ptr root = prolog(data, end, &r.latin1);
    if (root == NULL)
        Py_RETURN_NONE;
    int ok = (r.errors = PyList_New(0)) != NULL && (r.transport_errors = PyList_New(0)) != NULL;
    for (int i = 0; i < 2 && ok; i++) {
        for (int j = 0; j < 2 && ok; j++)
            ok = (r.her[i][j] = PyList_New(0)) != NULL;
        ok = ok && (r.party_her[i] = PyList_New(0)) != NULL;
    }
    if (!ok) {
        reader_clear(&r);
        return NULL;
    }
    int rc = read_document(&r, root, end);
    PyObject *out = NULL;
    if (rc > 0) {
        out = result(&r);
    } else if (rc == 0) {
        out = Py_None;
        Py_INCREF(out);
    }
    reader_clear(&r);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(data) -> (kind, version, fields, sender_her, receiver_her, errors) | None: a bare MsgHead's or "
     "AppRec's header as plugins/edi/parse.py's expat reader reads it, or None to leave it to expat."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_header", "The EDI header reader's fast path (a bare MsgHead or AppRec), compiled.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__header(void)
{
    for (int i = 0; i < N_COUNT; i++)
        NAME_LENS[i] = (unsigned char)strlen(NAMES[i]);  /* our own constants */
    return PyModule_Create(&module_def);
}
