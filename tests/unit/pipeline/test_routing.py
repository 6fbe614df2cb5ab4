"""Routing against a real HTTP server standing in for Jitsu's repository service."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from tailrace.errors import TailraceError
from tailrace.pipeline.routing import (
    FixedRouter,
    RepositoryRouter,
    RoutingError,
    clear_repository_cache,
    fetch_streams,
    parse_streams,
    router_from_environment,
)

TOKEN = "s3cr3t-token-value"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"[]"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Repository:
    """A scripted server: each request takes the next reply (the last one repeats)."""

    url: str
    replies: list[Reply]
    requests: list[dict[str, str]] = field(default_factory=list)

    def serve(self, *replies: Reply) -> None:
        self.replies[:] = replies


def streams_body(streams: list[Any]) -> Reply:
    return Reply(body=orjson.dumps(streams))


@pytest.fixture
def start_repository() -> Iterator[Callable[..., Repository]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(*replies: Reply) -> Repository:
        state = Repository("", list(replies) or [Reply()])

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests.append({"path": self.path, **dict(self.headers.items())})
                reply = state.replies.pop(0) if len(state.replies) > 1 else state.replies[0]
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the serving loop to notice.
        thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        thread.start()
        servers.append((server, thread))
        state.url = f"http://127.0.0.1:{server.server_address[1]}/api/admin/export/streams"
        return state

    clear_repository_cache()
    yield start
    clear_repository_cache()
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


# The `streams-with-destinations` export of Jitsu's console, trimmed to what routing reads
# (plus a few fields it must ignore).
CONSOLE_EXPORT = [
    {
        "id": "src-web",
        "stream": {"id": "src-web", "slug": "web-slug", "name": "Web", "workspaceId": "w1"},
        "backupEnabled": True,
        "destinations": [
            {"id": "dst-pg", "connectionId": "conn-pg", "destinationType": "postgres"},
            {"id": "dst-ga", "connectionId": "conn-ga", "destinationType": "ga4-tag"},
            {"id": "dst-bq", "connectionId": "conn-bq", "destinationType": "bigquery"},
            {"id": "dst-pg", "connectionId": "conn-pg", "destinationType": "postgres"},
            {"id": "dst-x", "destinationType": "webhook"},
        ],
    },
    {
        "id": "src-empty",
        "stream": {"id": "src-empty", "slug": "empty-slug"},
        "destinations": [],
    },
    {
        "id": "src-tags",
        "stream": {"id": "src-tags", "slug": None},
        "destinations": [{"id": "d", "connectionId": "conn-gtm", "destinationType": "gtm"}],
    },
]


def test_the_bearer_token_is_sent_and_streams_are_found_by_id_and_by_slug(
    start_repository: Callable[..., Repository],
) -> None:
    repository = start_repository(streams_body(CONSOLE_EXPORT))
    streams = fetch_streams(repository.url, TOKEN)
    assert repository.requests[0]["Authorization"] == f"Bearer {TOKEN}"
    assert repository.requests[0]["path"] == "/api/admin/export/streams"
    # Device destinations (ga4-tag, gtm) are not routed; repeats and entries without a
    # connectionId are dropped.
    assert streams == {
        "src-web": ("conn-pg", "conn-bq"),
        "web-slug": ("conn-pg", "conn-bq"),
        "src-empty": (),
        "empty-slug": (),
        "src-tags": (),
    }
    router = RepositoryRouter(streams)
    assert router.route("src-web") == "conn-pg,conn-bq"
    assert router.route("web-slug") == "conn-pg,conn-bq"


def test_without_a_token_no_authorization_header_is_sent(
    start_repository: Callable[..., Repository],
) -> None:
    repository = start_repository(streams_body([]))
    assert fetch_streams(repository.url, None) == {}
    assert "Authorization" not in repository.requests[0]


def test_events_of_streams_without_destinations_are_skipped_with_a_reason() -> None:
    router = RepositoryRouter(parse_streams(CONSOLE_EXPORT))
    for stream_id, reason in [
        ("src-empty", "stream 'src-empty' has no destinations"),
        ("empty-slug", "stream 'empty-slug' has no destinations"),
        ("src-tags", "stream 'src-tags' has no destinations"),
        ("nope", "stream 'nope' unknown to the repository"),
        (None, "event has no stream id"),
    ]:
        assert router.route(stream_id) is None
        assert router.skip_reason(stream_id) == reason


def test_the_older_split_shape_routes_only_asynchronous_destinations() -> None:
    streams = parse_streams(
        [
            {
                "stream": {"id": "s1", "slug": "one"},
                "backupEnabled": False,
                "synchronousDestinations": [{"id": "t", "connectionId": "conn-tag"}],
                "asynchronousDestinations": [{"id": "d", "connectionId": "conn-ch"}],
            }
        ]
    )
    assert streams == {"s1": ("conn-ch",), "one": ("conn-ch",)}


def test_a_flat_stream_object_is_accepted() -> None:
    streams = parse_streams([{"id": "s1", "destinations": [{"connectionId": "c1"}]}])
    assert streams == {"s1": ("c1",)}


def test_a_stream_id_wins_over_another_streams_equal_slug() -> None:
    streams = parse_streams(
        [
            {"stream": {"id": "a", "slug": "b"}, "destinations": [{"connectionId": "ca"}]},
            {"stream": {"id": "b"}, "destinations": [{"connectionId": "cb"}]},
        ]
    )
    assert streams == {"a": ("ca",), "b": ("cb",)}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"streams": []}, "expected a JSON array of streams, got an object"),
        ([{"id": "a"}, "b"], "streams[1] is a string, not an object"),
        ([{"id": "a"}, {"id": "b"}, {"stream": {"name": "c"}}], "streams[2] has no id"),
        ([{"stream": "a"}], "streams[0].stream is a string, not an object"),
        ([{"stream": {"id": 7}}], "streams[0].id is a number, not a string"),
        (
            [{"id": "a", "destinations": {"id": "d"}}],
            "streams[0] ('a'): destinations is an object, not an array",
        ),
        (
            [{"id": "a", "destinations": [{"connectionId": "c"}, ["c2"]]}],
            "streams[0] ('a'): destinations[1] is an array, not an object",
        ),
        (
            [{"id": "a", "asynchronousDestinations": [{"connectionId": 5}]}],
            "streams[0] ('a'): asynchronousDestinations[0].connectionId is a number",
        ),
        (
            [{"id": "a", "destinations": [{"connectionId": "c1,c2"}]}],
            "streams[0] ('a'): destinations[0].connectionId 'c1,c2' contains a comma",
        ),
    ],
)
def test_wrong_shapes_are_named_with_where_they_are(
    start_repository: Callable[..., Repository], document: Any, message: str
) -> None:
    repository = start_repository(streams_body(document))
    with pytest.raises(RoutingError) as caught:
        fetch_streams(repository.url, TOKEN)
    assert str(caught.value).startswith(f"repository {repository.url}: ")
    assert message in str(caught.value)


def test_a_body_that_is_not_json_is_reported_with_its_start(
    start_repository: Callable[..., Repository],
) -> None:
    repository = start_repository(Reply(body=b"<!DOCTYPE html><title>Sign in</title>"))
    with pytest.raises(RoutingError, match="did not return JSON") as caught:
        fetch_streams(repository.url, TOKEN)
    assert "'<!DOCTYPE html><title>Sign in</title>'" in str(caught.value)


def test_a_gzip_body_is_decompressed(start_repository: Callable[..., Repository]) -> None:
    body = gzip.compress(orjson.dumps(CONSOLE_EXPORT))
    repository = start_repository(Reply(body=body, headers={"Content-Encoding": "gzip"}))
    assert fetch_streams(repository.url, TOKEN)["src-web"] == ("conn-pg", "conn-bq")
    assert repository.requests[0]["Accept-Encoding"] == "gzip"


def test_a_server_error_is_retried(start_repository: Callable[..., Repository]) -> None:
    repository = start_repository(
        Reply(500, b"boom"), Reply(503, b"busy"), streams_body(CONSOLE_EXPORT)
    )
    streams = fetch_streams(repository.url, TOKEN, backoff=0.01)
    assert streams["src-web"] == ("conn-pg", "conn-bq")
    assert len(repository.requests) == 3
    assert all(request["Authorization"] == f"Bearer {TOKEN}" for request in repository.requests)


def test_a_lasting_server_error_fails_after_the_retries(
    start_repository: Callable[..., Repository],
) -> None:
    repository = start_repository(Reply(502, b"bad gateway"))
    with pytest.raises(RoutingError) as caught:
        fetch_streams(repository.url, TOKEN, retries=2, backoff=0.01)
    assert str(caught.value) == (
        f"cannot fetch streams from repository {repository.url} (3 attempts): HTTP 502 Bad Gateway"
    )
    assert len(repository.requests) == 3


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_token_fails_at_once_without_showing_it(
    start_repository: Callable[..., Repository], status: int
) -> None:
    repository = start_repository(Reply(status, b'{"error": "unauthorized"}'))
    with pytest.raises(RoutingError) as caught:
        fetch_streams(repository.url, TOKEN, backoff=0.01)
    message = str(caught.value)
    assert "rejected the token in REPOSITORY_AUTH_TOKEN" in message
    assert f"HTTP {status}" in message
    assert TOKEN not in message
    assert len(repository.requests) == 1
    assert isinstance(caught.value, TailraceError)


def test_a_missing_token_is_named(start_repository: Callable[..., Repository]) -> None:
    repository = start_repository(Reply(401, b""))
    with pytest.raises(RoutingError, match="requires a token: set REPOSITORY_AUTH_TOKEN"):
        fetch_streams(repository.url, None)


def test_a_token_in_the_url_is_not_shown(start_repository: Callable[..., Repository]) -> None:
    repository = start_repository(Reply(404, b"no"))
    with pytest.raises(RoutingError) as caught:
        fetch_streams(f"{repository.url}?token={TOKEN}", TOKEN)
    assert str(caught.value) == (
        f"repository {repository.url}?token=*** answered HTTP 404 Not Found"
    )
    assert len(repository.requests) == 1


def test_credentials_in_the_url_are_refused_and_redacted() -> None:
    with pytest.raises(RoutingError) as caught:
        fetch_streams("https://user:hunter2@repo.example/streams", None)
    assert str(caught.value) == (
        "repository URL https://user:***@repo.example/streams holds credentials: "
        "give the token in REPOSITORY_AUTH_TOKEN instead"
    )


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(RoutingError, match="is not an http:// or https:// URL"):
        fetch_streams("file:///etc/passwd", None)


def test_the_token_does_not_follow_a_redirect(
    start_repository: Callable[..., Repository],
) -> None:
    elsewhere = start_repository(streams_body([]))
    repository = start_repository(Reply(302, b"", headers={"Location": elsewhere.url}))
    assert fetch_streams(repository.url, TOKEN) == {}
    assert repository.requests[0]["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in elsewhere.requests[0]


def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/streams"
    with pytest.raises(RoutingError) as caught:
        fetch_streams(url, TOKEN, retries=1, backoff=0.01)
    assert str(caught.value).startswith(f"cannot fetch streams from repository {url} (2 attempts)")
    assert "refused" in str(caught.value).lower()


def test_the_repository_is_fetched_once_per_process(
    start_repository: Callable[..., Repository],
) -> None:
    repository = start_repository(streams_body(CONSOLE_EXPORT))
    env = {"REPOSITORY_URL": repository.url, "REPOSITORY_AUTH_TOKEN": TOKEN}
    routers = [router_from_environment(None, env) for _ in range(3)]
    threads = [threading.Thread(target=router_from_environment, args=([], env)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(repository.requests) == 1
    assert routers[0] is routers[1] is routers[2]
    assert isinstance(routers[0], RepositoryRouter)
    assert routers[0].route("web-slug") == "conn-pg,conn-bq"
    clear_repository_cache()
    router_from_environment(None, env)
    assert len(repository.requests) == 2


def test_a_failed_fetch_is_not_cached(start_repository: Callable[..., Repository]) -> None:
    repository = start_repository(Reply(400, b""), streams_body(CONSOLE_EXPORT))
    env = {"REPOSITORY_URL": repository.url}
    with pytest.raises(RoutingError, match="answered HTTP 400"):
        router_from_environment(None, env)
    assert router_from_environment(None, env) is not None


def test_job_connection_ids_win_over_the_repository(
    start_repository: Callable[..., Repository],
) -> None:
    repository = start_repository(streams_body(CONSOLE_EXPORT))
    router = router_from_environment(["c1", "c2"], {"REPOSITORY_URL": repository.url})
    assert isinstance(router, FixedRouter)
    assert repository.requests == []


def test_without_connection_ids_or_repository_there_is_no_routing() -> None:
    assert router_from_environment(None, {}) is None
    assert router_from_environment([], {"REPOSITORY_URL": "  "}) is None


def test_a_fixed_router_gives_every_event_the_job_connection_ids() -> None:
    router = FixedRouter(["c1", "c2", "c1"])
    assert router.route("any-stream") == "c1,c2"
    assert router.route(None) == "c1,c2"
    assert router.connection_ids == ("c1", "c2")


@pytest.mark.parametrize("ids", [[], [""], ["a,b"]])
def test_a_fixed_router_refuses_unusable_connection_ids(ids: list[str]) -> None:
    with pytest.raises(RoutingError):
        FixedRouter(ids)
