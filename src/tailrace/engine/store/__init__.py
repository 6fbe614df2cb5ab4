"""Stores: where jobs live. ``open_store`` picks one from a URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...db.dialect import Dialect
from .base import Listener, Store

if TYPE_CHECKING:
    from ...db.connection import ConnectionPolicy


def open_store(url: str, policy: ConnectionPolicy | None = None) -> Store:
    """``postgresql://…`` (or ``postgres://``) or ``sqlite:///path``. ``policy``: how long
    a PostgreSQL store waits for its server (default: `connection.DEFAULT`)."""
    if Dialect.of(url) is Dialect.POSTGRES:
        from ...db.connection import DEFAULT
        from .postgres.store import PostgresStore

        return PostgresStore(url, policy or DEFAULT)
    from .sqlite.store import SqliteStore

    return SqliteStore(url)


__all__ = ["Listener", "Store", "open_store"]
