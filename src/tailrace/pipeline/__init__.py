"""Moving event-log files: read (decompress, frame, parse), filter, route and write.

The reading layer is here so far: `read_events` streams one stored file (NDJSON or a JSON
array; plain, gzip or zstd, detected from the bytes) as `Event` records carrying their
original bytes, and `BadLine` records for what cannot be read; `EventFilter` decides which
events go on.
"""

from tailrace.pipeline.decoders import (
    BadLine,
    Checkpoint,
    Compression,
    Line,
    LineReader,
    detect_compression,
)
from tailrace.pipeline.errors import DecompressionError, FieldPathError, FilterSpecError
from tailrace.pipeline.events import Event, EventDecoder, EventFields, read_events
from tailrace.pipeline.filters import EventFilter, Predicate, parse_time_bound

__all__ = [
    "BadLine",
    "Checkpoint",
    "Compression",
    "DecompressionError",
    "Event",
    "EventDecoder",
    "EventFields",
    "EventFilter",
    "FieldPathError",
    "FilterSpecError",
    "Line",
    "LineReader",
    "Predicate",
    "detect_compression",
    "parse_time_bound",
    "read_events",
]
