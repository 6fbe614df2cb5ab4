"""The optional parts of tailrace and the packages they need (pyproject's extras).

The core (engine, reprocessing, ingest, the Kafka and S3 clients) installs with
``pip install tailrace``; what only some deployments use is an extra:

- ``server``: the admin API and dashboard (``tailrace serve``): FastAPI, uvicorn;
- ``kubernetes``: the Kubernetes executor (the client alone is 126 MB);
- ``redis``: Redis as the consumer's dedup store, the producer's spool or the outbox mirror;
- ``otel``: exporting OpenTelemetry traces (the SDK and the OTLP exporter; the API, which
  only carries trace context, is in the core);
- ``all``: every one of them.

`require` imports a module of an extra, or says in one line which extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigurationError

# extra -> what it is for, as the message says it
EXTRAS: dict[str, str] = {
    "server": "the admin service (tailrace serve)",
    "kubernetes": "the Kubernetes executor",
    "redis": "Redis (dedup store, spool, outbox mirror)",
    "otel": "exporting OpenTelemetry traces",
}


class MissingExtraError(ConfigurationError, ImportError):
    """A feature needs a package of an extra that is not installed.

    Also an ImportError, so that code which probes for an optional package keeps working.
    """

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"{EXTRAS[extra]} needs the {extra!r} extra (no module {module!r}): "
            f"pip install 'tailrace[{extra}]'"
        )
        self.extra = extra
        self.module = module


def require(extra: str, module: str) -> ModuleType:
    """Import ``module`` (of ``extra``), or raise `MissingExtraError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # the module, or a package it needs: either way the extra is not (fully) installed
        raise MissingExtraError(extra, exc.name or module) from None
