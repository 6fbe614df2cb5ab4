"""Prometheus metrics of the object jobs, in a registry of their own (importing the object jobs
must not change what the engine's `/metrics` shows); serve it beside the engine's, e.g.
``generate_latest(metrics.REGISTRY)``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)

COMPOSED = Counter("tailrace_objects_composed", "Objects composed from chunks", registry=REGISTRY)
COMPOSED_BYTES = Counter(
    "tailrace_objects_composed_bytes", "Bytes of the objects composed", registry=REGISTRY
)
COMPOSE_FAILED = Counter(
    "tailrace_objects_compose_failures",
    "Composes that failed (missing chunk, store error, verification)",
    registry=REGISTRY,
)
RETENTION_RUNS = Counter(
    "tailrace_objects_retention_runs", "Retention sweeps run", registry=REGISTRY
)
RETENTION_DELETED = Counter(
    "tailrace_objects_retention_deleted_objects",
    "Abandoned chunks deleted by retention",
    registry=REGISTRY,
)
RETENTION_BYTES = Counter(
    "tailrace_objects_retention_deleted_bytes",
    "Bytes of the abandoned chunks deleted by retention",
    registry=REGISTRY,
)
RETENTION_UPLOADS = Counter(
    "tailrace_objects_retention_failed_uploads",
    "Upload records marked failed by retention",
    registry=REGISTRY,
)
RETENTION_ERRORS = Counter(
    "tailrace_objects_retention_errors",
    "Uploads retention could not clean (retried at the next run)",
    registry=REGISTRY,
)
