"""Who may call the API: a bearer token from ``TAILRACE_API_TOKENS``, or the browser
session the login form opened.

Tokens are compared in constant time, against every configured token. The UI never puts a
token in a URL (they end up in access logs and browser history): the login form posts it,
and the answer is a signed session cookie (HttpOnly, SameSite=Strict) plus a CSRF cookie
that the page's script echoes in a header on every request that changes something.
Sessions are signed with a key derived from the configured tokens, so every process of the
service accepts them and removing a token ends the sessions it opened.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson
from fastapi import Request

from .errors import ApiError

SESSION_COOKIE = "tailrace_session"
CSRF_COOKIE = "tailrace_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Authenticator:
    def __init__(self, tokens: tuple[str, ...], session_ttl_s: int) -> None:
        if not tokens:
            raise ValueError("at least one token is needed")
        self._tokens = [t.encode() for t in tokens]
        self._key = hashlib.sha256(
            b"tailrace-session\0" + b"\0".join(sorted(self._tokens))
        ).digest()
        self.session_ttl_s = session_ttl_s

    def token_index(self, presented: str) -> int | None:
        """Which configured token this is, if any; every token is compared, in constant time."""
        candidate = presented.encode()
        found = None
        for index, token in enumerate(self._tokens):
            if hmac.compare_digest(candidate, token):
                found = index
        return found

    def _fingerprint(self, index: int) -> str:
        return hashlib.sha256(self._tokens[index]).hexdigest()[:16]

    def _sign(self, payload: bytes) -> str:
        # hex: cookie-safe as it is, no quoting on the way out or back
        return hmac.digest(self._key, payload, "sha256").hex()

    def open_session(self, token_index: int) -> tuple[str, str]:
        """A new session cookie value and its CSRF token."""
        payload = orjson.dumps(
            {"exp": int(time.time()) + self.session_ttl_s, "tok": self._fingerprint(token_index)}
        )
        value = base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)
        return value, self.csrf_for(value)

    def csrf_for(self, session: str) -> str:
        return self._sign(b"csrf\0" + session.encode())

    def session_valid(self, value: str) -> bool:
        encoded, _, signature = value.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded.encode() + b"=" * (-len(encoded) % 4))
        except (ValueError, UnicodeEncodeError):
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return False
        data = orjson.loads(payload)
        if not isinstance(data, dict) or int(data.get("exp", 0)) < time.time():
            return False
        live = {self._fingerprint(i) for i in range(len(self._tokens))}
        return data.get("tok") in live

    def check(self, request: Request) -> None:
        """Raise a 401 (or a 403 for a missing CSRF header) unless the request may pass."""
        header = request.headers.get("authorization")
        scheme, _, presented = (header or "").partition(" ")
        if scheme.lower() == "bearer":
            if self.token_index(presented.strip()) is None:
                raise ApiError(401, "unauthorized", "the bearer token is not valid")
            return
        # no bearer token (another scheme may be a proxy's own, basic auth say): the session
        session = request.cookies.get(SESSION_COOKIE)
        if session is None and header is not None:
            raise ApiError(401, "unauthorized", "Authorization must be 'Bearer <token>'")
        if session is None:
            raise ApiError(401, "unauthorized", "a bearer token or a login session is required")
        if not self.session_valid(session):
            raise ApiError(401, "unauthorized", "the session expired; log in again")
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), self.csrf_for(session).encode()):
                raise ApiError(
                    403, "csrf_failed", f"a session request that changes state needs {CSRF_HEADER}"
                )
