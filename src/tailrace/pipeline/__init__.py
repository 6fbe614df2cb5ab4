"""Moving event-log files: read (decompress, frame, parse), filter, route and write.

Built so far: sources list and open stored files (local paths, directories and globs; S3);
`read_events` streams one file (NDJSON or a JSON array; plain, gzip or zstd, detected from
the bytes) as `Event` records carrying their original bytes, and `BadLine` records for what
cannot be read; `EventFilter` decides which events go on; sinks (file, stdout, null) write
the original bytes, and dead-letter writers keep the bad lines.
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
from tailrace.pipeline.sinks import (
    DeadLetterWriter,
    Sink,
    SinkError,
    SinkNotBuiltError,
    SinkSpec,
    SinkURLError,
    open_deadletter,
    open_sink,
    parse_sink_url,
)
from tailrace.pipeline.sources import (
    Source,
    SourceAccessError,
    SourceError,
    SourceFile,
    SourceNotFoundError,
    open_source,
)

__all__ = [
    "BadLine",
    "Checkpoint",
    "Compression",
    "DeadLetterWriter",
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
    "Sink",
    "SinkError",
    "SinkNotBuiltError",
    "SinkSpec",
    "SinkURLError",
    "Source",
    "SourceAccessError",
    "SourceError",
    "SourceFile",
    "SourceNotFoundError",
    "detect_compression",
    "open_deadletter",
    "open_sink",
    "open_source",
    "parse_sink_url",
    "parse_time_bound",
    "read_events",
]
