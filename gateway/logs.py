"""Structured logs: one JSON object per line, quiet (WARNING) by default; no secrets in them."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import orjson

# Query parameters that carry credentials: a token, or a resume cursor (it holds the
# session's key). Clients send them in headers; browsers' EventSource cannot.
SECRET_PARAMS = ("token", "lastEventId", "key", "access_token")
_SECRET_QUERY = re.compile(r"([?&](?:{})=)[^&\s]*".format("|".join(SECRET_PARAMS)), re.IGNORECASE)


def redact(text: str) -> str:
    """``/sse/connect?token=abc&x=1`` -> ``/sse/connect?token=[redacted]&x=1``."""
    return _SECRET_QUERY.sub(r"\1[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites credential query parameters out of a log record (uvicorn's access log
    passes the request's path and query as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) and "=" in a else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_access_log() -> None:
    """Install ``RedactSecrets`` on uvicorn's access and error loggers (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str, json: bool = True) -> None:
    logger = logging.getLogger("gateway")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter() if json else logging.Formatter("%(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


class QuietLibraryLog(logging.Filter):
    """One short line per kind of library complaint per ``period``, each one counted.

    python-engineio logs a full traceback for every malformed packet a client sends
    (9 bytes in, 1.6 KB of log out): a client could flood the log at will. Here each
    kind (the message template) passes at most once per ``period``, without its
    traceback, with how many were suppressed since, and ``count(kind)`` sees them all.
    """

    def __init__(self, count: Callable[[str], None], period: float = 60.0, kinds: int = 256) -> None:
        super().__init__()
        self._count, self._period, self._kinds = count, period, kinds
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (last logged, suppressed since)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = str(record.msg)[:80]
        self._count(kind)
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg}: {type(record.exc_info[1]).__name__}"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        now = time.monotonic()
        last, suppressed = self._last.get(kind, (float("-inf"), 0))
        if now - last < self._period:
            self._last[kind] = (last, suppressed + 1)
            return False
        if len(self._last) >= self._kinds and kind not in self._last:
            self._last.pop(next(iter(self._last)))  # bounded: forget the oldest kind
        self._last[kind] = (now, 0)
        if suppressed:
            record.msg = f"{record.msg} (and {suppressed} more like it in the last {self._period:.0f} s)"
        if isinstance(record.msg, str) and len(record.msg) > 300:
            record.msg = record.msg[:300] + "…"
        return True


def library_logger(name: str, count: Callable[[str], None]) -> logging.Logger:
    """A quiet logger for a library that would otherwise install its own loud handler.

    One per gateway, not registered by name: two gateways in one process (tests, an
    application mounting two) each count their own library's complaints. Records go
    to the ``gateway`` logger's handlers.
    """
    logger = logging.Logger(f"gateway.{name}")
    logger.parent = logging.getLogger("gateway")
    logger.addFilter(QuietLibraryLog(count))
    return logger
