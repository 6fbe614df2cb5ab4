"""``tailrace consume``: a stream consumer worker, or (``--replay``) dead letters replayed."""

from __future__ import annotations

import importlib
import os
import re
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from ..engine.retry import RetryPolicy
from ..errors import ConfigurationError
from ..settings import current, database_url
from ..streams import dlq
from ..streams.consumer import config as consumer_config
from ..streams.consumer.config import ConsumerConfig
from ..streams.consumer.loop import Consumer
from ..streams.consumer.message import parse_id_source
from ..streams.consumer.metrics import serve as serve_metrics
from ..streams.dedup import Dedup, open_dedup
from .options import metrics_options

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``30m``, ``24h`` or ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r}: expected a number with s, m, h or d")
    return float(match[1]) * _UNIT_S[match[2]]


def load_handler(spec: str) -> Callable[..., Any]:
    """The callable ``module:function`` names (the current directory is importable)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"--handler {spec!r}: expected module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} (from --handler): {exc}") from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise ConfigurationError(f"--handler {spec!r} is not a callable")
    return handler  # type: ignore[no-any-return]


def _dedup_url(kind: str, explicit: str | None, ctx: click.Context) -> str | None:
    if explicit or kind == "none":
        return explicit
    if kind == "redis":
        return current().redis_url
    root = ctx.find_root().obj or {}
    return database_url(root.get("database_url"))


def _partitions(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected partition numbers like 0,1,2") from None


@click.command("consume")
@click.argument("topic")
@click.option("--group", "-g", envvar="KAFKA_CONSUMER_GROUP", required=True, help="Consumer group.")
@click.option("--handler", "handler_spec", help="module:function called per message (or batch).")
@click.option("--batch", is_flag=True, help="The handler takes a list of messages.")
@click.option("--bootstrap-servers", default=None, help="Default: KAFKA_BOOTSTRAP_SERVERS.")
@click.option("--dedup-window", default="24h", show_default=True, help="e.g. 30m, 24h, 7d.")
@click.option(
    "--dedup-store",
    type=click.Choice(["postgres", "redis", "none"]),
    default="postgres",
    show_default=True,
)
@click.option(
    "--dedup-url",
    default=None,
    help="Default: the database URL (postgres), REDIS_URL or redis://127.0.0.1:6379/0 (redis).",
)
@click.option(
    "--message-id",
    "id_source",
    default="auto",
    show_default=True,
    help="Dedup id: auto = the message_id/messageId header, else topic:partition:offset; "
    "header; offset; key = the Kafka key (only when each key is one message); "
    "body:FIELD = a field of the JSON body (body:message_id), else the offset.",
)
@click.option("--attempts", default=3, show_default=True, help="Handler calls before the DLQ.")
@click.option("--backoff", default=0.5, show_default=True, help="First retry delay (s), doubling.")
@click.option("--dlq-topic", default=None, help="Default: <topic>_dlq.")
@click.option("--route-to", multiple=True, help="Topic for outputs that name none (repeatable).")
@click.option(
    "--partitions", default=None, help="Assign these partitions (0,1) without a rebalance."
)
@click.option("--batch-size", default=5000, show_default=True)
@click.option(
    "--commit-every",
    default=consumer_config.DEFAULT_COMMIT_EVERY,
    show_default=True,
    help="Checkpoint (mark ids, commit offsets) after this many messages: a SIGKILL repeats "
    "at most twice this many (a --batch handler: twice --batch-size).",
)
@click.option(
    "--commit-interval",
    default=consumer_config.DEFAULT_COMMIT_INTERVAL_S,
    show_default=True,
    help="... or after this many seconds, whichever comes first.",
)
@click.option(
    "--consumer-config",
    "consumer_config_pairs",
    multiple=True,
    help="librdkafka NAME=VALUE for the consumer (repeatable; producer.NAME=VALUE for the "
    "producer of routes and dead letters). Also from KAFKA_AUTO_OFFSET_RESET and "
    "KAFKA_CONSUMER_<NAME> (KAFKA_CONSUMER_FETCH_MIN_BYTES: fetch.min.bytes).",
)
@metrics_options
@click.option("--replay", is_flag=True, help="Put the dead letters back onto TOPIC, then exit.")
@click.pass_context
def consume(
    ctx: click.Context,
    topic: str,
    group: str,
    handler_spec: str | None,
    batch: bool,
    bootstrap_servers: str | None,
    dedup_window: str,
    dedup_store: str,
    dedup_url: str | None,
    id_source: str,
    attempts: int,
    backoff: float,
    dlq_topic: str | None,
    route_to: tuple[str, ...],
    partitions: str | None,
    batch_size: int,
    commit_every: int,
    commit_interval: float,
    consumer_config_pairs: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
    replay: bool,
) -> None:
    """Consume TOPIC in a consumer group, calling --handler once per message id.

    A failing message is retried with exponential backoff while other keys go on, then sent
    to the dead-letter topic; offsets are committed only once messages are done.
    """
    source, field = parse_id_source(id_source)
    config = ConsumerConfig(
        topic=topic,
        group=group,
        bootstrap_servers=consumer_config.bootstrap_servers(bootstrap_servers),
        attempts=attempts,
        retry=RetryPolicy(base_s=backoff, factor=2.0, max_s=max(backoff, 30.0), jitter=0.5),
        dlq_topic=dlq_topic,
        routes=route_to,
        id_source=source,
        id_field=field,
        batch_size=batch_size,
        commit_every=commit_every,
        commit_interval_s=commit_interval,
        partitions=_partitions(partitions),
        kafka=consumer_config.parse_properties(consumer_config_pairs, "--consumer-config"),
    )
    window = parse_duration(dedup_window)
    dedup = open_dedup(dedup_store, _dedup_url(dedup_store, dedup_url, ctx), group, window)
    if replay:
        _replay(config, dedup)
        return
    if not handler_spec:
        raise click.UsageError("--handler is required (unless --replay)")
    handler = load_handler(handler_spec)
    consumer = (
        Consumer(config, batch_handler=handler, dedup=dedup)
        if batch
        else Consumer(config, handler, dedup=dedup)
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if metrics_port is not None:
        serve_metrics(metrics_port, metrics_host, consumer)
    with consumer:
        consumer.run()


def _replay(config: ConsumerConfig, dedup: Dedup) -> None:
    try:
        count = dlq.replay(config, dedup)
    finally:
        dedup.close()
    click.echo(f"replayed {count} messages from {config.dead_letter_topic} onto {config.topic}")
