"""Writes the bad-input corpus in `bad/`: one file per way a log file can be broken, named for
what is wrong with it. Run it again only to change the corpus; the files are committed, and
`expected.json` (hand-checked) says what reading each must count.

    python tests/corpus/make_bad.py
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent / "bad"


def event(n: int, stream: str = "s1") -> bytes:
    return json.dumps(
        {
            "messageId": f"m{n}",
            "messageCreated": f"2026-11-20T10:00:{n % 60:02d}Z",
            "origin": {"sourceId": stream},
            "type": "track",
            "event": "clicked",
        },
        separators=(",", ":"),
    ).encode()


def lines(*parts: bytes) -> bytes:
    return b"".join(part + b"\n" for part in parts)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    good = [event(n) for n in range(1, 6)]
    many = lines(*(event(n, f"s{n % 7}") for n in range(1, 3001)))  # several zstd blocks
    files = {
        "invalid_json.ndjson": lines(good[0], b'{"messageId": "m2", "origin": ', good[2]),
        "invalid_utf8_in_a_skipped_field.ndjson": lines(
            good[0], b'{"messageId":"m2","note":"caf\xe9","origin":{"sourceId":"s1"}}', good[2]
        ),
        "truncated_last_line.ndjson": lines(good[0], good[1]) + good[2][:25],
        "not_an_object.ndjson": lines(good[0], b"[1, 2, 3]", b'"just a string"', b"null", good[1]),
        "crlf_and_blank_lines.ndjson": good[0] + b"\r\n\r\n" + good[1] + b"\r\n\n" + good[2],
        "utf8_bom.ndjson": b"\xef\xbb\xbf" + lines(good[0], good[1]),
        "line_over_the_limit.ndjson.gz": gzip.compress(
            lines(good[0], b'{"pad":"' + b"x" * (1 << 20) + b'"}', good[1]), 9, mtime=0
        ),
        "truncated_gzip.ndjson.gz": _cut(gzip.compress(many, 6, mtime=0)),
        "corrupt_gzip.ndjson.gz": _corrupt(gzip.compress(lines(*good * 200), 6, mtime=0)),
        "multi_member_gzip.ndjson.gz": gzip.compress(lines(*good[:2]), mtime=0)
        + gzip.compress(lines(*good[2:]), mtime=0),
        "truncated_zstd.ndjson.zst": _cut(zstandard.ZstdCompressor().compress(many)),
        "json_array_with_a_bad_element.json": b"[\n"
        + b",\n".join([good[0], b'{"messageId": "m2", "origin": }', good[2]])
        + b"\n]\n",
        "empty.ndjson": b"",
    }
    for name, data in files.items():
        (HERE / name).write_bytes(data)


def _cut(data: bytes) -> bytes:
    """The first 80%: what an interrupted upload leaves."""
    return data[: len(data) * 4 // 5]


def _corrupt(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 64]) + data[middle + 64 :]


if __name__ == "__main__":
    main()
