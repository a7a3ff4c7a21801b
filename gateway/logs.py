"""Structured logs: one JSON object per line, quiet (WARNING) by default; no secrets in them."""

from __future__ import annotations

import logging
import re

import orjson

# Query parameters that carry credentials: a token, or a resume cursor (it holds the
# session's key). Clients send them in headers; browsers' EventSource cannot.
SECRET_PARAMS = ("token", "lastEventId", "key", "access_token")
_SECRET_QUERY = re.compile(r"([?&](?:%s)=)[^&\s]*" % "|".join(SECRET_PARAMS), re.IGNORECASE)


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
