"""Any OpenAI-compatible endpoint (vllm serve, Ollama, OpenAI, Together, NIM).

Several base URLs and keys are used round-robin; 429/5xx/timeouts/connection errors, and a 200 whose body is
not a completion (a proxy's HTML error page), are retried with exponential backoff and jitter, honouring
Retry-After up to the backoff cap (a server asking for an hour never stalls a run); other client errors fail
fast. Retries and their waits are counted in the usage ledger. Keys never appear in messages: every error
text goes through `secrets.redact`.

Requests go through urllib3's keep-alive pools: with 16 threads against a local endpoint it spends about 0.4 ms
of CPU a request where httpx spent 0.6-0.75 (bench/bench_throughput.py), the framework time that every parallel
caller waits on under the GIL.
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from typing import Any

import tenacity
import urllib3

from memskill_cli import secrets
from memskill_cli.config import LLMRoleSettings
from memskill_cli.errors import ConfigError, LLMError
from memskill_cli.llm.base import ChatRequest, ChatResponse, LLMClient, Usage

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
    """Seconds the server asked us to wait (a number; an HTTP date or nonsense is ignored)."""
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _excerpt(content: bytes) -> str:
    """The start of a body for an error message, redacted (read only when a request fails)."""
    return secrets.redact(content[:300].decode("utf-8", errors="replace"))


class _WaitRetryAfter(tenacity.wait.wait_base):
    """Wait what the server asked for, at most `cap` seconds, else exponential backoff with full jitter."""

    def __init__(self, fallback: tenacity.wait.wait_base, cap: float) -> None:
        self.fallback, self.cap = fallback, cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return min(exc.retry_after, self.cap)
        return self.fallback(retry_state)


class OpenAIClient(LLMClient):
    def __init__(self, settings: LLMRoleSettings, backoff_s: float | None = None,
                 max_backoff_s: float | None = None) -> None:
        if not settings.base_urls:
            raise ConfigError("the openai backend needs llm.<role>.base_urls (one or more endpoints)")
        self.settings = settings
        self.max_concurrency = settings.max_concurrency
        keys = secrets.load_api_keys(settings.api_key_env, settings.api_key_file)
        self._urls = itertools.cycle([u.rstrip("/") for u in settings.base_urls])
        self._keys = itertools.cycle(keys or [None])
        self._lock = threading.Lock()
        # retries are tenacity's (counted, with Retry-After), redirects are not followed (as httpx did not)
        self._http = urllib3.PoolManager(
            num_pools=max(10, len(settings.base_urls)), maxsize=settings.max_concurrency, block=True,
            timeout=urllib3.Timeout(connect=settings.timeout_s, read=settings.timeout_s),
            retries=False,
        )
        backoff_s = settings.backoff_s if backoff_s is None else backoff_s
        max_backoff_s = settings.max_backoff_s if max_backoff_s is None else max_backoff_s
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(settings.max_retries + 1),
            wait=_WaitRetryAfter(tenacity.wait_random_exponential(multiplier=backoff_s, max=max_backoff_s),
                                 cap=max_backoff_s),
            retry=tenacity.retry_if_exception_type(RetryableError),
            reraise=True,
        )

    @property
    def identity(self) -> str:
        return f"openai:{self.settings.model}"

    def _next_target(self) -> tuple[str, str | None]:
        with self._lock:
            return next(self._urls), next(self._keys)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": list(request.messages),
            "max_tokens": request.max_tokens or self.settings.max_tokens,
            "temperature": self.settings.temperature if request.temperature is None else request.temperature,
        }
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema},
            }
        return body

    def _attempt(self, body: dict[str, Any]) -> ChatResponse:
        url, key = self._next_target()
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        start = time.perf_counter()
        try:
            payload = json.dumps(body, separators=(",", ":")).encode()
            response = self._http.request("POST", f"{url}/chat/completions", body=payload, headers=headers,
                                          redirect=False)
        except urllib3.exceptions.HTTPError as exc:  # timeouts, refused or dropped connections, bad URLs
            raise RetryableError(secrets.redact(f"{url}: {type(exc).__name__}: {exc}")) from None
        status, content = response.status, response.data
        if status in RETRYABLE_STATUS:
            raise RetryableError(f"{url}: HTTP {status}", _retry_after(response))
        if status >= 400:
            raise LLMError(f"{url}: HTTP {status} (not retried): {_excerpt(content)}")
        try:
            data = json.loads(content)
            text = data["choices"][0]["message"].get("content") or ""
            finish_reason = data["choices"][0].get("finish_reason")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):  # a proxy's page
            raise RetryableError(f"{url}: HTTP 200 but not a completion: {_excerpt(content)}") from None
        usage = data.get("usage") or {}
        return ChatResponse(
            text=secrets.redact(text),  # an endpoint that echoes the key never gets it stored anywhere
            usage=Usage.from_openai(usage),
            latency_s=time.perf_counter() - start, finish_reason=finish_reason,
        )

    def _complete(self, request: ChatRequest) -> ChatResponse:
        body = self._body(request)
        retrying = self._retrying.copy()
        start = time.perf_counter()
        try:
            response = retrying(self._attempt, body)
        except RetryableError as exc:
            raise LLMError(f"gave up after {self.settings.max_retries + 1} attempts: {exc}") from None
        response.retries = retrying.statistics.get("attempt_number", 1) - 1
        response.retry_wait_s = round(retrying.statistics.get("idle_for", 0.0), 3)
        response.latency_s = time.perf_counter() - start  # every attempt and wait, not only the last
        return response

    def close(self) -> None:
        self._http.clear()
