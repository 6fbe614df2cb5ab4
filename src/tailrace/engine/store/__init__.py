"""Stores: where jobs live. ``open_store`` picks one from a URL."""

from __future__ import annotations

from ...errors import ConfigurationError
from .base import Listener, Store


def open_store(url: str) -> Store:
    """``postgresql://…`` (or ``postgres://``) or ``sqlite:///path``."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres.store import PostgresStore

        return PostgresStore(url)
    if url.startswith("sqlite:"):
        from .sqlite.store import SqliteStore

        return SqliteStore(url)
    raise ConfigurationError(
        f"unsupported database URL {url.split('://')[0]!r}://…: "
        "expected postgresql://… or sqlite:///path"
    )


__all__ = ["Listener", "Store", "open_store"]
