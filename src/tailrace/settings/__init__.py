"""Where settings come from: arguments first, then the environment (each setting's
``TAILRACE_`` name, then the names users know from elsewhere), then ``tailrace.toml``, then
embedded defaults. docs/settings.md lists them all.

This module is imported by every command, ``tailrace --help`` included: it imports no
pydantic. `current()` loads the model (`model`, `sources`) the first time a setting is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .model import Settings

DEFAULT_DATABASE_URL = "sqlite:///.tailrace/tailrace.db"
DEFAULT_DATA_DIR = ".tailrace"

_cached: tuple[object, Settings] | None = None


def current(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings, read once per process (again only if the environment, the working
    directory or the TOML file changed: tests and `tailrace serve` change them). With
    ``environ``, the settings that mapping gives, not cached."""
    global _cached
    from .sources import config_file, load

    if environ is not None:
        return load(environ)
    path = config_file(os.environ)
    stamp = path.stat().st_mtime_ns if path else None
    key = (frozenset(os.environ.items()), os.getcwd(), path, stamp)
    if _cached is None or _cached[0] != key:
        _cached = (key, load())
    return _cached[1]


def data_dir() -> Path:
    """Where tailrace keeps local state (worker logs, the generated API token):
    ``TAILRACE_DATA_DIR``, else ``.tailrace`` in the current directory."""
    return Path(current().data_dir)


def worker_log_dir(job_id: str) -> Path:
    """The directory of one reprocessing job's worker logs (``worker-<index>.log``)."""
    return data_dir() / "logs" / job_id


def database_url(explicit: str | None = None) -> str:
    """``TAILRACE_DATABASE_URL``, falling back to ``DATABASE_URL``, then a local SQLite file."""
    return explicit or current().database_url


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


def max_attempts_from_env(priorities: Iterable[str]) -> dict[str, int]:
    """``JOBS_RETRY_MAX_ATTEMPTS_<PRIORITY>`` overrides (coming from the priority-job
    framework; ``TAILRACE_JOBS_RETRY_MAX_ATTEMPTS_<PRIORITY>`` too)."""
    wanted = set(priorities)
    return {p: n for p, n in current().max_attempts().items() if p in wanted}


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """A whole-number setting from the environment; a malformed one is a one-line error
    that names the variable. For names not in the model: prefer a field of `Settings`."""
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
