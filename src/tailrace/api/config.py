"""The admin service's settings, from the environment, with embedded defaults that need
no configuration: SQLite under the data directory, and a generated token kept beside it."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..settings import current, database_url
from . import admin_env
from .auth import HashedToken
from .recent import DEFAULT_TTL_S

TOKEN_FILE = "api-token"
SESSION_TTL_S = 12 * 3600
# The JSON API's requests are small (the largest, a job with its filters, is a few KiB):
# a cap far above them that still bounds what any client can make the service hold.
MAX_BODY_BYTES = 1 << 20

if TYPE_CHECKING:
    from ..settings.model import Settings


@dataclass(frozen=True)
class ApiConfig:
    database_url: str
    tokens: tuple[str, ...] = field(repr=False)
    data_dir: Path
    metrics_public: bool = False
    default_sink: str | None = None
    session_ttl_s: int = SESSION_TTL_S
    token_file: Path | None = None  # set when the token was generated, not configured
    pool_size: int = 8
    status_ttl_s: float = DEFAULT_TTL_S  # how old a job's status may be when served
    executor: str = "local"  # or "kubernetes": how the workers of API-started jobs run
    # where jobs started through the API may read local files and write file sinks
    source_roots: tuple[Path, ...] = ()
    allow_sink_urls: bool = False  # any sink URL and S3 endpoint, with the service's credentials
    cookie_secure: bool = False  # Secure cookies over plain HTTP too (TLS ends at a proxy)
    kafka_bootstrap_servers: str | None = None
    stream_consumers: tuple[tuple[str, str], ...] = ()  # (group, topic) whose lag is shown
    max_body_bytes: int = MAX_BODY_BYTES  # larger request bodies get 413
    hashed_tokens: tuple[HashedToken, ...] = field(default=(), repr=False)  # ADMIN_AUTH_TOKENS
    cors_origins: tuple[str, ...] = ()  # TAILRACE_API_CORS_ORIGINS; "*" for any
    # settings recognised and not honoured, said at startup (see admin_env)
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, database: str | None = None) -> ApiConfig:
        admin_env.adopt()
        settings = current()
        directory = Path(settings.data_dir)
        tokens = _tokens("TAILRACE_API_TOKENS", settings.api_tokens) + _tokens(
            "ADMIN_RAW_AUTH_TOKENS", settings.admin_raw_auth_tokens
        )
        hashed, plain = _jitsu_tokens(settings)
        tokens += plain
        token_file = None
        if not tokens and not hashed:
            token_file = directory / TOKEN_FILE
            tokens = (_generated_token(token_file),)
        return cls(
            database_url=database_url(database),
            tokens=tokens,
            data_dir=directory,
            metrics_public=settings.metrics_public,
            default_sink=settings.default_sink or _kafka_sink(settings),
            token_file=token_file,
            pool_size=settings.api_pool_size,
            status_ttl_s=settings.api_status_ttl_ms / 1000,
            executor=_executor_name(),
            kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
            source_roots=_roots(settings.api_source_roots),
            allow_sink_urls=settings.api_allow_sink_urls,
            cookie_secure=settings.cookie_secure,
            stream_consumers=_consumers(settings.stream_consumers or ""),
            max_body_bytes=settings.api_max_body_bytes,
            hashed_tokens=hashed,
            cors_origins=_list(settings.api_cors_origins or ""),
            warnings=tuple(admin_env.warnings()),
        )


def _list(raw: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def _tokens(name: str, raw: str | None) -> tuple[str, ...]:
    tokens = _list(raw or "")
    short = [t for t in tokens if len(t) < 16]
    if short:
        raise ConfigurationError(
            f"{name}: {len(short)} token(s) shorter than 16 characters; "
            "use long random ones, e.g. from secrets.token_urlsafe()"
        )
    return tokens


def _jitsu_tokens(settings: Settings) -> tuple[tuple[HashedToken, ...], tuple[str, ...]]:
    """ADMIN_AUTH_TOKENS: ``salt.hash`` items checked with ADMIN_TOKEN_SECRET; an item
    without a dot is a plain token (what Jitsu's older admin accepted there)."""
    secrets_ = _list(settings.admin_token_secret or "")
    hashed, plain = [], []
    for item in _list(settings.admin_auth_tokens or ""):
        if "." not in item:
            plain.append(item)
            continue
        try:
            hashed.append(HashedToken.parse(item, secrets_))
        except ValueError as exc:
            raise ConfigurationError(f"ADMIN_AUTH_TOKENS: {exc}") from None
    if hashed and not secrets_:
        raise ConfigurationError(
            "ADMIN_AUTH_TOKENS holds salted hashes but ADMIN_TOKEN_SECRET is not set: set it "
            "to the secret the hashes were made with (Jitsu's TOKEN_SECRET)"
        )
    short = [t for t in plain if len(t) < 16]
    if short:
        raise ConfigurationError(
            f"ADMIN_AUTH_TOKENS: {len(short)} plain token(s) shorter than 16 characters; "
            "use long random ones, or their salted hashes (salt.hash)"
        )
    return tuple(hashed), tuple(plain)


def _roots(raw: str | None) -> tuple[Path, ...]:
    """``dir:dir`` (os.pathsep), resolved; by default the directory the service runs in."""
    parts = [p for p in (raw or "").split(os.pathsep) if p.strip()] or [os.getcwd()]
    return tuple(Path(os.path.realpath(os.path.expanduser(p.strip()))) for p in parts)


def _consumers(raw: str) -> tuple[tuple[str, str], ...]:
    """``group@topic,group@topic`` -> ((group, topic), ...)."""
    found = []
    for item in raw.split(","):
        if not item.strip():
            continue
        group, at, topic = item.strip().partition("@")
        if not at or not group or not topic:
            raise ConfigurationError(
                f"TAILRACE_STREAM_CONSUMERS: {item.strip()!r} is not group@topic"
            )
        found.append((group, topic))
    return tuple(found)


def _executor_name() -> str:
    name = admin_env.executor_name()
    if name not in ("local", "kubernetes"):
        raise ConfigurationError(f"TAILRACE_EXECUTOR={name!r}: expected local or kubernetes")
    return name


def _generated_token(path: Path) -> str:
    """The token in `path`, made on first start (readable by its owner only)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def _kafka_sink(settings: Settings) -> str | None:
    """Reference 000's workers send to KAFKA_BOOTSTRAP_SERVERS's destinations topic (at the
    address the workers use, where Jitsu's REPROCESSING_WORKER_KAFKA_BOOTSTRAP_SERVERS
    gives one of their own)."""
    servers = (
        settings.reprocessing_worker_kafka_bootstrap_servers or settings.kafka_bootstrap_servers
    )
    if not servers:
        return None
    return f"kafka://{servers}/{settings.kafka_destinations_topic}"
