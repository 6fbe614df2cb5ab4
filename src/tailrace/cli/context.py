"""What every command needs: the App, loaded once from the global options."""

from __future__ import annotations

from typing import Any

import click
import orjson

from ..db.connection import ConnectionPolicy
from ..engine.app import App
from ..loading import load_app

# a person waits at the prompt: a few seconds of retries ride out a restart, no more
COMMAND = ConnectionPolicy(connect_timeout_s=3, retry_for_s=3.0, log_outages=False)


def app_from(ctx: click.Context) -> App:
    obj = ctx.find_root().obj
    if "_app" not in obj:
        loaded = load_app(obj.get("app"), obj.get("database_url"))
        if loaded.connection_policy is None:
            loaded.connection_policy = COMMAND  # a command says the database is down in seconds
        obj["_app"] = loaded
        ctx.call_on_close(loaded.close)
    app: App = obj["_app"]
    return app


def echo_json(value: Any, err: bool = False) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode(), err=err)
