"""Skill search on Qdrant: embeddings, the collection, the Redis cache and the generation
that keeps every process's copy current (the plan is in service.py's docstring).

- embeddings.py: the deterministic lexical embedding (default) and MiniLM, one interface;
- index.py: the Qdrant collections (local mode: one per scope, global and each tenant's;
  a server with QDRANT_URL: one), payload filters for tenant/global and role inside the
  search, uploads in batches of 32;
- changes.py: the skills generation and change log in Redis;
- cache.py: cached results, 15 minutes, keyed by sha256 of tenant, query, filters and
  generation;
- service.py: `SkillSearch`, what a gateway process holds.
"""

from switchboard.skill_search.service import SkillSearch

__all__ = ["SkillSearch"]
