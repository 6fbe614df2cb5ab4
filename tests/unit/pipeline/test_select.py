"""Which files a listing reads (log files by default, --include/--exclude), what it says it
skipped, and how many workers a plan starts for its bytes and files."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailrace.engine.app import App
from tailrace.pipeline.jobs import ReprocessingConfig, ReprocessingStore
from tailrace.pipeline.jobs.model import MAX_WORKERS
from tailrace.pipeline.plan import MIN_BYTES_PER_WORKER, plan_job, worker_count
from tailrace.pipeline.sources import LocalSource, SourceFile
from tailrace.pipeline.sources.select import (
    EXCLUDED,
    MARKER_FILE,
    NOT_A_LOG,
    TEMPORARY_FILE,
    FileSelection,
)

READ = [
    "a.ndjson",
    "b.ndjson.gz",
    "c.jsonl",
    "d.json.zst",
    "e.log",
    "f.LOG.GZ",
    "2026/01/g.ndjson",
]
SKIPPED = {
    "h.ndjson.tmp": TEMPORARY_FILE,
    "i.ndjson.rotating": TEMPORARY_FILE,
    "j.ndjson.gz.part": TEMPORARY_FILE,
    "_SUCCESS": MARKER_FILE,
    "README.txt": NOT_A_LOG,
    "k.csv": NOT_A_LOG,
    "2026/01/_SUCCESS": MARKER_FILE,
}


def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b'{"n": 1}\n')


def test_a_directory_lists_only_log_files_and_says_what_it_skipped(tmp_path: Path) -> None:
    _tree(tmp_path, [*READ, *SKIPPED])
    source = LocalSource(str(tmp_path))
    got = sorted(str(Path(f.url).relative_to(tmp_path)) for f in source.list_files())
    assert got == sorted(READ)
    want: dict[str, int] = {}
    for reason in SKIPPED.values():
        want[reason] = want.get(reason, 0) + 1
    assert source.skipped.counts == want
    assert sorted(source.skipped.examples[MARKER_FILE]) == ["2026/01/_SUCCESS", "_SUCCESS"]
    assert any("README.txt" in line for line in source.skipped.describe())


def test_include_and_exclude_globs(tmp_path: Path) -> None:
    _tree(tmp_path, [*READ, *SKIPPED])
    source = LocalSource(
        str(tmp_path), include=("*.txt", "*.tmp"), exclude=("2026/*", "e.log", "f.*")
    )
    got = sorted(str(Path(f.url).relative_to(tmp_path)) for f in source.list_files())
    assert got == ["README.txt", "a.ndjson", "b.ndjson.gz", "c.jsonl", "d.json.zst", "h.ndjson.tmp"]
    assert source.skipped.counts[EXCLUDED] == 4  # e.log, f.LOG.GZ and both files under 2026/


def test_a_file_named_on_its_own_is_always_read(tmp_path: Path) -> None:
    _tree(tmp_path, ["README.txt", "x.tmp"])
    for name in ("README.txt", "x.tmp"):
        (listed,) = LocalSource(str(tmp_path / name)).list_files()
        assert listed.name == name


def test_a_glob_chose_its_names_but_still_skips_temporary_files(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.txt", "b.txt", "c.txt.tmp", "_SUCCESS"])
    source = LocalSource(str(tmp_path / "*"))
    assert [f.name for f in source.list_files()] == ["a.txt", "b.txt"]
    assert source.skipped.counts == {TEMPORARY_FILE: 1, MARKER_FILE: 1}


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[A-Za-z0-9_.~-]{1,20}", fullmatch=True))
def test_the_default_rule_against_a_plain_reference(name: str) -> None:
    lowered = name.lower()
    temporary = any(
        fnmatch.fnmatchcase(lowered, p)
        for p in ("*.tmp", "*.temp", "*.rotating", "*.part", "*.partial", "*.swp", "*~", "*.crc")
    )
    marker = name in ("_SUCCESS", "_FAILURE", "_temporary") or name.startswith(
        ("_SUCCESS.", "_started_", "_committed_")
    )
    base = lowered.removesuffix(".gz") if lowered.endswith(".gz") else lowered.removesuffix(".zst")
    log = base.endswith((".ndjson", ".jsonl", ".json", ".log"))
    expected = not temporary and not marker and log
    assert (FileSelection().reason(name) is None) == expected


def _files(count: int, size: int) -> list[SourceFile]:
    return [SourceFile(f"/logs/{i}.ndjson", size) for i in range(count)]


@pytest.mark.parametrize(
    ("count", "size", "limit", "workers"),
    [
        (50_000, 100, None, 1),  # 5 MB in 50,000 files: one worker, not 50
        (50_000, 1_000, None, 11),  # 50 MB: one per 4 MiB
        (50_000, 1 << 20, None, MAX_WORKERS),  # 50 GB
        (25, 1_200_000, None, 3),  # one per 10 files when the bytes allow it
        (3, 10 << 30, None, 3),  # never more than one per file
        (100, 1 << 30, 4, 4),  # at most the limit
        (0, 0, None, 1),
        (1, 0, None, 1),
    ],
)
def test_worker_count_by_files_and_bytes(
    count: int, size: int, limit: int | None, workers: int
) -> None:
    assert worker_count(_files(count, size), limit) == workers


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=1 << 31), max_size=300),
    st.none() | st.integers(min_value=1, max_value=80),
)
def test_worker_count_never_exceeds_what_the_bytes_are_worth(
    sizes: list[int], limit: int | None
) -> None:
    files = [SourceFile(f"/f{i}", s) for i, s in enumerate(sizes)]
    n = worker_count(files, limit)
    assert 1 <= n <= MAX_WORKERS
    assert n <= max(1, len(files))
    assert n <= max(1, sum(sizes) // MIN_BYTES_PER_WORKER)
    if limit is not None:
        assert n <= limit


def test_a_plan_of_many_tiny_files_starts_one_worker_and_records_what_it_skipped(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(3_000):
        (logs / f"{i:05}.ndjson").write_bytes(b'{"n": 1}\n')
    (logs / "_SUCCESS").write_bytes(b"")
    (logs / "x.ndjson.tmp").write_bytes(b"{}\n")
    url = f"sqlite:///{tmp_path}/tailrace.db"
    with App(url) as app, ReprocessingStore(url) as store:
        job = plan_job(app, store, ReprocessingConfig(source=str(logs), sink="null:"))
        stored = store.job(job.id)
    assert (stored.total_files, stored.total_workers) == (3_000, 1)
    assert stored.config.listing_skipped["counts"] == {MARKER_FILE: 1, TEMPORARY_FILE: 1}
    assert stored.config.listing_skipped["examples"][TEMPORARY_FILE] == ["x.ndjson.tmp"]
