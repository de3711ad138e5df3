"""Ids for rows the client did not name, and the random bytes they and tokens are made of."""

import os
import threading
import time

_POOL_BYTES = 65_536


class _Entropy:
    """Bytes of ``os.urandom`` read a block at a time and handed out once each.

    CPython lets go of the GIL for each read of the system's random source, and a write's two
    reads per request (its id, a trace's feedback-token nonce) then waited to take it back from
    the group-commit writer's thread: 3 % of a trace event's time in the profile, for two
    small reads. The bytes stay those of the system's source, each handed out once: the lock
    keeps two threads from sharing any, and a forked child starts with none of its parent's.
    """

    def __init__(self) -> None:
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        """No bytes held; in a forked child, and a lock no thread of the parent holds."""
        self._lock = threading.Lock()
        self._block = b""
        self._used = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            if self._used + count > len(self._block):
                self._block = os.urandom(max(_POOL_BYTES, count))
                self._used = 0
            start, self._used = self._used, self._used + count
            return self._block[start : self._used]


_entropy = _Entropy()


def random_hex(count: int) -> str:
    """``count`` random bytes from the system's source, as hex (``secrets.token_hex``)."""
    return _entropy.take(count).hex()


def time_ordered_uuids(count: int) -> list[str]:
    """``count`` version-7 UUIDs (RFC 9562) in canonical form: the Unix time in milliseconds,
    then 74 random bits from the system's random source.

    Ids that begin with the time go to the end of their primary-key index, next to the ids made
    just before; random (version 4) ids put each new row at a random place in it, so every vote
    of a group commit dirtied an index page of its own for the commit to write.
    ``str(uuid.uuid4())`` costs about 8 µs, most of it in ``UUID.__init__``: building the text
    directly keeps a 1,000-item batch's ids from being a fifth of the server's own work.
    """
    raw = bytearray(_entropy.take(16 * count))
    stamp = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    for start in range(0, len(raw), 16):
        raw[start : start + 6] = stamp
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x70
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80
    digits = raw.hex()
    return [
        f"{digits[k : k + 8]}-{digits[k + 8 : k + 12]}-{digits[k + 12 : k + 16]}-"
        f"{digits[k + 16 : k + 20]}-{digits[k + 20 : k + 32]}"
        for k in range(0, len(digits), 32)
    ]
