"""A peer's memories for the evaluation traces, built (or reused) with our LLM served to it in-process, and the
memories it retrieves for each question; its LLM cost per conversation comes from our usage ledger."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memskill_cli.data.schema import Query, Trace
from memskill_cli.fileio import read_json, write_json
from memskill_cli.llm import RoleClient
from memskill_cli.serving import served


@dataclass
class PeerRun:
    contexts: dict[str, list[str]]                                  # query id -> retrieved memory texts
    cost: dict[str, dict[str, Any]] = field(default_factory=dict)   # trace id -> calls, tokens, seconds, memories
    errors: dict[str, str] = field(default_factory=dict)            # trace id -> what the peer raised


def run_peer(method: str, traces: list[Trace], queries: list[Query], root: Path, llm: RoleClient, model: str,
             n_ctx: int, embedder_path: str, dims: int, limit: int) -> PeerRun:
    """Build each trace's memory with the peer (a trace whose `done.json` exists is reused), then search it for
    every question. A trace the peer fails on is recorded with its message; its questions get no memories."""
    from memskill_cli.peers.langmem import LangMemMemory
    from memskill_cli.peers.mem0 import Mem0Memory

    kind = {"mem0": Mem0Memory, "langmem": LangMemMemory}[method]
    run = PeerRun(contexts={})
    memories: dict[str, Any] = {}
    with served(llm, model, n_ctx) as url:
        def open_memory(trace_id: str) -> Any:
            return kind(root / trace_id, url, model, embedder_path, dims, llm.default_max_tokens or 512)

        for trace in traces:
            folder, done = root / trace.trace_id, root / trace.trace_id / "done.json"
            if done.exists():
                record = read_json(done)
                if "error" in record:
                    run.errors[trace.trace_id] = record["error"]
                else:
                    record.setdefault("cached_prompt_tokens", 0)   # a build recorded before they were counted
                    run.cost[trace.trace_id], memories[trace.trace_id] = record, open_memory(trace.trace_id)
                continue
            shutil.rmtree(folder, ignore_errors=True)   # a build that was killed half-way starts over
            before = asdict(llm.ledger.role(llm.role))
            try:
                memory = open_memory(trace.trace_id)
                written = memory.ingest(trace)
            except Exception as exc:  # a third-party library: whatever it raises is that trace's recorded failure
                run.errors[trace.trace_id] = f"{type(exc).__name__}: {str(exc)[:300]}"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                write_json(done, {"error": run.errors[trace.trace_id]})
                continue
            after = asdict(llm.ledger.role(llm.role))
            record = {"llm_calls": after["calls"] - before["calls"],
                      "prompt_tokens": after["prompt_tokens"] - before["prompt_tokens"],
                      "completion_tokens": after["completion_tokens"] - before["completion_tokens"],
                      "cached_prompt_tokens": after["cached_prompt_tokens"] - before["cached_prompt_tokens"],
                      "llm_seconds": round(after["latency_s"] - before["latency_s"], 3), "memories": written}
            write_json(done, record)
            run.cost[trace.trace_id], memories[trace.trace_id] = record, memory
        for query in queries:
            memory = memories.get(query.trace_id)
            run.contexts[query.query_id] = memory.search(query.trace_id, query.question, limit) if memory else []
    return run
