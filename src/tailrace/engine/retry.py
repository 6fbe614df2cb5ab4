"""Retry policy: how many attempts, and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter: attempt n waits up to ``base * factor**(n-1)``.

    Jitter spreads retries of jobs that failed together (a database blip) so they do not
    come back as one thundering herd.
    """

    base_s: float = 1.0
    factor: float = 2.0
    max_s: float = 3600.0
    jitter: float = 1.0  # fraction of the delay that is random: 0 = none, 1 = full jitter

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_s, self.base_s * self.factor ** max(0, attempt - 1))
        if self.jitter <= 0:
            return ceiling
        r = (rng or random).random()
        return ceiling * (1.0 - self.jitter) + ceiling * self.jitter * r
