"""Sinks: where events go, as their original bytes, acknowledged only once delivered.

`open_sink` opens a sink from its URL (`file:`, `stdout:`, `null:`, `kafka:`,
`postgresql:`); `open_deadletter` opens the dead-letter output that goes with it.
"""

from tailrace.pipeline.sinks.base import (
    FailedDelivery,
    Sink,
    SinkBase,
    SinkCounters,
    SinkError,
    frame_lines,
)
from tailrace.pipeline.sinks.deadletter import (
    DEFAULT_MAX_DATA_BYTES,
    DeadLetterWriter,
    deadletter_path,
    encode_record,
)
from tailrace.pipeline.sinks.file import FileSink
from tailrace.pipeline.sinks.kinds import (
    SinkKindOps,
    deadletter_spec,
    open_deadletter,
    open_sink,
    sink_kind,
)
from tailrace.pipeline.sinks.null import NullSink
from tailrace.pipeline.sinks.stdout import StdoutSink
from tailrace.pipeline.sinks.url import (
    DEFAULT_KAFKA_TOPIC,
    SinkKind,
    SinkNotBuiltError,
    SinkSpec,
    SinkURLError,
    parse_sink_url,
    resolve_sink_url,
    sink_has_credentials,
)

__all__ = [
    "DEFAULT_KAFKA_TOPIC",
    "DEFAULT_MAX_DATA_BYTES",
    "DeadLetterWriter",
    "FailedDelivery",
    "FileSink",
    "NullSink",
    "Sink",
    "SinkBase",
    "SinkCounters",
    "SinkError",
    "SinkKind",
    "SinkKindOps",
    "SinkNotBuiltError",
    "SinkSpec",
    "SinkURLError",
    "StdoutSink",
    "deadletter_path",
    "deadletter_spec",
    "encode_record",
    "frame_lines",
    "open_deadletter",
    "open_sink",
    "parse_sink_url",
    "resolve_sink_url",
    "sink_has_credentials",
    "sink_kind",
]
