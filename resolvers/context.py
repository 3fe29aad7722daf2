"""The context of one GraphQL operation: who asks, in which tenant, and what it may use."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from domain.access import Principal
from loaders import Loaders
from switchboard.infra.audit import AuditLog
from switchboard.infra.db import Database
from switchboard.skill_search import SkillSearch


@dataclass(slots=True)
class Services:
    """What a gateway process holds for every request: the database, Redis, the audit log."""

    db: Database
    redis: Redis
    audit: AuditLog
    # Skill search (switchboard/skill_search/): this process's index of skills.
    skills: SkillSearch


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
