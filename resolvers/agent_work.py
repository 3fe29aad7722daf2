"""The agent runtimes' mutations: progress of an activity, and one LLM call made for it.

Being built together with the job worker, which reports through the same domain code.
"""

from __future__ import annotations

from domain.errors import Forbidden
from schema.mutations import (
    ActivityPayload,
    ActivityProgressInput,
    LlmCallPayload,
    RecordLlmCallInput,
)
from schema.types import Info


async def report_activity_progress(info: Info, input: ActivityProgressInput) -> ActivityPayload:
    raise Forbidden("Not available yet.")


async def record_llm_call(info: Info, input: RecordLlmCallInput) -> LlmCallPayload:
    raise Forbidden("Not available yet.")
