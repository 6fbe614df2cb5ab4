"""The ingestion record on both stores: what a run claims, and what it leaves to others."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tailrace import App
from tailrace.pipeline.jobs import ReprocessingStore
from tailrace.pipeline.jobs.model import IngestStatus, ProcessedFile
from tailrace.pipeline.sources import SourceFile


@pytest.fixture
def store(database_url: str) -> Iterator[ReprocessingStore]:
    with App(database_url) as app:
        app.store.migrate()
    with ReprocessingStore(database_url) as job_store:
        yield job_store


def _files(*names: str, size: int = 10) -> list[tuple[str, str, str, SourceFile]]:
    return [
        ("bucket", name, f"size:{size}", SourceFile(f"s3://bucket/{name}", size, modified=i))
        for i, name in enumerate(names)
    ]


def _claim_all(
    store: ReprocessingStore,
    files: list[tuple[str, str, str, SourceFile]],
    job: str,
    *,
    max_attempts: int = 2,
    stale_after_s: float = 60,
) -> list[ProcessedFile]:
    """What a run claims: the files recorded, then one claim after another until none."""
    store.processed_record([(b, k, v, f.size, f.modified) for b, k, v, f in files])
    claimed: list[ProcessedFile] = []
    while (
        one := store.processed_claim_next(
            ("bucket", ""), job, max_attempts=max_attempts, stale_after_s=stale_after_s
        )
    ) is not None and one.key not in {c.key for c in claimed}:  # stale at once when < 0
        claimed.append(one)
    return claimed


def _claim(
    store: ReprocessingStore, files: list[tuple[str, str, str, SourceFile]], job: str
) -> list[str]:
    return [c.key for c in _claim_all(store, files, job)]


def test_new_files_are_claimed_once_in_time_order(store: ReprocessingStore) -> None:
    files = _files("b.gz", "a.gz", "c.gz")
    assert _claim(store, files, "run1") == ["b.gz", "a.gz", "c.gz"]  # by modified time
    assert _claim(store, files, "run2") == []  # an overlapping run finds them taken


def test_completed_files_stay_done_and_a_new_version_is_new(store: ReprocessingStore) -> None:
    [first] = _claim_all(store, _files("a.gz"), "run1")
    store.processed_finish(first, IngestStatus.COMPLETED)
    assert _claim(store, _files("a.gz"), "run2") == []
    assert _claim(store, _files("a.gz", size=20), "run3") == ["a.gz"]  # rewritten file


def test_failed_files_are_retried_until_attempts_run_out(store: ReprocessingStore) -> None:
    for run in ("run1", "run2"):
        [claimed] = _claim_all(store, _files("a.gz"), run)
        store.processed_finish(claimed, IngestStatus.FAILED, "boom")
    assert _claim(store, _files("a.gz"), "run3") == []
    [record] = store.processed_files()
    assert (record.status, record.attempts, record.error) == (IngestStatus.FAILED, 2, "boom")


def test_files_stuck_in_processing_are_taken_by_a_later_run(store: ReprocessingStore) -> None:
    _claim_all(store, _files("a.gz"), "dead-run", max_attempts=3)
    # Not stale yet: a live run owns it.
    assert _claim(store, _files("a.gz"), "run2") == []
    claimed = _claim_all(store, _files("a.gz"), "run3", max_attempts=3, stale_after_s=-1)
    assert [(c.key, c.job_id, c.attempts) for c in claimed] == [("a.gz", "run3", 2)]


def test_a_finish_from_a_run_that_lost_the_file_changes_nothing(store: ReprocessingStore) -> None:
    [old] = _claim_all(store, _files("a.gz"), "old", max_attempts=3)
    _claim_all(store, _files("a.gz"), "new", max_attempts=3, stale_after_s=-1)
    store.processed_finish(old, IngestStatus.FAILED, "late")
    [record] = store.processed_files()
    assert (record.status, record.job_id) == (IngestStatus.PROCESSING, "new")


def test_a_version_whose_bytes_cannot_be_read_is_not_retried(store: ReprocessingStore) -> None:
    [claimed] = _claim_all(store, _files("a.gz"), "run1", max_attempts=3)
    reason = "unreadable: truncated gzip stream at line 7, byte 512 of the decompressed stream"
    store.processed_finish(claimed, IngestStatus.FAILED, reason)
    assert _claim(store, _files("a.gz"), "run2") == []  # the same bytes fail the same way
    [record] = store.processed_files()
    assert (record.status, record.attempts, record.error) == (IngestStatus.FAILED, 1, reason)
    assert _claim(store, _files("a.gz", size=20), "run3") == ["a.gz"]  # uploaded again


def _record(store: ReprocessingStore, *items: tuple[str, str, float]) -> None:
    store.processed_record([(b, k, "v1", 10, t) for b, k, t in items])


def _next(store: ReprocessingStore, scope: tuple[str, str], job: str) -> str | None:
    claimed = store.processed_claim_next(scope, job, max_attempts=2, stale_after_s=60)
    return None if claimed is None else claimed.key


def test_claims_go_one_at_a_time_in_log_order_within_the_scope(store: ReprocessingStore) -> None:
    _record(store, ("b", "logs/c", 3.0), ("b", "logs/a", 2.0), ("b", "other/z", 0.0))
    _record(store, ("b", "logs/b", 1.0), ("x", "logs/y", 0.5))
    scope = ("b", "logs/")
    assert [_next(store, scope, "r1"), _next(store, scope, "r2")] == ["logs/b", "logs/a"]
    assert _next(store, scope, "r3") == "logs/c"
    assert _next(store, scope, "r4") is None  # other prefixes and buckets are not its files
    assert store.processed_versions(scope) == {
        ("b", k, "v1") for k in ("logs/a", "logs/b", "logs/c")
    }
    assert len(store.processed_versions(None)) == 5


def test_failed_files_are_listed_and_reset_by_scope(store: ReprocessingStore) -> None:
    _record(store, ("b", "logs/a", 1.0), ("b", "logs/b", 2.0), ("b", "web/c", 3.0))
    for key in ("logs/a", "logs/b", "web/c"):
        claimed = store.processed_claim_next(("b", key), "r1", max_attempts=1, stale_after_s=60)
        assert claimed is not None
        store.processed_finish(claimed, IngestStatus.FAILED, "boom")
    used_up = store.processed_claim_next(("b", ""), "r2", max_attempts=1, stale_after_s=60)
    assert used_up is None  # no attempts left
    failed = store.processed_by_status(IngestStatus.FAILED, ("b", "logs/"))
    assert [f.key for f in failed] == ["logs/a", "logs/b"]
    reset = store.processed_reset(("b", "logs/b"))
    assert [(f.key, f.status, f.attempts, f.error) for f in reset] == [
        ("logs/b", IngestStatus.PENDING, 0, None)
    ]
    again = store.processed_claim_next(("b", ""), "r3", max_attempts=1, stale_after_s=60)
    assert again is not None and (again.key, again.attempts) == ("logs/b", 1)
    assert len(store.processed_reset(None)) == 2
