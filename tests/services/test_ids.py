"""Ids made for rows the client did not name are time-ordered (version 7) UUIDs: the time of
their making, then random bits."""

import time
import uuid

from agentcost.services.ids import time_ordered_uuids


def test_ids_are_distinct_version_7_uuids_in_canonical_form_stamped_now() -> None:
    before = time.time_ns() // 1_000_000
    made = time_ordered_uuids(2000)
    after = time.time_ns() // 1_000_000
    assert len(made) == len(set(made)) == 2000
    for text in made:
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
        assert before <= parsed.int >> 80 <= after  # the first 48 bits: Unix milliseconds


def test_every_random_bit_varies() -> None:
    """74 random bits: each of them is 0 in some id and 1 in another."""
    values = [uuid.UUID(text).int for text in time_ordered_uuids(500)]
    free = (1 << 80) - 1 & ~(0xF << 76 | 0x3 << 62)
    ones = zeros = 0
    for value in values:
        ones |= value
        zeros |= ~value
    assert ones & free == free
    assert zeros & free == free


def test_ids_made_later_sort_after_earlier_ones() -> None:
    earlier = time_ordered_uuids(50)
    time.sleep(0.002)
    later = time_ordered_uuids(50)
    assert max(earlier) < min(later)


def test_none_asked_none_made() -> None:
    assert time_ordered_uuids(0) == []
