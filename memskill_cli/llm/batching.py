"""One engine, many callers: requests from any thread wait in one queue, and a single loop hands whatever is
waiting to the engine as one batch. For engines that batch well but must not be called from several threads at
once (vLLM's offline engine): span executors of parallel episodes, answerers and judges all share it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from memskill_cli.llm.base import ChatRequest, ChatResponse

RunBatch = Callable[[list[ChatRequest]], list[ChatResponse]]


class BatchQueue:
    """`submit` returns a future; the loop thread takes up to `max_batch` waiting requests per engine call. An
    engine error fails exactly the requests of that batch, and the loop goes on."""

    def __init__(self, run_batch: RunBatch, max_batch: int = 256, name: str = "memskill-batch") -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.batch_sizes: list[int] = []   # what each engine call got: for benchmarks and tests
        self._waiting: queue.Queue[tuple[ChatRequest, Future[ChatResponse]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: ChatRequest) -> Future[ChatResponse]:
        future: Future[ChatResponse] = Future()
        self._waiting.put((request, future))
        return future

    def map(self, requests: Sequence[ChatRequest]) -> list[ChatResponse]:
        """All of `requests` queued at once (so they can share batches), results in input order."""
        futures = [self.submit(r) for r in requests]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._waiting.put(None)
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._waiting.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._waiting.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            self.batch_sizes.append(len(batch))
            try:
                responses = self.run_batch([request for request, _ in batch])
                if len(responses) != len(batch):
                    raise RuntimeError(f"the engine returned {len(responses)} results for {len(batch)} requests")
            except BaseException as exc:  # handed to every caller of this batch; the loop serves the next
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), response in zip(batch, responses, strict=True):
                future.set_result(response)
