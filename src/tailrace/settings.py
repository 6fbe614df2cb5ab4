"""Where settings come from: arguments first, then the environment, then embedded defaults."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigurationError

DEFAULT_DATABASE_URL = "sqlite:///.tailrace/tailrace.db"
DEFAULT_DATA_DIR = ".tailrace"


def data_dir() -> Path:
    """Where tailrace keeps local state (worker logs, the generated API token):
    ``TAILRACE_DATA_DIR``, else ``.tailrace`` in the current directory."""
    return Path(os.environ.get("TAILRACE_DATA_DIR") or DEFAULT_DATA_DIR)


def worker_log_dir(job_id: str) -> Path:
    """The directory of one reprocessing job's worker logs (``worker-<index>.log``)."""
    return data_dir() / "logs" / job_id


def database_url(explicit: str | None = None) -> str:
    """``TAILRACE_DATABASE_URL``, falling back to ``DATABASE_URL``, then a local SQLite file."""
    return (
        explicit
        or os.environ.get("TAILRACE_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or DEFAULT_DATABASE_URL
    )


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def max_attempts_from_env(priorities: Iterable[str]) -> dict[str, int]:
    """``JOBS_RETRY_MAX_ATTEMPTS_<PRIORITY>`` overrides (the variables of reference 002)."""
    found: dict[str, int] = {}
    for name in priorities:
        raw = os.environ.get(f"JOBS_RETRY_MAX_ATTEMPTS_{name}")
        if raw is None:
            continue
        if not raw.strip().isdigit() or int(raw) < 1:
            raise ConfigurationError(
                f"JOBS_RETRY_MAX_ATTEMPTS_{name}={raw!r}: expected a whole number of at least 1"
            )
        found[name] = int(raw)
    return found


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole-number setting from the environment; a malformed one is a one-line error that
    names the variable (not a ValueError traceback)."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or (minimum is not None and value < minimum):
        floor = f" of at least {minimum}" if minimum is not None else ""
        raise ConfigurationError(f"{name}={raw!r}: expected a whole number{floor}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    """A number setting from the environment, checked like `env_int`."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or value != value or (minimum is not None and value < minimum):
        floor = f" of at least {minimum:g}" if minimum is not None else ""
        raise ConfigurationError(f"{name}={raw!r}: expected a number{floor}")
    return value
