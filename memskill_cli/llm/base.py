"""The one LLM interface every backend implements: chat messages in, text and token usage out."""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import json_repair
import jsonschema

from memskill_cli.errors import SchemaError

Message = dict[str, str]


@dataclass(frozen=True)
class ChatRequest:
    """One chat call. `json_schema` asks for constrained JSON output where the backend supports it;
    `compact_json` for that JSON without spaces after separators (fewer tokens), where the backend can hold it to
    that: ask for it only when the prompt shows compact JSON (a small model shown spaced JSON and held to compact
    reaches for `[]`)."""

    messages: Sequence[Message]
    json_schema: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    compact_json: bool = False

    def cache_payload(self) -> dict[str, Any]:
        return {
            "messages": list(self.messages),
            "json_schema": self.json_schema,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            **({"compact_json": True} if self.compact_json else {}),
        }


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Of `prompt_tokens`, those the server took from its prefix cache instead of computing them (llama.cpp, vLLM
    #: and OpenAI report them as `prompt_tokens_details.cached_tokens`): a fixed prompt prefix is paid for once.
    cached_prompt_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        """The `usage` object of an OpenAI-style reply (missing or malformed counts read as 0)."""
        usage = usage if isinstance(usage, dict) else {}
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None

        def count(value: Any) -> int:
            return value if isinstance(value, int) and value >= 0 else 0

        return cls(count(usage.get("prompt_tokens")), count(usage.get("completion_tokens")), count(cached))


@dataclass
class ChatResponse:
    text: str
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    cached: bool = False
    finish_reason: str | None = None  # "stop", or "length" when the output hit the token limit
    retries: int = 0                  # failed attempts before this answer ...
    retry_wait_s: float = 0.0         # ... and the seconds spent waiting between them (in latency_s too)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

    def json(self, schema: dict[str, Any] | None = None) -> Any:
        """Parse the text as JSON, tolerating prose and broken syntax around it; validate if given a schema."""
        return parse_json(self.text, schema)


def parse_json(text: str, schema: dict[str, Any] | None = None) -> Any:
    """Tolerant JSON reading (json-repair handles fences, prose and truncation), then schema validation. A
    reply nested deeper than Python can walk is a SchemaError like any other unreadable reply."""
    try:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = json_repair.loads(text)
            if value in ("", None, [], {}) and text.strip() not in ("[]", "{}", "null", '""'):
                raise SchemaError(f"no JSON found in LLM output: {text[:200]!r}") from None
        if schema is not None:
            jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        raise SchemaError(f"LLM output does not match schema: {exc.message}") from None
    except RecursionError:
        raise SchemaError(f"LLM output nested too deeply to read: {text[:100]!r}...") from None
    return value


#: Template tokens per chat message around its content (role markers), where a backend cannot count them.
MESSAGE_OVERHEAD_TOKENS = 8


class LLMClient(abc.ABC):
    """A backend. Subclasses implement `_complete`; `complete` times it and `map` fans it out."""

    #: Bounded worker pool size for `map`.
    max_concurrency: int = 1

    @property
    @abc.abstractmethod
    def identity(self) -> str:
        """Backend + model identity: part of the response-cache key, never a secret."""

    @abc.abstractmethod
    def _complete(self, request: ChatRequest) -> ChatResponse: ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` for this model. Without the model's tokenizer: a conservative estimate (a token per
        3 bytes; English runs about 4 characters per token), so budgets hold."""
        return -(-len(text.encode("utf-8")) // 3)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """A chat's size as the model will read it; here the contents plus a few template tokens per message
        (role markers). Backends that render the model's own chat template count it exactly."""
        return sum(self.count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    def complete(self, request: ChatRequest) -> ChatResponse:
        start = time.perf_counter()
        response = self._complete(request)
        if not response.latency_s:
            response.latency_s = time.perf_counter() - start
        return response

    def map(self, requests: Sequence[ChatRequest], workers: int | None = None) -> list[ChatResponse]:
        """Answer many requests with a bounded worker pool; results keep the input order."""
        workers = max(1, min(workers or self.max_concurrency, len(requests) or 1))
        if workers == 1:
            return [self.complete(r) for r in requests]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.complete, requests))

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release backend resources (sockets, model memory)."""
