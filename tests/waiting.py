"""Waiting for a condition with a deadline: the only way tests here wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[..., T | Literal[False] | None],  # `...`: lambdas binding a loop variable
    timeout: float = 10.0,
    what: str | Callable[..., str] = "condition",
    interval: float = 0.05,
) -> T:
    """Poll ``check`` until it returns something truthy (which is returned), or fail after
    ``timeout`` seconds saying ``what`` (a callable is evaluated only then)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s: {text}")
        time.sleep(interval)
