"""Events: JSON lines (or JSON-array files) decoded as far as the pipeline needs.

An `Event` keeps the original line bytes: sinks forward those, never a re-serialisation.
Field locations are configurable; the defaults cover the reference documents and Jitsu's
failover lines.

Decoding is partial: msgspec materialises only the fields the pipeline reads (stream id,
time, message id and the paths filter predicates need) into a Struct type built from those
paths, and skips the rest of the line without building Python objects for it. Where that
Struct cannot give exactly what a full parse would (the top level is not an object, a value
is an object or array where a scalar is read, an integer beyond int64, nesting deeper than
msgspec's limit, invalid JSON), the line takes the full orjson parse, so results and
bad-line reasons are the same as before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from operator import itemgetter
from typing import Annotated, Any, Union, cast

import msgspec
import orjson

from tailrace.pipeline.decoders.compression import Readable
from tailrace.pipeline.decoders.framing import (
    DEFAULT_MAX_LINE_BYTES,
    BadLine,
    Checkpoint,
    Line,
    LineReader,
    LineRun,
)
from tailrace.pipeline.errors import FieldPathError

FieldPath = tuple[str, ...]


def parse_path(text: str) -> FieldPath:
    """``"origin.slug"`` -> ``("origin", "slug")``."""
    parts = tuple(text.split("."))
    if not text or any(not part for part in parts):
        raise FieldPathError(f"invalid field path {text!r}")
    return parts


def lookup(data: Any, path: FieldPath) -> Any:
    """The value at `path` in nested objects, or None when any step is missing."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
        if data is None:
            return None
    return data


@dataclass(frozen=True, slots=True)
class EventFields:
    """Where an event's fields are: for each, paths tried in order, the first present wins."""

    stream_id: tuple[FieldPath, ...] = (
        ("origin", "sourceId"),
        ("origin", "source_id"),
        ("origin", "slug"),
    )
    time: tuple[FieldPath, ...] = (("messageCreated",), ("timestamp",), ("receivedAt",))
    message_id: tuple[FieldPath, ...] = (("messageId",),)

    @classmethod
    def from_strings(
        cls,
        *,
        stream_id: Iterable[str] | None = None,
        time: Iterable[str] | None = None,
        message_id: Iterable[str] | None = None,
    ) -> EventFields:
        """Fields from dotted paths; a field left as None keeps its defaults."""
        default = cls()
        return cls(
            stream_id=_paths(stream_id, default.stream_id),
            time=_paths(time, default.time),
            message_id=_paths(message_id, default.message_id),
        )


def _paths(texts: Iterable[str] | None, default: tuple[FieldPath, ...]) -> tuple[FieldPath, ...]:
    return default if texts is None else tuple(parse_path(text) for text in texts)


def parse_event_time(value: Any) -> datetime | None:
    """An ISO 8601 string (naive means UTC) or epoch milliseconds, as an aware datetime."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


class Event(msgspec.Struct, gc=False, repr_omit_defaults=True):
    """A decoded event with its position and original bytes.

    `time_value` is the time field as written (a string or epoch milliseconds); `time` parses
    it. `values` are the values at `paths`, the extra paths the decoder was asked for (those
    of a filter's predicates), in that order; `value()` reaches any other path.
    """

    # A msgspec Struct rather than a dataclass: its C __init__ is ~0.2 µs cheaper per event,
    # and gc=False keeps the collector away (an event holds no reference cycles).
    line: int
    offset: int
    end: int
    raw: bytes
    stream_id: str | None = None
    message_id: str | None = None
    time_value: Any = None
    values: tuple[Any, ...] = ()
    paths: tuple[FieldPath, ...] = ()

    @property
    def time(self) -> datetime | None:
        """The event time, or None when no time field is present or it cannot be parsed.

        Parsed on each access: a filter that rejects the stream id never pays for it.
        """
        return parse_event_time(self.time_value)

    @property
    def data(self) -> dict[str, Any]:
        """The whole event, parsed from `raw` on each access (keep it if you need it twice).

        Raises `orjson.JSONDecodeError` in the one case where the partial decode accepted a
        line the full parse does not: a number beyond the float range in a field the pipeline
        does not read.
        """
        data: dict[str, Any] = orjson.loads(self.raw)
        return data

    def value(self, path: FieldPath) -> Any:
        """The value at `path` (None when absent): decoded already if it is one of `paths`,
        otherwise looked up in a full parse of `raw`."""
        try:
            index = self.paths.index(path)
        except ValueError:
            return lookup(self.data, path)
        return self.values[index]


class Batch(msgspec.Struct, gc=False):
    """A run of records as the file loop takes them: the events and bad lines in order,
    lines of streams a filter does not keep only counted (no `Event`, no `Line` built)."""

    records: int
    """Lines read: events, filtered lines and bad lines (empty lines are not records)."""
    items: list[Event | BadLine]
    filtered: int
    """Lines of streams the filter does not keep."""
    done: Checkpoint | None
    """Just past the last line read whole (not a bad one), if the batch has one."""
    ends_done: bool
    """Whether that line is the batch's last record: a checkpoint may be taken here."""


class EventDecoder:
    """Turns lines into `Event` records, or `BadLine` records saying what is wrong.

    `extra_paths` are decoded besides `fields` and given in each event's `values`; pass a
    filter's `paths` so that its predicates need no full parse.
    """

    def __init__(
        self,
        fields: EventFields | None = None,
        *,
        file: str = "",
        extra_paths: Iterable[FieldPath] = (),
    ) -> None:
        self.fields = fields or EventFields()
        self.file = file
        # tuple() of a tuple is the same object: a filter can tell its own paths by identity.
        self.extra_paths: tuple[FieldPath, ...] = tuple(extra_paths)
        self._plan = _plan(self.fields, self.extra_paths)

    def decode(self, line: Line) -> Event | BadLine:
        raw = line.data
        # msgspec validates UTF-8 only in the strings it materialises, but every invalid line
        # must become a BadLine. isascii() scans without copying (~0.06 µs for 1 KB); only
        # other lines pay for a real check (~0.2 µs more: it builds a str).
        if not raw.isascii():
            try:
                raw.decode()
            except UnicodeDecodeError as exc:
                reason = f"invalid UTF-8 at byte {exc.start}"
                return BadLine(self.file, line.number, line.offset, reason, raw)
        plan = self._plan
        try:
            struct = plan.decode(raw)
            return plan.make_event(
                struct, line.number, line.offset, line.end, raw, self.extra_paths
            )
        except (msgspec.DecodeError, RecursionError, _NeedFullParse):
            return self._decode_full(line)

    def decode_many(
        self, lines: list[Line], keep: frozenset[str] | None = None
    ) -> list[Event | BadLine | Line]:
        """`decode` for a run of lines, with one msgspec call for all of them when they are
        clean (ASCII, one JSON object each): the per-call cost is most of what a short
        partial decode costs. Anything else falls back to `decode` line by line.

        With `keep` (a filter's stream ids), a valid line whose stream id is not in it is
        returned as its `Line`, no `Event` built: most lines of a stream-filtered run."""
        plan = self._plan
        if plan.decode_many is None or len(lines) < 2:
            return [self.decode(line) for line in lines]
        raws = [line.data for line in lines]
        joined = b"[" + b",".join(raws) + b"]"
        try:
            # Each line must be exactly one value: a line holding two (`{..},{..}`) would
            # shift the rest, and the count catches it (a line with none is a syntax error).
            structs = plan.decode_many(joined) if joined.isascii() else None
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            structs = None
        if structs is None or len(structs) != len(lines):
            return [self.decode(line) for line in lines]
        make_event, paths = plan.make_event, self.extra_paths
        stream_of = plan.stream_of if keep is not None else None
        events: list[Event | BadLine | Line] = []
        for struct, line, raw in zip(structs, lines, raws, strict=True):
            try:
                if stream_of is not None and stream_of(struct) not in keep:  # type: ignore[operator]
                    events.append(line)
                    continue
                events.append(make_event(struct, line.number, line.offset, line.end, raw, paths))
            except _NeedFullParse:
                events.append(self._decode_full(line))
        return events

    def decode_run(self, run: LineRun, keep: frozenset[str] | None = None) -> Batch:
        """A chunk's run of lines as one `Batch`: one msgspec call over the run's bytes as
        they are (no split, no join) when every line is one clean JSON object, and `Event`s
        built only for the lines of streams in `keep` (all lines when it is None).
        Otherwise line by line, as `decode_many` does."""
        plan = self._plan
        lines = run.lines
        structs: list[Any] | None = None
        if plan.decode_lines is not None and run.text.isascii():
            text = run.text if run.size == len(run.text) else memoryview(run.text)[: run.size]
            try:
                structs = plan.decode_lines(text)
            except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                structs = None
        if structs is None or len(structs) != len(lines) or not _one_object_per_line(lines):
            return self.batch(list(run.records()), keep)
        if keep is None or plan.select is None:
            kept: Iterable[int] = range(len(lines))
        else:
            kept = plan.select(structs, keep)
        # Offsets only now, in C: ~50 ns a line where a Line per line cost ~150 ns.
        starts = list(accumulate(map(len, lines), initial=run.offset))
        number, make_event, paths = run.number, plan.make_event, self.extra_paths
        items: list[Event | BadLine] = []
        index = -1
        for index in kept:
            raw = lines[index][:-1]
            at, end = starts[index], starts[index + 1]
            try:
                items.append(make_event(structs[index], number + index + 1, at, end, raw, paths))
            except _NeedFullParse:
                items.append(self._decode_full(Line(number + index + 1, at, end, raw)))
        count = len(lines)
        if index == count - 1 and type(items[-1]) is BadLine:
            # The last line failed the full parse (rare): the checkpoint's place is then
            # the line before, which the line-by-line batch works out.
            return self.batch(list(run.records()), keep)
        return Batch(
            count, items, count - len(items), Checkpoint(number + count, starts[count]), True
        )

    def batch(self, lines: list[Line], keep: frozenset[str] | None = None) -> Batch:
        """`decode_many` as a `Batch`."""
        if not lines:
            return Batch(0, [], 0, None, False)
        results = self.decode_many(lines, keep)
        items: list[Event | BadLine] = [r for r in results if type(r) is not Line]  # type: ignore[misc]
        done: Checkpoint | None = None
        for result in reversed(results):
            if type(result) is Event:
                done = Checkpoint(result.line, result.end)
                break
            if type(result) is Line:
                done = Checkpoint(result.number, result.end)
                break
        filtered = len(results) - len(items)
        return Batch(len(results), items, filtered, done, type(results[-1]) is not BadLine)

    def _decode_full(self, line: Line) -> Event | BadLine:
        """The line parsed whole with orjson: the reference the partial decode matches."""
        raw = line.data
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return BadLine(self.file, line.number, line.offset, _json_error(raw, exc), raw)
        if not isinstance(data, dict):
            reason = f"JSON value is {json_kind(data)}, not an object"
            return BadLine(self.file, line.number, line.offset, reason, raw)
        fields = self.fields
        return Event(
            line.number,
            line.offset,
            line.end,
            raw,
            _lookup_text(data, fields.stream_id),
            _lookup_text(data, fields.message_id),
            _lookup_first(data, fields.time),
            tuple([lookup(data, path) for path in self.extra_paths]),
            self.extra_paths,
        )


# Lines decoded by one msgspec call (see `EventDecoder.decode_many`).
_DECODE_RUN = 128
_FIRST_BYTE = itemgetter(0)
_LAST_BYTE = itemgetter(-2)  # before the newline


def _one_object_per_line(lines: list[bytes]) -> bool:
    """Whether a run's lines, which parsed as as many JSON values as there are lines, hold
    one each: true when every line starts with ``{`` and ends with ``}``. A value cannot then
    run on into the next line (a ``{`` after a ``}`` inside an object or array is a syntax
    error, and JSON strings hold no raw newline), so each line ends one and starts the next.
    The first and last bytes are gathered in C: no Python step per line."""
    if bytes(map(_FIRST_BYTE, lines)).strip(b"{"):
        return False  # also every empty line ("\n"), which has no byte before its newline
    return not bytes(map(_LAST_BYTE, lines)).strip(b"}")


# --- The partial decode -------------------------------------------------------------------

# A value read at the end of a path: a JSON scalar. An object or array there fails
# validation and sends the line to the full parse (a partial Struct cannot rebuild it).
# orjson turns integers beyond 64 bits into floats and msgspec keeps them exact; msgspec's
# bounds must fit int64, so integers from 2**63 also take the full parse.
_Int = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
_SCALAR: tuple[Any, ...] = (str, bool, _Int, float, None)
# A value on the way to a leaf: all that matters is whether it is an object.
_NOT_OBJECT: tuple[Any, ...] = (str, bool, int, float, list[Any], None)


class _Partial(msgspec.Struct, gc=False):
    """Base of the generated Structs (to tell an object from a scalar where both may be)."""


class _NeedFullParse(Exception):
    """A value the partial Struct holds only in part: the line needs the full parse."""


@dataclass(slots=True)
class _Node:
    """One key of the path tree: `leaf` when a path ends here, `children` for longer ones."""

    attr: str = ""
    leaf: bool = False
    children: dict[str, _Node] = field(default_factory=dict)


MakeEvent = Callable[[Any, int, int, int, bytes, tuple[FieldPath, ...]], Event]
Select = Callable[[list[Any], frozenset[str]], list[int]]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one set of paths compiles to: a msgspec decoder for the partial Struct, and a
    function turning a decoded Struct into an `Event`."""

    decode: Callable[[bytes], Any]
    make_event: MakeEvent
    decode_many: Callable[[bytes], list[Any]] | None = None  # a JSON array of such objects
    stream_of: Callable[[Any], str | None] | None = None  # only the stream id, from a Struct
    decode_lines: Callable[[bytes | memoryview], list[Any]] | None = None  # NDJSON of them
    select: Select | None = None  # the indexes of the Structs a stream filter keeps


# Keys msgspec cannot name a Struct field after: paths through them take the full parse.
_UNNAMEABLE = re.compile(r'["\\\x00-\x1f]')


def _full_parse_only(*_: object) -> Any:
    raise _NeedFullParse


@functools.lru_cache(maxsize=64)
def _plan(fields: EventFields, extra_paths: tuple[FieldPath, ...]) -> _Plan:
    """Compiled once per set of paths (a decoder per file would otherwise rebuild it)."""
    root = _Node()
    paths = (*fields.stream_id, *fields.time, *fields.message_id, *extra_paths)
    for path in paths:
        if not path:
            raise FieldPathError("empty field path")
        node = root
        for key in path:
            node = node.children.setdefault(key, _Node())
        node.leaf = True
    if any(_UNNAMEABLE.search(key) for path in paths for key in path):
        return _Plan(_full_parse_only, _full_parse_only)
    struct = _struct(root, "Partial")
    decoder = msgspec.json.Decoder(struct)
    return _Plan(
        decoder.decode,
        _compile(root, fields, extra_paths),
        msgspec.json.Decoder(list[struct]).decode,  # type: ignore[valid-type]
        _compile(root, fields, extra_paths, stream_only=True),  # type: ignore[arg-type]
        decoder.decode_lines,
        _compile_select(root, fields),
    )


def _struct(node: _Node, name: str) -> type[_Partial]:
    """The Struct for the object at `node`: a field per child key, None when absent."""
    specs: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    for index, (key, child) in enumerate(node.children.items()):
        # Attribute names are generated so that any JSON key works (dots, keywords, ""),
        # and so that no key ever appears in the code `_compile` generates.
        child.attr = f"f{index}"
        rename[child.attr] = key
        if not child.children:
            kind: Any = Union[_SCALAR]  # noqa: UP007 (a union built from a tuple)
        else:
            sub = _struct(child, f"{name}_{index}")
            # A key that is both read and a prefix of a longer path (`origin` and
            # `origin.slug`): a scalar there is the value; an object, the full parse's job.
            kind = Union[(sub, *(_SCALAR if child.leaf else _NOT_OBJECT))]
        specs.append((child.attr, kind, None))
    struct = msgspec.defstruct(
        name,
        specs,
        bases=(_Partial,),
        rename=rename,
        forbid_unknown_fields=False,
        gc=False,
    )
    return cast(type[_Partial], struct)


def _compile(
    root: _Node,
    fields: EventFields,
    extra_paths: tuple[FieldPath, ...],
    *,
    stream_only: bool = False,
) -> MakeEvent:
    """Generates the function that reads the paths from a decoded Struct into an `Event`.

    Straight-line code (attribute chains, no loops or calls per path) costs ~0.2 µs per
    event where getters looped over per field cost ~0.5 µs: ~9% of the whole read loop.
    The source holds only generated names (``f0.f2``), never text from a JSON key.
    """
    code = ["def make_event(fields, number, offset, end, raw, paths):"]
    if stream_only:  # `stream_of(fields)`: what a stream-id filter needs, no Event built
        code[0] = "def make_event(fields):"
        _first(code, root, "stream_id", fields.stream_id, text=True, indent="    ")
        code.append("    return stream_id")
        return cast(MakeEvent, _exec(code, "make_event"))
    _first(code, root, "stream_id", fields.stream_id, text=True, indent="    ")
    _first(code, root, "message_id", fields.message_id, text=True, indent="    ")
    _first(code, root, "time_value", fields.time, text=False, indent="    ")
    for index, path in enumerate(extra_paths):
        _read(code, root, path, "    ")
        code.append(f"    value{index} = value")
    values = "".join(f"value{index}, " for index in range(len(extra_paths)))
    code.append(
        "    return Event(number, offset, end, raw,"
        f" stream_id, message_id, time_value, ({values}), paths)"
    )
    return cast(MakeEvent, _exec(code, "make_event"))


def _compile_select(root: _Node, fields: EventFields) -> Select:
    """Generates `select(structs, keep)`: the indexes of the Structs whose stream id is in
    `keep`, and of those that need the full parse (their `make_event` raises and sends them
    there). One call per run, the loop inside: a call per line cost ~50 ns more."""
    code = [
        "def select(structs, keep):",
        "    kept = []",
        "    index = -1",
        "    for fields in structs:",
        "        index += 1",
        "        try:",
    ]
    _first(code, root, "stream_id", fields.stream_id, text=True, indent="            ")
    code += [
        "        except _NeedFullParse:",
        "            kept.append(index)",
        "            continue",
        "        if stream_id in keep:",
        "            kept.append(index)",
        "    return kept",
    ]
    return cast(Select, _exec(code, "select"))


def _read(code: list[str], root: _Node, path: FieldPath, indent: str) -> None:
    """Code setting `value` to the value at `path` of the Struct `fields`."""
    node, attrs = root, []
    for key in path:
        node = node.children[key]
        attrs.append(node.attr)
    if len(attrs) == 1:  # the top level is always a Struct
        code.append(f"{indent}value = fields.{attrs[0]}")
    else:
        code.append(f"{indent}try:")
        code.append(f"{indent}    value = fields.{'.'.join(attrs)}")
        code.append(f"{indent}except AttributeError:  # a step on the way is not an object")
        code.append(f"{indent}    value = None")
    if node.children:
        code.append(f"{indent}if isinstance(value, _Partial):")
        code.append(f"{indent}    raise _NeedFullParse")


def _first(
    code: list[str],
    root: _Node,
    name: str,
    paths: tuple[FieldPath, ...],
    *,
    text: bool,
    indent: str,
) -> None:
    """Code setting `name` to the first value present along `paths`; as text, "" counts as
    absent."""
    code.append(f"{indent}{name} = None")
    for index, path in enumerate(paths):
        inner = indent if index == 0 else indent + "    "
        if index:
            code.append(f"{indent}if {name} is None:")
        _read(code, root, path, inner)
        if text:
            code.append(f'{inner}if value is not None and value != "":')
            code.append(f"{inner}    {name} = value if value.__class__ is str else str(value)")
        else:
            code.append(f"{inner}{name} = value")


def _exec(code: list[str], name: str) -> Callable[..., Any]:
    namespace: dict[str, Any] = {
        "Event": Event,
        "_Partial": _Partial,
        "_NeedFullParse": _NeedFullParse,
    }
    exec("\n".join(code), namespace)
    function: Callable[..., Any] = namespace[name]
    return function


# --- The full parse -----------------------------------------------------------------------


def _lookup_first(data: dict[str, Any], paths: tuple[FieldPath, ...]) -> Any:
    for path in paths:
        value = lookup(data, path)
        if value is not None:
            return value
    return None


def _lookup_text(data: dict[str, Any], paths: tuple[FieldPath, ...]) -> str | None:
    for path in paths:
        value = lookup(data, path)
        if value is not None and value != "":
            return value if isinstance(value, str) else str(value)
    return None


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, for error messages: "an object", "a string"…"""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _json_error(raw: bytes, exc: orjson.JSONDecodeError) -> str:
    # orjson reports bad UTF-8 without its position; decoding again (only on this error
    # path) gives the exact byte.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"invalid JSON: {exc}"


def read_events(
    raw: Readable,
    *,
    file: str = "",
    fields: EventFields | None = None,
    extra_paths: Iterable[FieldPath] = (),
    start: Checkpoint | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    stream_ids: frozenset[str] | None = None,
) -> Iterator[Event | BadLine | Line]:
    """The events of one stored file: NDJSON or a JSON array; plain, gzip or zstd.

    In a JSON array, element i plays the part of line i: its `raw` is its original bytes.
    `extra_paths` (a filter's `paths`) are decoded into each event's `values`. With
    `stream_ids` (a filter's), a valid line of another stream may come as its bare `Line`:
    filtered out, its `Event` never built.
    """
    decoder = EventDecoder(fields, file=file, extra_paths=extra_paths)
    reader = LineReader(raw, file=file, start=start, max_line_bytes=max_line_bytes)
    decode_many = decoder.decode_many
    run: list[Line] = []
    for item in reader:
        if isinstance(item, Line):
            run.append(item)
            if len(run) >= _DECODE_RUN:
                yield from decode_many(run, stream_ids)
                run = []
        else:
            if run:  # what came before the bad line, first: order is kept
                yield from decode_many(run, stream_ids)
                run = []
            yield item
    if run:
        yield from decode_many(run, stream_ids)


def read_batches(
    raw: Readable,
    *,
    file: str = "",
    fields: EventFields | None = None,
    extra_paths: Iterable[FieldPath] = (),
    start: Checkpoint | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    stream_ids: frozenset[str] | None = None,
) -> Iterator[Batch]:
    """`read_events` in `Batch`es, for the file loop: a chunk of clean NDJSON lines is one
    batch, decoded in one call, its lines of other streams only counted."""
    decoder = EventDecoder(fields, file=file, extra_paths=extra_paths)
    reader = LineReader(raw, file=file, start=start, max_line_bytes=max_line_bytes)
    loose: list[Line] = []  # lines not in a run (CR, a JSON array): decoded 128 at a time
    for item in reader.runs():
        if type(item) is Line:
            loose.append(item)
            if len(loose) >= _DECODE_RUN:
                yield decoder.batch(loose, stream_ids)
                loose = []
            continue
        if loose:  # what came before, first: order is kept
            yield decoder.batch(loose, stream_ids)
            loose = []
        if type(item) is LineRun:
            yield decoder.decode_run(item, stream_ids)
        else:
            yield Batch(1, [item], 0, None, False)  # type: ignore[list-item]
    if loose:
        yield decoder.batch(loose, stream_ids)
