"""Finding the user's App: ``module:attribute`` (like uvicorn's ``main:app``)."""

from __future__ import annotations

import importlib
import os
import sys

from .engine.app import App
from .errors import ConfigurationError
from .settings import current


def load_app(spec: str | None, database_url: str | None = None) -> App:
    """Import ``spec`` (``pkg.module:app``; default ``TAILRACE_APP``) or make a bare App.

    A bare App has no tasks: enough to enqueue by name, inspect and operate.
    """
    spec = spec or current().app
    if not spec:
        return App(database_url)
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # so `tailrace worker --app tasks:app` finds ./tasks.py
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} (from --app {spec!r}): {exc}"
        ) from exc
    app = getattr(module, attr or "app", None)
    if not isinstance(app, App):
        raise ConfigurationError(f"{spec!r} is not a tailrace App (found {type(app).__name__})")
    if database_url:
        app.database_url = database_url
    return app
