"""``tailrace outbox``: the transactional outbox's relay, its status, and spool draining."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from ..engine.retry import RetryPolicy
from ..errors import ConfigurationError
from ..settings import current, database_url
from .context import echo_json
from .options import metrics_options


def _postgres_url(ctx: click.Context, explicit: str | None) -> str:
    root = ctx.find_root().obj or {}
    url = database_url(explicit or root.get("database_url"))
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError("the outbox needs PostgreSQL (--database-url postgresql://…)")
    return url


def _config(pairs: tuple[str, ...]) -> dict[str, str]:
    config: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--producer-config")
        config[name] = value
    return config


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _bootstrap(explicit: str | None) -> str:
    servers = explicit or current().kafka_bootstrap_servers
    if not servers:
        raise ConfigurationError("no Kafka brokers: --bootstrap-servers or KAFKA_BOOTSTRAP_SERVERS")
    return servers


@click.group()
def outbox() -> None:
    """The transactional outbox: relay pending events to Kafka."""


@outbox.command()
@click.option("--database-url", default=None, help="postgresql://… (default: the global one).")
@click.option("--bootstrap-servers", default=None, help="Default: KAFKA_BOOTSTRAP_SERVERS.")
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    envvar="OUTBOX_BATCH_SIZE",
    default=None,
    help="Most events per batch [default: 5000; with --table 100] (OUTBOX_BATCH_SIZE).",
)
@click.option(
    "--max-attempts",
    type=click.IntRange(1),
    envvar="OUTBOX_MAX_RETRIES",
    default=None,
    help="Attempts before an event is moved aside (dead) [default: 5; with --table 3] "
    "(OUTBOX_MAX_RETRIES).",
)
@click.option(
    "--poll-interval-ms",
    type=click.IntRange(1),
    envvar="OUTBOX_POLL_INTERVAL_MS",
    default=None,
    help="Longest wait before looking for new events [default: 1000; with --table 500] "
    "(OUTBOX_POLL_INTERVAL_MS). Without --table a commit wakes the relay at once.",
)
@click.option(
    "--table",
    default=None,
    help="Relay this table of the application's own (e.g. outbox_events) instead of "
    "tailrace's outbox; see --column.",
)
@click.option(
    "--column",
    "columns",
    multiple=True,
    help="With --table: ROLE=SQL, the column or expression for id, order, key, topic, value, "
    "published, published_at, attempts or error (repeatable; defaults: the outbox_events "
    "table of the Kafka workers).",
)
@click.option(
    "--attempts-base",
    default=1,
    show_default=True,
    help="With --table: the attempts column's value before any attempt.",
)
@click.option("--retry-base", default=1.0, show_default=True, help="First backoff, seconds.")
@click.option("--redis-mirror", "channel", default=None, help="Also publish to this channel.")
@click.option("--redis-url", default=None, help="Default: REDIS_URL, else redis://127.0.0.1.")
@click.option(
    "--reconcile-every",
    default=5.0,
    show_default=True,
    help="Seconds between looks for batches of dead relays.",
)
@click.option(
    "--orphan-grace",
    default=5.0,
    show_default=True,
    help="Seconds a dead relay's batch waits before it is read back from the topic.",
)
@click.option("--producer-config", multiple=True, help="librdkafka NAME=VALUE (repeatable).")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="Relays in this process, each with its own connection and producer, sharing the "
    "key buckets (bench/streams/RESULTS-outbox.md: one relay pipelines on its own). "
    "With --table, one relay per table works at a time.",
)
@click.option("--until-idle", is_flag=True, help="Exit once no event is pending.")
@click.option("--json", "as_json", is_flag=True, help="Print the totals as JSON at exit.")
@metrics_options
@click.pass_context
def relay(
    ctx: click.Context,
    database_url: str | None,
    bootstrap_servers: str | None,
    batch_size: int | None,
    max_attempts: int | None,
    poll_interval_ms: int | None,
    table: str | None,
    columns: tuple[str, ...],
    attempts_base: int,
    retry_base: float,
    channel: str | None,
    redis_url: str | None,
    reconcile_every: float,
    orphan_grace: float,
    producer_config: tuple[str, ...],
    concurrency: int,
    until_idle: bool,
    as_json: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Publish pending outbox events to Kafka, in order per key, until stopped."""
    from ..streams.outbox.mirror import RedisMirror
    from ..streams.outbox.relay import Relay, RelaySettings, RelayStats

    if table is not None:
        if channel:
            raise click.UsageError(
                "--redis-mirror works on tailrace's outbox only, not with --table"
            )
        _relay_table(
            _postgres_url(ctx, database_url),
            _bootstrap(bootstrap_servers),
            table,
            columns,
            attempts_base,
            batch_size,
            max_attempts,
            poll_interval_ms,
            retry_base,
            _config(producer_config),
            until_idle,
            as_json,
            (metrics_port, metrics_host),
        )
        return
    if columns:
        raise click.UsageError("--column needs --table")
    settings = RelaySettings(
        batch_size=batch_size or 5000,
        max_attempts=max_attempts or 5,
        idle_wait_s=(poll_interval_ms or 1000) / 1000,
        retry=RetryPolicy(base_s=retry_base, max_s=300.0),
        reconcile_every_s=reconcile_every,
        orphan_grace_s=orphan_grace,
        producer=_config(producer_config),
    )
    redis = redis_url or current().redis_url
    stop = _stop_on_signals()
    url = _postgres_url(ctx, database_url)
    bootstrap = _bootstrap(bootstrap_servers)
    totals = RelayStats()
    if metrics_port is not None:
        from ..streams.outbox import metrics as relay_metrics
        from ..streams.outbox.publish import producer_config as kafka_settings

        relay_metrics.serve(
            url, metrics_port, metrics_host, kafka=kafka_settings(bootstrap, settings.producer)
        )
    failures: list[BaseException] = []
    lock = threading.Lock()

    def one() -> None:
        # Relays share nothing but the database: keys are spread over them by its locks.
        try:
            mirror = RedisMirror(redis, channel) if channel else None
            with Relay(url, bootstrap, settings, mirror=mirror) as running:
                stats = running.run(stop, until_idle=until_idle)
            with lock:
                for name, value in vars(stats).items():
                    setattr(totals, name, getattr(totals, name) + value)
        except BaseException as exc:
            failures.append(exc)
            stop.set()  # one relay's failure stops the process: its supervisor restarts it

    threads = [threading.Thread(target=one, name=f"relay-{i}") for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    if as_json:
        echo_json(vars(totals))


def _relay_table(
    url: str,
    bootstrap: str,
    table: str,
    columns: tuple[str, ...],
    attempts_base: int,
    batch_size: int | None,
    max_attempts: int | None,
    poll_interval_ms: int | None,
    retry_base: float,
    producer: dict[str, str],
    until_idle: bool,
    as_json: bool,
    metrics_at: tuple[int | None, str],
) -> None:
    from ..streams.consumer.config import parse_properties
    from ..streams.outbox import metrics as relay_metrics
    from ..streams.outbox.publish import producer_config
    from ..streams.outbox.table import (
        TableMapping,
        TableRelay,
        TableRelaySettings,
        status_counts,
    )

    pairs = parse_properties(columns, "--column")
    mapping = TableMapping(table=table, attempts_base=attempts_base).with_columns(pairs)
    settings = TableRelaySettings(
        batch_size=batch_size or 100,
        max_attempts=max_attempts or 3,
        poll_interval_s=(poll_interval_ms or 500) / 1000,
        retry=RetryPolicy(base_s=retry_base, max_s=60.0),
        producer=producer,
    )
    stop = _stop_on_signals()
    port, host = metrics_at
    if port is not None:
        relay_metrics.serve(
            url,
            port,
            host,
            count=status_counts(mapping),
            kafka=producer_config(bootstrap, producer),
        )
    with TableRelay(url, bootstrap, mapping, settings) as running:
        stats = running.run(stop, until_idle=until_idle)
        pending = running.pending()
    if as_json:
        echo_json({**vars(stats), "pending": pending})


@outbox.command()
@click.option("--database-url", default=None, help="postgresql://… (default: the global one).")
@click.pass_context
def status(ctx: click.Context, database_url: str | None) -> None:
    """How many outbox events are pending, publishing, published and dead."""
    import psycopg

    from ..streams.outbox import counts, held

    with psycopg.connect(_postgres_url(ctx, database_url), autocommit=True) as conn:
        try:
            found = counts(conn)
            waiting = held(conn)
        except psycopg.errors.UndefinedTable:
            raise ConfigurationError("no outbox table: run `tailrace db migrate`") from None
    echo_json(
        {
            **{state.value: n for state, n in found.items()},
            # A dead event holds its key's later events until `tailrace outbox requeue`.
            "dead_keys": waiting.dead_keys,
            "held": waiting.held_events,
            "oldest_unpublished_s": waiting.oldest_unpublished_s,
        }
    )


@outbox.command()
@click.option("--database-url", default=None, help="postgresql://… (default: the global one).")
@click.option("--id", "ids", type=int, multiple=True, help="A dead event's id (repeatable).")
@click.option("--key", "keys", multiple=True, help="Every dead event of this key (repeatable).")
@click.option("--all", "every", is_flag=True, help="Every dead event.")
@click.pass_context
def requeue(
    ctx: click.Context,
    database_url: str | None,
    ids: tuple[int, ...],
    keys: tuple[str, ...],
    every: bool,
) -> None:
    """Put dead events back to pending (attempts reset): they publish first, then the later
    events of their keys that they held."""
    import psycopg

    from ..streams import outbox as outbox_events

    if every == bool(ids or keys):
        raise click.UsageError("give --id, --key, or --all (and only one of those kinds)")
    if ids and keys:
        raise click.UsageError("give --id or --key, not both")
    with psycopg.connect(_postgres_url(ctx, database_url), autocommit=True) as conn:
        requeued = outbox_events.requeue(
            conn, ids=list(ids) if ids else None, keys=list(keys) if keys else None
        )
    echo_json({"requeued": len(requeued), "ids": requeued})


if __name__ == "__main__":  # `python -m tailrace.cli.outbox`, before the command is registered
    outbox()
