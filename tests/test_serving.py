"""`memskill serve`: the OpenAI-compatible endpoint over a backend, checked through our own `openai` backend."""

from __future__ import annotations

import json

import httpx
import pytest

from memskill_cli.config import LLMRoleSettings
from memskill_cli.errors import LLMError
from memskill_cli.executor import Executor
from memskill_cli.llm import ChatRequest, ChatResponse, Usage
from memskill_cli.llm.openai_compat import OpenAIClient
from memskill_cli.serving import served
from tests.scripted import ScriptedClient


def openai_role(url, model="test-model"):
    return OpenAIClient(LLMRoleSettings(backend="openai", base_urls=[url], model=model, max_retries=0,
                                        api_key_env="MEMSKILL_TEST_NO_KEY"))


def test_openai_backend_through_the_endpoint_gets_what_the_backend_gives(monkeypatch):
    monkeypatch.delenv("MEMSKILL_TEST_NO_KEY", raising=False)
    backend = ScriptedClient(lambda r: json.dumps({"echo": r.messages[-1]["content"], "schema": bool(r.json_schema),
                                                   "max_tokens": r.max_tokens}))
    with served(backend, "test-model", 2048, 64) as url:
        models = httpx.get(f"{url}/models").json()
        assert models["data"][0]["id"] == "test-model"
        request = ChatRequest([{"role": "user", "content": "hello"}], json_schema={"type": "object"}, max_tokens=40)
        response = openai_role(url).complete(request)
    assert json.loads(response.text) == {"echo": "hello", "schema": True, "max_tokens": 40}
    assert response.usage.prompt_tokens > 0 and response.finish_reason == "stop"
    assert backend.requests[0].json_schema == {"type": "object"}


def test_the_backends_prefix_cache_hits_reach_the_endpoints_clients(monkeypatch):
    monkeypatch.delenv("MEMSKILL_TEST_NO_KEY", raising=False)
    backend = ScriptedClient(lambda r: ChatResponse("ok", Usage(40, 1, cached_prompt_tokens=32), finish_reason="stop"))
    with served(backend, "test-model", 2048, 64) as url:
        usage = openai_role(url).complete(ChatRequest([{"role": "user", "content": "hello"}])).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_prompt_tokens) == (40, 1, 32)


def test_over_the_context_window_is_a_400_that_says_so():
    backend = ScriptedClient(lambda r: "never")
    with served(backend, "test-model", 100, 64) as url:
        refused = httpx.post(f"{url}/chat/completions", json={
            "model": "test-model", "max_tokens": 50, "messages": [{"role": "user", "content": "word " * 200}]})
        streaming = httpx.post(f"{url}/chat/completions", json={
            "stream": True, "messages": [{"role": "user", "content": "hi"}]})
        garbage = httpx.post(f"{url}/chat/completions", content=b"not json")
        with pytest.raises(LLMError, match=r"HTTP 400.*context window of 100"):
            openai_role(url).complete(ChatRequest([{"role": "user", "content": "word " * 200}], max_tokens=50))
    assert refused.status_code == 400 and "context window of 100 tokens" in refused.json()["error"]["message"]
    assert streaming.status_code == 400 and "streaming" in streaming.json()["error"]["message"]
    assert garbage.status_code == 400
    assert backend.requests == []   # nothing refused ever reached the model


@pytest.mark.llm
def test_served_embedded_model_gives_the_embedded_backends_results(embedded_llm):
    """Executor requests (JSON schema -> grammar) through `memskill serve` and the `openai` backend equal the
    embedded backend's own answers; four callers sending at once each get the answer to their own request.

    llama.cpp reuses the cached prefix of the previous prompt, and how much it reuses can change the last bits of
    the logits; so each pair is compared from the same cache state (the same request just processed)."""
    from memskill_cli.data.spans import Span, SpanTurn
    from memskill_cli.skills import SkillBank

    executor = Executor(embedded_llm)
    turns = [("Ana", "I moved to Lisbon last month."), ("Bob", "Nice! I adopted a dog called Rex."),
             ("Ana", "I start a new job at a bakery on Monday."), ("Bob", "I sold my old car yesterday.")]
    requests = []
    for n, (who, text) in enumerate(turns):
        line = f"{who}: {text}"
        span = Span(span_id=f"s/{n}", trace_id="s", index=n, session_ids=["1"], turn_ids=[f"D1:{n}"],
                    date_time="8 May 2023", text=line, n_tokens=12,
                    turns=[SpanTurn(turn_id=f"D1:{n}", date_time="8 May 2023", line=line)])
        requests.append(ChatRequest(executor.request(span, [], SkillBank.seed().skills).messages,
                                    executor.request(span, [], SkillBank.seed().skills).json_schema, max_tokens=96,
                                    temperature=0.0))
    direct, through = [], []
    with served(embedded_llm, "test-model", 4096, 64) as url:
        client = openai_role(url)
        for request in requests:
            embedded_llm.complete(request)                  # the same cache state before both calls
            direct.append(embedded_llm.complete(request).text)
            through.append(client.complete(request).text)
        client.max_concurrency = 4
        together = [r.text for r in client.map(requests, workers=4)]
        assert openai_role(url).count_tokens("x") >= 1
    assert through == direct and all(t.startswith('{"operations"') for t in direct)   # the grammar held
    for (who, _), text in zip(turns, together, strict=True):   # each caller got its own request's answer
        assert text.startswith('{"operations"') and who in text


NOTE = {"type": "function", "function": {"name": "Note", "description": "Record one fact.", "parameters": {
    "type": "object", "properties": {"fact": {"type": "string"}}, "required": ["fact"]}}}
PATCH = {"type": "function", "function": {"name": "Patch", "description": "Change a note.", "parameters": {
    "type": "object",
    "properties": {"id": {"type": "string"}, "edits": {"type": "array", "items": {"$ref": "#/$defs/Op"}}},
    "required": ["id", "edits"], "$defs": {"Op": {"type": "object", "properties": {"op": {"enum": ["add", "remove"]}},
                                            "required": ["op"]}}}}}


def test_tool_calls_follow_the_tools_and_come_back_as_openai_tool_calls():
    """The tools become one schema (each tool's `$defs` hoisted so its `$ref`s resolve) and an instruction in the
    system message; the reply comes back as `tool_calls`; a call whose arguments fit no tool is left out."""
    import jsonschema
    from openai import OpenAI

    def script(request):
        if request.messages[-1]["content"].startswith("Result of tool call"):
            return json.dumps({"content": "noted"})
        return json.dumps({"tool_calls": [{"name": "Note", "arguments": {"fact": "Ana lives in Lisbon"}},
                                          {"name": "Patch", "arguments": {"id": "m1", "edits": [{"op": "add"}]}},
                                          {"name": "Note", "arguments": {"wrong": 1}}]})

    backend = ScriptedClient(script)
    with served(backend, "test-model", 4096, 64) as url:
        client = OpenAI(base_url=url, api_key="local", max_retries=0)
        messages = [{"role": "system", "content": "You keep notes."}, {"role": "user", "content": "I live in Lisbon."}]
        first = client.chat.completions.create(model="test-model", messages=messages, tools=[NOTE, PATCH],
                                               tool_choice="required")
        calls = first.choices[0].message.tool_calls
        follow_up = [*messages, first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": calls[0].id, "content": "stored"}]
        second = client.chat.completions.create(model="test-model", messages=follow_up, tools=[NOTE, PATCH])
        named = client.chat.completions.create(model="test-model", messages=messages, tools=[NOTE, PATCH],
                                               tool_choice={"type": "function", "function": {"name": "Note"}})
    assert first.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("Note", {"fact": "Ana lives in Lisbon"}), ("Patch", {"id": "m1", "edits": [{"op": "add"}]})]
    required, auto, only_note = (r.json_schema for r in backend.requests)
    good = {"tool_calls": [{"name": "Patch", "arguments": {"id": "m1", "edits": [{"op": "remove"}]}}]}
    jsonschema.validate(good, required)
    bad_op = {"tool_calls": [{"name": "Patch", "arguments": {"id": "m1", "edits": [{"op": "x"}]}}]}
    for bad in ({"tool_calls": []}, bad_op, {"content": "no call"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, required)
    jsonschema.validate({"content": "no call"}, auto)                     # auto: a plain answer is allowed
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(good, only_note)                              # a named choice: only that tool
    system = backend.requests[0].messages[0]
    assert system["role"] == "system" and system["content"].startswith("You keep notes.")
    assert "- Patch: Change a note." in system["content"]
    rendered = backend.requests[1].messages
    assert json.loads(rendered[2]["content"])["tool_calls"][0]["arguments"] == {"fact": "Ana lives in Lisbon"}
    assert rendered[3] == {"role": "user", "content": f"Result of tool call {calls[0].id}: stored"}
    assert second.choices[0].message.content == "noted" and not second.choices[0].message.tool_calls
    assert named.choices[0].finish_reason == "tool_calls"


def test_a_reply_cut_off_mid_call_drops_that_call_and_bad_tools_are_a_400():
    from memskill_cli.llm.base import ChatResponse, Usage

    cut = '{"tool_calls": [{"name": "Note", "arguments": {"fact": "Ana lives in Lisbon"}}, {"name": "Note", "argu'
    backend = ScriptedClient(lambda r: ChatResponse(cut, Usage(10, 64), finish_reason="length"))
    with served(backend, "test-model", 4096, 64) as url:
        body = {"messages": [{"role": "user", "content": "hi"}], "tools": [NOTE]}
        reply = httpx.post(f"{url}/chat/completions", json={**body, "tool_choice": "required"}).json()
        unknown = httpx.post(f"{url}/chat/completions", json={**body, "tool_choice": "Nope"})
        malformed = httpx.post(f"{url}/chat/completions", json={**body, "tools": [{"name": "Note"}]})
    assert reply["choices"][0]["finish_reason"] == "length"
    assert [c["function"]["arguments"] for c in reply["choices"][0]["message"]["tool_calls"]] == [
        json.dumps({"fact": "Ana lives in Lisbon"})]
    assert unknown.status_code == 400 and "Nope" in unknown.json()["error"]["message"]
    assert malformed.status_code == 400 and "tool 1" in malformed.json()["error"]["message"]
    assert len(backend.requests) == 1
