"""Agent runtimes behind one interface: one LLM turn, streamed token by token.

Which runtime runs an agent follows its `model`:
- `ollama/<name>`: an OpenAI-compatible chat-completions server at
  SWITCHBOARD_OLLAMA_BASE_URL (Ollama's, `http://127.0.0.1:11434/v1` by default);
- `openai-compat/<name>`: any OpenAI-compatible server at SWITCHBOARD_OPENAI_COMPAT_BASE_URL,
  with SWITCHBOARD_OPENAI_COMPAT_API_KEY as its bearer token when set;
- anything else (`gpt-4.1`, `claude-sonnet-4`, …): the simulated runtime, which writes
  deterministic text token by token with a realistic delay per token.

Every turn reports its token counts and cost; the cost comes from the price table
(domain.agents.MODEL_PRICES) by the model's name after its prefix, and is 0 for a model the
table does not list (a local model).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import httpx
import orjson

from domain.agents import MODEL_PRICES, call_cost
from domain.llm_calls import LlmCallFigures
from domain.runs import PLAN, Run
from domain.skills import ManifestEntry
from tasks.config import JobSettings

OnToken = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Message:
    role: str  # system | user | assistant
    content: str


@dataclass(slots=True)
class TurnResult(LlmCallFigures):
    """One turn: its text, and the figures of the LLM call it made (recorded as they are)."""

    text: str
    done: bool  # the agent has nothing more to do after this turn
    # Two-stage skill loading: names of skills from the manifest the agent asks to read in
    # full; the runner answers with their content before the next turn.
    skill_requests: tuple[str, ...] = ()


class RuntimeFailure(Exception):
    """A turn failed in a way worth retrying (server error, timeout, bad stream)."""


class Runtime(Protocol):
    async def turn(
        self, run: Run, messages: list[Message], turn: int, on_token: OnToken
    ) -> TurnResult: ...


def price(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    return call_cost(model, input_tokens, output_tokens) if model in MODEL_PRICES else Decimal(0)


def count_tokens(text: str) -> int:
    """A rough count (about four characters a token) for servers that report no usage."""
    return max(1, round(len(text) / 4)) if text else 0


def runtime_for(model: str, settings: JobSettings) -> Runtime:
    if model.startswith("ollama/"):
        return OpenAICompatRuntime(
            settings.ollama_base_url, model.removeprefix("ollama/"), "ollama", None, settings
        )
    if model.startswith("openai-compat/"):
        return OpenAICompatRuntime(
            settings.openai_compat_base_url,
            model.removeprefix("openai-compat/"),
            "openai-compat",
            settings.openai_compat_api_key,
            settings,
        )
    return SimulatedRuntime(settings)


MANIFEST_HEADER = "Skills you can load"
LOAD_SKILL = "load_skill"


def first_messages(run: Run, manifest: Sequence[ManifestEntry] = ()) -> list[Message]:
    """What an agent is told at the start of a run. Of its skills, only the manifest (names
    and one-line summaries): a skill's content reaches the prompt only when the agent asks
    for it with `load_skill <name>` (tasks/skill_loading.py)."""
    role = run.role.replace("_", " ").lower()
    kind = run.deliverable_kind.replace("_", " ").lower()
    system = (
        f"You are the {role} of a marketing agency. Work on one deliverable at a time and "
        "write the deliverable itself, ready for review."
    )
    if manifest:
        system += (
            f"\n\n{MANIFEST_HEADER} (reply with a line `{LOAD_SKILL} <name>` to read one in "
            "full before you write):\n" + "\n".join(f"- {e.name}: {e.summary}" for e in manifest)
        )
    user = (
        f"Campaign: {run.campaign_name}\nGoal: {run.campaign_goal or '(none given)'}\n"
        f"Deliverable: {run.deliverable_title} ({kind})\n\n"
        f"Instructions: {run.instructions or '(none)'}"
    )
    return [Message("system", system), Message("user", user)]


def manifest_names(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(name, summary) of each skill the manifest in `messages` offers, in its order."""
    system = next((m.content for m in messages if m.role == "system"), "")
    _, found, listing = system.partition(MANIFEST_HEADER)
    if not found:
        return []
    entries = []
    for line in listing.splitlines()[1:]:
        if not line.startswith("- "):
            break
        name, _, summary = line[2:].partition(": ")
        entries.append((name, summary))
    return entries


def requested_skills(text: str) -> tuple[str, ...]:
    """The names of `load_skill <name>` lines in a completion's text."""
    return tuple(
        line.strip()[len(LOAD_SKILL) :].strip().strip("`")
        for line in text.splitlines()
        if line.strip().startswith(LOAD_SKILL + " ")
    )


# Simulated.

_WORDS = tuple(
    [
        "clear",
        "benefit",
        "proof",
        "story",
        "customer",
        "launch",
        "season",
        "trail",
        "value",
        "offer",
        "community",
        "guide",
        "results",
        "simple",
        "bold",
        "fresh",
        "trusted",
        "everyday",
        "outdoor",
        "premium",
        "practical",
        "honest",
        "local",
        "expert",
        "seasonal",
        "curated",
        "lasting",
        "bright",
        "confident",
        "steady",
    ]
)


class SimulatedRuntime:
    """Deterministic text for a run (same activity, same turn: same words), streamed one
    token (a word and its space) at a time with `sim_token_delay_ms` between tokens.
    Two turns: an outline, then the draft (the planner writes its plan in one). With its
    outline it asks for one skill of its manifest (`skill_for`), whose content the runner
    adds before the draft."""

    provider = "simulated"

    def __init__(self, settings: JobSettings) -> None:
        self.delay_s = settings.sim_token_delay_ms / 1000
        self.tokens_per_turn = max(settings.sim_tokens_per_turn, 4)

    def turns(self, run: Run) -> int:
        return 1 if run.role == "ACTIVITY_PLANNER" else 2

    @staticmethod
    def skill_for(run: Run, messages: Sequence[Message]) -> str | None:
        """The manifest's skill whose name and summary share the most words with the
        deliverable's title, kind and instructions; the first listed on a tie."""
        about = f"{run.deliverable_title} {run.deliverable_kind} {run.instructions or ''}"
        wanted = set(re.findall(r"[a-z]+", about.lower().replace("_", " ")))
        best, best_score = None, -1
        for name, summary in manifest_names(messages):
            score = len(wanted & set(re.findall(r"[a-z]+", f"{name} {summary}".lower())))
            if score > best_score:
                best, best_score = name, score
        return best

    def text(self, run: Run, turn: int) -> str:
        seed = hashlib.sha256(f"{run.activity_id}:{turn}".encode()).digest()
        rng = random.Random(seed)
        kind = run.deliverable_kind.replace("_", " ").lower()
        if run.role == "ACTIVITY_PLANNER":
            head = (
                f"Plan for {run.campaign_name}: "
                + "; ".join(
                    f"{title.lower()} ({k.replace('_', ' ').lower()})" for k, _, title in PLAN
                )
                + "."
            )
        elif turn == 1:
            head = f"Outline of the {kind} “{run.deliverable_title}”:"
        else:
            head = f"Draft of the {kind} “{run.deliverable_title}”:"
        words = head.split()
        while len(words) < self.tokens_per_turn:
            words.append(rng.choice(_WORDS))
        return " ".join(words[: max(self.tokens_per_turn, len(head.split()))]) + "\n\n"

    async def turn(
        self, run: Run, messages: list[Message], turn: int, on_token: OnToken
    ) -> TurnResult:
        started = time.perf_counter()
        body = self.text(run, turn)
        tokens = re.findall(r"\S+\s*", body)
        for token in tokens:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            await on_token(token)
        input_tokens = sum(count_tokens(m.content) for m in messages)
        output_tokens = len(tokens)
        wants = self.skill_for(run, messages) if turn == 1 and turn < self.turns(run) else None
        return TurnResult(
            text=body,
            provider=self.provider,
            model=run.model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=price(run.model, input_tokens, output_tokens),
            latency_ms=round((time.perf_counter() - started) * 1000),
            done=turn >= self.turns(run),
            skill_requests=(wants,) if wants else (),
        )


# OpenAI-compatible.


class OpenAICompatRuntime:
    """`POST {base_url}/chat/completions` with `stream: true`; tokens arrive as server-sent
    events (`data: {...}` lines, `data: [DONE]` at the end). Usage comes from the final
    chunk (`stream_options.include_usage`) when the server sends it, else it is estimated.
    One turn per run: the completion is the deliverable."""

    def __init__(
        self,
        base_url: str,
        model: str,
        provider: str,
        api_key: str | None,
        settings: JobSettings,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.provider = provider
        self.api_key = api_key
        self.timeout = settings.llm_timeout_s

    async def turn(
        self, run: Run, messages: list[Message], turn: int, on_token: OnToken
    ) -> TurnResult:
        started = time.perf_counter()
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        parts: list[str] = []
        usage: dict[str, int] | None = None
        finish_reason = None
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout) as client,
                client.stream("POST", self.url, content=orjson.dumps(body), headers=headers) as r,
            ):
                if r.status_code >= 400:
                    detail = (await r.aread())[:300].decode(errors="replace")
                    raise RuntimeFailure(f"{self.provider} answered {r.status_code}: {detail}")
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    event = orjson.loads(data)
                    if event.get("usage"):
                        usage = event["usage"]
                    for choice in event.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            parts.append(piece)
                            await on_token(piece)
                        finish_reason = choice.get("finish_reason") or finish_reason
        except httpx.HTTPError as error:
            raise RuntimeFailure(f"{self.provider} request failed: {error!r}") from error
        except orjson.JSONDecodeError as error:
            raise RuntimeFailure(f"{self.provider} sent a malformed stream") from error
        text = "".join(parts)
        input_tokens = (
            int(usage["prompt_tokens"]) if usage else sum(count_tokens(m.content) for m in messages)
        )
        output_tokens = int(usage["completion_tokens"]) if usage else count_tokens(text)
        return TurnResult(
            text=text,
            provider=self.provider,
            model=f"{self.provider}/{self.model}",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=price(self.model, input_tokens, output_tokens),
            latency_ms=round((time.perf_counter() - started) * 1000),
            # A model that asks for skills gets their content and another turn.
            done=finish_reason != "length" and not requested_skills(text),
            skill_requests=requested_skills(text),
        )
