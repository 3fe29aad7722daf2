"""Logs: one JSON object per line on stderr, carrying the trace id, with secrets redacted.

`configure_logging` (called by `create_app` and by `switchboard serve`) puts one handler
on the root logger; uvicorn's loggers propagate to it (`serve` gives uvicorn no logging
configuration of its own), so its access and error lines come out the same way.

- Level: SWITCHBOARD_LOG_LEVEL (DEBUG, INFO, WARNING, ERROR; default INFO).
- Format: SWITCHBOARD_LOG_FORMAT, `json` (default) or `text` (for a person at a terminal).
- Fields: `time` (UTC, ISO 8601), `level`, `logger`, `message`, `trace_id` and `span_id`
  when a span is current (every request has one), `exception` with its traceback, and any
  `extra={...}` fields.
- Redaction, on the whole line (message, exception text and extra fields) before it is
  written: bearer/basic credentials, JWT-shaped strings, passwords in URLs,
  `password=`/`secret:`/`token=`-style pairs, and the literal values registered with
  `register_secret` (the JWT secret and the database and Redis passwords). What is
  redacted reads `[REDACTED]`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import urlsplit

import orjson

from switchboard.observability.tracing import current_ids

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 6
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization header values: "Bearer <token>", "Basic <credentials>".
    (re.compile(r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9\-._~+/]+=*"), r"\1\2" + REDACTED),
    # Anything shaped like a JWT (header.payload.signature, base64url, header starts "eyJ").
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*"), REDACTED),
    # Credentials in URLs: scheme://user:password@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    # key=value / "key": "value" pairs whose key names a secret.
    (
        re.compile(
            r"(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|authorization|cookie)"
            r"[\"']?\s*[:=]\s*[\"']?)(?!(?:bearer|basic)\s|\[REDACTED\])[^\s\"'\\,;&}]+"
        ),
        r"\1" + REDACTED,
    ),
]
_secrets: set[str] = set()
# Record attributes that are not extra fields (uvicorn adds `color_message`, ANSI-coloured).
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def register_secret(value: str | None) -> None:
    """Never write this literal value (a password, a signing secret) into a log line."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        _secrets.add(value)


def register_url_password(url: str | None) -> None:
    if url:
        with contextlib.suppress(ValueError):
            register_secret(urlsplit(url).password)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        ids = current_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"] = ids
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry:
                entry[key] = _redacted_value(value)
        return orjson.dumps(entry).decode()


def _redacted_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(value if isinstance(value, str) else str(value))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = current_ids()
        if ids is not None:
            line += f" trace_id={ids[0]}"
        return redact(line)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(
    level: str = "INFO",
    format: str = "json",
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> logging.Handler:
    """Install (or replace) the one switchboard handler on the root logger; returns it."""
    for secret in secrets:
        register_secret(secret)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "switchboard", False):
            root.removeHandler(handler)
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.switchboard = True  # type: ignore[attr-defined]
    handler.setFormatter(TextFormatter() if format == "text" else JsonFormatter())
    root.addHandler(handler)
    levels = logging.getLevelNamesMapping()
    root.setLevel(levels.get(level.upper(), logging.INFO))
    return handler
