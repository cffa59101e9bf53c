"""LangMem (`langmem`) as an evaluation method. A conversation is ingested the way LangMem's documentation
recommends for a store-backed memory: its memory store manager runs over each session in turn, seeing the memories
so far that its own search finds relevant, and writes inserts and updates to a LangGraph store; questions are
answered from that store's search. Its chat model is ours (an OpenAI-compatible URL, tool calls served on our
grammar), its index embeds with our MiniLM, its store is in memory and saved as JSON beside the other peers'."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from memskill_cli.data.schema import Trace
from memskill_cli.fileio import read_json, write_json


class LangMemMemory:
    """One conversation's LangMem memory; `folder/memories.json` holds what a finished ingest wrote."""

    def __init__(self, folder: Path, llm_url: str, model: str, embedder_path: str, dims: int, max_tokens: int) -> None:
        from langchain_openai import ChatOpenAI
        from langgraph.store.memory import InMemoryStore
        from langmem import create_memory_store_manager

        encoder = _encoder(embedder_path)

        def embed(texts: list[str]) -> list[list[float]]:
            return encoder.encode(list(texts), normalize_embeddings=True).tolist()

        folder.mkdir(parents=True, exist_ok=True)
        self.saved = folder / "memories.json"
        self.store = InMemoryStore(index={"dims": dims, "embed": embed})
        chat = ChatOpenAI(model=model, base_url=llm_url, api_key="local", temperature=0.0, max_tokens=max_tokens,
                          max_retries=0)
        self.manager = create_memory_store_manager(chat, namespace=("memories", "{langgraph_user_id}"),
                                                   store=self.store)
        if self.saved.exists():
            for item in read_json(self.saved):
                self.store.put(tuple(item["namespace"]), item["key"], item["value"])

    def ingest(self, trace: Trace) -> int:
        """Every session through the manager, in order; returns how many memories the store holds at the end."""
        first = trace.speakers[0] if trace.speakers else None
        config: Any = {"configurable": {"langgraph_user_id": trace.trace_id}}
        for session in trace.sessions:
            messages = [{"role": "system", "content": f"Session date: {session.date_time}"}] if session.date_time \
                else []
            messages += [{"role": "user" if (t.speaker == first or first is None) else "assistant",
                          "content": f"{t.speaker}: {t.text}"} for t in session.turns]
            self.manager.invoke({"messages": messages}, config=config)
        items = self.store.search(("memories", trace.trace_id), limit=100_000)
        write_json(self.saved, [{"namespace": list(i.namespace), "key": i.key, "value": i.value} for i in items])
        return len(items)

    def search(self, trace_id: str, question: str, limit: int) -> list[str]:
        return [_text(hit.value) for hit in self.store.search(("memories", trace_id), query=question, limit=limit)]


@functools.cache
def _encoder(path: str) -> Any:
    """The embedder, loaded once per process (a memory is opened per conversation, built or reused)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu")


def _text(value: dict[str, Any]) -> str:
    """A stored memory's words: LangMem keeps {"kind": "Memory", "content": {"content": text}}."""
    content = value.get("content")
    return str(content.get("content", content)) if isinstance(content, dict) else str(content)
