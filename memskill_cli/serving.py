"""An LLM backend as an OpenAI-compatible endpoint (`memskill serve`): several processes, and third-party tools
(Mem0, LangMem, an `openai` client), share one loaded model instead of loading one each.

`/v1/models` and `/v1/chat/completions` (JSON-schema output through `response_format`, tool calling through
`tools`/`tool_choice` on the same grammar, token usage, finish reason). A request whose prompt and `max_tokens`
do not fit the context window is refused with a 400 that says so, before any generation.
Streaming is not offered (a 400 says so).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from memskill_cli.errors import LLMError, SchemaError
from memskill_cli.llm.base import ChatRequest, LLMClient
from memskill_cli.llm.tool_calls import ToolCalling, ToolRequestError, render_message, text_of


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format") or {}
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "object"}
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
    raise HTTPException(400, "response_format must be text, json_object, or json_schema with a `schema` object")


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise HTTPException(400, "`messages` must be a non-empty list")
    out = []
    for number, message in enumerate(messages, start=1):
        rendered = render_message(message) if isinstance(message, dict) else None
        if rendered is not None:
            out.append(rendered)
            continue
        content = text_of(message.get("content")) if isinstance(message, dict) else None
        if not isinstance(content, str) or not isinstance(message.get("role"), str):
            raise HTTPException(400, f"message {number} needs a string `role` and text `content`")
        out.append({"role": message["role"], "content": content})
    return out


def _with_instruction(messages: list[dict[str, str]], instruction: str) -> list[dict[str, str]]:
    """The tools' description joins the system message (one system message: small models' templates expect it)."""
    if messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{instruction}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def create_app(client: LLMClient, model: str, n_ctx: int, default_max_tokens: int = 512) -> FastAPI:
    """The endpoint over `client`; `n_ctx` is the context window one request may fill."""
    app = FastAPI(title="memskill serve", docs_url=None, redoc_url=None)

    @app.exception_handler(HTTPException)
    async def error(_: Request, exc: HTTPException) -> JSONResponse:  # OpenAI's error shape
        return JSONResponse({"error": {"message": exc.detail, "type": "invalid_request_error"}}, exc.status_code)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "memskill",
                                            "context_window": n_ctx}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "the body must be a JSON object")
        if body.get("stream"):
            raise HTTPException(400, "streaming is not supported; send stream: false")
        messages = _messages(body)
        try:
            tools = ToolCalling.from_body(body)
        except ToolRequestError as exc:
            raise HTTPException(400, str(exc)) from None
        schema = _schema(body)
        if tools is not None:
            messages, schema = _with_instruction(messages, tools.instruction()), tools.schema()
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or default_max_tokens
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise HTTPException(400, "max_tokens must be a positive integer")
        prompt = await run_in_threadpool(client.prompt_tokens, messages)
        if prompt + max_tokens > n_ctx:
            raise HTTPException(400, f"this request needs {prompt} prompt tokens + max_tokens {max_tokens} = "
                                     f"{prompt + max_tokens}, over the model's context window of {n_ctx} tokens")
        temperature = body.get("temperature")
        chat_request = ChatRequest(messages, schema, max_tokens,
                                   float(temperature) if temperature is not None else None)
        try:
            response = await run_in_threadpool(client.complete, chat_request)
        except Exception as exc:  # a server answers every request: the backend's failure becomes a 500 saying why
            raise HTTPException(500, f"{type(exc).__name__}: {exc}") from None
        usage = response.usage
        message: dict[str, Any] = {"role": "assistant", "content": response.text}
        finish = response.finish_reason or "stop"
        if tools is not None:
            try:
                message["content"], calls = tools.reply(response.text, response.truncated)
            except SchemaError:   # not JSON at all (a backend without grammars): the text, no calls
                calls = []
            if calls:
                message["tool_calls"] = calls
                finish = "tool_calls" if finish == "stop" else finish
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                      "total_tokens": usage.prompt_tokens + usage.completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens}},
        }

    return app


@contextmanager
def served(client: LLMClient, model: str, n_ctx: int, default_max_tokens: int = 512) -> Iterator[str]:
    """`client` at a free localhost port for as long as the block runs; yields the base URL (…/v1). For peers
    that speak only the OpenAI protocol, and for tests."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(client, model, n_ctx, default_max_tokens), host="127.0.0.1",
                                          port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="memskill-serve", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise LLMError("the in-process endpoint did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
