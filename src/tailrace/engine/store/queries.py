"""Moved to `tailrace.db.queries`; this name stays until the branches that import it from
here are merged (then delete it)."""

from ...db.queries import load_queries

__all__ = ["load_queries"]
