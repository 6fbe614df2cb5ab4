"""Part planning: pure, no service (here beside the compose tests it serves)."""

from __future__ import annotations

import random

import pytest

from tailrace.objects import Chunk, plan_parts

MIN = 100  # a small minimum keeps the arithmetic readable; the rule is the same at 5 MiB


def chunks(*sizes: int) -> list[Chunk]:
    return [Chunk(f"c{i}", size, "0" * 32) for i, size in enumerate(sizes)]


def shape(
    sizes: list[int], max_part: int = 10_000
) -> list[tuple[bool, list[tuple[str, int, int]]]]:
    return [
        (p.copy, [(s.chunk.key, s.start, s.end) for s in p.segments])
        for p in plan_parts(chunks(*sizes), MIN, max_part)
    ]


def test_large_chunks_are_copied_whole() -> None:
    assert shape([100, 250, 5]) == [
        (True, [("c0", 0, 100)]),
        (True, [("c1", 0, 250)]),
        (False, [("c2", 0, 5)]),
    ]


def test_a_run_of_small_chunks_borrows_only_what_it_lacks() -> None:
    assert shape([30, 40, 500]) == [
        (False, [("c0", 0, 30), ("c1", 0, 40), ("c2", 0, 30)]),
        (True, [("c2", 30, 500)]),
    ]


def test_a_tail_too_small_to_copy_joins_the_next_run() -> None:
    assert shape([10, 150, 20]) == [
        (False, [("c0", 0, 10), ("c1", 0, 90)]),
        (False, [("c1", 90, 150), ("c2", 0, 20)]),
    ]


def test_chunks_over_the_part_maximum_are_split_without_a_small_tail() -> None:
    assert shape([450], max_part=200) == [
        (True, [("c0", 0, 200)]),
        (True, [("c0", 200, 350)]),
        (True, [("c0", 350, 450)]),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_every_part_but_the_last_is_big_enough_and_bytes_stay_in_order(seed: int) -> None:
    rng = random.Random(seed)
    sizes = [rng.choice([0, 1, 30, 99, 100, 101, 250, 999]) for _ in range(rng.randint(1, 12))]
    parts = plan_parts(chunks(*sizes), MIN, 300)
    assert all(MIN <= p.size <= 300 for p in parts[:-1])
    assert all(len(p.segments) == 1 for p in parts if p.copy)
    flat = [(s.chunk.key, s.start, s.end) for p in parts for s in p.segments]
    expected: list[str] = []
    at: dict[str, int] = {}
    for key, start, end in flat:
        assert start == at.get(key, 0)
        at[key] = end
        expected.append(key)
    assert sum(p.size for p in parts) == sum(sizes)
    assert [n for n in dict.fromkeys(expected)] == [f"c{i}" for i, s in enumerate(sizes) if s]
