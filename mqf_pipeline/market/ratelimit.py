"""Token buckets: at most ``capacity`` requests in a burst, ``rate_per_s`` requests per second sustained.

The clock and the sleep function are injected, so tests drive a bucket with a fake clock and no
real sleeping. Times are seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BucketStats:
    """Cumulative counters of one bucket: tokens taken and seconds spent waiting for them."""

    acquired: float
    waits: int
    waited_s: float


class TokenBucket:
    """A classic token bucket; ``rate_per_s=None`` means unlimited (never blocks)."""

    def __init__(
        self,
        rate_per_s: float | None,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s is not None and rate_per_s <= 0:
            raise ValueError(f"token bucket rate must be positive tokens/s or None, got {rate_per_s}")
        cap = capacity if capacity is not None else (rate_per_s or 1.0)
        if cap <= 0:
            raise ValueError(f"token bucket capacity must be positive, got {cap}")
        self.rate_per_s = rate_per_s
        self.capacity = float(cap)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = clock()
        self._lock = threading.Lock()
        self._acquired = 0.0
        self._waits = 0
        self._waited_s = 0.0

    @property
    def unlimited(self) -> bool:
        """True if the bucket never blocks."""
        return self.rate_per_s is None

    #: Token counts within this of ``n`` count as ``n`` (refill arithmetic is inexact in floating point).
    EPS = 1e-9

    def _refill(self) -> None:
        now = self._clock()
        if self.rate_per_s is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate_per_s)
        self._last = now

    def _check(self, n: float) -> None:
        if n <= 0 or n > self.capacity:
            raise ValueError(f"cannot take {n} tokens from a bucket of capacity {self.capacity}")

    def try_acquire(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens if available now; never blocks."""
        if self.unlimited:
            self._acquired += n
            return True
        self._check(n)
        with self._lock:
            self._refill()
            if self._tokens >= n - self.EPS:
                self._tokens = max(0.0, self._tokens - n)
                self._acquired += n
                return True
            return False

    def wait_time_s(self, n: float = 1.0) -> float:
        """Seconds until ``n`` tokens will be available (0 if now)."""
        if self.unlimited:
            return 0.0
        self._check(n)
        with self._lock:
            self._refill()
            assert self.rate_per_s is not None
            return max(0.0, (n - self._tokens) / self.rate_per_s) if self._tokens < n - self.EPS else 0.0

    def acquire(self, n: float = 1.0) -> float:
        """Take ``n`` tokens, sleeping (injected sleep) until they are available; returns seconds waited."""
        if self.unlimited:
            self._acquired += n
            return 0.0
        self._check(n)
        waited = 0.0
        stalls = 0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= n - self.EPS:
                    self._tokens = max(0.0, self._tokens - n)
                    self._acquired += n
                    if waited > 0:
                        self._waits += 1
                        self._waited_s += waited
                    return waited
                assert self.rate_per_s is not None
                delay = (n - self._tokens) / self.rate_per_s
                before = self._last
            self._sleep(delay)
            waited += delay
            if self._clock() <= before:
                stalls += 1
                if stalls > 1000:
                    raise RuntimeError(
                        "token bucket: the clock does not advance when sleeping; "
                        "inject a sleep that moves the injected clock"
                    )

    def stats(self) -> BucketStats:
        """Tokens taken so far and total time spent waiting (s)."""
        return BucketStats(self._acquired, self._waits, self._waited_s)
