"""Ids made for rows the client did not name are time-ordered (version 7) UUIDs: the time of
their making, then random bits, from a pool of the system's random bytes that hands each out
once, to one thread and one process."""

import os
import threading
import time
import uuid

import pytest

from agentcost.services.ids import _POOL_BYTES, random_hex, time_ordered_uuids


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


def test_random_bytes_are_never_handed_out_twice_across_threads_and_pool_refills() -> None:
    """Four threads drawing past several refills of the pool: every draw differs."""
    draws_per_thread = 3 * _POOL_BYTES // 16 // 4 + 100
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        for _ in range(draws_per_thread):
            into.append(random_hex(16))

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for into in drawn for value in into]
    assert len(every) == len(set(every)) == 4 * draws_per_thread
    assert all(len(value) == 32 for value in every)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_draws_other_bytes_than_its_parent() -> None:
    random_hex(8)  # the parent holds a partly used pool when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next bytes to the parent, then leave at once
        os.write(write, random_hex(16).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert child != random_hex(16)
