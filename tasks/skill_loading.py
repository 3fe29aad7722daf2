"""Two-stage skill loading in a run: the manifest for the first prompt, and the content of
the skills the agent asks for, as the message that answers its request.

A run starts knowing only the names and one-line summaries of its role's skills
(domain/store/skills.py `manifest`); when a turn asks for skills (`TurnResult.skill_requests`,
from the simulated runtime or a model's `load_skill <name>` lines), `answer` loads each from
PostgreSQL and returns the next user message carrying their content. A run loads at most
MAX_LOADED_PER_RUN skills, each once; unknown names are answered as such, so a model that
guesses a name learns it did.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.runs import Run
from domain.skills import MAX_LOADED_PER_RUN, ManifestEntry
from domain.store import skills
from switchboard.infra.db import Database

CONTINUE = "Continue."


async def manifest_for(db: Database, run: Run) -> list[ManifestEntry]:
    async with db.connect() as conn:
        return await skills.manifest(conn, run.tenant_id, run.role)


async def answer(db: Database, run: Run, requested: Sequence[str], loaded: set[str]) -> str:
    """The user message after a turn that asked for `requested` (`loaded`: the lower-cased
    names this run has loaded so far, updated here)."""
    if not requested:
        return CONTINUE
    parts = []
    async with db.connect() as conn:
        for name in dict.fromkeys(requested):  # each once, in the order asked
            key = name.strip().lower()
            if key in loaded:
                parts.append(f"Skill “{name}” is already above.")
                continue
            if len(loaded) >= MAX_LOADED_PER_RUN:
                parts.append(
                    f"Skill “{name}” not loaded: a run loads at most {MAX_LOADED_PER_RUN} skills."
                )
                continue
            skill = await skills.load_for_run(conn, run.tenant_id, run.role, name)
            if skill is None:
                parts.append(f"No skill named “{name}” is available to you.")
                continue
            loaded.add(key)
            parts.append(f"Skill “{skill.name}”:\n\n{skill.content}")
    return "\n\n".join(parts) + f"\n\n{CONTINUE}"
