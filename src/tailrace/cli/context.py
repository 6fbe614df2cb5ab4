"""What every command needs: the App, loaded once from the global options."""

from __future__ import annotations

from typing import Any

import click
import orjson

from ..engine.app import App
from ..loading import load_app


def app_from(ctx: click.Context) -> App:
    obj = ctx.find_root().obj
    if "_app" not in obj:
        obj["_app"] = load_app(obj.get("app"), obj.get("database_url"))
        ctx.call_on_close(obj["_app"].close)
    app: App = obj["_app"]
    return app


def echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())
