"""``tailrace spool drain NAME``: send what a dead producer left in its spool, once the spool
has no live owner; with ``--follow``, the standing backfill worker of a shared fallback list."""

from __future__ import annotations

import os
import signal
import threading
import time
from types import FrameType

import click

from ..settings import current
from ..streams.consumer import config as consumer_config
from ..streams.producer import BreakerProducer, BreakerSettings
from ..streams.spool import SpoolBusy, open_spool
from .context import echo_json


@click.group("spool")
def spool() -> None:
    """The producer's fallback spools."""


@spool.command()
@click.argument("name")
@click.option(
    "--url",
    default=None,
    help="redis://…, redis+list://…?topic=T, postgresql://… or file:///dir "
    "(default: TAILRACE_SPOOL_URL).",
)
@click.option("--bootstrap-servers", default=None, help="Default: KAFKA_BOOTSTRAP_SERVERS.")
@click.option(
    "--batch",
    type=click.IntRange(1),
    envvar="FALLBACK_BATCH_SIZE",
    default=2000,
    show_default=True,
    help="Messages sent per round (FALLBACK_BATCH_SIZE).",
)
@click.option("--timeout", default=300.0, show_default=True, help="Give up after (seconds).")
@click.option(
    "--follow",
    is_flag=True,
    help="Keep draining what others add (a shared list's writers) until SIGTERM.",
)
@click.option(
    "--poll-interval",
    type=float,
    envvar="FALLBACK_POLL_INTERVAL",
    default=10.0,
    show_default=True,
    help="With --follow: seconds between looks at an empty spool (FALLBACK_POLL_INTERVAL).",
)
def drain(
    name: str,
    url: str | None,
    bootstrap_servers: str | None,
    batch: int,
    timeout: float,
    follow: bool,
    poll_interval: float,
) -> None:
    """Send spool NAME's messages in order, each removed once the broker acknowledged it.

    Refuses while another live process owns the spool. Killed midway, it resends at most
    one round (--batch messages) when run again.
    """
    url = url or current().spool_url
    if not url:
        raise click.UsageError("Missing option '--url' (or TAILRACE_SPOOL_URL).")
    if follow:
        _follow(name, url, bootstrap_servers, batch, poll_interval)
        return
    try:
        opened = open_spool(url, name)
    except SpoolBusy as exc:
        raise click.ClickException(str(exc)) from None
    waiting = opened.count()
    if waiting == 0:
        opened.close()
        echo_json({"spool": name, "drained": 0, "left": 0})
        return
    settings = BreakerSettings(cooldown_s=0.1, max_cooldown_s=5.0, drain_batch=batch)
    servers = consumer_config.bootstrap_servers(bootstrap_servers)
    producer = BreakerProducer(servers, opened, settings)
    deadline = time.monotonic() + timeout
    try:
        while opened.count() and time.monotonic() < deadline:
            producer.flush(min(5.0, max(0.1, deadline - time.monotonic())))
        left = opened.count()
        refused = producer.take_failed()
    finally:
        producer.close()
    echo_json({"spool": name, "drained": waiting - left, "left": left, "refused": len(refused)})
    if left or refused:
        reason = f"{left} messages left after {timeout:.0f} s" if left else ""
        if refused:
            reason += f"{'; ' if reason else ''}{len(refused)} refused by the broker"
        raise click.ClickException(f"spool {name} not drained: {reason} (pid {os.getpid()})")


def _follow(
    name: str, url: str, bootstrap_servers: str | None, batch: int, poll_interval: float
) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        opened = open_spool(url, name)
    except SpoolBusy as exc:
        raise click.ClickException(str(exc)) from None
    settings = BreakerSettings(cooldown_s=0.1, max_cooldown_s=30.0, drain_batch=batch)
    servers = consumer_config.bootstrap_servers(bootstrap_servers)
    producer = BreakerProducer(servers, opened, settings)
    try:
        while not stop.is_set():
            producer.drain_spool()
            producer.flush(min(5.0, poll_interval))
            for failed in producer.take_failed():
                # refused by the broker for good (too large, say): said, not retried forever
                click.echo(f"refused by the broker: {failed.topic}: {failed.error}", err=True)
            stop.wait(poll_interval)
    finally:
        producer.close()


if __name__ == "__main__":
    spool()
