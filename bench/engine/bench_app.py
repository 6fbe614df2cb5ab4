"""The tasks the engine benchmark runs: no-ops, and one that reports when it started."""

from __future__ import annotations

import os
import socket
import time

from tailrace import App

app = App()


@app.task(name="noop")
async def noop() -> None:
    pass


@app.task(name="noop_sync")
def noop_sync() -> None:
    pass


_stamps = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)


@app.task(name="stamp")
async def stamp() -> None:
    # the start time first, then tell the benchmark (a datagram: it blocks on recv, no polling)
    started = time.time()
    _stamps.sendto(repr(started).encode(), os.environ["BENCH_STAMP_SOCKET"])
