"""Password sign-in limits of the local Auth stand-in: failed attempts per
e-mail and per client address, each in a sliding window.

An attempt is counted when it starts (so a burst of concurrent guesses
cannot all slip past the check) and forgiven when the password was right.
Past a limit every attempt for that e-mail or address — a right password
too, or the limit would tell a guesser when they hit it — gets 429 with
``Retry-After`` until the oldest counted attempt leaves the window.
Memory stays bounded: at most ``max_keys`` e-mails (as short digests) and
addresses are tracked, each with at most its limit's number of timestamps.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    attempts: int  # failed sign-ins allowed within the window
    window: float  # seconds


# What the stand-in allows by default (README: "Sign-in limits").
PER_EMAIL = Limit(5, 300.0)
PER_ADDRESS = Limit(30, 300.0)  # Supabase's default sign-in rate per IP address, per 5 minutes
MAX_KEYS = 10_000


class _Window:
    """Timestamps of counted attempts per key, oldest first."""

    def __init__(self, limit: Limit, clock: Callable[[], float], max_keys: int) -> None:
        self.limit = limit
        self._clock = clock
        self._max_keys = max_keys
        self._seen: dict[str, deque[float]] = {}

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 if it may now."""
        times = self._fresh(key)
        if len(times) < self.limit.attempts:
            return 0.0
        return max(times[0] + self.limit.window - self._clock(), 0.001)

    def count(self, key: str) -> None:
        self._fresh(key).append(self._clock())
        if len(self._seen) > self._max_keys:
            self._prune()

    def forgive(self, key: str, everything: bool) -> None:
        times = self._seen.get(key)
        if times:
            if everything:
                times.clear()
            else:
                times.pop()

    def _fresh(self, key: str) -> deque[float]:
        times = self._seen.setdefault(key, deque())
        horizon = self._clock() - self.limit.window
        while times and times[0] <= horizon:
            times.popleft()
        return times

    def _prune(self) -> None:
        horizon = self._clock() - self.limit.window
        for key in [k for k, times in self._seen.items() if not times or times[-1] <= horizon]:
            del self._seen[key]
        while len(self._seen) > self._max_keys:  # all recent: drop the longest-tracked
            del self._seen[next(iter(self._seen))]


class SignInLimiter:
    def __init__(
        self,
        per_email: Limit = PER_EMAIL,
        per_address: Limit = PER_ADDRESS,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._email = _Window(per_email, clock, max_keys)
        self._address = _Window(per_address, clock, max_keys)

    def attempt(self, email: str, address: str) -> int | None:
        """Count a sign-in attempt: None if it may go ahead, else the whole
        seconds to wait (for ``Retry-After``); a refused attempt is not counted."""
        email = _normal(email)
        wait = max(self._email.wait(email), self._address.wait(address))
        if wait > 0:
            return max(1, math.ceil(wait))
        self._email.count(email)
        self._address.count(address)
        return None

    def succeeded(self, email: str, address: str) -> None:
        """The password was right: this attempt, and the e-mail's earlier failures, are forgiven."""
        self._email.forgive(_normal(email), everything=True)
        self._address.forgive(address, everything=False)


def _normal(email: str) -> str:
    """A short key per e-mail, however long the one sent: memory per key stays small."""
    return hashlib.blake2b(email.strip().lower().encode(), digest_size=16).hexdigest()
