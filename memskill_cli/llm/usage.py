"""Usage accounting per LLM role: calls, tokens, cache hits and latency, for reports and MLflow."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

from memskill_cli.llm.base import ChatResponse


@dataclass
class RoleUsage:
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0   # of prompt_tokens, those the server reused from its prefix cache
    latency_s: float = 0.0   # wall time of the calls, retries and their waits included
    retries: int = 0
    retry_wait_s: float = 0.0


class UsageLedger:
    """Thread-safe running totals per role. Cache hits count as calls that cost no tokens or time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._roles: dict[str, RoleUsage] = {}

    def record(self, role: str, response: ChatResponse) -> None:
        with self._lock:
            usage = self._roles.setdefault(role, RoleUsage())
            usage.calls += 1
            if response.cached:
                usage.cache_hits += 1
                return
            usage.prompt_tokens += response.usage.prompt_tokens
            usage.completion_tokens += response.usage.completion_tokens
            usage.cached_prompt_tokens += response.usage.cached_prompt_tokens
            usage.latency_s += response.latency_s
            usage.retries += response.retries
            usage.retry_wait_s += response.retry_wait_s

    def role(self, role: str) -> RoleUsage:
        with self._lock:
            return RoleUsage(**asdict(self._roles.get(role, RoleUsage())))

    def to_dict(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {role: asdict(usage) for role, usage in sorted(self._roles.items())}
