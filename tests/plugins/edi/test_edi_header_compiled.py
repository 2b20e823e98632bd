"""The compiled header fast path (``plugins/edi/_header.c``) reads a file exactly as expat does.

``parse.parse_file_bytes`` hands a small file to the compiled scan, which either reads a bare
MsgHead or AppRec or answers None (then expat reads it). The property held here: whatever the
input, ``parse_file_bytes`` gives the same ``Parsed`` as ``parse_bytes`` (expat alone), and the
scan never reads a file expat refuses. Inputs: every real fixture and generated document, each
cut everywhere, damaged with markup and bytes the scan must either follow or leave to expat
(line ends, blanks in attributes, prefixes, comments, references, bad UTF-8, C1 controls,
non-characters), hostile XML (entities, external entities), random bytes. The module also runs
under AddressSanitizer and UndefinedBehaviorSanitizer (tests/support/sanitizers.py).
"""

from __future__ import annotations

import random
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from normagent.plugins.edi import parse
from normagent.plugins.edi.parse import CHUNK, parse_bytes, parse_file_bytes
from tests.plugins.edi.edi_generator import BILLION_LAUGHS, XXE, acknowledgment, apprec, envelope, message_error, msghead
from tests.plugins.edi.test_edi_parse import DOCUMENTS, styled_messages
from tests.support.sanitizers import build_sanitized, run_sanitized
from tests.support.tools import require_extension

SOURCE = Path(__file__).parents[3] / "plugins" / "edi" / "_header.c"

# Markup and bytes the scan must follow exactly or leave to expat.
PIECES = [
    b"", b"\r\n", b"\r", b"\n", b"\t", b" ", b"  \r\n\t", b"\xc2\x85", b"\xc2\xa0", b"\xe2\x80\xa8", b"\xe3\x80\x80",
    b"\xef\xbf\xbe", b"\xef\xbf\xbf", b"\xef\xbf\xbd", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x9f\x98\x80",
    b"\xf4\x90\x80\x80", b"\x80", b"\xff", b"\xa0", b"\x7f", b"\x00", b"\x0b", b"\x1f", b"]]>", b"]]", b"<!---->",
    b"<!-- - -->", b"<!-- -- -->", b"<!-- --->", b"<!--", b"-->", b' a="1"', b" a='1'", b' a="1" a="2"',
    b' xmlns:q="urn:q"', b' xmlns:q=""', b' xmlns="urn:q"', b' xmlns:xml="urn:q"', b" q:V='x'", b' xml:V="x"',
    b' V="y"', b' V="\tH\r\nER "', b' V=" HER"', b' V="her"', b' S="2.16"', b' ns9:V="x"', b' p:a="1" q:a="2"',
    b" xmlns:p='urn:q' xmlns:q='urn:q' p:a='1' q:a='2'", b"<ns9:Id>", b"</ns9:Id>", b"<q:Id>", b"<Ident>",
    b"</Ident>", b"<TypeId V='HER'/>", b"<Id>7</Id>", b"<Id>\r\n 8 \t</Id>", b"<Patient/>", b"</MsgInfo>",
    b"<MsgInfo>", b"</OriginalMsgId>", b"<Inst>", b"</Inst>", b"<Dept><Id>5</Id><TypeId V='HER'/></Dept>", b"<?pi x?>",
    b"<!DOCTYPE x>", b"<![CDATA[x]]>", b"&#65;", b"&lt;", b"&amp;", b"'", b'"', b"<", b">", b"/>", b"=", b":",
    b"xmlns", b"\xef\xbb\xbf", b"<a:b:c/>", b"</>", b"< x>", b"<x >", b"</x >", b"<x/ >",
    b"<eb:Acknowledgment>", b"</SOAP:Header>", b"<SOAP:Body/>", b"</SOAP:Body>", b"<EncryptedData/>", b"<Manifest/>",
    b'<eb:PartyId eb:type="HER">9</eb:PartyId>', b' eb:type=" her "', b"<eb:Action>MessageError</eb:Action>",
    b'<eb:Error eb:errorCode=" E1 " severity="x" eb:location="y"/>', b' xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"',
    b' xmlns:eb="urn:other"', b' xmlns=""', b"<MsgHead xmlns='http://www.kith.no/xmlstds/msghead/2006-05-24'>",
    b"<AppRec xmlns='http://www.kith.no/xmlstds/apprec/2012-02-15'/>",
]


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    return require_extension("normagent.plugins.edi._header")


def same_as_expat(data: bytes) -> bool:
    """``parse_file_bytes`` reads ``data`` as expat alone does; True if the fast path read it."""
    got, want = parse_file_bytes(data), parse_bytes(data)
    assert got == want, (data[:300], got, want)
    assert repr(got) == repr(want)
    return parse._SCAN is not None and parse._SCAN(data) is not None


def test_the_compiled_scan_is_used(compiled: ModuleType) -> None:
    assert parse._SCAN is compiled.scan


def plain_messages() -> list[bytes]:
    """Documents of the usual shapes: each must take the fast path."""
    found = styled_messages()
    found.append(apprec("r-7", "m-7", "LOM", "1", "2026-11-23T10:00:00", "2", "1", encoding="ISO-8859-1"))
    payload = msghead("m-6", "EPIKRISE", "2026-11-23T10:00:00", "1000001", "2000001")
    receipt = apprec("r-6", "m-6", "EPIKRISE", "2", "2026-11-23T10:00:00", "2", "1", errors=(("E21", "2.16.578.1.12.4.1.1.8221"),))
    found.append(envelope("e-6@x", "EPIKRISE", "2026-11-23T10:00:00", payload))
    found.append(envelope("e-5@x", "APPREC", "2026-11-23T10:00:00", receipt))
    found.append(envelope("e-4@x", "EPIKRISE", "2026-11-23T10:00:00", None))
    found.append(acknowledgment("a-1@x", "e-6@x", "2026-11-23T10:00:00"))
    found.append(message_error("x-1@x", "e-6@x", "2026-11-23T10:00:00", "ValueNotRecognized", "xpointer(//To/PartyId)"))
    found.append(message_error("x-2@x", "e-6@x", "", "T01", "", unprefixed=True))
    return found


PLAIN = plain_messages()


@pytest.mark.parametrize("index", range(len(PLAIN)))
def test_the_usual_shapes_take_the_fast_path_and_read_as_expat_reads_them(compiled: ModuleType, index: int) -> None:
    data = PLAIN[index]
    assert compiled.scan(data) is not None
    assert same_as_expat(data)
    assert parse_file_bytes(data).outcome == "ok"


@pytest.mark.parametrize("index", range(len(DOCUMENTS)))
def test_every_document_and_every_cut_of_it_reads_as_with_expat(compiled: ModuleType, index: int) -> None:
    data = DOCUMENTS[index]
    same_as_expat(data)
    for cut in range(0, len(data), 11):  # a file still being written
        same_as_expat(data[:cut])


def test_the_published_fixtures_of_the_usual_shape_take_the_fast_path(compiled: ModuleType) -> None:
    fixtures = Path(__file__).parents[2] / "fixtures" / "edi"
    fast = [path.name for path in sorted(fixtures.rglob("*.xml")) if same_as_expat(path.read_bytes())]
    assert len(fast) >= 10, fast  # comments in the body, namespace prefixes: read as expat reads them


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_hostile_xml_is_left_to_expat_and_refused(compiled: ModuleType, data: bytes) -> None:
    assert compiled.scan(data) is None
    assert parse_file_bytes(data).outcome == "unsafe_xml"
    for piece in (b'<!DOCTYPE MsgHead [<!ENTITY x "y">]>', b'<!DOCTYPE MsgHead SYSTEM "file:///etc/passwd">'):
        for document in PLAIN[:2]:
            at = document.index(b"?>") + 2
            hostile = document[:at] + piece + document[at:]
            assert compiled.scan(hostile) is None
            assert parse_file_bytes(hostile).outcome == "unsafe_xml"


def test_entity_references_are_left_to_expat(compiled: ModuleType) -> None:
    data = PLAIN[0].replace(b"<MsgId>m-9</MsgId>", b"<MsgId>m&#45;9&amp;</MsgId>")
    assert compiled.scan(data) is None
    assert parse_file_bytes(data).header.msg_id == "m-9&"  # type: ignore[union-attr]


def test_line_ends_and_blanks_read_as_expat_reports_them(compiled: ModuleType) -> None:
    data = PLAIN[0].replace(b"<MsgId>m-9</MsgId>", b"<MsgId>\r\n m\r9\r\n\tx \r</MsgId>").replace(
        b'Type V="HENVISNING"', b'Type V="\tHEN\r\nVIS\rNING\n"')
    assert compiled.scan(data) is not None
    assert same_as_expat(data)
    header = parse_file_bytes(data).header
    assert (header.msg_id, header.msg_type) == ("m\n9\n\tx", "HEN VIS NING")  # type: ignore[union-attr]


@settings(max_examples=1500, deadline=None)
@given(st.integers(min_value=0, max_value=len(DOCUMENTS) + len(PLAIN) - 1), st.integers(min_value=0, max_value=100_000),
       st.lists(st.tuples(st.sampled_from(PIECES), st.integers(min_value=0, max_value=3)), min_size=1, max_size=3),
       st.binary(max_size=8))
@example(0, 0, [(b"", 0)], b"")
def test_damaged_documents_read_as_with_expat(compiled: ModuleType, index: int, position: int,
                                              edits: list[tuple[bytes, int]], noise: bytes) -> None:
    data = (DOCUMENTS + PLAIN)[index]
    for piece, dropped in edits:
        at = position % (len(data) + 1)
        data = data[:at] + piece + noise[:dropped] + data[at + dropped:]
        position = position * 7 + 13
    same_as_expat(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_read_as_with_expat(compiled: ModuleType, data: bytes) -> None:
    same_as_expat(data)
    same_as_expat(b"<MsgHead xmlns='http://www.kith.no/xmlstds/msghead/2006-05-24'><MsgInfo>" + data)


def test_a_file_larger_than_one_chunk_goes_to_expat(compiled: ModuleType) -> None:
    data = msghead("m-1", "EPIKRISE", "2026-11-23T10:00:00", "1", "2", body_size=CHUNK)
    assert len(data) > CHUNK
    assert parse_file_bytes(data) == parse_bytes(data)


def test_deep_nesting_is_left_to_expat(compiled: ModuleType) -> None:
    body = b"<a>" * 300 + b"</a>" * 300
    data = PLAIN[0].replace(b"<MsgInfo>", b"<MsgInfo>" + body, 1)
    assert compiled.scan(data) is None
    assert same_as_expat(data) is False
    deep = PLAIN[0].replace(b"<MsgInfo>", b"<MsgInfo>" + b"<a>" * 120, 1)
    assert parse_file_bytes(deep).outcome == "too_deep"


@pytest.mark.slow
def test_the_scan_is_memory_safe(tmp_path: Path) -> None:
    """The scan compiled with AddressSanitizer and UndefinedBehaviorSanitizer, on the documents,
    every cut of them, damaged and random input."""
    build = build_sanitized(SOURCE, "normagent.plugins.edi._header", tmp_path)
    out = run_sanitized(textwrap.dedent(SANITIZED), str(build), first_on_path=build)
    assert "checked" in out


SANITIZED = """
    import random, sys
    from normagent.plugins.edi import _header as scanner
    assert scanner.__file__.startswith(sys.argv[1]), scanner.__file__  # the sanitized build
    from normagent.plugins.edi import parse
    from tests.plugins.edi.test_edi_parse import DOCUMENTS, styled_messages
    from tests.plugins.edi.test_edi_header_compiled import PIECES, PLAIN
    rng = random.Random(1)
    inputs = []
    for data in DOCUMENTS + PLAIN:
        inputs.extend(data[:cut] for cut in range(0, len(data) + 1, 3))
        for _ in range(60):
            at = rng.randrange(len(data) + 1)
            inputs.append(data[:at] + rng.choice(PIECES) + data[at + rng.randrange(3):])
    alphabet = bytes(range(256)) + b"<>/='\\" :xmlnsV" * 8
    inputs.extend(bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 300))) for _ in range(2000))
    for data in inputs:
        found = scanner.scan(data)
        if found is not None:
            assert parse._scanned(found, len(data)) == parse.parse_bytes(data), data
    print("checked", len(inputs))
"""


def test_a_wrong_scan_would_be_seen() -> None:
    """The comparison itself can fail: a scan that reads a field wrongly differs from expat."""
    data = PLAIN[0]
    wrong = parse_bytes(data.replace(b"m-9", b"m-8"))
    assert parse_bytes(data) != wrong
    rng = random.Random(2)
    assert any(parse_bytes(bytes(rng.randrange(256) for _ in range(50))) != parse_bytes(data) for _ in range(3))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK])
def test_a_file_is_read_from_disk_as_from_memory(tmp_path: Path, size: int) -> None:
    """One read of a small file, chunks of a larger one: the same ``Parsed`` as the bytes give."""
    from normagent.plugins.edi.collectors import read_file
    from tests.plugins.edi.test_edi_collector import _candidate_for

    data = msghead("m-1", "EPIKRISE", "2026-11-23T10:00:00", "1", "2")
    data = data.replace(b"</MsgHead>", b"<!--" + b"x" * max(0, size - len(data) - 7) + b"-->" + b"</MsgHead>")[:size]
    path = tmp_path / "m.xml"
    path.write_bytes(data)
    assert path.stat().st_size == size
    parsed, why = read_file(_candidate_for(path), 4 * CHUNK)
    assert why == "" and parsed == parse_bytes(data)
