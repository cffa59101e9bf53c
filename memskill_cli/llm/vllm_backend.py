"""In-process vLLM (`pip install memskill[vllm]`, a GPU): one `vllm.LLM` per process, batched generation."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from memskill_cli.config import LLMRoleSettings
from memskill_cli.errors import ConfigError
from memskill_cli.llm.base import ChatRequest, ChatResponse, LLMClient, Usage

_engines: dict[str, Any] = {}
_engine_lock = threading.Lock()


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ConfigError(
            "the vllm backend needs vLLM and a GPU: pip install 'memskill[vllm]' "
            "(or use backend: openai against a `vllm serve` endpoint)"
        ) from None
    return vllm


class VLLMClient(LLMClient):
    """Whole batches go to vLLM in one `chat` call, so `map` is batched rather than threaded."""

    def __init__(self, settings: LLMRoleSettings) -> None:
        self.settings = settings
        self._vllm = _import_vllm()
        with _engine_lock:
            if settings.model not in _engines:
                _engines[settings.model] = self._vllm.LLM(
                    model=settings.model, gpu_memory_utilization=settings.gpu_memory_utilization,
                    max_model_len=settings.n_ctx, seed=0,
                )
        self._engine = _engines[settings.model]

    @property
    def identity(self) -> str:
        return f"vllm:{self.settings.model}"

    def _sampling(self, request: ChatRequest) -> Any:
        kwargs: dict[str, Any] = {
            "max_tokens": request.max_tokens or self.settings.max_tokens,
            "temperature": self.settings.temperature if request.temperature is None else request.temperature,
        }
        if request.json_schema is not None:
            params = self._vllm.sampling_params
            if hasattr(params, "StructuredOutputsParams"):
                kwargs["structured_outputs"] = params.StructuredOutputsParams(json=request.json_schema)
            else:
                kwargs["guided_decoding"] = params.GuidedDecodingParams(json=request.json_schema)
        return self._vllm.SamplingParams(**kwargs)

    def _complete(self, request: ChatRequest) -> ChatResponse:
        return self.map([request])[0]

    def map(self, requests: Sequence[ChatRequest], workers: int | None = None) -> list[ChatResponse]:
        if not requests:
            return []
        start = time.perf_counter()
        outputs = self._engine.chat(
            [list(r.messages) for r in requests], [self._sampling(r) for r in requests], use_tqdm=False
        )
        latency = (time.perf_counter() - start) / len(requests)
        return [
            ChatResponse(
                text=out.outputs[0].text,
                usage=Usage(len(out.prompt_token_ids or []), len(out.outputs[0].token_ids or [])),
                latency_s=latency, finish_reason=out.outputs[0].finish_reason,
            )
            for out in outputs
        ]
