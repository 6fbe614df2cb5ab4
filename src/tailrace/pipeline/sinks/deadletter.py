"""The dead-letter output: bad lines, with file, line, offset and reason, next to the sink.

Where it goes, by sink (`tailrace.pipeline.sinks.kinds.deadletter_spec`):

- ``file:///dir/out.ndjson`` -> ``/dir/out.deadletter.ndjson``: ``.deadletter`` goes before
  a ``.ndjson``, ``.jsonl`` or ``.json`` suffix; any other name gets ``.deadletter.ndjson``
  appended (``out`` -> ``out.deadletter.ndjson``, ``out.txt`` -> ``out.txt.deadletter.ndjson``).
- ``stdout:`` -> ``./tailrace-deadletter.ndjson`` in the current directory: standard output
  carries only events (it is often piped into another program), standard error carries the
  progress and the summary, and bad lines are data to inspect and replay, so they get a file.
- ``null:`` -> counted and discarded, like everything else sent to ``null:``.
- ``kafka://.../topic`` -> topic ``<topic>.deadletter``; ``postgresql://...`` -> table
  ``<table>_deadletter``.

The file is only created when the first bad line arrives: a clean run leaves none behind.
Each record is one JSON object on its own line::

    {"file": "...", "line": 12, "offset": 3456, "reason": "invalid UTF-8 at byte 7",
     "data": "...", "encoding": "utf-8" | "base64", "size": 81, "truncated": false}

``data`` holds the line as text when it is valid UTF-8, else base64 of its bytes; at most
`DEFAULT_MAX_DATA_BYTES` of it are kept (``truncated`` says so; ``size`` is the full length).
A record without ``data`` is a line whose bytes were not kept (an overlong line).

A file resumed from its checkpoint reads its lines past the checkpoint again; a file output
already holds the records a killed worker made durable after that checkpoint (they are flushed
before the checkpoint is stored), so `DeadLetterWriter.resume` reads them back and those lines
are not written twice.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from tailrace.pipeline.decoders.framing import BadLine
from tailrace.pipeline.sinks.base import Sink, SinkError
from tailrace.pipeline.sinks.file import FileSink

DEFAULT_MAX_DATA_BYTES = 64 * 1024
STDOUT_DEADLETTER_FILE = "tailrace-deadletter.ndjson"
_JSON_SUFFIXES = (".ndjson", ".jsonl", ".json")


def deadletter_path(path: Path) -> Path:
    """``out.ndjson`` -> ``out.deadletter.ndjson``; see the module's naming rules."""
    if path.suffix.lower() in _JSON_SUFFIXES:
        return path.with_name(f"{path.stem}.deadletter{path.suffix}")
    return path.with_name(f"{path.name}.deadletter.ndjson")


def _utf8_prefix(data: bytes) -> bytes:
    # Cut at a character boundary: drop up to 3 trailing continuation bytes (10xxxxxx)
    # and the lead byte they belong to.
    end = len(data)
    for back in range(1, min(4, end) + 1):
        byte = data[end - back]
        if byte & 0xC0 != 0x80:
            width = 1 if byte < 0x80 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if width <= back else data[: end - back]
    return data


def encode_record(bad: BadLine, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES) -> bytes:
    """One dead-letter record as a JSON line (without its newline)."""
    record = bad.to_dict()
    record.pop("data", None)
    data = bad.data
    if data:
        kept = data[:max_data_bytes]
        try:
            text_bytes = _utf8_prefix(kept) if len(data) > max_data_bytes else kept
            record["data"] = text_bytes.decode("utf-8")
            record["encoding"] = "utf-8"
        except UnicodeDecodeError:
            record["data"] = base64.b64encode(kept).decode("ascii")
            record["encoding"] = "base64"
        record["size"] = len(data)
        record["truncated"] = len(data) > max_data_bytes
    return _dumps(record)


def _dumps(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:
        # A file name undecodable from the file system arrives with lone surrogates, which
        # JSON cannot carry: show those bytes as escapes instead.
        return orjson.dumps(
            {
                key: value.encode("utf-8", "backslashreplace").decode("utf-8")
                if isinstance(value, str)
                else value
                for key, value in record.items()
            }
        )


class DeadLetterWriter:
    """Writes bad-line records to a sink opened on the first record.

    `flush()` makes the same promise as the sinks: when it returns, every record written
    is durable, so the caller can checkpoint past those lines.
    """

    def __init__(
        self,
        open_output: Callable[[], Sink],
        *,
        location: str,
        max_data_bytes: int = DEFAULT_MAX_DATA_BYTES,
        local_path: Path | None = None,
    ) -> None:
        self.location = location
        self.records = 0
        self._open_output = open_output
        self._output: Sink | None = None
        self._max_data_bytes = max_data_bytes
        self._local_path = local_path
        self._recorded: set[tuple[str, int, int]] = set()  # (file, line, offset) already there

    def resume(self, file: str) -> None:
        """`file` resumes from its checkpoint: the records of its lines a previous attempt
        made durable in a file output are not written again (counted, as they are there).
        It reads the whole dead-letter file, so the worker calls it only for a file read
        before."""
        self._recorded = set()
        if self._local_path is None or not os.path.exists(self._local_path):
            return
        if self._output is None:
            self._output = self._open_output()
        if not isinstance(self._output, FileSink):
            return
        for raw in self._output.read_durable().splitlines():
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            line, offset = record.get("line"), record.get("offset")
            # line 0: not a line of the file (a record the sink could not deliver)
            if line == 0:
                continue
            if record.get("file") == file and isinstance(line, int) and isinstance(offset, int):
                self._recorded.add((file, line, offset))

    def write(self, bad_lines: Iterable[BadLine]) -> None:
        if self._recorded:
            bad_lines = [
                bad for bad in bad_lines if (bad.file, bad.line, bad.offset) not in self._recorded
            ]
        batch = [encode_record(bad, self._max_data_bytes) for bad in bad_lines]
        if not batch:
            return
        if self._output is None:
            self._output = self._open_output()
        self._output.write(batch)
        self.records += len(batch)

    def flush(self) -> None:
        if self._output is not None:
            self._output.flush()
            # A broker output reports what it finally could not deliver; a dead letter has
            # nowhere further to go, so that stops the file (it resumes from its checkpoint).
            failed = self._output.take_failed()
            if failed:
                raise SinkError(
                    f"dead-letter output {self.location}: {len(failed)} records not delivered: "
                    f"{failed[0].error}"
                )

    def close(self) -> None:
        if self._output is not None:
            self._output.close()

    def __enter__(self) -> DeadLetterWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
