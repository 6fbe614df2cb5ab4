"""Sample failover logs: Jitsu-style NDJSON files for trying tailrace out.

The files look like the ones Jitsu's bulker writes when Kafka is unavailable: one JSON
object per line with the ingest envelope (``messageId``, ``messageCreated``, ``origin``)
and the analytics event (``type``, ``event``, ``userId``, ``context``, ``properties``).
Output is a pure function of the arguments: one ``random.Random`` per file, no clock, and
gzip headers without a timestamp, so the same seed gives the same bytes.
"""

from __future__ import annotations

import bisect
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
from isal import isal_zlib

__all__ = ["BrokenLine", "SampleFile", "default_range", "write_samples"]

Compression = Literal["none", "gzip"]
BadKind = Literal["invalid_json", "invalid_utf8", "truncated"]

# The newest default range ends up to 29 days before this date (see default_range).
BASE_ANCHOR = datetime(2026, 11, 22, tzinfo=UTC)
DEFAULT_DAYS = 3
DEFAULT_BAD_RATE = 0.001
# Lines are encoded and written in chunks of about this many bytes: few syscalls and few
# compressor calls, with memory bounded whatever the file size.
CHUNK_BYTES = 4 << 20
# isal level 1 compresses these events about 6:1 at several hundred MB/s.
GZIP_LEVEL = 1
# Client clocks run behind the ingest timestamp by up to this much.
CLIENT_SKEW_MS = 5_000
USERS_PER_STREAM = 300

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_SOURCE_NAMES = ("Web shop", "Marketing site", "Docs", "Checkout", "Mobile web", "Blog")
_DOMAINS = (
    "shop.example.com",
    "www.example.com",
    "docs.example.org",
    "pay.example.net",
    "m.example.com",
    "blog.example.org",
)
_PATHS = (
    "/",
    "/pricing",
    "/products",
    "/products/sneakers",
    "/products/jackets",
    "/cart",
    "/checkout",
    "/signup",
    "/docs/getting-started",
    "/blog/launch-week",
    "/search",
    "/account/settings",
)
_TITLES = (
    "Home",
    "Pricing",
    "Products",
    "Sneakers",
    "Jackets",
    "Your cart",
    "Checkout",
    "Sign up",
    "Getting started",
    "Launch week",
    "Search",
    "Settings",
)
_REFERRERS = (
    "",
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://t.co/",
    "https://duckduckgo.com/",
)
_LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "pt-BR", "ja-JP")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
)
_SCREENS = ((1920, 1080, 1), (1440, 900, 2), (390, 844, 3), (412, 915, 2.625), (2560, 1440, 1))
_PRODUCTS = (
    ("sku-1001", "Trail sneakers", "Shoes", 89.0),
    ("sku-1002", "Rain jacket", "Outerwear", 129.5),
    ("sku-1003", "Wool socks", "Accessories", 14.99),
    ("sku-1004", "Day pack", "Bags", 64.0),
    ("sku-1005", "Running cap", "Accessories", 22.0),
)
_TRACK_EVENTS = (
    "Product Viewed",
    "Added To Cart",
    "Order Completed",
    "Signed Up",
    "Button Clicked",
    "Search Performed",
)
_TRACK_WEIGHTS = (30, 12, 4, 3, 30, 21)
_IP_OCTETS = ((11, 223), (0, 255), (0, 255), (1, 254))
_PLANS = ("free", "team", "business")
_SEARCHES = ("rain jacket", "socks", "size guide", "returns", "gift card", "sneakers 44")


@dataclass(frozen=True, slots=True)
class BrokenLine:
    """A line written broken on purpose, for trying the dead-letter path."""

    line: int  # 1-based, as a reader counts lines
    kind: BadKind


@dataclass(frozen=True, slots=True)
class SampleFile:
    """One written file: what a reader of it should find."""

    path: Path
    size: int  # bytes on disk
    lines: int  # lines in the (decompressed) file, bad ones included
    compression: Compression
    bad: tuple[BrokenLine, ...] = ()

    @property
    def bad_lines(self) -> int:
        return len(self.bad)

    @property
    def events(self) -> int:
        """Lines that parse as events."""
        return self.lines - len(self.bad)


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str | None
    anonymous_id: str
    ip: str
    agent: str
    locale: str
    screen: tuple[int, int, float]
    email: str
    client_id: str
    referrer: str  # where the visit came from, kept for the whole visit


@dataclass(frozen=True, slots=True)
class _Stream:
    stream_id: str
    slug: str
    name: str
    domain: str
    write_key: str
    users: tuple[_User, ...]


def default_range(seed: int) -> tuple[datetime, datetime]:
    """The last three days before an anchor that depends only on the seed."""
    days_back = random.Random(f"anchor:{seed}").randrange(30)
    end = BASE_ANCHOR - timedelta(days=days_back)
    return end - timedelta(days=DEFAULT_DAYS), end


def sample_stream_ids(seed: int = 1, streams: int = 5) -> list[str]:
    """The stream ids `write_samples` uses with this seed, for ``--stream-id``."""
    rng = random.Random(seed)  # the streams are the first thing write_samples draws
    return [_make_stream(rng).stream_id for _ in range(streams)]


def write_samples(
    directory: str | Path,
    files: int,
    lines: int,
    seed: int = 1,
    *,
    streams: int = 5,
    gzip_share: float = 0.5,
    start: datetime | None = None,
    end: datetime | None = None,
    bad_rate: float = 0.0,
    progress: Callable[[int], None] | None = None,
) -> list[SampleFile]:
    """Write ``files`` failover files with ``files * lines`` lines in all into ``directory``.

    ``lines`` is the mean per file: files get uneven shares (the biggest about ten times
    the smallest at twenty files) so that scheduling order matters. Events fall in
    ``[start, end)``, by default :func:`default_range`; each file covers its own slice of
    it, in time order, and is named after the slice's start. ``gzip_share`` of the files
    are gzip. With ``bad_rate`` > 0 about that fraction of lines (at least one per
    non-empty file) is broken, and every other file ends in a truncated line; each
    :class:`SampleFile` lists its bad lines. ``progress`` is called with lines written.
    """
    _check(files, lines, streams, gzip_share, bad_rate)
    if start is None or end is None:
        default_start, default_end = default_range(seed)
        start, end = start or default_start, end or default_end
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError(f"empty date range: {start.isoformat()} to {end.isoformat()}")
    rng = random.Random(seed)
    pool = tuple(_make_stream(rng) for _ in range(streams))
    counts = _split(rng, files, lines)
    gzipped = set(rng.sample(range(files), round(files * gzip_share)))
    start_ms, end_ms = _epoch_ms(start), _epoch_ms(end)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, count in enumerate(counts):
        lo = start_ms + (end_ms - start_ms) * index // files
        hi = start_ms + (end_ms - start_ms) * (index + 1) // files
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(lo // 1000))
        suffix = ".ndjson.gz" if index in gzipped else ".ndjson"
        plan = _FilePlan(
            path=out / f"failover_{stamp}_{index}{suffix}",
            lines=count,
            lo_ms=lo,
            hi_ms=max(hi, lo + 1),
            range_lo_ms=start_ms,
            gzip=index in gzipped,
            bad_rate=bad_rate,
            truncate_tail=bad_rate > 0 and index % 2 == 0,
        )
        written.append(_write_file(plan, pool, random.Random(f"{seed}:{index}"), progress))
    return written


def _check(files: int, lines: int, streams: int, gzip_share: float, bad_rate: float) -> None:
    if files < 1 or lines < 0 or streams < 1:
        raise ValueError(
            f"need files >= 1, lines >= 0, streams >= 1; got {files}, {lines}, {streams}"
        )
    if not 0.0 <= gzip_share <= 1.0 or not 0.0 <= bad_rate <= 1.0:
        raise ValueError(f"gzip_share and bad_rate are fractions; got {gzip_share}, {bad_rate}")


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _split(rng: random.Random, files: int, per_file: int) -> list[int]:
    """Share ``files * per_file`` lines Zipf-like, in shuffled order, at least one each."""
    total = files * per_file
    weights = [rng.uniform(0.85, 1.15) / (rank + 1) ** 0.9 for rank in range(files)]
    rng.shuffle(weights)
    floor = 1 if total >= files else 0
    spare = total - floor * files
    scale = spare / sum(weights)
    counts = [floor + int(w * scale) for w in weights]
    # Hand out what rounding down left, largest remainders first.
    by_remainder = sorted(range(files), key=lambda i: weights[i] * scale % 1, reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(_ALNUM, k=length))


def _uuid4(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def _ga_client_id(rng: random.Random) -> str:
    """GA4 style: a random number, then the first visit in epoch seconds."""
    return f"{rng.randrange(10**9, 10**10)}.{rng.randrange(1_600_000_000, 1_760_000_000)}"


def _make_stream(rng: random.Random) -> _Stream:
    users = []
    for _ in range(USERS_PER_STREAM):
        known = rng.random() < 0.4
        users.append(
            _User(
                user_id=f"u_{_token(rng, 10)}" if known else None,
                anonymous_id=_uuid4(rng),
                ip=".".join(str(rng.randint(lo, hi)) for lo, hi in _IP_OCTETS),
                agent=rng.choice(_AGENTS),
                locale=rng.choice(_LOCALES),
                screen=rng.choice(_SCREENS),
                email=f"{_token(rng, 8)}@example.com",
                client_id=_ga_client_id(rng),
                referrer=rng.choice(_REFERRERS),
            )
        )
    return _Stream(
        # Jitsu ids are cuids: "c", then 24 lower-case letters and digits.
        stream_id="c" + _token(rng, 24),
        slug=_token(rng, 22),
        name=rng.choice(_SOURCE_NAMES),
        domain=rng.choice(_DOMAINS),
        write_key=_token(rng, 32),
        users=tuple(users),
    )


@dataclass(frozen=True, slots=True)
class _FilePlan:
    path: Path
    lines: int
    lo_ms: int
    hi_ms: int
    range_lo_ms: int  # client timestamps never fall before the whole range
    gzip: bool
    bad_rate: float
    truncate_tail: bool


def _bad_plan(plan: _FilePlan, rng: random.Random) -> dict[int, BadKind]:
    """0-based line index -> how that line is broken."""
    if plan.bad_rate <= 0 or plan.lines == 0:
        return {}
    tail = plan.truncate_tail
    body = plan.lines - 1 if tail else plan.lines
    wanted = min(body, max(0 if tail else 1, round(plan.lines * plan.bad_rate)))
    kinds: tuple[BadKind, BadKind] = ("invalid_json", "invalid_utf8")
    bad = {i: kinds[n % 2] for n, i in enumerate(sorted(rng.sample(range(body), wanted)))}
    if tail:
        bad[plan.lines - 1] = "truncated"
    return bad


def _write_file(
    plan: _FilePlan,
    pool: tuple[_Stream, ...],
    rng: random.Random,
    progress: Callable[[int], None] | None,
) -> SampleFile:
    bad = _bad_plan(plan, rng)
    compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31) if plan.gzip else None
    events = _Events(rng, pool, plan.range_lo_ms)
    # Exponential gaps make a sorted, uniform-looking spread without holding all the times.
    mean_gap = (plan.hi_ms - plan.lo_ms) / (plan.lines + 1)
    moment = float(plan.lo_ms)
    with plan.path.open("wb") as out:
        # Lines are copied into one buffer at once: each of orjson's results holds several
        # times its length in spare capacity, so a list of them would cost far more memory.
        chunk = bytearray()
        pending = 0
        for index in range(plan.lines):
            moment += rng.expovariate(1.0 / mean_gap) if mean_gap > 0 else 0.0
            created = min(int(moment), plan.hi_ms - 1)
            line = events.line(created)
            chunk += _break(line, bad[index]) if index in bad else line
            pending += 1
            if len(chunk) >= CHUNK_BYTES:
                out.write(compressor.compress(chunk) if compressor is not None else chunk)
                chunk.clear()
                if progress is not None:
                    progress(pending)
                pending = 0
        out.write(compressor.compress(chunk) if compressor is not None else chunk)
        if compressor is not None:
            out.write(compressor.flush())
    if progress is not None and pending:
        progress(pending)
    bad_lines = tuple(BrokenLine(i + 1, kind) for i, kind in sorted(bad.items()))
    return SampleFile(
        plan.path, plan.path.stat().st_size, plan.lines, "gzip" if plan.gzip else "none", bad_lines
    )


def _break(line: bytes, kind: BadKind) -> bytes:
    if kind == "invalid_utf8":
        # A lone continuation byte and a lead byte without its continuation.
        return line.replace(b'"messageId":"', b'"messageId":"\x80\xc3(', 1)
    # Cut inside the object: the closing brace is gone, so no prefix parses.
    cut = line[: len(line) // 2]
    return cut + b"\n" if kind == "invalid_json" else cut


def _compact(value: dict[str, Any]) -> bytes:
    """Serialised and copied: orjson's own result keeps kilobytes of spare capacity."""
    return bytes(memoryview(orjson.dumps(value)))


class _Clock:
    """ISO 8601 with milliseconds and Z; the per-minute part is cached (times mostly ascend)."""

    def __init__(self) -> None:
        self._minutes: dict[int, str] = {}

    def iso(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        prefix = self._minutes.get(minute)
        if prefix is None:
            if len(self._minutes) > 4096:
                self._minutes.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
            self._minutes[minute] = prefix
        return f"{prefix}{rest // 1000:02d}.{rest % 1000:03d}Z"


def _pick(rng: random.Random, cumulative: Sequence[float]) -> int:
    return bisect.bisect_right(cumulative, rng.random() * cumulative[-1])


class _Events:
    """Builds one file's events; the parts that repeat are serialised once and reused."""

    def __init__(self, rng: random.Random, pool: tuple[_Stream, ...], floor_ms: int) -> None:
        self.rng = rng
        self.pool = pool
        self.floor_ms = floor_ms
        self.clock = _Clock()
        self.stream_weights = list(itertools.accumulate(rng.uniform(0.5, 3.0) for _ in pool))
        self.track_weights = list(itertools.accumulate(_TRACK_WEIGHTS))
        self.contexts: dict[tuple[int, int, int], orjson.Fragment] = {}
        self.origins = {
            (n, key): orjson.Fragment(
                _compact(
                    {
                        "baseUrl": f"https://{s.slug}.d.jitsu.com",
                        "slug": s.slug,
                        key: s.stream_id,
                        "sourceName": s.name,
                        "domain": s.domain,
                    }
                )
            )
            for n, s in enumerate(pool)
            for key in ("sourceId", "source_id")
        }

    def line(self, created_ms: int) -> bytes:
        rng = self.rng
        n = _pick(rng, self.stream_weights)
        stream = self.pool[n]
        u = int(rng.random() * len(stream.users))
        user = stream.users[u]
        client_ms = max(self.floor_ms, created_ms - int(rng.random() * CLIENT_SKEW_MS))
        created = self.clock.iso(created_ms)
        roll = rng.random()
        kind = "track" if roll < 0.6 else "page" if roll < 0.9 else "identify"
        page = int(rng.random() * len(_PATHS))
        # About one line in five names its stream "source_id", as older bulker builds did.
        id_key = "source_id" if rng.random() < 0.2 else "sourceId"
        event: dict[str, Any] = {
            "ingestType": "browser",
            "messageCreated": created,
            "writeKey": stream.write_key,
            "messageId": _uuid4(rng),
            "type": kind,
        }
        name = _TRACK_EVENTS[_pick(rng, self.track_weights)] if kind == "track" else None
        if name is not None:
            event["event"] = name
        if user.user_id is not None:
            event["userId"] = user.user_id
        event["anonymousId"] = user.anonymous_id
        event["context"] = self._context(n, u, page)
        event["properties"] = _properties(rng, kind, name, stream.domain, page, user.referrer)
        if kind == "identify":
            event["traits"] = {"email": user.email, "plan": _PLANS[int(rng.random() * 3)]}
        event["timestamp"] = self.clock.iso(client_ms)
        event["sentAt"] = self.clock.iso(min(created_ms, client_ms + int(rng.random() * 200)))
        event["receivedAt"] = created
        event["requestIp"] = user.ip
        event["origin"] = self.origins[(n, id_key)]
        return orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)

    def _context(self, n: int, u: int, page: int) -> orjson.Fragment:
        key = (n, u, page)
        fragment = self.contexts.get(key)
        if fragment is None:
            stream = self.pool[n]
            user = stream.users[u]
            width, height, density = user.screen
            fragment = orjson.Fragment(
                _compact(
                    {
                        "ip": user.ip,
                        "userAgent": user.agent,
                        "locale": user.locale,
                        "library": {"name": "@jitsu/js", "version": "1.9.10", "env": "browser"},
                        "page": {
                            "url": f"https://{stream.domain}{_PATHS[page]}",
                            "path": _PATHS[page],
                            "host": stream.domain,
                            "title": _TITLES[page],
                            "referrer": user.referrer,
                            "search": "",
                        },
                        "screen": {"width": width, "height": height, "density": density},
                        "clientIds": {"ga4": {"clientId": user.client_id}},
                    }
                )
            )
            self.contexts[key] = fragment
        return fragment


def _properties(
    rng: random.Random, kind: str, name: str | None, domain: str, page: int, referrer: str
) -> dict[str, Any]:
    if kind == "page":
        return {
            "url": f"https://{domain}{_PATHS[page]}",
            "path": _PATHS[page],
            "title": _TITLES[page],
            "referrer": referrer,
        }
    if kind == "identify":
        return {}
    sku, title, category, price = _PRODUCTS[int(rng.random() * len(_PRODUCTS))]
    if name in ("Product Viewed", "Added To Cart"):
        props: dict[str, Any] = {
            "product_id": sku,
            "name": title,
            "category": category,
            "price": price,
            "currency": "USD",
        }
        if name == "Added To Cart":
            props["quantity"] = rng.randint(1, 3)
        return props
    if name == "Order Completed":
        quantity = rng.randint(1, 4)
        return {
            "order_id": f"ord_{_token(rng, 12)}",
            "revenue": round(price * quantity, 2),
            "currency": "USD",
            "products": [{"product_id": sku, "name": title, "price": price, "quantity": quantity}],
        }
    if name == "Signed Up":
        return {"method": rng.choice(("email", "google", "github")), "plan": "free"}
    if name == "Search Performed":
        return {"query": rng.choice(_SEARCHES), "results": rng.randint(0, 48)}
    return {"label": rng.choice(("Buy now", "Subscribe", "Learn more")), "location": "hero"}
