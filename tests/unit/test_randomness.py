"""normagent.randomness: random ids in the form ``uuid.uuid4().hex`` has, without ``uuid``; draws
as ``random`` draws them, without ``random``."""

from __future__ import annotations

import uuid

from normagent.randomness import SystemUniform, random_id


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


def test_system_uniform_draws_within_its_bounds_and_spreads_over_them() -> None:
    draw = SystemUniform()
    values = [draw.uniform(-0.25, 0.75) for _ in range(4000)]
    assert all(-0.25 <= v < 0.75 for v in values)
    tenths = {int((v + 0.25) * 10) for v in values}
    assert tenths == set(range(10))  # each tenth of the range drawn (missing one: ~1e-180)
    assert abs(sum(values) / len(values) - 0.25) < 0.05
    assert draw.uniform(3.0, 3.0) == 3.0
