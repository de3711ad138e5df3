"""Per-caller request budget (a token bucket per key), off unless configured.

In-memory and per process: with several workers each enforces the limit on its own share, which
is the usual trade for not putting a shared store on the hot path.
"""

import math
import time
from dataclasses import dataclass, field

from agentcost.errors import RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    per_minute: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _max_callers: int = 100_000

    def check(self, caller: str, now: float | None = None) -> None:
        """Spend one request of the caller's budget or raise RateLimited with the wait."""
        now = time.monotonic() if now is None else now
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(caller)
        if bucket is None:
            if len(self._buckets) >= self._max_callers:
                self._buckets.clear()  # bounded memory; forgetting grants a fresh budget only
            bucket = self._buckets[caller] = _Bucket(float(self.per_minute), now)
        bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            raise RateLimited(max(1, math.ceil((1.0 - bucket.tokens) / rate)))
        bucket.tokens -= 1.0
