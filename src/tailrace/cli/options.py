"""Options several commands share, in a module light enough for `--help`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def metrics_options(command: F) -> F:
    """``--metrics-port`` and ``--metrics-host``, the same on every long-running command."""
    port = click.option(
        "--metrics-port",
        type=int,
        default=None,
        envvar="TAILRACE_METRICS_PORT",
        help="Serve /metrics and the probes (/healthz, /readyz, /q/health) on this port.",
    )
    host = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        envvar="TAILRACE_METRICS_HOST",
        help="Address of the metrics server (0.0.0.0 in a pod, for Prometheus to reach it).",
    )
    return port(host(command))
