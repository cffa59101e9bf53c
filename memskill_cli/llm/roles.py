"""A role's client: its backend behind the response cache and the usage ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from memskill_cli.config import LLMRoleSettings, LLMSettings
from memskill_cli.llm.base import ChatRequest, ChatResponse, LLMClient
from memskill_cli.llm.cache import ResponseCache, cache_key
from memskill_cli.llm.usage import UsageLedger

ROLES = ("executor", "designer", "answerer", "judge")
#: The most characters kept of a reply: 16 per requested token (tokens average about 4), or of 4,096 tokens when
#: the request names no limit. Longer replies are cut there and marked truncated.
REPLY_CHARS_PER_TOKEN, DEFAULT_REPLY_TOKENS = 16, 4096


def create_backend(settings: LLMRoleSettings) -> LLMClient:
    """Lazy factory: an optional dependency is imported only when its backend is used."""
    if settings.backend == "llamacpp":
        from memskill_cli.llm.llamacpp import LlamaCppClient

        return LlamaCppClient(settings)
    if settings.backend == "openai":
        from memskill_cli.llm.openai_compat import OpenAIClient

        return OpenAIClient(settings)
    from memskill_cli.llm.vllm_backend import VLLMClient

    return VLLMClient(settings)


class RoleClient(LLMClient):
    """Deterministic calls (temperature 0) are answered from the cache when it holds them."""

    def __init__(self, role: str, backend: LLMClient, *, default_temperature: float = 0.0,
                 default_max_tokens: int | None = None, cache: ResponseCache | None = None,
                 ledger: UsageLedger | None = None) -> None:
        self.role = role
        self.backend = backend
        self.cache = cache
        self.ledger = ledger or UsageLedger()
        self.default_temperature = default_temperature
        self.default_max_tokens = default_max_tokens
        self.max_concurrency = backend.max_concurrency

    @property
    def identity(self) -> str:
        return self.backend.identity

    def count_tokens(self, text: str) -> int:
        return self.backend.count_tokens(text)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        return self.backend.prompt_tokens(messages)

    def _with_role_defaults(self, request: ChatRequest) -> ChatRequest:
        """Fill in the role's limits so the backend (maybe shared with other roles) and the cache key see them."""
        return ChatRequest(
            request.messages,
            request.json_schema,
            request.max_tokens if request.max_tokens is not None else self.default_max_tokens,
            request.temperature if request.temperature is not None else self.default_temperature,
            request.compact_json,
        )

    def _key(self, request: ChatRequest) -> str | None:
        if self.cache is None or (request.temperature or 0.0) > 0:
            return None
        return cache_key(self.identity, request)

    def _complete(self, request: ChatRequest) -> ChatResponse:
        return self.map([request], workers=1)[0]

    @staticmethod
    def _bounded(response: ChatResponse, request: ChatRequest) -> ChatResponse:
        """A reply longer than any tokenizer makes of `max_tokens` (REPLY_CHARS_PER_TOKEN each) comes from an
        endpoint that ignored the limit: it is cut there and marked truncated, so nothing stores megabytes."""
        bound = REPLY_CHARS_PER_TOKEN * (request.max_tokens or DEFAULT_REPLY_TOKENS)
        if len(response.text) <= bound:
            return response
        return replace(response, text=response.text[:bound], finish_reason="length")

    def map(self, requests: Sequence[ChatRequest], workers: int | None = None) -> list[ChatResponse]:
        requests = [self._with_role_defaults(r) for r in requests]
        keys = [self._key(r) for r in requests]
        results: list[ChatResponse | None] = [
            self.cache.get(k) if (self.cache is not None and k is not None) else None for k in keys
        ]
        misses = [i for i, hit in enumerate(results) if hit is None]
        for i, response in zip(misses, self.backend.map([requests[i] for i in misses], workers), strict=False):
            response = self._bounded(response, requests[i])
            results[i] = response
            if self.cache is not None and keys[i] is not None:
                self.cache.put(keys[i], response)
        final = [r for r in results if r is not None]
        for response in final:
            self.ledger.record(self.role, response)
        return final


def build_role_clients(settings: LLMSettings, ledger: UsageLedger | None = None,
                       roles: Sequence[str] = ROLES) -> dict[str, RoleClient]:
    """One client per role; roles with identical settings share one backend (one loaded model)."""
    ledger = ledger or UsageLedger()
    cache = ResponseCache(settings.cache_path) if settings.cache_enabled else None
    backends: dict[str, LLMClient] = {}
    clients = {}
    for role in roles:
        role_settings = settings.role(role)
        shared_key = role_settings.model_dump_json(exclude={"max_tokens"})
        if shared_key not in backends:
            backends[shared_key] = create_backend(role_settings)
        clients[role] = RoleClient(role, backends[shared_key], default_temperature=role_settings.temperature,
                                   default_max_tokens=role_settings.max_tokens, cache=cache, ledger=ledger)
    return clients
