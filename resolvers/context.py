"""The context of one GraphQL operation: who asks, in which tenant, and what it may use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from domain.access import Principal
from loaders import Loaders
from switchboard.infra.db import Database

if TYPE_CHECKING:
    # What the process holds, wired by the composition root at the top of the layers.
    from switchboard.bootstrap import Services


@dataclass(slots=True)
class RequestContext:
    principal: Principal
    services: Services
    loaders: Loaders

    @property
    def db(self) -> Database:
        return self.services.db

    @classmethod
    def for_principal(cls, principal: Principal, services: Services) -> RequestContext:
        return cls(
            principal=principal,
            services=services,
            loaders=Loaders(services.db, principal.tenant_id),
        )
