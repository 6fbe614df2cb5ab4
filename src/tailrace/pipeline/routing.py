"""Routing: which connections each event goes to, as the Kafka ``connection_ids`` header.

Connection ids given with the job apply to every event. Otherwise each event's stream is
looked up in the streams Jitsu's repository service serves (``REPOSITORY_URL``, bearer
``REPOSITORY_AUTH_TOKEN``), fetched once per worker process and kept for its life, as
reference 000 describes ("no periodic refresh needed for short-lived workers").

The repository body is a JSON array of streams. Accepted shapes, per element:

* ``{"id": ..., "stream": {"id": ..., "slug": ...}, "destinations": [...]}``: the
  ``streams-with-destinations`` export of Jitsu's console, read by bulker's ingest, admin and
  reprocessing worker (``StreamWithDestinations`` in their ``repository.go``). Each
  destination is ``{"id": <destination id>, "connectionId": ..., "destinationType": ...}``.
  As in bulker's ingest, device destinations (``DEVICE_DESTINATION_TYPES``: tags run in the
  browser) are not asynchronous, so they are not routed to.
* The same with ``asynchronousDestinations`` (and ``synchronousDestinations``, ignored)
  in place of ``destinations``: the older ``StreamWithDestinations`` of Jitsu's TypeScript
  packages and of bulker's Redis fast store, already split by the server.
* A flat ``{"id": ..., "slug": ..., "destinations": [...]}`` (no ``stream`` object).

A stream's lookup keys are its ``stream.id`` (the top-level ``id`` when that is missing) and
its ``stream.slug``, since events carry ``origin.sourceId`` or ``origin.slug``; an id always
wins over another stream's equal slug. A destination is routed to by its ``connectionId``:
entries without one are ignored (their ``id`` names the destination, not the connection, so
it cannot stand in). ``null`` counts as absent; anything else of the wrong type is an error
naming where it is (``streams[3].destinations[1]``).
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from tailrace import __version__
from tailrace.errors import ConfigurationError, TailraceError
from tailrace.pipeline.events import json_kind
from tailrace.settings import current, redact_url

log = logging.getLogger("tailrace.routing")

#: Destination types bulker's ingest treats as synchronous (device-side tags), never routed.
DEVICE_DESTINATION_TYPES = frozenset({"logrocket", "tag", "ga4-tag", "gtm"})

StreamDestinations = dict[str, tuple[str, ...]]


class RoutingError(TailraceError):
    """Routing cannot be set up: the repository is unreachable, refuses the token, or serves
    something other than streams. The message names the URL, never the token."""


class ConnectionRouter(Protocol):
    """Gives each event's ``connection_ids`` header value from its stream id.

    `route` returns None when the event must be skipped; `skip_reason` then says why. Both
    implementations make `route` a plain callable attribute (a bound ``dict.get`` for the
    repository): look it up once, outside the per-event loop.
    """

    def route(self, stream_id: str | None) -> str | None:
        """The comma-separated connection ids for the event, or None to skip it."""
        ...

    def skip_reason(self, stream_id: str | None) -> str:
        """Why an event of this stream is skipped (only meaningful when `route` gave None)."""
        ...


class FixedRouter:
    """Connection ids given with the job: every event gets them, with or without a stream."""

    route: Callable[[str | None], str | None]

    def __init__(self, connection_ids: Sequence[str]) -> None:
        ids = _unique(connection_ids, "the job")
        if not ids:
            raise RoutingError("no connection ids given")
        self.connection_ids = ids
        header = ",".join(ids)
        # A closure, not a method: one call less on the per-event path.
        self.route = lambda _stream_id: header

    def skip_reason(self, stream_id: str | None) -> str:
        return "not skipped: the job's connection ids apply to every event"

    def __repr__(self) -> str:
        return f"FixedRouter({list(self.connection_ids)!r})"


class RepositoryRouter:
    """Routes by the repository's streams: stream id or slug -> its connection ids."""

    route: Callable[[str | None], str | None]

    def __init__(self, streams: Mapping[str, Sequence[str]]) -> None:
        self.streams: dict[str, tuple[str, ...]] = {
            key: _unique(ids, f"stream {key!r}") for key, ids in streams.items()
        }
        # Headers are joined once here; streams without destinations are left out, so the
        # per-event lookup is one bound dict.get that gives None both for them and for None.
        headers: dict[str | None, str] = {
            key: ",".join(ids) for key, ids in self.streams.items() if ids
        }
        self.route = headers.get

    def skip_reason(self, stream_id: str | None) -> str:
        if stream_id is None:
            return "event has no stream id"
        if stream_id in self.streams:
            return f"stream {stream_id!r} has no destinations"
        return f"stream {stream_id!r} unknown to the repository"

    def __repr__(self) -> str:
        return f"RepositoryRouter({len(self.streams)} stream keys)"


def _unique(ids: Sequence[str], owner: str) -> tuple[str, ...]:
    """The ids in order without repeats (a repeat would deliver twice); a comma in one would
    split it in the header, so it is refused."""
    if isinstance(ids, str):  # a bare string is a sequence of characters, not of ids
        ids = [ids]
    for connection_id in ids:
        if not isinstance(connection_id, str) or not connection_id or "," in connection_id:
            raise RoutingError(
                f"invalid connection id {connection_id!r} for {owner}: "
                "expected a non-empty string without commas"
            )
    return tuple(dict.fromkeys(ids))


def parse_streams(document: Any) -> StreamDestinations:
    """Stream id and slug -> connection ids, from a decoded repository body (see the module
    docstring for the shapes). Raises `RoutingError` saying what is wrong and where."""
    if not isinstance(document, list):
        raise RoutingError(f"expected a JSON array of streams, got {json_kind(document)}")
    by_id: StreamDestinations = {}
    by_slug: StreamDestinations = {}
    for index, item in enumerate(document):
        where = f"streams[{index}]"
        if not isinstance(item, dict):
            raise RoutingError(f"{where} is {json_kind(item)}, not an object")
        stream = item.get("stream")
        if stream is None:
            stream = item
        elif not isinstance(stream, dict):
            raise RoutingError(f"{where}.stream is {json_kind(stream)}, not an object")
        stream_id = _text(stream, "id", where) or _text(item, "id", where)
        if not stream_id:
            raise RoutingError(f"{where} has no id")
        where = f"{where} ({stream_id!r})"
        ids = _connection_ids(item, where)
        by_id[stream_id] = ids
        slug = _text(stream, "slug", where)
        if slug:
            by_slug[slug] = ids
    # Ids first: an event's source id must never reach another stream through a slug.
    return by_slug | by_id


def _connection_ids(item: dict[str, Any], where: str) -> tuple[str, ...]:
    key = "asynchronousDestinations"
    if item.get(key) is None:
        key = "destinations"
    destinations = item.get(key)
    if destinations is None:
        return ()
    if not isinstance(destinations, list):
        raise RoutingError(f"{where}: {key} is {json_kind(destinations)}, not an array")
    found: list[str] = []
    for position, destination in enumerate(destinations):
        at = f"{where}: {key}[{position}]"
        if not isinstance(destination, dict):
            raise RoutingError(f"{at} is {json_kind(destination)}, not an object")
        if _text(destination, "destinationType", at) in DEVICE_DESTINATION_TYPES:
            continue
        connection_id = _text(destination, "connectionId", at)
        if connection_id:
            if "," in connection_id:
                raise RoutingError(f"{at}.connectionId {connection_id!r} contains a comma")
            found.append(connection_id)
    return tuple(dict.fromkeys(found))


def _text(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise RoutingError(f"{where}.{key} is {json_kind(value)}, not a string")


def fetch_streams(
    url: str,
    token: str | None,
    *,
    timeout: float = 10,
    retries: int = 3,
    backoff: float = 0.5,
) -> StreamDestinations:
    """GET the repository's streams and parse them (`parse_streams`).

    Connection errors, timeouts, 429 and 5xx are retried `retries` times, waiting `backoff`
    seconds, doubled each time. 401/403 and other 4xx fail at once. The token goes in an
    ``Authorization: Bearer`` header that is not forwarded on redirects, so a redirect to
    another host cannot collect it.
    """
    shown = redact_url(url)
    if token:
        shown = shown.replace(token, "***")  # a token placed in the query string, too
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RoutingError(f"repository URL {shown!r} is not an http:// or https:// URL")
    if "@" in parts.netloc:  # urllib would take them for part of the host name
        raise RoutingError(
            f"repository URL {shown} holds credentials: give the token in "
            "REPOSITORY_AUTH_TOKEN instead"
        )
    request = urllib.request.Request(
        url,
        headers={
            "Accept": "application/json",
            "Accept-Encoding": "gzip",
            "User-Agent": f"tailrace/{__version__}",
        },
    )
    if token:
        request.add_unredirected_header("Authorization", f"Bearer {token}")
    attempts = retries + 1
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body: bytes = response.read()
                encoding = response.headers.get("Content-Encoding", "")
            break
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the response body open
            status = f"HTTP {exc.code} {exc.reason}"
            if exc.code in (401, 403):
                if token:
                    problem = "rejected the token in REPOSITORY_AUTH_TOKEN"
                else:
                    problem = "requires a token: set REPOSITORY_AUTH_TOKEN"
                raise RoutingError(f"repository {shown} {problem} ({status})") from None
            if exc.code != 429 and exc.code < 500:
                raise RoutingError(f"repository {shown} answered {status}") from None
            problem = status
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):  # a bad certificate stays bad
                raise RoutingError(f"repository {shown}: TLS error: {exc.reason}") from None
            problem = str(exc.reason)
        except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, cut bodies
            problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if attempt + 1 == attempts:
            raise RoutingError(
                f"cannot fetch streams from repository {shown} ({attempts} attempts): {problem}"
            )
        delay = backoff * 2**attempt
        log.warning(
            "repository %s: %s; retrying in %.1f s (%d/%d)",
            shown,
            problem,
            delay,
            attempt + 1,
            retries,
        )
        time.sleep(delay)
    return _decode(body, encoding, shown)


def _decode(body: bytes, encoding: str, shown: str) -> StreamDestinations:
    if encoding.strip().lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise RoutingError(f"repository {shown}: body is not valid gzip: {exc}") from None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        start = body[:60].decode("utf-8", "replace")
        raise RoutingError(
            f"repository {shown} did not return JSON ({exc}); body starts {start!r}"
        ) from None
    try:
        return parse_streams(document)
    except RoutingError as exc:
        raise RoutingError(f"repository {shown}: {exc}") from None


# One fetch per (url, token) per process, shared by the threads of a worker. A failed fetch
# is not cached: the next job tries again.
_routers: dict[tuple[str, str | None], RepositoryRouter] = {}
_routers_lock = threading.Lock()


def _reset_lock() -> None:
    # A fork while another thread fetches would leave the child's copy locked forever.
    global _routers_lock
    _routers_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock)


def repository_router(
    url: str,
    token: str | None,
    *,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 10,
) -> RepositoryRouter:
    """The router for this repository, fetched on first use in the process, then cached."""
    key = (url, token)
    router = _routers.get(key)
    if router is not None:
        return router
    with _routers_lock:  # concurrent first uses wait for the one fetch
        router = _routers.get(key)
        if router is None:
            streams = fetch_streams(url, token, retries=retries, backoff=backoff, timeout=timeout)
            router = RepositoryRouter(streams)
            _routers[key] = router
    return router


def clear_repository_cache() -> None:
    """Forget fetched repositories (tests; a long-lived process wanting fresh streams)."""
    with _routers_lock:
        _routers.clear()


def router_from_environment(
    connection_ids: Sequence[str] | None, env: Mapping[str, str] = os.environ
) -> ConnectionRouter | None:
    """The job's connection ids if it has any; else the repository at ``REPOSITORY_URL``;
    else None, and events go out without a ``connection_ids`` header.

    The repository is fetched with `fetch_streams`, its retries and backoff set by
    ``TAILRACE_REPOSITORY_RETRIES`` (3), ``TAILRACE_REPOSITORY_BACKOFF_S`` (0.5, doubled
    each time) and ``TAILRACE_REPOSITORY_TIMEOUT_S`` (10). Raises `RoutingError` when it
    cannot be fetched: the caller must not send anything then."""
    if connection_ids:
        return FixedRouter(connection_ids)
    try:
        settings = current(None if env is os.environ else env)
    except ConfigurationError as exc:
        raise RoutingError(str(exc)) from None
    if not settings.repository_url:
        return None
    return repository_router(
        settings.repository_url,
        settings.repository_auth_token,
        retries=settings.repository_retries,
        backoff=settings.repository_backoff_s,
        timeout=settings.repository_timeout_s,
    )
