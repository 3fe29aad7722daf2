"""LLM spend and latency as metrics: for the code that records LLM calls and streams
answers to call.

- `record_llm_spend(tenant, agent, call)`: call once per recorded call (its figures, a
  `domain.llm_calls.LlmCallFigures`), next to `domain.store.llm_calls.record_llm_call`,
  after its transaction commits (a rolled-back call was never spent). Feeds
  `switchboard_llm_cost_usd_total`, `switchboard_llm_calls_total` and
  `switchboard_llm_tokens_total{kind=input|output}`.
- `observe_time_to_first_token(seconds, agent, model)`: the time from the activity's
  dispatch to the first token of the model's answer
  (`switchboard_llm_time_to_first_token_seconds`).

Labels: `tenant` is the tenant's global ID (`ten_…`; a UUID is converted), `agent` the
agent's role (one agent per role in a tenant, so tenant and role name the agent; roles
keep the label set small), `model` the model's name, capped at MAX_MODELS distinct names
per process (`other` beyond).
"""

from __future__ import annotations

import uuid

from domain.ids import to_global_id
from domain.llm_calls import LlmCallFigures
from switchboard.observability import metrics

MAX_MODELS = 100
_model = metrics.CappedLabel(MAX_MODELS)


def _tenant(tenant: str | uuid.UUID) -> str:
    return to_global_id("Tenant", tenant) if isinstance(tenant, uuid.UUID) else tenant


def record_llm_spend(tenant: str | uuid.UUID, agent: str, call: LlmCallFigures) -> None:
    labels = (_tenant(tenant), agent, _model(call.model))
    metrics.LLM_COST.labels(*labels).inc(float(call.cost_usd))
    metrics.LLM_CALLS.labels(*labels).inc()
    metrics.LLM_TOKENS.labels(*labels, "input").inc(call.input_tokens)
    metrics.LLM_TOKENS.labels(*labels, "output").inc(call.output_tokens)


def observe_time_to_first_token(seconds: float, agent: str, model: str) -> None:
    metrics.LLM_FIRST_TOKEN.labels(agent, _model(model)).observe(max(seconds, 0.0))
