"""The first index's per-file shortcuts (bench/README.md, w14-edi) give what the long ways gave:
a candidate's path is ``os.path.join``'s, and a checkpoint's stored text is ``JSONEncoder``'s."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from normagent.ledger import _compact_json
from normagent.plugins.edi.scan import Candidates
from normagent.plugins.edi.settings import EdiFolder


@pytest.mark.parametrize("directory", ["/srv/edi/ut", "/srv/edi/ut/", "/", "//srv//edi", "relative/dir", "/srv/æø\udcff"])
def test_a_candidates_path_is_os_path_join_of_its_directory_and_name(directory: str) -> None:
    candidates = Candidates()
    folder = EdiFolder(path=Path("/srv/edi"), direction="out")
    names = ["a.xml", "b\udce6.xml", " lead", "x" * 255]
    for name in names:
        candidates.add(candidates.place_id(directory, "", folder), name, 1, 2, regular=True, indexed=False)
    candidates.add(candidates.place_id("/other", "", folder), "c.xml", 1, 2, regular=True, indexed=False)
    for i, name in enumerate(names):
        assert candidates.path(i) == os.path.join(directory, name)
        assert candidates.get(i).path == os.path.join(directory, name)
    assert candidates.path(len(names)) == "/other/c.xml"


CIRCULAR: list[object] = []
CIRCULAR.append(CIRCULAR)


@pytest.mark.parametrize("value", [
    "plain", "æø\u2028\"\\\n", 0, -7, 10**40, 1.5, 1765012345.123456, -0.0, 1e-300, float("inf"), float("nan"),
    None, True, False, [], {}, [1, [2.5, "ø", None]], {"b": 1, "a": [True, {"c": "d"}]},
    {1: "int key", 2.5: "float key", True: "bool key", None: "none key"},
    ["msg", "DIALOGMELDING", "out", 1765012345.25, "/srv/edi/ut/0b2f.xml", 123456789, 1, 1, "", 0.0, 0, 0, 1],
])
def test_a_checkpoints_stored_text_is_the_compact_json_encoders(value: object) -> None:
    assert _compact_json(value) == json.JSONEncoder(separators=(",", ":")).encode(value)


def test_a_checkpoint_that_cannot_be_json_is_refused_as_before() -> None:
    with pytest.raises(ValueError, match="Circular reference"):
        _compact_json(CIRCULAR)
    with pytest.raises(TypeError):
        _compact_json({(1, 2): "tuple key"})
    with pytest.raises(TypeError):
        _compact_json([object()])
