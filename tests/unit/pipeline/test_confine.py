"""What a job may read and write on disk: never tailrace's own files, only under its roots,
checked on the descriptor actually opened (a file swapped for a symbolic link after
planning is caught when it is opened)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tailrace.pipeline.decoders.framing import BadLine
from tailrace.pipeline.sinks import FileSink, SinkError, open_deadletter, parse_sink_url
from tailrace.pipeline.sources import LocalSource, SourceAccessError, SourceFile
from tailrace.pipeline.sources.select import LINK_LOOP, OWN_FILES

LINE = b'{"messageId":"m1"}\n'


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A service's directory: .tailrace/ with its token and SQLite store, logs/ beside."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TAILRACE_DATA_DIR", raising=False)
    monkeypatch.delenv("TAILRACE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    data = tmp_path / ".tailrace"
    data.mkdir()
    (data / "api-token").write_text("secret-token-0123456789\n")
    (data / "tailrace.db").write_bytes(b"SQLite format 3\x00" + b"\n" * 100)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.ndjson").write_bytes(LINE)
    return tmp_path


@pytest.mark.parametrize("spec", [".tailrace/api-token", ".tailrace", ".tailrace/tailrace.db"])
def test_the_data_directory_is_never_a_source(service: Path, spec: str) -> None:
    with pytest.raises(SourceAccessError, match="data directory"):
        LocalSource(spec).list_files()
    # nor through a path that only resolves there
    (service / "logs" / "innocent.ndjson").symlink_to(service / ".tailrace" / "api-token")
    source = LocalSource("logs")
    assert [f.name for f in source.list_files()] == ["a.ndjson"]
    assert source.skipped.counts == {OWN_FILES: 1}
    with pytest.raises(SourceAccessError, match="data directory"):
        LocalSource("logs/innocent.ndjson").list_files()


def test_a_data_directory_without_a_dot_is_left_out_of_a_walk(
    service: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = service / "logs" / "state"
    state.mkdir()
    (state / "secrets.json").write_text('{"token": "x"}\n')
    monkeypatch.setenv("TAILRACE_DATA_DIR", str(state))
    store = service / "logs" / "store.log"  # an SQLite store with a log file's name
    store.write_bytes(b"SQLite format 3\x00\n")
    monkeypatch.setenv("TAILRACE_DATABASE_URL", f"sqlite:///{store}")
    source = LocalSource(str(service / "logs"))
    assert [f.name for f in source.list_files()] == ["a.ndjson"]
    assert source.skipped.counts == {OWN_FILES: 2}
    with pytest.raises(SourceAccessError, match="job store"):
        LocalSource(str(store)).list_files()


def test_a_file_swapped_for_a_symlink_after_listing_is_refused_when_opened(
    service: Path, tmp_path: Path
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.ndjson"
    outside.write_bytes(b'{"secret": "outside the root"}\n')
    try:
        source = LocalSource(str(service / "logs"), roots=[str(service / "logs")])
        (listed,) = source.list_files()
        with source.open(listed) as stream:  # before the swap: read as planned
            assert stream.read() == LINE
        os.unlink(listed.url)
        os.symlink(outside, listed.url)  # the race, set up deterministically
        with pytest.raises(SourceAccessError, match="outside the directories"):
            source.open(listed)
        # without roots (the CLI) the data directory is still out of reach
        os.unlink(listed.url)
        os.symlink(service / ".tailrace" / "api-token", listed.url)
        with pytest.raises(SourceAccessError, match="data directory"):
            LocalSource(str(service / "logs")).open(SourceFile(listed.url, 1))
    finally:
        outside.unlink()


def test_a_looping_file_symlink_is_skipped_with_a_reason(service: Path) -> None:
    logs = service / "logs"
    (logs / "loop.ndjson").symlink_to(logs / "loop.ndjson")
    (logs / "ping.ndjson").symlink_to(logs / "pong.ndjson")
    (logs / "pong.ndjson").symlink_to(logs / "ping.ndjson")
    source = LocalSource(str(logs))
    assert [f.name for f in source.list_files()] == ["a.ndjson"]
    assert source.skipped.counts == {LINK_LOOP: 3}
    assert sorted(source.skipped.examples[LINK_LOOP]) == [
        "loop.ndjson",
        "ping.ndjson",
        "pong.ndjson",
    ]


@pytest.mark.parametrize(
    "target", [".tailrace/tailrace.db", ".tailrace/api-token", ".tailrace/new.ndjson"]
)
def test_no_sink_writes_into_the_data_directory(service: Path, target: str) -> None:
    before = {p: p.read_bytes() for p in (service / ".tailrace").iterdir()}
    with pytest.raises(SinkError, match="data directory"):
        FileSink(service / target)
    with pytest.raises(SinkError, match="data directory"):
        open_deadletter(parse_sink_url(f"file:{target}")).write([BadLine("f", 1, 0, "bad", b"x")])
    assert {p: p.read_bytes() for p in (service / ".tailrace").iterdir()} == before


def test_the_data_directorys_out_directory_takes_output(service: Path) -> None:
    with FileSink(service / ".tailrace" / "out" / "job.ndjson") as sink:
        sink.write([LINE.strip()])
    assert (service / ".tailrace" / "out" / "job.ndjson").read_bytes() == LINE


def test_an_sqlite_store_elsewhere_is_no_sink_either(
    service: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = service / "jobs.ndjson"
    monkeypatch.setenv("TAILRACE_DATABASE_URL", f"sqlite:///{store}")
    with pytest.raises(SinkError, match="job store"):
        FileSink(store)
    with pytest.raises(SinkError, match="job store"):
        FileSink(service / "jobs.ndjson-wal")
    assert not store.exists()


def test_a_symlink_planted_at_the_sink_or_dead_letter_path_is_refused(
    service: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.ndjson"
    victim.write_bytes(b"")  # empty: the old sink would have appended to it
    out = service / "logs" / "out.ndjson"
    deadletters = service / "logs" / "out.deadletter.ndjson"
    deadletters.symlink_to(victim)
    out.symlink_to(victim)
    with pytest.raises(SinkError, match="symbolic link"):
        FileSink(out)
    writer = open_deadletter(parse_sink_url(out.as_uri()))
    with pytest.raises(SinkError, match="symbolic link"):
        writer.write([BadLine(str(out), 1, 0, "bad", b"x")])
    assert victim.read_bytes() == b""


def test_a_sink_directory_swapped_for_a_symlink_out_of_the_roots_is_refused(
    service: Path, tmp_path: Path
) -> None:
    roots = [str(service / "logs")]
    sub = service / "logs" / "out"
    sub.mkdir()
    with FileSink(sub / "a.ndjson", roots=roots) as sink:  # allowed while it is a directory
        sink.write([b"{}"])
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    elsewhere.mkdir()
    try:
        (sub / "a.ndjson").unlink()
        (sub / ".a.ndjson.tailrace-sink").unlink()
        sub.rmdir()
        sub.symlink_to(elsewhere)
        with pytest.raises(SinkError, match="outside the directories"):
            FileSink(sub / "a.ndjson", roots=roots)
        assert list(elsewhere.iterdir()) == []
    finally:
        for p in elsewhere.iterdir():
            p.unlink()
        elsewhere.rmdir()
