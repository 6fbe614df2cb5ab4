"""The trade-off of priority aging, computed with the engine's own claim order (``sort_at``):
under a sustained overload of CRITICAL work, a job ``k`` levels below waits about
``k * aging * overload``; without overload, at most about ``k * aging``."""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta

import pytest

from tailrace import App, Priority
from tailrace.engine.aging import parse_queue_aging
from tailrace.errors import ConfigurationError

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def bulk_wait(app: App, queue: str, critical_per_s: float, seconds: int = 3000) -> float:
    """One worker runs one job a second, in ``sort_at`` order; CRITICAL jobs arrive at
    ``critical_per_s``, a single BULK job at t=0. Returns how long the BULK job waited."""
    heap: list[tuple[datetime, int, Priority]] = []
    seq = 0

    def add(at: float, priority: Priority) -> None:
        nonlocal seq
        when = T0 + timedelta(seconds=at)
        heapq.heappush(heap, (app.sort_at(when, priority, queue), seq, priority))
        seq += 1

    add(0.0, Priority.BULK)
    arrived = 0
    for second in range(seconds):
        while arrived < critical_per_s * (second + 1):
            add(arrived / critical_per_s, Priority.CRITICAL)
            arrived += 1
        _, _, priority = heapq.heappop(heap)
        if priority is Priority.BULK:
            return float(second + 1)
    raise AssertionError("the BULK job never ran")


@pytest.mark.parametrize("aging_s", [10.0, 60.0, 300.0])
def test_under_overload_a_bulk_job_waits_about_levels_times_aging_times_overload(
    aging_s: float,
) -> None:
    with App("sqlite:///unused.db", queue_aging_s={"q": aging_s}) as app:
        waited = bulk_wait(app, "q", critical_per_s=1.6)
    assert waited == pytest.approx(4 * aging_s * 1.6, rel=0.05)


def test_without_overload_it_waits_at_most_about_levels_times_aging() -> None:
    with App("sqlite:///unused.db", queue_aging_s={"q": 60.0}) as app:
        assert bulk_wait(app, "q", critical_per_s=0.9) <= 4 * 60 + 1


def test_zero_aging_is_first_in_first_out() -> None:
    with App("sqlite:///unused.db", queue_aging_s={"fifo": 0.0}) as app:
        assert bulk_wait(app, "fifo", critical_per_s=1.6) == 1.0


def test_queue_aging_settings_are_checked() -> None:
    assert parse_queue_aging("a=1, b=0.5", "X") == {"a": 1.0, "b": 0.5}
    for bad in ("a", "a=-1", "=3", "a=x"):
        with pytest.raises(ConfigurationError, match="QUEUE=SECONDS"):
            parse_queue_aging(bad, "X")
