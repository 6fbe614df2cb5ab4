from __future__ import annotations

import os
from pathlib import Path

import pytest

from tailrace.errors import TailraceError
from tailrace.pipeline.sources import (
    LocalSource,
    SourceAccessError,
    SourceFile,
    SourceNotFoundError,
    open_source,
)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """logs/ with nested days, a hidden file and a hidden directory."""
    root = tmp_path / "logs"
    write(root / "a.ndjson", b"1" * 10)
    write(root / "2026" / "01" / "b.ndjson.gz", b"2" * 20)
    write(root / "2026" / "02" / "c.ndjson", b"3" * 30)
    write(root / "2026" / "02" / "notes.txt", b"4" * 4)
    write(root / ".partial.ndjson", b"x")
    write(root / ".cache" / "d.ndjson", b"y")
    return root


def urls(files: list[SourceFile]) -> list[str]:
    return [file.url for file in files]


def test_a_single_file_is_listed_with_its_size(tree: Path) -> None:
    files = open_source(str(tree / "2026" / "02" / "c.ndjson")).list_files()
    assert files == [SourceFile(str(tree / "2026" / "02" / "c.ndjson"), 30)]
    assert files[0].name == "c.ndjson"


def test_a_directory_is_listed_recursively_sorted_without_hidden_names(tree: Path) -> None:
    source = open_source(str(tree))
    files = source.list_files()
    assert urls(files) == [
        str(tree / "2026" / "01" / "b.ndjson.gz"),
        str(tree / "2026" / "02" / "c.ndjson"),
        str(tree / "a.ndjson"),
    ]
    assert [file.size for file in files] == [20, 30, 10]
    assert isinstance(source, LocalSource)
    assert source.skipped.examples == {
        "not a log file (.ndjson, .jsonl, .json, .log, optionally .gz or .zst)": [
            "2026/02/notes.txt"
        ]
    }


def test_a_relative_path_gives_absolute_urls(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)
    files = open_source("logs/2026").list_files()
    assert urls(files)[0] == str(tree / "2026" / "01" / "b.ndjson.gz")
    assert all(os.path.isabs(url) for url in urls(files))


def test_an_empty_directory_has_no_files(tmp_path: Path) -> None:
    assert open_source(str(tmp_path)).list_files() == []


def test_a_glob_matches_in_one_directory(tree: Path) -> None:
    files = open_source(str(tree / "2026" / "*" / "*.ndjson*")).list_files()
    assert urls(files) == [
        str(tree / "2026" / "01" / "b.ndjson.gz"),
        str(tree / "2026" / "02" / "c.ndjson"),
    ]


def test_a_single_star_does_not_cross_directories(tree: Path) -> None:
    assert urls(open_source(str(tree / "*.ndjson")).list_files()) == [str(tree / "a.ndjson")]


def test_double_star_spans_zero_or_more_directories_and_skips_hidden(tree: Path) -> None:
    files = open_source(str(tree / "**" / "*.ndjson")).list_files()
    assert urls(files) == [str(tree / "2026" / "02" / "c.ndjson"), str(tree / "a.ndjson")]


def test_a_trailing_double_star_lists_everything_below(tree: Path) -> None:
    files = open_source(str(tree / "2026" / "**")).list_files()
    assert [file.name for file in files] == ["b.ndjson.gz", "c.ndjson", "notes.txt"]


def test_glob_character_classes_and_question_marks(tree: Path) -> None:
    files = open_source(str(tree / "2026" / "0[2-9]" / "?.ndjson")).list_files()
    assert urls(files) == [str(tree / "2026" / "02" / "c.ndjson")]


def test_a_symlink_loop_is_walked_once(tree: Path) -> None:
    (tree / "2026" / "loop").symlink_to(tree)
    (tree / "also-2026").symlink_to(tree / "2026")
    files = open_source(str(tree)).list_files()
    assert len(files) == 3  # notes.txt is not a log file
    assert len({file.size for file in files}) == 3  # each file once, under one of its paths


def test_a_symlinked_file_is_listed(tree: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "elsewhere.ndjson", b"z" * 7)
    (tree / "linked.ndjson").symlink_to(target)
    files = open_source(str(tree / "linked.ndjson")).list_files()
    assert [file.size for file in files] == [7]


def test_open_reads_from_the_start_or_from_an_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "f.ndjson", b'{"a":1}\n{"a":2}\n')
    source = open_source(str(path))
    [file] = source.list_files()
    with source.open(file) as stream:
        assert stream.read() == b'{"a":1}\n{"a":2}\n'
    with source.open(file, offset=8) as stream:
        assert stream.read(3) == b'{"a'
        assert stream.read() == b'":2}\n'
    with source.open(file, offset=100) as stream:
        assert stream.read() == b""


def test_open_rejects_a_negative_offset(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"x")
    with pytest.raises(ValueError, match="negative offset"):
        LocalSource(str(path)).open(SourceFile(str(path), 1), offset=-1)


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SourceNotFoundError, match="no such file or directory") as caught:
        open_source(str(missing)).list_files()
    assert str(missing) in str(caught.value)
    assert caught.value.location == str(missing)
    assert isinstance(caught.value, TailraceError)


def test_a_glob_matching_nothing_is_a_clear_error(tree: Path) -> None:
    pattern = str(tree / "**" / "*.zst")
    with pytest.raises(SourceNotFoundError, match="matches no file") as caught:
        open_source(pattern).list_files()
    assert pattern in str(caught.value)


def test_a_glob_under_a_missing_directory_says_which(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=f"no such directory {tmp_path / 'gone'}$"):
        open_source(str(tmp_path / "gone" / "*.ndjson")).list_files()


def test_opening_a_file_removed_since_listing_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "f.ndjson", b"x")
    source = open_source(str(path))
    [file] = source.list_files()
    path.unlink()
    with pytest.raises(SourceNotFoundError, match=f"no such file: {path}"):
        source.open(file)


def test_an_unreadable_directory_is_an_access_error(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod 0 does not stop root (which runs these tests in containers): refuse in scandir.
    locked = str(tree / "2026" / "01")
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if path == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(SourceAccessError, match=f"permission denied: {locked}$"):
        open_source(str(tree)).list_files()
