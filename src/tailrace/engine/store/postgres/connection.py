"""Moved to `tailrace.db.connection`; this name stays until the branches that import it
from here are merged (then delete it)."""

from ....db.connection import (
    DEFAULT,
    PATIENT,
    PROMPT,
    SCHEMA_LOCK,
    ConnectionPolicy,
    Reconnecting,
    connect,
    connection_lost,
    deadline,
)

__all__ = [
    "DEFAULT",
    "PATIENT",
    "PROMPT",
    "SCHEMA_LOCK",
    "ConnectionPolicy",
    "Reconnecting",
    "connect",
    "connection_lost",
    "deadline",
]
