"""Priority aging: how long a waiting job takes to climb one priority level, per queue.

Jobs are claimed in order of ``sort_at``: their ``run_at`` pushed back by ``aging_s`` for each
level below CRITICAL. With the default 60 s, a BULK job (4 levels down) due now sorts with a
CRITICAL job due in 240 s: under an overload of CRITICAL work it waits at most about that long,
then runs ahead of newer CRITICAL jobs. A longer aging keeps urgent work ahead for longer and
lets less urgent work wait longer; 0 makes the queue first-in first-out whatever the priority.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ConfigurationError
from ..settings import current

DEFAULT_AGING_S = 60.0


def default_aging_from_env(default: float = DEFAULT_AGING_S) -> float:
    """``TAILRACE_PRIORITY_AGING_S`` (or ``priority_aging_s`` in tailrace.toml): seconds per
    priority level for every queue; ``default`` where neither sets it."""
    settings = current()
    return settings.priority_aging_s if "priority_aging_s" in settings.model_fields_set else default


def queue_aging_from_env() -> dict[str, float]:
    """``TAILRACE_QUEUE_AGING_S="reports=600,payments=10"``: seconds per level by queue."""
    raw = (current().queue_aging_s or "").strip()
    return parse_queue_aging(raw, "TAILRACE_QUEUE_AGING_S") if raw else {}


def parse_queue_aging(text: str, source: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        queue, sep, value = part.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not sep or not queue.strip() or not seconds >= 0:
            raise ConfigurationError(
                f"{source}: {part.strip()!r} is not QUEUE=SECONDS (seconds of at least 0)"
            )
        found[queue.strip()] = seconds
    return found


def check(aging: Mapping[str, float]) -> dict[str, float]:
    for queue, seconds in aging.items():
        if not seconds >= 0:
            raise ConfigurationError(f"aging of queue {queue!r} must be at least 0, not {seconds}")
    return dict(aging)
