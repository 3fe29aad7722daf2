"""The demo and bench generators write the same rows on every run: pinned by a digest of
each tenant's rows at a fixed seeding day, so a change to the generator core that alters
an ID, a count or a value shows here (the suite and perf/ rely on them). No server."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

import pytest

from switchboard.devdata.bench import ACTIVITY_STATUS_COUNTS, bench_rows, llm_call_chunks
from switchboard.devdata.seed import COLUMNS, DEMO_TENANTS, demo_rows, stable_id

ANCHOR = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def digest(tables: dict[str, list[tuple[Any, ...]]]) -> str:
    hashed = hashlib.sha256()
    for table in COLUMNS:
        for row in tables.get(table, []):
            hashed.update(repr((table, row)).encode())
    return hashed.hexdigest()[:16]


def counts(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, int]:
    """Rows per table, each checked to have its table's columns (what COPY is given)."""
    for table, rows in tables.items():
        assert {len(row) for row in rows} == {len(COLUMNS[table])}, table
    return {table: len(tables[table]) for table in COLUMNS if table in tables}


@pytest.mark.parametrize(
    ("slug", "scale", "expected", "calls"),
    [
        ("acme", 1, "5081905b866a69fc", 311),
        ("acme", 2, "23deb1fd1032bc33", 1116),
        ("globex", 1, "d9c895a2e1494945", 313),
    ],
)
def test_demo_rows_are_the_same_on_every_run(
    slug: str, scale: int, expected: str, calls: int
) -> None:
    name, cap = DEMO_TENANTS[slug]
    tables = demo_rows(slug, name, cap, ANCHOR, scale).tables
    assert digest(tables) == expected
    assert counts(tables)["llm_calls"] == calls
    assert tables["tenants"][0][0] == stable_id(slug, "tenant")
    # Only acme carries the global skill catalogue.
    assert counts(tables)["skills"] == (36 if slug == "acme" else 1)


def test_bench_rows_are_the_same_on_every_run() -> None:
    rng = random.Random(f"switchboard-bench:{ANCHOR.date().isoformat()}")
    rows, started = bench_rows(rng, ANCHOR)
    assert digest(rows.tables) == "4420773ae35f67ee"
    assert counts(rows.tables) == {
        "tenants": 1,
        "users": 4,
        "memberships": 4,
        "agents": 7,
        "campaigns": 24,
        "deliverables": 288,
        "activities": 10_000,
        "approvals": 9_200,
        "skills": 1,
        "preferences": 1,
    }
    pending = [a for a in rows.tables["approvals"] if a[4] == "PENDING"]
    assert len(pending) == ACTIVITY_STATUS_COUNTS["AWAITING_APPROVAL"]
    first = next(llm_call_chunks(rng, rows.tables["tenants"][0][0], started))
    assert digest({"llm_calls": first[:1000]}) == "0b48251b423dbc7b"
    assert counts({"llm_calls": first[:1000]}) == {"llm_calls": 1000}
