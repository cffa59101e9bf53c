"""Mem0 (`mem0ai`) as an evaluation method. A conversation is ingested the way Mem0's documentation recommends:
one `add` per session with that session's messages (first speaker as the user, the other as the assistant,
"Name: text") and the session date as metadata; questions are answered from `search`. Mem0's LLM is ours (an
OpenAI-compatible URL), its embedder our MiniLM (a local sentence-transformers folder), its store FAISS on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memskill_cli.data.schema import Trace


class Mem0Memory:
    """One conversation's Mem0 memory, kept in `folder` (FAISS index + Mem0's SQLite history)."""

    def __init__(self, folder: Path, llm_url: str, model: str, embedder_path: str, dims: int, max_tokens: int) -> None:
        from mem0 import Memory

        folder.mkdir(parents=True, exist_ok=True)
        self.memory = Memory.from_config({
            "llm": {"provider": "openai", "config": {"model": model, "openai_base_url": llm_url, "api_key": "local",
                                                     "temperature": 0.0, "max_tokens": max_tokens}},
            "embedder": {"provider": "huggingface", "config": {"model": embedder_path, "embedding_dims": dims}},
            "vector_store": {"provider": "faiss", "config": {
                "collection_name": "memories", "path": str(folder / "faiss"), "embedding_model_dims": dims,
                "distance_strategy": "cosine"}},
            "history_db_path": str(folder / "history.db"),
        })

    def ingest(self, trace: Trace) -> int:
        """Every session through `add`; returns how many memories Mem0 reported writing."""
        first = trace.speakers[0] if trace.speakers else None
        written = 0
        for session in trace.sessions:
            messages = [{"role": "user" if (t.speaker == first or first is None) else "assistant",
                         "content": f"{t.speaker}: {t.text}"} for t in session.turns]
            result = self.memory.add(messages, user_id=trace.trace_id, infer=True,
                                     metadata={"session_date": session.date_time or ""})
            written += len(result.get("results", []))
        return written

    def search(self, trace_id: str, question: str, limit: int) -> list[str]:
        found: dict[str, Any] = self.memory.search(question, top_k=limit, filters={"user_id": trace_id},
                                                   threshold=0.0)
        return [hit["memory"] for hit in found.get("results", [])]
