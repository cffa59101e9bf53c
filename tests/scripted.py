"""A scripted LLM client behind the real interface, for unit tests only."""

from __future__ import annotations

import threading
from collections.abc import Callable

from memskill_cli.llm.base import ChatRequest, ChatResponse, LLMClient, Usage


class ScriptedClient(LLMClient):
    """Answers with `script(request)` (a text, or a whole ChatResponse); records every request it was asked."""

    def __init__(self, script: Callable[[ChatRequest], str | ChatResponse], name: str = "scripted") -> None:
        self.script = script
        self.name = name
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return f"scripted:{self.name}"

    def _complete(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            self.requests.append(request)
        answer = self.script(request)
        if isinstance(answer, ChatResponse):
            return answer
        prompt = sum(len(m["content"].split()) for m in request.messages)
        return ChatResponse(text=answer, usage=Usage(prompt, len(answer.split())), finish_reason="stop")
