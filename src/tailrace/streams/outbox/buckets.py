"""Which outbox keys a relay may publish: a share of the key buckets, owned by its session.

Each key hashes into one of `BUCKETS` buckets (``tailrace_outbox_bucket``, streams migration 0004);
a relay publishes only the events of buckets whose session advisory lock it holds, so no two
relays ever send the same key at once and neither needs to write a row to claim an event.
Every relay session also holds a shared presence lock: ``ceil(BUCKETS / relays up)`` is a
fair share. At each balance (between batches, none in flight) a relay gives back what it holds
beyond its share and takes free buckets up to it, so relays that start or stop shift the
buckets within a balance interval. A bucket that changes hands while its last owner's batch
is unsettled (the owner died) waits in the claim until that batch is reconciled.
"""

from __future__ import annotations

import math
import random
import zlib
from typing import Any

import psycopg

from . import Q

BUCKETS = 64
BUCKET_CLASS = 0x0B0C_5E8  # first key of the advisory locks on buckets
PRESENCE_CLASS = 0x0B0C_5E9  # first key of the shared lock every relay session holds


def schema_class(base: int, schema: str) -> int:
    """`base` made particular to `schema`: advisory locks are database-wide, and the relays
    of another tailrace schema in the same database must neither hold these buckets nor
    count towards the fair share. The low bit (bucket vs presence) is kept."""
    return (base ^ (zlib.crc32(schema.encode()) & 0x0FFF_FFFE)) & 0x7FFF_FFFF


class Buckets:
    """The buckets this relay's database session owns; forgotten when the session changes."""

    def __init__(self) -> None:
        self.owned: list[int] = []
        self.share = BUCKETS
        self.pid: int | None = None
        self.started: Any = None
        self.bucket_class = BUCKET_CLASS
        self.presence_class = PRESENCE_CLASS

    def on_connect(self, conn: psycopg.Connection[Any]) -> None:
        """Setup of each new session: the presence lock; a new session owns nothing."""
        row = conn.execute("SELECT current_schema()").fetchone()
        schema = str(row[0]) if row and row[0] else "public"
        self.bucket_class = schema_class(BUCKET_CLASS, schema)
        self.presence_class = schema_class(PRESENCE_CLASS, schema)
        conn.execute(Q["present"], {"class": self.presence_class})
        row = conn.execute(
            "SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
        ).fetchone()
        self.pid = conn.info.backend_pid
        self.started = row[0] if row else None
        self.owned = []

    def current(self, conn: psycopg.Connection[Any]) -> bool:
        """Is `conn` the session that owns `owned`?"""
        return conn.info.backend_pid == self.pid

    def balance(self, conn: psycopg.Connection[Any]) -> None:
        """Give back what is beyond a fair share, take free buckets up to it."""
        row = conn.execute(Q["relays"], {"class": self.presence_class}).fetchone()
        self.share = math.ceil(BUCKETS / max(1, int(row[0]) if row else 1))
        extra = len(self.owned) - self.share
        if extra > 0:
            given, self.owned = self.owned[:extra], self.owned[extra:]
            conn.execute(Q["drop_buckets"], {"class": self.bucket_class, "buckets": given})
        elif extra < 0:
            free = [b for b in range(BUCKETS) if b not in self.owned]
            random.shuffle(free)  # relays starting together do not all try the same first
            params = {"class": self.bucket_class, "buckets": free, "want": -extra}
            self.owned += [int(r[0]) for r in conn.execute(Q["take_buckets"], params)]
        self.owned.sort()

    @property
    def short(self) -> bool:
        """Owns less than its share: free buckets may come up at the next balance."""
        return len(self.owned) < self.share
