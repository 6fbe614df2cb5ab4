"""How chunks become the parts of one multipart upload.

S3 wants every part but the last to be at least 5 MiB (and at most 5 GiB, 10,000 parts).
A chunk that is large enough is copied server-side (UploadPartCopy). Smaller chunks, and the
bytes needed to bring a run of them up to 5 MiB, are downloaded and uploaded as one part: the
run takes only as many bytes of the next large chunk as it lacks (a ranged read), and the rest
of that chunk is copied with a source range. So at most 5 MiB per run of small chunks crosses
the network; everything else stays on the server.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_PART = 5 * 1024 * 1024
MAX_PART = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000


@dataclass(frozen=True, slots=True)
class Chunk:
    """An existing object to compose, as HEAD described it."""

    key: str
    size: int
    etag: str  # without quotes


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes ``[start, end)`` of a chunk."""

    chunk: Chunk
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end == self.chunk.size


@dataclass(frozen=True, slots=True)
class Part:
    """One part: copied server-side (``copy``, exactly one segment) or uploaded from the
    downloaded bytes of its segments."""

    number: int
    segments: tuple[Segment, ...]
    copy: bool

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)


def plan_parts(
    chunks: list[Chunk], min_part: int = MIN_PART, max_part: int = MAX_PART
) -> list[Part]:
    """The parts that compose ``chunks`` in order; every part but the last is >= ``min_part``."""
    parts: list[Part] = []
    run: list[Segment] = []  # bytes to download, fewer than min_part so far
    run_size = 0

    def add(segments: tuple[Segment, ...], copy: bool) -> None:
        parts.append(Part(len(parts) + 1, segments, copy))

    for chunk in chunks:
        start = 0
        while start < chunk.size:
            left = chunk.size - start
            if not run and left >= min_part:
                take = min(left, max_part)
                if 0 < left - take < min_part:
                    # don't leave a tail too small to copy: it would cost a download
                    take = left - min_part
                add((Segment(chunk, start, start + take),), copy=True)
            else:
                take = min(left, min_part - run_size)
                run.append(Segment(chunk, start, start + take))
                run_size += take
                if run_size >= min_part:
                    add(tuple(run), copy=False)
                    run, run_size = [], 0
            start += take
    if run:
        add(tuple(run), copy=False)
    return parts
