"""``tailrace spool drain NAME``: send what a dead producer left in its spool (reference
004's backfill worker), once the spool has no live owner."""

from __future__ import annotations

import os
import time

import click

from ..settings import current
from ..streams import consumer_config
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
    help="redis://…, postgresql://… or file:///dir (default: TAILRACE_SPOOL_URL).",
)
@click.option("--bootstrap-servers", default=None, help="Default: KAFKA_BOOTSTRAP_SERVERS.")
@click.option("--batch", default=2000, show_default=True, help="Messages sent per round.")
@click.option("--timeout", default=300.0, show_default=True, help="Give up after (seconds).")
def drain(
    name: str, url: str | None, bootstrap_servers: str | None, batch: int, timeout: float
) -> None:
    """Send spool NAME's messages in order, each removed once the broker acknowledged it.

    Refuses while another live process owns the spool. Killed midway, it resends at most
    one round (--batch messages) when run again.
    """
    url = url or current().spool_url
    if not url:
        raise click.UsageError("Missing option '--url' (or TAILRACE_SPOOL_URL).")
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


if __name__ == "__main__":
    spool()
