"""Logs: JSON lines with the trace id, and never a bearer token or a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from switchboard.observability import logs
from switchboard.settings import Settings

PROBE = "query ObsLogsProbe { viewer { displayName } }"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything logged, at DEBUG, through the gateway's own handler (the app registered
    the secrets to redact when it was created)."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure_logging("DEBUG", "json", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_logs_never_contain_the_bearer_token(
    client: httpx.AsyncClient, token: Any, settings: Settings, captured: io.StringIO
) -> None:
    secret_token = token("acme", "owner")
    headers = {"authorization": f"Bearer {secret_token}"}
    ok = await client.post("/graphql", json={"query": PROBE}, headers=headers)
    assert ok.status_code == 200
    broken = await client.post("/graphql", json={"query": "{ nope }"}, headers=headers)
    assert broken.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    # A token that is valid in shape but refused (wrong signature) is not logged either.
    forged = secret_token[:-4] + ("AAAA" if not secret_token.endswith("AAAA") else "BBBB")
    refused = await client.post(
        "/graphql", json={"query": PROBE}, headers={"authorization": f"Bearer {forged}"}
    )
    assert refused.status_code == 401

    # Careless log calls anywhere in the process are redacted too.
    careless = logging.getLogger("switchboard.careless")
    careless.warning("authorization header was %s", headers["authorization"])
    careless.info("raw token %s", secret_token)
    careless.info("request", extra={"headers": headers, "token": secret_token})
    careless.info("signing with %s", settings.jwt_secret)
    careless.info("connecting to postgresql://app:s3cr3t-pass@db.internal:5432/switchboard")
    careless.info("config password=hunter2-hunter2 api_key: abcdef123456")
    try:
        raise RuntimeError(f"could not verify {secret_token}")
    except RuntimeError:
        careless.exception("verification failed")

    output = captured.getvalue()
    lines = _lines(captured)  # every line is one JSON object
    assert len(lines) >= 7
    for leaked in (secret_token, forged, settings.jwt_secret, "s3cr3t-pass", "hunter2-hunter2"):
        assert leaked not in output
    assert "abcdef123456" not in output
    # What was redacted still says what it was.
    assert "Bearer [REDACTED]" in output
    assert "postgresql://app:[REDACTED]@db.internal:5432/switchboard" in output
    failure = next(line for line in lines if line["message"] == "verification failed")
    assert failure["level"] == "ERROR" and "RuntimeError" in failure["exception"]


async def test_log_lines_carry_the_requests_trace_id(
    client: httpx.AsyncClient, token: Any, captured: io.StringIO
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": PROBE},
        headers={"authorization": f"Bearer {token('acme')}"},
    )
    trace_id = response.headers["x-trace-id"]
    request_lines = [
        line
        for line in _lines(captured)
        if line["logger"] == "switchboard.observability.middleware"
    ]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert line["trace_id"] == trace_id and len(line["span_id"]) == 16
    assert line["level"] == "DEBUG" and line["message"].startswith("POST /graphql 200 ")
    assert {"time", "level", "logger", "message"} <= set(line)


def test_the_level_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_LOG_LEVEL", "warning")
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "text")
    settings = Settings.from_env()
    assert (settings.log_level, settings.log_format) == ("WARNING", "text")
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure_logging(settings.log_level, settings.log_format, stream=stream)
    try:
        assert root.level == logging.WARNING
        logging.getLogger("switchboard.level").info("not shown")
        logging.getLogger("switchboard.level").warning("shown, Bearer abc.def-ghi")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "not shown" not in stream.getvalue()
    assert "shown, Bearer [REDACTED]" in stream.getvalue()


def test_redaction_covers_the_usual_shapes_of_secrets() -> None:
    logs.register_secret("a-registered-secret-value")
    cases = {
        "Authorization: Bearer abc.DEF-123_x~+/=": "Authorization: Bearer [REDACTED]",
        "basic dXNlcjpwYXNz": "basic [REDACTED]",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig-nature_": "jwt [REDACTED]",
        "redis://:pa55word@cache:6379/0": "redis://:[REDACTED]@cache:6379/0",
        '{"password": "p@ss", "token":"t0k"}': '{"password": "[REDACTED]", "token":"[REDACTED]"}',
        "secret=xyz; keep=this": "secret=[REDACTED]; keep=this",
        "uses a-registered-secret-value here": "uses [REDACTED] here",
        "nothing to hide, 42 rows in 3.1 ms": "nothing to hide, 42 rows in 3.1 ms",
    }
    for raw, expected in cases.items():
        assert logs.redact(raw) == expected
