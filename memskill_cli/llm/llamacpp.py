"""The embedded default backend: llama.cpp in-process through xllamacpp (no server process, no GPU)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memskill_cli.config import LLMRoleSettings, available_cores
from memskill_cli.errors import LLMError
from memskill_cli.llm import models
from memskill_cli.llm.base import ChatRequest, ChatResponse, LLMClient, Usage

# DRY's sequence breakers: llama.cpp's own (newline, colon, quote, asterisk) and every digit. A run of tokens DRY
# penalises never spans a digit, so a year or a turn number already in the context is not pushed to another: with
# the defaults, successive LoCoMo facts drifted "January 2020", "2019", "2018" as each ending was penalised in turn.
DRY_BREAKERS = ["\n", ":", '"', "*", *"0123456789"]
# JSON without spaces after "," and ":" (llguidance's separators), for requests that ask for it: a third fewer
# tokens of structure, and the 1.5B writes a token in ~35 ms on 2 cores.
COMPACT_JSON = {"item_separator": ",", "key_separator": ":", "whitespace_flexible": False}
_servers: dict[tuple[Any, ...], Any] = {}
_servers_lock = threading.Lock()


def _server(path: Path, n_ctx: int, n_parallel: int, threads: int) -> Any:
    """One llama.cpp server per (model, context, slots, threads) per process, shared by all roles."""
    import xllamacpp

    key = (str(path), n_ctx, n_parallel, threads)
    with _servers_lock:
        if key not in _servers:
            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_ctx = n_ctx * n_parallel  # each slot gets the full window
            params.n_parallel = n_parallel
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
            params.sampling.temp = 0.0
            params.warmup = False
            params.verbosity = -1
            params.log_json = False
            _servers[key] = xllamacpp.Server(params)
        return _servers[key]


class LlamaCppClient(LLMClient):
    """Chat completions with the model's own chat template; JSON schema becomes a llama.cpp grammar."""

    def __init__(self, settings: LLMRoleSettings) -> None:
        self.settings = settings
        self.path = models.resolve(settings.model)
        self.max_concurrency = settings.n_parallel
        threads = settings.threads or available_cores()
        self._server = _server(self.path, settings.n_ctx, settings.n_parallel, threads)
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()

    @property
    def identity(self) -> str:
        dry = f":dry{self.settings.dry_multiplier:g}+digits" if self.settings.dry_multiplier else ""
        return f"llamacpp:{self.path.name}:{self.path.stat().st_size}{dry}"

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer and chat template, from its GGUF (loaded on first use)."""
        with self._tokenizer_lock:
            if self._tokenizer is None:
                self._tokenizer = models.gguf_tokenizer(self.path)
        return self._tokenizer

    def count_tokens(self, text: str) -> int:
        """Exact, with the model's own tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The chat as the model reads it: its own template, ready for the assistant's turn."""
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def prompt_tokens(self, messages: Sequence[dict[str, str]]) -> int:
        """Exact prompt size of a chat (template included)."""
        return len(self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"])

    def _complete(self, request: ChatRequest) -> ChatResponse:
        """The chat is rendered with the model's own template and sent as a plain completion: the raw text and the
        finish reason always come back (llama.cpp's chat parser rejects output cut off at the token limit)."""
        body: dict[str, Any] = {
            "prompt": self.render(request.messages),
            "max_tokens": request.max_tokens or self.settings.max_tokens,
            "temperature": self.settings.temperature if request.temperature is None else request.temperature,
            "seed": 0,
        }
        if request.json_schema is not None:
            body["json_schema"] = ({**request.json_schema, "x-guidance": COMPACT_JSON} if request.compact_json
                                   else request.json_schema)
        if self.settings.dry_multiplier:   # DRY: a repeated run costs more the longer it gets (copies, loops)
            body |= {"dry_multiplier": self.settings.dry_multiplier, "dry_base": 1.75, "dry_allowed_length": 2,
                     "dry_penalty_last_n": self.settings.n_ctx, "dry_sequence_breakers": DRY_BREAKERS}
        start = time.perf_counter()
        try:
            result = self._server.handle_completions(body)
        except RuntimeError as exc:
            raise LLMError(f"llama.cpp failed: {exc}") from None
        if not isinstance(result, dict) or "choices" not in result:
            message = result.get("error", result) if isinstance(result, dict) else result
            raise LLMError(f"llama.cpp failed: {message}")
        usage = result.get("usage", {})
        choice = result["choices"][0]
        return ChatResponse(
            text=choice.get("text") or "",
            usage=Usage.from_openai(usage),
            latency_s=time.perf_counter() - start, finish_reason=choice.get("finish_reason"),
        )
