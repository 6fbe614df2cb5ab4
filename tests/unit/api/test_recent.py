"""The quarter-second memory of job answers: shared while fresh, recomputed after, errors
never kept, concurrent askers served by one computation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tailrace.api.recent import Recent


def test_concurrent_askers_share_one_computation() -> None:
    calls = 0
    release = threading.Event()

    def compute() -> bytes:
        nonlocal calls
        calls += 1
        release.wait(5)
        return b"answer"

    async def scenario() -> list[bytes]:
        recent = Recent(ttl_s=60)
        asked = [asyncio.create_task(recent.get("k", compute)) for _ in range(20)]
        await asyncio.sleep(0)  # every task is waiting now
        release.set()
        return await asyncio.gather(*asked)

    assert asyncio.run(scenario()) == [b"answer"] * 20
    assert calls == 1


def test_an_answer_expires_and_forget_drops_it_at_once() -> None:
    values = iter([b"1", b"2", b"3"])

    async def scenario() -> list[bytes]:
        recent = Recent(ttl_s=0)
        first = await recent.get("k", lambda: next(values))
        second = await recent.get("k", lambda: next(values))  # ttl 0: already stale
        recent.ttl_s = 60
        third = await recent.get("k", lambda: next(values))
        recent.forget("k")
        return [first, second, third]

    assert asyncio.run(scenario()) == [b"1", b"2", b"3"]


def test_errors_reach_every_asker_and_are_not_kept() -> None:
    attempts = 0

    def failing() -> bytes:
        nonlocal attempts
        attempts += 1
        raise LookupError("no such job")

    async def scenario() -> bytes:
        recent = Recent(ttl_s=60)
        with pytest.raises(LookupError):
            await recent.get("k", failing)
        return await recent.get("k", lambda: b"found now")

    assert asyncio.run(scenario()) == b"found now"
    assert attempts == 1


def test_when_the_computing_request_is_cancelled_a_waiter_computes_itself() -> None:
    started = threading.Event()
    release = threading.Event()
    calls = 0

    def compute() -> bytes:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            release.wait(5)
        return f"answer {calls}".encode()

    async def scenario() -> bytes:
        recent = Recent(ttl_s=60)
        owner = asyncio.create_task(recent.get("k", compute))
        await asyncio.to_thread(started.wait, 5)
        waiter = asyncio.create_task(recent.get("k", compute))
        await asyncio.sleep(0)  # the waiter is waiting on the owner's answer now
        owner.cancel()  # its client went away
        answer = await waiter
        release.set()
        return answer

    assert asyncio.run(scenario()) == b"answer 2"
