"""The settings of Jitsu's admin service (reference 000), read as tailrace's own.

Jitsu's admin reads its settings with the prefix ``ADMIN_`` (``ADMIN_DATABASE_URL``,
``ADMIN_KUBERNETES_NAMESPACE``, ...) and names some of them differently from the reference
document (``KAFKA_DESTINATIONS_TOPIC_NAME``, ``KUBERNETES_CLIENT_CONFIG``). An operator who
brings that environment gets it honoured: each such name is copied to the name tailrace
reads, unless that one is set already (tailrace's own names win). A setting tailrace
recognises but does not honour is named in a startup warning, never silently dropped.

The hashed tokens (``ADMIN_AUTH_TOKENS``) are read by `config.ApiConfig`, see `auth`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from ..settings import current

# Jitsu's name -> the name tailrace reads (first one set wins, in this order).
ALIASES: tuple[tuple[str, str], ...] = (
    ("ADMIN_DATABASE_URL", "DATABASE_URL"),
    ("ADMIN_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    ("KAFKA_DESTINATIONS_TOPIC_NAME", "KAFKA_DESTINATIONS_TOPIC"),
    ("ADMIN_KAFKA_DESTINATIONS_TOPIC_NAME", "KAFKA_DESTINATIONS_TOPIC"),
    ("ADMIN_REPOSITORY_URL", "REPOSITORY_URL"),
    ("ADMIN_REPOSITORY_AUTH_TOKEN", "REPOSITORY_AUTH_TOKEN"),
    ("ADMIN_KUBERNETES_CLIENT_CONFIG", "K8S_CONFIG_PATH"),
    ("KUBERNETES_CLIENT_CONFIG", "K8S_CONFIG_PATH"),
    ("ADMIN_KUBERNETES_NAMESPACE", "K8S_NAMESPACE"),
    ("KUBERNETES_NAMESPACE", "K8S_NAMESPACE"),
    ("ADMIN_KUBERNETES_CONTEXT", "K8S_CONTEXT"),
    ("KUBERNETES_CONTEXT", "K8S_CONTEXT"),
    ("ADMIN_KUBERNETES_NODE_SELECTOR", "KUBERNETES_NODE_SELECTOR"),
    ("ADMIN_K8S_MAX_PARALLEL_WORKERS", "K8S_MAX_PARALLEL_WORKERS"),
    ("ADMIN_REPROCESSING_WORKER_IMAGE", "REPROCESSING_WORKER_IMAGE"),
    (
        "ADMIN_REPROCESSING_WORKER_KAFKA_BOOTSTRAP_SERVERS",
        "REPROCESSING_WORKER_KAFKA_BOOTSTRAP_SERVERS",
    ),
)

# Read elsewhere (auth, the port option): recognised and honoured.
HONOURED = frozenset(
    {"ADMIN_AUTH_TOKENS", "ADMIN_RAW_AUTH_TOKENS", "ADMIN_TOKEN_SECRET", "ADMIN_HTTP_PORT"}
)

# Recognised, not honoured: why, and what to do instead.
NOT_HONOURED: dict[str, str] = {
    "ADMIN_INSTANCE_ID": "tailrace processes need no instance id",
    "ADMIN_LOG_FORMAT": "tailrace always logs JSON lines",
    "ADMIN_CONFIG_PATH": "tailrace reads no admin.env file; put its settings in the environment",
    "ADMIN_CACHE_DIR": "workers fetch the repository once at start and keep no cache",
    "ADMIN_REPOSITORY_REFRESH_PERIOD_SEC": "workers fetch the repository once at start",
    "ADMIN_KAFKA_SSL": "set KAFKA_SECURITY_PROTOCOL=SSL (or SASL_SSL)",
    "ADMIN_KAFKA_SSL_SKIP_VERIFY": "certificate checks stay on; give the CA to librdkafka",
    "ADMIN_KAFKA_SASL": "set KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
    "ADMIN_KAFKA_TOPIC_COMPRESSION": "the Kafka sink's producer settings are tailrace's",
    "ADMIN_PRODUCER_BATCH_SIZE": "events per batch is the job's batch_size",
    "ADMIN_PRODUCER_LINGER_MS": "the Kafka sink's producer settings are tailrace's",
    "ADMIN_PRODUCER_QUEUE_SIZE": "the Kafka sink's producer settings are tailrace's",
    "ADMIN_CLICKHOUSE_URL": "dead-letter reprocessing from ClickHouse is not supported",
    "ADMIN_CLICKHOUSE_HOST": "dead-letter reprocessing from ClickHouse is not supported",
    "ADMIN_CLICKHOUSE_DATABASE": "dead-letter reprocessing from ClickHouse is not supported",
    "ADMIN_CLICKHOUSE_USERNAME": "dead-letter reprocessing from ClickHouse is not supported",
    "ADMIN_CLICKHOUSE_PASSWORD": "dead-letter reprocessing from ClickHouse is not supported",
    "ADMIN_CLICKHOUSE_SSL": "dead-letter reprocessing from ClickHouse is not supported",
}

_KUBERNETES_ONLY = (
    "K8S_CONFIG_PATH",
    "K8S_NAMESPACE",
    "K8S_CONTEXT",
    "K8S_MAX_PARALLEL_WORKERS",
    "KUBERNETES_NODE_SELECTOR",
    "REPROCESSING_WORKER_IMAGE",
)


def adopt(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy Jitsu's names to tailrace's (where tailrace's are unset); returns what was
    adopted, as ``JITSU_NAME -> NAME`` lines. Idempotent: every server process runs it."""
    env = os.environ if environ is None else environ
    adopted = []
    for theirs, ours in ALIASES:
        value = env.get(theirs)
        if value and not env.get(ours):
            env[ours] = value
            adopted.append(f"{theirs} -> {ours}")
    return adopted


def executor_name(environ: Mapping[str, str] | None = None) -> str:
    """TAILRACE_EXECUTOR; unset, ``kubernetes`` where a worker image is configured (Jitsu's
    admin always runs its workers on Kubernetes), else ``local``."""
    settings = current(environ)
    name = (settings.executor or "").strip().lower()
    if name:
        return name
    return "kubernetes" if settings.reprocessing_worker_image else "local"


def warnings(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """One line per setting in the environment that tailrace recognises and does not
    honour (or does not know, under the ``ADMIN_`` prefix), naming it and what to do."""
    env = os.environ if environ is None else environ
    known = {theirs for theirs, _ in ALIASES} | HONOURED
    found = []
    for name in sorted(env):
        if name in NOT_HONOURED:
            found.append(f"{name} is set but not honoured: {NOT_HONOURED[name]}")
        elif name.startswith("ADMIN_") and name not in known:
            found.append(f"{name} is set but is not a setting tailrace knows; it is ignored")
    if executor_name(env) != "kubernetes":
        for name in _KUBERNETES_ONLY:
            if env.get(name):
                found.append(
                    f"{name} is set but not honoured: workers run as local processes; "
                    "set TAILRACE_EXECUTOR=kubernetes (or REPROCESSING_WORKER_IMAGE) to run "
                    "them as a Kubernetes Indexed Job"
                )
    return found
