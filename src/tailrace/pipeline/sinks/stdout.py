"""The stdout sink: NDJSON on standard output, for trying things and for pipes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import BinaryIO

from tailrace.pipeline.sinks.base import FileMark, Keys, Routes, SinkBase, SinkError, frame_lines


class StdoutSink(SinkBase):
    """Writes each event's original bytes and a newline to `stream` (``sys.stdout.buffer``).

    `flush()` flushes the stream: "delivered" means handed to the reader of the pipe or
    terminal. Closing does not close standard output itself.
    """

    name = "stdout:"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        super().__init__()
        self._stream = stream if stream is not None else sys.stdout.buffer

    def write(
        self, batch: Sequence[bytes], *, keys: Keys | None = None, routes: Routes | None = None
    ) -> None:
        self._check_open()
        if not batch:
            return
        data = frame_lines(batch)
        try:
            self._stream.write(data)
        except OSError as exc:  # BrokenPipeError when the reader went away
            raise SinkError(f"{self.name}: write failed: {exc.strerror or exc}") from exc
        self._written(len(batch), len(data) - len(batch))

    def flush(self, mark: FileMark | None = None) -> None:
        self._check_open()
        try:
            self._stream.flush()
        except OSError as exc:
            raise SinkError(f"{self.name}: flush failed: {exc.strerror or exc}") from exc
        self._acknowledge()
