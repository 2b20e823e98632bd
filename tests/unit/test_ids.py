"""normagent.ids: random ids in the form ``uuid.uuid4().hex`` has, without ``uuid``."""

from __future__ import annotations

import uuid

from normagent.ids import random_id


def test_a_random_id_is_a_version_4_uuid_in_hex() -> None:
    made = [random_id() for _ in range(2000)]

    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(hex=text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert parsed.hex == text and len(text) == 32
    # the 122 random bits do vary: over 2,000 ids each free digit takes all 16 values (missing one
    # has a chance of about 1e-55), the variant's digit its four
    digits = [{text[i] for text in made} for i in range(32)]
    assert digits[12] == {"4"} and digits[16] == set("89ab")
    assert all(len(seen) == 16 for i, seen in enumerate(digits) if i not in (12, 16))
