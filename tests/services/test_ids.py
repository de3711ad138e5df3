"""Ids made for rows the client did not name are proper random (version 4) UUIDs."""

import uuid

from agentcost.services.ids import random_uuids


def test_random_uuids_are_distinct_version_4_uuids_in_canonical_form() -> None:
    made = random_uuids(2000)
    assert len(made) == len(set(made)) == 2000
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_every_free_bit_varies() -> None:
    """122 random bits: each of them is 0 in some id and 1 in another."""
    values = [uuid.UUID(text).int for text in random_uuids(500)]
    fixed = ~(0xF << 76 | 0x3 << 62) & (2**128 - 1)
    ones = zeros = 0
    for value in values:
        ones |= value
        zeros |= ~value
    assert ones & fixed == fixed
    assert zeros & fixed == fixed


def test_none_asked_none_made() -> None:
    assert random_uuids(0) == []
