"""Secrets out of the service's log lines: a URL's query parameters that carry a credential
(``?token=``, ``password``, ``api_key``, ``client_secret``...) and the password of a URL's
user info are replaced before any handler writes the line, uvicorn's access log included."""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"

# a parameter whose name says it holds a credential, in a query string or a form body
_PARAM = re.compile(
    r"(?P<name>(?:^|(?<=[?&;\s\"']))[\w.\-\[\]]*?"
    r"(?:token|passw(?:or)?d|pwd|secret|credential|api[_\-]?key|apikey|signature|session|authorization|auth_?code|sig)"
    r"[\w.\-\[\]]*=)(?P<value>[^&;#\s\"']*)",
    re.IGNORECASE,
)
# scheme://user:password@host
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^/\s:@\"']*:)[^/\s@\"']*(?=@)", re.I)
# Authorization: Bearer <token>, should a header ever be logged
_BEARER = re.compile(r"(?P<head>\bbearer\s+)[\w\-.~+/=]+", re.IGNORECASE)


def redact(text: str) -> str:
    if "=" in text:
        text = _PARAM.sub(lambda m: m.group("name") + REDACTED, text)
    if "@" in text:
        text = _USERINFO.sub(lambda m: m.group("head") + "***", text)
    return _BEARER.sub(lambda m: m.group("head") + REDACTED, text)


def _clean(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Rewrites each record in place: its message (with the arguments merged in, so that
    uvicorn's access line, whose path is an argument, is covered) and its string fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the formatter to report
            return True
        record.msg, record.args = redact(message), None
        for key, value in list(vars(record).items()):
            if key not in _KEEP and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


# fields of every record that never hold request data
_KEEP = frozenset(
    {"name", "levelname", "pathname", "filename", "module", "funcName", "threadName",
     "processName", "msg", "taskName", "stack_info"}
)  # fmt: skip
