"""One descriptor per kind of sink: how it opens, where its dead letters go, how they are
written and read back, and which local files it writes (what the admin API checks before
admitting it).

Code that treats sinks differently by kind asks the kind's `SinkKindOps` instead of testing
`spec.kind`, so a new sink is its descriptor here and its module. Kafka and PostgreSQL are
imported only when opened: a run into a file never pays for loading librdkafka or psycopg.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tailrace.pipeline.confine import Roots
from tailrace.pipeline.sinks.base import Sink
from tailrace.pipeline.sinks.deadletter import (
    DEFAULT_MAX_DATA_BYTES,
    STDOUT_DEADLETTER_FILE,
    DeadLetterWriter,
    deadletter_path,
)
from tailrace.pipeline.sinks.file import FileSink
from tailrace.pipeline.sinks.null import NullSink
from tailrace.pipeline.sinks.readback import ReadBack, read_file, read_table
from tailrace.pipeline.sinks.stdout import StdoutSink
from tailrace.pipeline.sinks.url import SinkKind, SinkNotBuiltError, SinkSpec, parse_sink_url

Opener = Callable[[], Sink]

_NULL_DEADLETTERS = "nowhere (the null sink discards them)"


@dataclass(frozen=True, slots=True)
class SinkKindOps:
    """What tailrace does with one kind of sink."""

    #: The sink a spec names, ready to write; files confined to the roots.
    open: Callable[[SinkSpec, Roots], Sink]
    #: Where the sink's dead letters go, as a spec of their own.
    deadletter_target: Callable[[SinkSpec], SinkSpec]
    #: Opens the output of dead letters sent to a target of this kind, or None when no
    #: sink sends its dead letters to this kind.
    deadletter_opener: Callable[[SinkSpec, Roots], Opener] | None
    #: Where dead letters sent to a target of this kind are, and (when readable here) up to
    #: `limit` of those of the given files after `offset`.
    read_back: Callable[[SinkSpec, set[str], int, int], ReadBack] = (
        lambda spec, files, limit, offset: (spec.display, None)
    )
    #: The local files the sink and its dead letters write (checked by the admin API).
    local_files: Callable[[SinkSpec], tuple[Path, ...]] = lambda spec: ()
    #: Admitted by the admin API whatever its settings (it writes nothing anywhere).
    always_admitted: bool = False


def _file_path(spec: SinkSpec) -> Path:
    if spec.path is None:
        raise SinkNotBuiltError(f"a file sink without a path ({spec.display})")
    return spec.path


def _open_file(spec: SinkSpec, roots: Roots) -> Sink:
    return FileSink(_file_path(spec), roots=roots)


def _file_deadletters(spec: SinkSpec, roots: Roots) -> Opener:
    path = _file_path(spec)
    # written early without keeping the lock: the sink's own flush comes after the dead
    # letters' at each checkpoint, and holding both could deadlock
    return lambda: FileSink(path, roots=roots, hold_lock=False)


def _file_local_files(spec: SinkSpec) -> tuple[Path, ...]:
    return () if spec.path is None else (spec.path, deadletter_path(spec.path))


def _open_kafka(spec: SinkSpec, roots: Roots) -> Sink:
    from tailrace.pipeline.sinks.kafka import KafkaSink

    return KafkaSink.from_spec(spec)


def _kafka_deadletters(spec: SinkSpec, roots: Roots) -> Opener:
    from tailrace.pipeline.sinks.kafka import KafkaSink

    return lambda: KafkaSink.from_spec(spec)


def _open_postgres(spec: SinkSpec, roots: Roots) -> Sink:
    from tailrace.pipeline.sinks.postgres.sink import PostgresSink

    return PostgresSink.from_spec(spec)


def _postgres_deadletters(spec: SinkSpec, roots: Roots) -> Opener:
    from tailrace.pipeline.sinks.postgres.sink import PostgresDeadLetterSink

    return lambda: PostgresDeadLetterSink.from_spec(spec)


KINDS: dict[SinkKind, SinkKindOps] = {
    SinkKind.FILE: SinkKindOps(
        open=_open_file,
        deadletter_target=lambda spec: replace(spec, path=deadletter_path(_file_path(spec))),
        deadletter_opener=_file_deadletters,
        read_back=read_file,
        local_files=_file_local_files,
    ),
    SinkKind.STDOUT: SinkKindOps(
        open=lambda spec, roots: StdoutSink(),
        # standard output carries only events: bad lines get a file in the current directory
        deadletter_target=lambda spec: SinkSpec(
            SinkKind.FILE, path=Path.cwd() / STDOUT_DEADLETTER_FILE
        ),
        deadletter_opener=None,
    ),
    SinkKind.NULL: SinkKindOps(
        open=lambda spec, roots: NullSink(),
        deadletter_target=lambda spec: spec,
        deadletter_opener=lambda spec, roots: NullSink,
        read_back=lambda spec, files, limit, offset: (
            "nowhere (the null sink discards them)",
            None,
        ),
        always_admitted=True,
    ),
    SinkKind.KAFKA: SinkKindOps(
        open=_open_kafka,
        deadletter_target=lambda spec: replace(spec, topic=f"{spec.topic}.deadletter"),
        deadletter_opener=_kafka_deadletters,
        # named, not read: consuming the topic is the consumers' business
        read_back=lambda spec, files, limit, offset: (f"kafka topic {spec.topic}", None),
    ),
    SinkKind.POSTGRESQL: SinkKindOps(
        open=_open_postgres,
        deadletter_target=lambda spec: replace(spec, table=f"{spec.table}_deadletter"),
        deadletter_opener=_postgres_deadletters,
        read_back=read_table,
    ),
}


def sink_kind(spec: SinkSpec) -> SinkKindOps:
    """The descriptor of a spec's kind."""
    ops = KINDS.get(spec.kind)
    if ops is None:
        raise SinkNotBuiltError(f"the {spec.kind} sink is not built yet ({spec.display})")
    return ops


def open_sink(url: str | SinkSpec, *, roots: Roots = ()) -> Sink:
    """The sink a URL (or parsed spec) names, ready to write; a file must be in `roots`
    when given, and never among tailrace's own files (see `tailrace.pipeline.confine`)."""
    spec = parse_sink_url(url) if isinstance(url, str) else url
    return sink_kind(spec).open(spec, roots)


def deadletter_spec(spec: SinkSpec) -> SinkSpec:
    """Where the dead letters of a sink go, as a sink spec of its own (see
    `tailrace.pipeline.sinks.deadletter` for the naming rules)."""
    return sink_kind(spec).deadletter_target(spec)


def open_deadletter(
    spec: SinkSpec, *, max_data_bytes: int = DEFAULT_MAX_DATA_BYTES, roots: Roots = ()
) -> DeadLetterWriter:
    """The dead-letter writer for a sink, following the naming rules; a file is opened as
    the file sink opens its own (checked against `roots` and tailrace's files)."""
    target = deadletter_spec(spec)
    opener = sink_kind(target).deadletter_opener
    if opener is None:
        raise SinkNotBuiltError(f"the {target.kind} dead-letter output is not built yet")
    return DeadLetterWriter(
        opener(target, roots),
        location=target.display,
        max_data_bytes=max_data_bytes,
        local_path=target.path if target.kind is SinkKind.FILE else None,
    )
