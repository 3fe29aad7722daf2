"""The context of one GraphQL operation: who asks, in which tenant, and its loaders."""

from __future__ import annotations

from dataclasses import dataclass

from domain.access import Principal
from loaders import Loaders
from switchboard.db import Database


@dataclass(slots=True)
class RequestContext:
    principal: Principal
    db: Database
    loaders: Loaders

    @classmethod
    def for_principal(cls, principal: Principal, db: Database) -> RequestContext:
        return cls(principal=principal, db=db, loaders=Loaders(db, principal.tenant_id))
