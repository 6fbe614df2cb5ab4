"""Sink URLs: what ``--sink`` accepts, parsed into a `SinkSpec` (opened by its kind: `kinds.py`).

- ``file:///abs/path/out.ndjson`` (also ``file://localhost/abs/...``): an absolute path,
  percent-decoded. ``file:out.ndjson`` and ``file:dir/out.ndjson`` (no ``//``) name a path
  relative to the current directory of the process parsing the URL; the spec holds it made
  absolute, so workers started elsewhere write to the same file. ``~`` is not expanded.
- ``stdout:`` and ``null:`` (``stdout://`` and ``null://`` too).
- ``kafka://host[:port][,host[:port]...][/topic]``: port 9092 by default, topic
  ``bulker-destinations`` by default.
- ``postgresql://...`` or ``postgres://...``: a libpq URL, passed on as the DSN, with an
  optional ``table`` parameter (default ``logs``, ``schema.table`` allowed) taken out of it.
- ``@name``: a reference to the URL in the environment variable ``TAILRACE_SINK_<NAME>``,
  resolved by each process that opens the sink; a job stored with a reference keeps no
  credentials (the admin API asks for one when a sink URL holds a password).

No error or repr shows a password.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from tailrace.errors import ConfigurationError, TailraceError
from tailrace.settings import redact_url

DEFAULT_KAFKA_PORT = 9092
DEFAULT_KAFKA_TOPIC = "bulker-destinations"
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_TABLE = "logs"

SUPPORTED = (
    "file:///path/out.ndjson, file:relative.ndjson, stdout:, null:, "
    "kafka://host:port/topic, postgresql://user@host:port/db?table=logs"
)

_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_TABLE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})?")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\],/]+)(?::(\d+))?")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&]*")


class SinkURLError(ConfigurationError):
    """A sink URL that cannot be understood; the message shows it with passwords hidden."""


class SinkNotBuiltError(TailraceError, NotImplementedError):
    """A sink URL tailrace recognises but whose sink is not built yet."""


class SinkKind(enum.StrEnum):
    """The kinds of sink, named by their URL scheme."""

    FILE = "file"
    STDOUT = "stdout"
    NULL = "null"
    KAFKA = "kafka"
    POSTGRESQL = "postgresql"


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """A parsed sink URL. Only the fields of its kind are set.

    `dsn` (PostgreSQL) keeps its password for connecting and is left out of the repr;
    `display` is the URL to show in logs and summaries.
    """

    kind: SinkKind
    path: Path | None = None
    hosts: tuple[tuple[str, int], ...] = ()
    topic: str | None = None
    table: str | None = None
    dsn: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str | None:
        return self.hosts[0][0] if self.hosts else None

    @property
    def port(self) -> int | None:
        return self.hosts[0][1] if self.hosts else None

    @property
    def bootstrap_servers(self) -> str:
        """Kafka's ``host:port,host:port`` list."""
        return ",".join(f"{host}:{port}" for host, port in self.hosts)

    @property
    def display(self) -> str:
        if self.kind is SinkKind.FILE and self.path is not None:
            return self.path.as_uri()
        if self.kind is SinkKind.KAFKA:
            return f"kafka://{self.bootstrap_servers}/{self.topic}"
        if self.kind is SinkKind.POSTGRESQL and self.dsn is not None:
            return f"{_shown(self.dsn)} (table {self.table})"
        return f"{self.kind}:"


def _shown(url: str) -> str:
    return _PASSWORD_PARAM.sub(r"\1***", redact_url(url))


def sink_reference_variable(reference: str) -> str:
    """``@kafka-main`` -> ``TAILRACE_SINK_KAFKA_MAIN``."""
    return "TAILRACE_SINK_" + re.sub(r"[^A-Z0-9]", "_", reference[1:].upper())


def resolve_sink_url(url: str) -> str:
    """The URL a sink reference (``@name``) stands for; any other URL as it is."""
    if not url.startswith("@"):
        return url
    variable = sink_reference_variable(url)
    if len(url) < 2 or not re.fullmatch(r"@[A-Za-z0-9_.-]+", url):
        raise SinkURLError(f"sink reference {url!r}: expected @ and a name (letters, digits, -_.)")
    resolved = os.environ.get(variable)
    if not resolved:
        raise SinkURLError(f"sink reference {url!r}: set {variable} to the sink's URL")
    if resolved.startswith("@"):
        raise SinkURLError(f"{variable} holds another reference ({resolved!r}), not a URL")
    return resolved


def sink_has_credentials(url: str) -> bool:
    """Whether a sink URL carries a password (in its user info or a ``password`` parameter)."""
    if url.startswith("@"):
        return False
    return _shown(url) != url


def parse_sink_url(url: str) -> SinkSpec:
    """Parse a ``--sink`` URL or ``@reference``; raises `SinkURLError` saying what is wrong."""
    url = resolve_sink_url(url)
    scheme, colon, rest = url.partition(":")
    scheme = scheme.strip().lower()
    if not colon or not scheme:
        raise SinkURLError(f"sink {_shown(url)!r} has no scheme: expected one of {SUPPORTED}")
    if scheme == "file":
        return _parse_file(url, rest)
    if scheme in ("stdout", "null"):
        if rest not in ("", "//"):
            raise SinkURLError(f"sink {_shown(url)!r}: {scheme}: takes nothing after the colon")
        return SinkSpec(SinkKind(scheme))
    if scheme == "kafka":
        return _parse_kafka(url)
    if scheme in ("postgresql", "postgres"):
        return _parse_postgresql(url)
    raise SinkURLError(f"unsupported sink {_shown(url)!r}: expected one of {SUPPORTED}")


def _parse_file(url: str, rest: str) -> SinkSpec:
    if "?" in rest or "#" in rest:
        raise SinkURLError(f"sink {url!r}: a file URL takes no query or fragment")
    if rest.startswith("//"):
        authority, slash, path_text = rest[2:].partition("/")
        if authority not in ("", "localhost"):
            raise SinkURLError(
                f"sink {url!r}: only local files are supported, not host {authority!r}"
            )
        path_text = slash + path_text
    else:
        path_text = rest
    path_text = unquote(path_text)
    if not path_text or path_text.endswith("/"):
        raise SinkURLError(f"sink {url!r}: expected a file name, as in file:///path/out.ndjson")
    return SinkSpec(SinkKind.FILE, path=Path.cwd() / path_text)


def _parse_hosts(url: str, netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        match = _HOST.fullmatch(item)
        if match is None:
            raise SinkURLError(f"sink {_shown(url)!r}: cannot read host {item!r}")
        host = match.group(1).strip("[]")
        port = int(match.group(2)) if match.group(2) else default_port
        if not 0 < port < 65536:
            raise SinkURLError(f"sink {_shown(url)!r}: port {port} is out of range")
        hosts.append((host, port))
    return tuple(hosts)


def _parse_kafka(url: str) -> SinkSpec:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise SinkURLError(
            f"sink {_shown(url)!r}: credentials in a kafka URL are not supported; "
            "use the KAFKA_* environment variables"
        )
    if parts.query or parts.fragment:
        raise SinkURLError(f"sink {_shown(url)!r}: a kafka URL takes no query or fragment")
    if not parts.netloc:
        raise SinkURLError(f"sink {_shown(url)!r}: expected kafka://host:port/topic")
    topic = unquote(parts.path.removeprefix("/")) or DEFAULT_KAFKA_TOPIC
    if not _TOPIC.fullmatch(topic) or topic in (".", ".."):
        raise SinkURLError(
            f"sink {_shown(url)!r}: invalid topic {topic!r} "
            "(letters, digits, '.', '_' and '-', at most 249)"
        )
    hosts = _parse_hosts(url, parts.netloc, DEFAULT_KAFKA_PORT)
    return SinkSpec(SinkKind.KAFKA, hosts=hosts, topic=topic)


def _parse_postgresql(url: str) -> SinkSpec:
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    tables = [value for key, value in params if key == "table"]
    if len(tables) > 1:
        raise SinkURLError(f"sink {_shown(url)!r}: 'table' is given {len(tables)} times")
    table = tables[0] if tables else DEFAULT_TABLE
    if not _TABLE.fullmatch(table):
        raise SinkURLError(
            f"sink {_shown(url)!r}: invalid table name {table!r} (expected table or schema.table)"
        )
    query = urlencode([(key, value) for key, value in params if key != "table"])
    # Built by hand: urlunsplit drops the empty host of a Unix-socket URL (postgresql:///db).
    dsn = f"postgresql://{parts.netloc}{parts.path}" + (f"?{query}" if query else "")
    netloc = parts.netloc.rpartition("@")[2]
    hosts = _parse_hosts(url, netloc, DEFAULT_POSTGRES_PORT) if netloc else ()
    return SinkSpec(SinkKind.POSTGRESQL, hosts=hosts, table=table, dsn=dsn)
