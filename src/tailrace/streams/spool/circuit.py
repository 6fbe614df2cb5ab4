"""The circuit breaker's states and transitions; `producer.BreakerProducer` acts on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class CircuitState(Enum):
    """Where new messages go."""

    CLOSED = "closed"
    """The broker takes messages: they go straight to the producer."""
    OPEN = "open"
    """The broker is unreachable: messages go to the spool; a probe is due after a cooldown."""
    HALF_OPEN = "half_open"
    """A probe (the spool's first message, or a metadata request) is in flight."""
    DRAINING = "draining"
    """The probe passed and the spool drains; new messages still join it, behind the rest,
    until it is empty."""


@dataclass
class Circuit:
    """Opened by `trip`; probes after a cooldown that doubles, up to `max_cooldown_s`, each
    time a probe fails.

    There is no count of failures to reach first: a failed message is spooled, and while the
    spool holds a message the circuit must not be closed, or the key's later messages would
    overtake it. The threshold is in time instead: the producer's message timeout.
    """

    cooldown_s: float = 0.5
    max_cooldown_s: float = 30.0
    state: CircuitState = CircuitState.CLOSED
    retry_at: float = 0.0
    reason: str = ""
    _cooldown: float = field(default=0.0, repr=False)

    def trip(self, now: float, reason: str) -> bool:
        """Open the circuit; False when it was open already."""
        if self.state is CircuitState.OPEN:
            return False
        self.state = CircuitState.OPEN
        self.reason = reason
        self._cooldown = self._cooldown or self.cooldown_s
        self.retry_at = now + self._cooldown
        return True

    def probe_due(self, now: float) -> bool:
        return self.state is CircuitState.OPEN and now >= self.retry_at

    def probe_failed(self, now: float, reason: str) -> None:
        self.state = CircuitState.OPEN
        self.reason = reason
        self._cooldown = min(self.max_cooldown_s, max(self.cooldown_s, self._cooldown * 2))
        self.retry_at = now + self._cooldown

    def probe_passed(self) -> None:
        self.state = CircuitState.DRAINING
        self._cooldown = 0.0

    def drained(self) -> None:
        self.state = CircuitState.CLOSED
        self.reason = ""
