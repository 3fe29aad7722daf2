"""A table's projection: key columns always, a plain column only when the operation reads it.

The read side builds objects from rows that may lack the plain columns an operation does
not read; such an attribute must be missing from the object (reading it fails loudly), never
a null that a response could show as data.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from loaders import shapes

ACTIVITY_ROW = {
    "id": uuid.UUID(int=1),
    "deliverable_id": uuid.UUID(int=2),
    "agent_id": uuid.UUID(int=3),
    "status": "RUNNING",
    "wake_reason": "ASSIGNED",
    "priority": 3,
    "instructions": "Write the launch post",
    "output": "a long output " * 100,
    "failure_reason": None,
    "created_at": datetime(2026, 12, 1, tzinfo=UTC),
    "dispatched_at": None,
    "first_token_at": None,
    "completed_at": None,
    "cost_usd": Decimal("0.25"),
}


def test_a_projection_selects_the_keys_and_the_plain_columns_read() -> None:
    projection = shapes.ACTIVITY.projection(frozenset({"status", "priority", "agent"}))
    assert set(projection.fields) == {
        "id",
        "deliverable_id",
        "agent_id",
        "created_at",
        "status",
        "priority",
    }
    assert "t.output" not in projection.columns and "t.status" in projection.columns


def test_no_reads_known_selects_every_column() -> None:
    projection = shapes.ACTIVITY.projection(None)
    assert projection.fields == shapes.ACTIVITY_FIELDS
    assert vars(projection.build(ACTIVITY_ROW)) == vars(shapes.activity_from_row(ACTIVITY_ROW))


def test_an_attribute_not_selected_is_missing_not_null() -> None:
    projection = shapes.ACTIVITY.projection(frozenset({"status"}))
    row = {column: ACTIVITY_ROW[column] for column in projection.fields}
    activity = projection.build(row)
    assert activity.status == "RUNNING" and activity.agent_id == uuid.UUID(int=3)
    with pytest.raises(AttributeError):
        _ = activity.output
    with pytest.raises(AttributeError):
        _ = activity.failure_reason  # null in the row: still not answered as null


@pytest.mark.parametrize(
    "shape", [shapes.CAMPAIGN, shapes.DELIVERABLE, shapes.ACTIVITY, shapes.APPROVAL]
)
def test_each_key_column_is_not_plain(shape: shapes.TableShape) -> None:
    """Ids, foreign keys and sort columns are what resolvers and cursors read."""
    assert {"id", "created_at"} & set(shape.keys)
    assert not {"id", "tenant_id", "campaign_id", "deliverable_id", "agent_id"} & set(shape.plain)
