"""How long a PostgreSQL connection waits for its server (see `connection.Reconnecting`).

Workers are `PATIENT` (they wait out outages of any length), the admin service is `PROMPT`
(a request answers 503 within about two seconds), everything else gets `DEFAULT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConnectionPolicy:
    connect_timeout_s: int = 5  # libpq's own floor is 2 s
    op_timeout_s: float | None = None  # the connection is cut after this long in one operation
    retry_for_s: float | None = 60.0  # keep reconnecting this long; None: forever
    statement_timeout_s: float | None = None  # the server's own limit, while it runs
    log_outages: bool = True  # off where the caller reports the failure itself (a command)

    def connect_kwargs(self, url: str) -> dict[str, Any]:
        """Keyword arguments for `psycopg.connect` that the URL does not set itself."""
        from psycopg.conninfo import conninfo_to_dict  # here: SQLite users need no psycopg

        given = conninfo_to_dict(url)
        wanted: dict[str, Any] = {
            "connect_timeout": self.connect_timeout_s,
            # a peer that vanished without a reset (a cut network) is noticed in ~20 s
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 2,
        }
        return {k: v for k, v in wanted.items() if k not in given}


PATIENT = ConnectionPolicy(retry_for_s=None)
DEFAULT = ConnectionPolicy()
# The admin service: a request that needs a frozen or absent database answers 503 in ~2 s.
# It retries only a failure that came at once (a connection that a restart broke while it
# sat in the pool), never one that took its time.
PROMPT = ConnectionPolicy(
    connect_timeout_s=2, op_timeout_s=1.5, retry_for_s=0.5, statement_timeout_s=1.5
)
