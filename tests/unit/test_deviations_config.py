"""Bad deviation configuration: every rule and forwarder problem names file, line and key, and
check-config says when a forwarder cannot be reached; good ones load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from normagent.agent import read_config
from normagent.errors import ConfigError

BAD = Path(__file__).parents[1] / "fixtures" / "config" / "bad-deviations"


@pytest.mark.parametrize("case", sorted(BAD.glob("*.toml")), ids=lambda p: p.stem)
def test_bad_deviation_config_names_file_line_and_key(case: Path, golden: Any) -> None:
    with pytest.raises(ConfigError) as err:
        read_config(case)
    got = [f"{p.line}: {p.key + ': ' if p.key else ''}{p.message}".replace(str(BAD), "<dir>") for p in err.value.problems]
    expected = case.with_suffix(".expected")
    if golden.update:  # pytest --update-golden writes what it finds; review the diff
        expected.write_text("\n".join(got) + "\n")
    assert got == expected.read_text().splitlines()
    assert all(p.file == case for p in err.value.problems)
