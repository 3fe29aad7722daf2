"""What the store reads through outside a transaction: one autocommit statement, retried
once on a statement timeout (switchboard.infra.db.Database is one). Named here so the store needs
nothing from the layers above it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Row, TextClause


class Reader(Protocol):
    async def fetch(
        self, sql: TextClause | str, params: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]: ...
