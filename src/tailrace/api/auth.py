"""Who may call the API: a bearer token from ``TAILRACE_API_TOKENS`` (or Jitsu's
``ADMIN_RAW_AUTH_TOKENS``), one whose salted hash is in Jitsu's ``ADMIN_AUTH_TOKENS``, or the
browser session the login form opened.

A hashed token is ``salt.hash`` where hash is sha512(token + salt + secret), hex (Jitsu's
current form) or unpadded base64 (its older one), for one of the secrets of
``ADMIN_TOKEN_SECRET`` (comma-separated).

Tokens are compared in constant time, against every configured token. The UI never puts a
token in a URL (they end up in access logs and browser history): the login form posts it,
and the answer is a signed session cookie (HttpOnly, SameSite=Strict) plus a CSRF cookie
that the page's script echoes in a header on every request that changes something.
Sessions are signed with a key derived from the configured tokens, so every process of the
service accepts them and removing a token ends the sessions it opened. Each session has an
id; logging out puts it on the list of ended sessions (`sessions.Revocations`), which every
process refuses.

The check runs in `gate.Gate`, on the request's head, before any of its body is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from fastapi import Request

from .errors import ApiError
from .sessions import Revocations

SESSION_COOKIE = "tailrace_session"
CSRF_COOKIE = "tailrace_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# set in the request's scope once the gate let it through: the routes' own check is then done
PASSED = "tailrace.authenticated"


@dataclass(frozen=True)
class Session:
    id: str
    expires_at: float


@dataclass(frozen=True)
class HashedToken:
    """One of Jitsu's ``salt.hash`` tokens, checked against each secret."""

    salt: str
    digest: str
    secrets: tuple[str, ...]

    @classmethod
    def parse(cls, text: str, secrets: tuple[str, ...]) -> HashedToken:
        salt, dot, digest = text.partition(".")
        if not dot or not salt or not digest:
            raise ValueError(f"{text[:4]}…: expected salt.hash")
        return cls(salt, digest, secrets or ("",))

    def matches(self, presented: str) -> bool:
        hexed = _is_hex(self.digest)
        want = self.digest.lower() if hexed else self.digest.rstrip("=")
        found = False
        for secret in self.secrets:  # every secret is tried: the time does not tell which
            raw = hashlib.sha512((presented + self.salt + secret).encode()).digest()
            mine = raw.hex() if hexed else base64.b64encode(raw).decode().rstrip("=")
            found |= hmac.compare_digest(mine, want)
        return found


def _is_hex(digest: str) -> bool:
    """sha512 in hex is 128 hex digits; unpadded base64 is 86 characters."""
    return len(digest) == 128 and all(c in "0123456789abcdefABCDEF" for c in digest)


class Authenticator:
    def __init__(
        self,
        tokens: tuple[str, ...],
        session_ttl_s: int,
        revocations: Revocations | None = None,
        hashed: tuple[HashedToken, ...] = (),
    ) -> None:
        if not tokens and not hashed:
            raise ValueError("at least one token is needed")
        self._hashed = hashed
        # a hashed token's identity (sessions, fingerprints) is its salt.hash text
        self._tokens = [t.encode() for t in tokens] + [
            f"{h.salt}.{h.digest}".encode() for h in hashed
        ]
        self._plain = len(tokens)
        self._key = hashlib.sha256(
            b"tailrace-session\0" + b"\0".join(sorted(self._tokens))
        ).digest()
        self._live = frozenset(self._fingerprint(i) for i in range(len(self._tokens)))
        self.session_ttl_s = session_ttl_s
        self.revocations = revocations or Revocations(None)

    def token_index(self, presented: str) -> int | None:
        """Which configured token this is, if any; every token is compared, in constant time."""
        candidate = presented.encode()
        found = None
        for index, token in enumerate(self._tokens[: self._plain]):
            if hmac.compare_digest(candidate, token):
                found = index
        for offset, hashed in enumerate(self._hashed):
            if hashed.matches(presented):
                found = self._plain + offset
        return found

    def _fingerprint(self, index: int) -> str:
        return hashlib.sha256(self._tokens[index]).hexdigest()[:16]

    def _sign(self, payload: bytes) -> str:
        # hex: cookie-safe as it is, no quoting on the way out or back
        return hmac.digest(self._key, payload, "sha256").hex()

    def open_session(self, token_index: int) -> tuple[str, str]:
        """A new session cookie value and its CSRF token."""
        payload = orjson.dumps(
            {
                "sid": secrets.token_hex(16),
                "exp": int(time.time()) + self.session_ttl_s,
                "tok": self._fingerprint(token_index),
            }
        )
        value = base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)
        return value, self.csrf_for(value)

    def csrf_for(self, session: str) -> str:
        return self._sign(b"csrf\0" + session.encode())

    def session(self, value: str) -> Session | None:
        """The session this cookie value opened, if it is genuine, current and not ended.
        Whatever the value holds, the answer is a session or None, never an exception: a
        signed payload can still be malformed (an older format, a key shared by mistake)."""
        encoded, _, signature = value.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded.encode() + b"=" * (-len(encoded) % 4))
        except (ValueError, UnicodeEncodeError):
            return None
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        sid, exp, tok = data.get("sid"), data.get("exp"), data.get("tok")
        if not isinstance(sid, str) or not isinstance(tok, str):
            return None
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp < time.time():
            return None
        if tok not in self._live or self.revocations.revoked(sid):
            return None
        return Session(sid, float(exp))

    def session_valid(self, value: str) -> bool:
        return self.session(value) is not None

    def end_session(self, value: str | None) -> None:
        """Logout: the session is refused from now on, by every process (blocking)."""
        found = self.session(value) if value else None
        if found is not None:
            self.revocations.revoke(found.id, found.expires_at)

    def refusal(
        self, method: str, headers: Mapping[str, str], cookies: Mapping[str, str]
    ) -> ApiError | None:
        """Why a request with these headers may not pass (a 401, or a 403 for a missing
        CSRF header), or None if it may. Headers only: the body is never needed."""
        header = headers.get("authorization")
        scheme, _, presented = (header or "").partition(" ")
        if scheme.lower() == "bearer":
            if self.token_index(presented.strip()) is None:
                return ApiError(401, "unauthorized", "the bearer token is not valid")
            return None
        # no bearer token (another scheme may be a proxy's own, basic auth say): the session
        session = cookies.get(SESSION_COOKIE)
        if session is None and header is not None:
            return ApiError(401, "unauthorized", "Authorization must be 'Bearer <token>'")
        if session is None:
            return ApiError(401, "unauthorized", "a bearer token or a login session is required")
        if not self.session_valid(session):
            return ApiError(401, "unauthorized", "the session expired or ended; log in again")
        if method not in _SAFE_METHODS:
            sent = headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.csrf_for(session).encode()):
                return ApiError(
                    403, "csrf_failed", f"a session request that changes state needs {CSRF_HEADER}"
                )
        return None

    def check(self, request: Request) -> None:
        """Raise a 401 (or a 403) unless the request may pass; the gate's verdict stands."""
        if request.scope.get(PASSED):
            return
        problem = self.refusal(request.method, request.headers, request.cookies)
        if problem is not None:
            raise problem
