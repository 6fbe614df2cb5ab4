"""Every setting tailrace reads, as one typed model: its ``TAILRACE_`` name comes from the
field's name, and the names users already know (from the systems tailrace replaces) are its
aliases. `sources` reads it from the environment and ``tailrace.toml``; docs/settings.md is
generated from it (`reference`).

Imported only when a command needs a setting: pydantic-settings costs about a quarter of a
second to import, more than ``tailrace --help`` may take in all.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, JsonValue, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import DEFAULT_DATABASE_URL

PREFIX = "TAILRACE_"
PRIORITIES = ("CRITICAL", "HIGH", "DEFAULT", "LOW", "BULK")


def setting(
    default: Any,
    doc: str,
    *aliases: str,
    group: str,
    secret: bool = False,
    ge: float | None = None,
    le: float | None = None,
    publish: bool = False,
) -> Any:
    """A field with its documentation. ``aliases`` are read after the ``TAILRACE_`` name, in
    order; ``secret`` masks the value in ``tailrace config``; ``publish`` copies a value
    set under another name to the first alias, for the code and libraries that read that
    one (the Kafka client settings, read by the sink itself)."""
    extra: dict[str, JsonValue] = {
        "aliases": list(aliases),
        "group": group,
        "secret": secret,
        "publish": publish,
    }
    return Field(default, description=doc, ge=ge, le=le, json_schema_extra=extra)


CORE = "General"
ENGINE = "Job engine and workers"
REPROCESS = "Reprocessing workers"
API = "Admin service (tailrace serve)"
KAFKA = "Kafka"
K8S = "Kubernetes executor"
REPOSITORY = "Repository service (routing)"
INGEST = "S3 and tailrace ingest"
STREAMS = "Streams (consumers, outbox, spool)"


class Settings(BaseSettings):
    """tailrace's settings. Read them with `tailrace.settings.current()`."""

    model_config = SettingsConfigDict(
        extra="ignore", validate_default=False, frozen=True, coerce_numbers_to_str=True
    )

    # -- general --------------------------------------------------------------------------
    database_url: str = setting(
        DEFAULT_DATABASE_URL,
        "The job database: `postgresql://…` or `sqlite:///path` (the `--database-url` "
        "option wins).",
        "DATABASE_URL",
        "ADMIN_DATABASE_URL",
        group=CORE,
        secret=True,
    )
    data_dir: str = setting(
        ".tailrace",
        "Where tailrace keeps local state: worker logs, the generated API token.",
        group=CORE,
    )
    app: str | None = setting(
        None, "`module:attribute` of your App, which registers the tasks (`--app`).", group=CORE
    )
    log_level: str = setting(
        "INFO", "DEBUG, INFO, WARNING, ERROR or CRITICAL (`--log-level`).", group=CORE
    )
    log_format: str | None = setting(
        None,
        "`text` (coloured) or `json`, one line per event (`--log-format`; default: text on "
        "a terminal, JSON otherwise).",
        group=CORE,
    )
    executor: str | None = setting(
        None,
        "How `tailrace serve` starts the workers of a reprocessing job: `local` (child "
        "processes) or `kubernetes` (an Indexed Job). Unset: `kubernetes` where a worker "
        "image is set, else `local`. `tailrace reprocess` always starts local workers.",
        group=CORE,
    )

    # -- job engine -----------------------------------------------------------------------
    worker_priority_filter: str | None = setting(
        None,
        "Comma-separated priorities an engine worker works, e.g. `CRITICAL,HIGH` "
        "(`--priorities`; default all).",
        "WORKER_PRIORITY_FILTER",
        group=ENGINE,
    )
    worker_nice: int = setting(
        10, "The niceness local reprocessing workers run at.", group=ENGINE, ge=0
    )
    metrics_port: int | None = setting(
        None,
        "Serve a worker's Prometheus metrics on this port (`--metrics-port`).",
        group=ENGINE,
        ge=1,
        le=65535,
    )
    metrics_host: str = setting(
        "127.0.0.1",
        "The address of a worker's metrics server (`0.0.0.0` in a pod).",
        group=ENGINE,
    )
    jobs_retry_max_attempts_critical: int | None = setting(
        None,
        "Attempts a CRITICAL job gets before it is dead.",
        "JOBS_RETRY_MAX_ATTEMPTS_CRITICAL",
        group=ENGINE,
        ge=1,
    )
    jobs_retry_max_attempts_high: int | None = setting(
        None,
        "Attempts a HIGH job gets before it is dead.",
        "JOBS_RETRY_MAX_ATTEMPTS_HIGH",
        group=ENGINE,
        ge=1,
    )
    jobs_retry_max_attempts_default: int | None = setting(
        None,
        "Attempts a DEFAULT job gets before it is dead.",
        "JOBS_RETRY_MAX_ATTEMPTS_DEFAULT",
        group=ENGINE,
        ge=1,
    )
    jobs_retry_max_attempts_low: int | None = setting(
        None,
        "Attempts a LOW job gets before it is dead.",
        "JOBS_RETRY_MAX_ATTEMPTS_LOW",
        group=ENGINE,
        ge=1,
    )
    jobs_retry_max_attempts_bulk: int | None = setting(
        None,
        "Attempts a BULK job gets before it is dead.",
        "JOBS_RETRY_MAX_ATTEMPTS_BULK",
        group=ENGINE,
        ge=1,
    )
    jobs_queue_capacity_critical: int | None = setting(
        None,
        "The most CRITICAL jobs waiting at once.",
        "JOBS_QUEUE_CAPACITY_CRITICAL",
        group=ENGINE,
        ge=1,
    )
    jobs_queue_capacity_high: int | None = setting(
        None,
        "The most HIGH jobs waiting at once.",
        "JOBS_QUEUE_CAPACITY_HIGH",
        group=ENGINE,
        ge=1,
    )
    jobs_queue_capacity_default: int | None = setting(
        None,
        "The most DEFAULT jobs waiting at once.",
        "JOBS_QUEUE_CAPACITY_DEFAULT",
        group=ENGINE,
        ge=1,
    )
    jobs_queue_capacity_low: int | None = setting(
        None,
        "The most LOW jobs waiting at once.",
        "JOBS_QUEUE_CAPACITY_LOW",
        group=ENGINE,
        ge=1,
    )
    jobs_queue_capacity_bulk: int | None = setting(
        None,
        "The most BULK jobs waiting at once.",
        "JOBS_QUEUE_CAPACITY_BULK",
        group=ENGINE,
        ge=1,
    )

    priority_aging_s: float = setting(
        60.0,
        "Seconds a waiting job takes to climb one priority level, in every queue.",
        group=ENGINE,
        ge=0,
    )
    queue_aging_s: str | None = setting(
        None, "Per queue: `reports=600,payments=10` (seconds per level).", group=ENGINE
    )
    worker_enabled: bool | None = setting(
        None,
        "`false` starts `tailrace worker` with processing off (resumed without a restart).",
        "QUARKUS_SCHEDULER_ENABLED",
        group=ENGINE,
    )
    worker_pool: str | None = setting(
        None,
        "The pool a worker belongs to, paused and resumed as one (`--pool`).",
        group=ENGINE,
    )
    service_name: str | None = setting(
        None,
        "The `service` of log lines (else `OTEL_SERVICE_NAME`, else `tailrace-<command>`).",
        group=CORE,
    )

    # -- reprocessing workers -------------------------------------------------------------
    job_id: str | None = setting(
        None,
        "The reprocessing job a worker started by `tailrace worker` works (`--job`). The bare "
        "`JOB_ID` counts only beside `WORKER_INDEX`: a batch scheduler's own `JOB_ID` does "
        "not turn an engine worker into a reprocessing worker.",
        "JOB_ID",
        group=REPROCESS,
    )
    worker_index: int = setting(
        0,
        "This worker's index within its reprocessing job (`--index`).",
        "WORKER_INDEX",
        group=REPROCESS,
        ge=0,
    )
    total_workers: int | None = setting(
        None,
        "How many workers share a job read from mounted files (else `worker_count` beside them).",
        "TOTAL_WORKERS",
        group=REPROCESS,
        ge=1,
    )
    worker_config_dir: str = setting(
        "/config",
        "Where a worker finds a job's mounted `files/files.json` and `job/config.json`.",
        group=REPROCESS,
    )
    default_sink: str | None = setting(
        None,
        "The sink of jobs that name none (else the Kafka destinations topic, where "
        "`KAFKA_BOOTSTRAP_SERVERS` is set).",
        group=REPROCESS,
        secret=True,
    )

    # -- admin service --------------------------------------------------------------------
    host: str = setting("127.0.0.1", "The address `tailrace serve` listens on.", group=API)
    port: int = setting(
        3049, "The port `tailrace serve` listens on.", "ADMIN_HTTP_PORT", group=API, ge=1
    )
    api_tokens: str | None = setting(
        None,
        "Comma-separated bearer tokens of the admin API (16 characters or more). Unset: one "
        "is generated into the data directory.",
        group=API,
        secret=True,
    )
    admin_raw_auth_tokens: str | None = setting(
        None,
        "More plain tokens, as Jitsu's admin takes them.",
        "ADMIN_RAW_AUTH_TOKENS",
        group=API,
        secret=True,
    )
    admin_auth_tokens: str | None = setting(
        None,
        "Comma-separated salted token hashes (`salt.hash`), checked with the token secret.",
        "ADMIN_AUTH_TOKENS",
        group=API,
        secret=True,
    )
    admin_token_secret: str | None = setting(
        None,
        "Comma-separated secrets the token hashes were made with.",
        "ADMIN_TOKEN_SECRET",
        group=API,
        secret=True,
    )
    metrics_public: bool = setting(False, "Serve `/metrics` without a token.", group=API)
    api_pool_size: int = setting(8, "Database connections of each server process.", group=API, ge=1)
    api_status_ttl_ms: float = setting(
        250, "How old (ms) a job's status may be when served.", group=API, ge=0
    )
    api_source_roots: str | None = setting(
        None,
        "Directories (separated by `:`) jobs started through the API may read and write "
        "files in; default the service's working directory.",
        group=API,
    )
    api_allow_sink_urls: bool = setting(
        False,
        "Let API clients give any sink URL and S3 endpoint, used with the service's credentials.",
        group=API,
    )
    cookie_secure: bool = setting(
        False, "Mark cookies Secure even over plain HTTP (TLS ends at a proxy).", group=API
    )
    stream_consumers: str | None = setting(
        None, "`group@topic,…` whose lag the dashboard shows.", group=API
    )
    api_max_body_bytes: int = setting(1 << 20, "Larger request bodies get 413.", group=API, ge=1)
    api_cors_origins: str | None = setting(
        None, "Comma-separated origins allowed by CORS; `*` for any.", group=API
    )

    # -- Kafka ----------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = setting(
        None,
        "The Kafka brokers, `host:port,…`.",
        "KAFKA_BOOTSTRAP_SERVERS",
        "ADMIN_KAFKA_BOOTSTRAP_SERVERS",
        group=KAFKA,
        publish=True,
    )
    kafka_destinations_topic: str = setting(
        "bulker-destinations",
        "The topic reprocessed events go to by default.",
        "KAFKA_DESTINATIONS_TOPIC",
        "KAFKA_DESTINATIONS_TOPIC_NAME",
        "ADMIN_KAFKA_DESTINATIONS_TOPIC_NAME",
        group=KAFKA,
        publish=True,
    )
    reprocessing_worker_kafka_bootstrap_servers: str | None = setting(
        None,
        "The brokers as the workers reach them, where that differs from the service.",
        "REPROCESSING_WORKER_KAFKA_BOOTSTRAP_SERVERS",
        "ADMIN_REPROCESSING_WORKER_KAFKA_BOOTSTRAP_SERVERS",
        group=KAFKA,
    )
    kafka_security_protocol: str | None = setting(
        None,
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        "KAFKA_SECURITY_PROTOCOL",
        group=KAFKA,
        publish=True,
    )
    kafka_sasl_mechanism: str | None = setting(
        None,
        "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
        "KAFKA_SASL_MECHANISM",
        group=KAFKA,
        publish=True,
    )
    kafka_sasl_username: str | None = setting(
        None, "The SASL user.", "KAFKA_SASL_USERNAME", group=KAFKA, publish=True
    )
    kafka_sasl_password: str | None = setting(
        None,
        "The SASL password.",
        "KAFKA_SASL_PASSWORD",
        group=KAFKA,
        secret=True,
        publish=True,
    )
    kafka_enable_idempotence: bool | None = setting(
        None,
        "`false` for a broker whose idempotent producer support is broken (a resend may "
        "then duplicate, never lose).",
        "KAFKA_ENABLE_IDEMPOTENCE",
        group=KAFKA,
        publish=True,
    )
    kafka_connect_timeout_s: float = setting(
        30.0,
        "Seconds the Kafka sink waits for a broker before the job fails.",
        "KAFKA_CONNECT_TIMEOUT_S",
        group=KAFKA,
        publish=True,
    )
    kafka_outage_timeout_s: float = setting(
        300.0,
        "Seconds the Kafka sink keeps retrying through a broker outage.",
        "KAFKA_OUTAGE_TIMEOUT_S",
        group=KAFKA,
        publish=True,
    )
    kafka_consumer_group: str | None = setting(
        None,
        "The consumer group of `tailrace consume` (`--group`).",
        "KAFKA_CONSUMER_GROUP",
        group=KAFKA,
    )
    kafka_auto_offset_reset: str | None = setting(
        None,
        "Where a consumer group without a committed offset starts: `earliest` or `latest`.",
        "KAFKA_AUTO_OFFSET_RESET",
        group=KAFKA,
        publish=True,
    )

    # -- Kubernetes -----------------------------------------------------------------------
    reprocessing_worker_image: str | None = setting(
        None,
        "The image of the worker pods; setting it selects the Kubernetes executor.",
        "REPROCESSING_WORKER_IMAGE",
        "ADMIN_REPROCESSING_WORKER_IMAGE",
        group=K8S,
    )
    k8s_namespace: str = setting(
        "default",
        "The namespace of the workers' Jobs.",
        "K8S_NAMESPACE",
        "ADMIN_KUBERNETES_NAMESPACE",
        "KUBERNETES_NAMESPACE",
        group=K8S,
    )
    k8s_config_path: str | None = setting(
        None,
        "A kubeconfig file, or its YAML text; unset or `local`: in-cluster, else the "
        "default kubeconfig.",
        "K8S_CONFIG_PATH",
        "ADMIN_KUBERNETES_CLIENT_CONFIG",
        "KUBERNETES_CLIENT_CONFIG",
        group=K8S,
        secret=True,
    )
    k8s_context: str | None = setting(
        None,
        "The kubeconfig context to use.",
        "K8S_CONTEXT",
        "ADMIN_KUBERNETES_CONTEXT",
        "KUBERNETES_CONTEXT",
        group=K8S,
    )
    k8s_max_parallel_workers: int = setting(
        50,
        "The most worker pods of one job running at once.",
        "K8S_MAX_PARALLEL_WORKERS",
        "ADMIN_K8S_MAX_PARALLEL_WORKERS",
        group=K8S,
        ge=1,
    )
    k8s_node_selector: str | None = setting(
        None,
        'The pods\' node selector: `key=value,…` or JSON like `{"disktype": "ssd"}`.',
        "KUBERNETES_NODE_SELECTOR",
        "ADMIN_KUBERNETES_NODE_SELECTOR",
        group=K8S,
    )
    k8s_backoff_limit_per_index: int = setting(
        3,
        "Restarts of one worker pod before its index fails.",
        "K8S_BACKOFF_LIMIT_PER_INDEX",
        group=K8S,
        ge=1,
    )
    k8s_worker_cpu: str = setting(
        "1", "CPU requested by each worker pod.", "K8S_WORKER_CPU", group=K8S
    )
    k8s_worker_memory: str = setting(
        "512Mi",
        "Memory requested (and limit) of each worker pod.",
        "K8S_WORKER_MEMORY",
        group=K8S,
    )

    # -- repository -----------------------------------------------------------------------
    repository_url: str | None = setting(
        None,
        "The repository service whose streams give events their destinations (when a job "
        "names no connection ids).",
        "REPOSITORY_URL",
        "ADMIN_REPOSITORY_URL",
        group=REPOSITORY,
    )
    repository_auth_token: str | None = setting(
        None,
        "The repository service's bearer token.",
        "REPOSITORY_AUTH_TOKEN",
        "ADMIN_REPOSITORY_AUTH_TOKEN",
        group=REPOSITORY,
        secret=True,
    )
    repository_retries: int = setting(3, "Retries of the repository fetch.", group=REPOSITORY, ge=0)
    repository_backoff_s: float = setting(
        0.5, "Seconds before the first retry, doubled each time.", group=REPOSITORY, ge=0
    )
    repository_timeout_s: float = setting(
        10.0, "Seconds one repository request may take.", group=REPOSITORY, ge=0
    )

    # -- S3 and ingest --------------------------------------------------------------------
    s3_endpoint_url: str | None = setting(
        None,
        "An S3 API other than AWS's (MinIO, moto, …).",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        group=INGEST,
    )
    aws_region: str | None = setting(
        None,
        "The S3 region (wins over `AWS_DEFAULT_REGION`).",
        "AWS_REGION",
        group=INGEST,
    )
    ingest_db_host: str | None = setting(
        None,
        "With the other `DB_*`: the PostgreSQL sink of `tailrace ingest` (table `log`).",
        "DB_HOST",
        group=INGEST,
    )
    ingest_db_port: str | None = setting(None, "Its port (5432).", "DB_PORT", group=INGEST)
    ingest_db_username: str | None = setting(None, "Its user.", "DB_USERNAME", group=INGEST)
    ingest_db_password: str | None = setting(
        None, "Its password.", "DB_PASSWORD", group=INGEST, secret=True
    )
    ingest_db_database: str | None = setting(
        None, "Its database (default: the user's name).", "DB_DATABASE", group=INGEST
    )
    ingest_db_name: str | None = setting(None, "Same as `DB_DATABASE`.", "DB_NAME", group=INGEST)

    # -- streams --------------------------------------------------------------------------
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "Redis, for consumer dedup and the producer's spool.",
        "REDIS_URL",
        group=STREAMS,
        secret=True,
    )
    spool_url: str | None = setting(
        None, "The producer's fallback spool (`tailrace spool`).", group=STREAMS, secret=True
    )

    outbox_batch_size: int | None = setting(
        None,
        "Most events per relay batch (`outbox relay --batch-size`).",
        "OUTBOX_BATCH_SIZE",
        group=STREAMS,
        ge=1,
        publish=True,
    )
    outbox_max_retries: int | None = setting(
        None,
        "Attempts of an outbox event before it is dead.",
        "OUTBOX_MAX_RETRIES",
        group=STREAMS,
        ge=0,
        publish=True,
    )
    outbox_poll_interval_ms: float | None = setting(
        None,
        "Milliseconds between polls of an application's own outbox table.",
        "OUTBOX_POLL_INTERVAL_MS",
        group=STREAMS,
        ge=0,
        publish=True,
    )
    fallback_batch_size: int = setting(
        2000,
        "Messages `spool drain` sends per round.",
        "FALLBACK_BATCH_SIZE",
        group=STREAMS,
        ge=1,
        publish=True,
    )
    fallback_poll_interval: float = setting(
        10.0,
        "Seconds between looks at an empty spool (`spool drain --follow`).",
        "FALLBACK_POLL_INTERVAL",
        group=STREAMS,
        ge=0,
        publish=True,
    )
    gc_retention_hours: float = setting(
        24.0,
        "Age of an abandoned upload (`objects gc`).",
        "GC_RETENTION_HOURS",
        group=INGEST,
        ge=0,
        publish=True,
    )
    gc_batch_size: int | None = setting(
        None,
        "Upload records per query of the garbage collection.",
        "GC_BATCH_SIZE",
        group=INGEST,
        ge=1,
        publish=True,
    )
    minio_endpoint: str | None = setting(
        None,
        "`host:port` of the store the chunk merge uses.",
        "MINIO_ENDPOINT",
        group=INGEST,
        publish=True,
    )
    minio_secure: bool | None = setting(
        None,
        "`true`: reach that store over https.",
        "MINIO_SECURE",
        group=INGEST,
        publish=True,
    )
    minio_access_key: str | None = setting(
        None, "Its access key.", "MINIO_ACCESS_KEY", group=INGEST, secret=True, publish=True
    )
    minio_secret_key: str | None = setting(
        None, "Its secret key.", "MINIO_SECRET_KEY", group=INGEST, secret=True, publish=True
    )
    merge_bucket: str | None = setting(
        None, "The bucket of uploaded chunks.", "MINIO_BUCKET", group=INGEST, publish=True
    )
    merge_chunk_prefix: str = setting(
        "chunks/{upload_id}/", "Where an upload's chunks are.", group=INGEST
    )
    merge_topic: str = setting(
        "file_upload_completed", "The topic a composed upload is announced on.", group=INGEST
    )
    merge_presign_s: int = setting(
        3600, "Seconds the announced presigned URL is valid.", group=INGEST, ge=1
    )

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    def origin(self, field: str) -> str:
        """Where a field's value came from: ``default``, ``env NAME`` or ``toml PATH``."""
        return self._origins.get(field, "default")

    @property
    def warnings(self) -> list[str]:
        """Settings that were found but not used, one line each."""
        return list(self._warnings)

    def max_attempts(self) -> dict[str, int]:
        """The per-priority attempt limits that are set, by priority name."""
        found = {p: getattr(self, f"jobs_retry_max_attempts_{p.lower()}") for p in PRIORITIES}
        return {p: n for p, n in found.items() if n is not None}

    def queue_capacities(self) -> dict[str, int]:
        """The per-priority queue capacities that are set, by priority name."""
        found = {p: getattr(self, f"jobs_queue_capacity_{p.lower()}") for p in PRIORITIES}
        return {p: n for p, n in found.items() if n is not None}


def env_names(field: str) -> list[str]:
    """The environment names of a field, in the order they are read."""
    extra = Settings.model_fields[field].json_schema_extra
    assert isinstance(extra, dict)
    aliases = extra["aliases"]
    assert isinstance(aliases, list)
    return [PREFIX + field.upper(), *(str(a) for a in aliases)]


def field_extra(field: str, key: str) -> Any:
    extra = Settings.model_fields[field].json_schema_extra
    assert isinstance(extra, dict)
    return extra[key]
