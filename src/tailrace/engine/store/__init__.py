"""Stores: where jobs live. ``open_store`` picks one from a URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...errors import ConfigurationError
from .base import Listener, Store

if TYPE_CHECKING:
    from .postgres.connection import ConnectionPolicy


def open_store(url: str, policy: ConnectionPolicy | None = None) -> Store:
    """``postgresql://…`` (or ``postgres://``) or ``sqlite:///path``. ``policy``: how long
    a PostgreSQL store waits for its server (default: `connection.DEFAULT`)."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres.connection import DEFAULT
        from .postgres.store import PostgresStore

        return PostgresStore(url, policy or DEFAULT)
    if url.startswith("sqlite:"):
        from .sqlite.store import SqliteStore

        return SqliteStore(url)
    raise ConfigurationError(
        f"unsupported database URL {url.split('://')[0]!r}://…: "
        "expected postgresql://… or sqlite:///path"
    )


__all__ = ["Listener", "Store", "open_store"]
