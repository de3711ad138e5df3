"""Random ids for rows the client did not name."""

import os


def random_uuids(count: int) -> list[str]:
    """``count`` version-4 UUIDs in canonical form, from one read of the system's random source.

    ``str(uuid.uuid4())`` costs about 8 µs, most of it in ``UUID.__init__``: a fifth of the
    server's own work on a 1,000-item feedback batch. The bits are the same: 122 random, the
    version nibble 4, the RFC 4122 variant.
    """
    raw = bytearray(os.urandom(16 * count))
    for start in range(0, len(raw), 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x40
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80
    digits = raw.hex()
    return [
        f"{digits[k : k + 8]}-{digits[k + 8 : k + 12]}-{digits[k + 12 : k + 16]}-"
        f"{digits[k + 16 : k + 20]}-{digits[k + 20 : k + 32]}"
        for k in range(0, len(digits), 32)
    ]
