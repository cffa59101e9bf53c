"""Response cache and per-role usage accounting."""

import pytest

from memskill_cli.errors import SchemaError
from memskill_cli.llm import ChatRequest, RoleClient, UsageLedger, parse_json
from memskill_cli.llm.cache import ResponseCache
from tests.scripted import ScriptedClient


def test_second_identical_call_is_a_cache_hit(tmp_path):
    backend = ScriptedClient(lambda r: "answer " + r.messages[-1]["content"])
    ledger = UsageLedger()
    client = RoleClient("executor", backend, cache=ResponseCache(tmp_path / "c.sqlite"), ledger=ledger)
    request = ChatRequest([{"role": "user", "content": "q1"}])
    first, second = client.complete(request), client.complete(request)
    assert first.text == second.text == "answer q1"
    assert len(backend.requests) == 1
    assert not first.cached and second.cached
    usage = ledger.role("executor")
    assert usage.calls == 2 and usage.cache_hits == 1 and usage.prompt_tokens == 1


def test_cache_persists_across_clients_and_separates_models(tmp_path):
    path = tmp_path / "c.sqlite"
    request = ChatRequest([{"role": "user", "content": "q"}])
    RoleClient("a", ScriptedClient(lambda r: "one", name="m1"), cache=ResponseCache(path)).complete(request)
    again = ScriptedClient(lambda r: "two", name="m1")
    assert RoleClient("a", again, cache=ResponseCache(path)).complete(request).text == "one"
    assert not again.requests
    other_model = ScriptedClient(lambda r: "three", name="m2")
    assert RoleClient("a", other_model, cache=ResponseCache(path)).complete(request).text == "three"


def test_a_hit_keeps_the_usage_of_the_call_that_computed_it_and_old_caches_still_read(tmp_path):
    import sqlite3

    from memskill_cli.llm import ChatResponse, Usage

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:   # a cache written before prefix-cache hits were counted
        db.execute("CREATE TABLE responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER, "
                   "completion_tokens INTEGER, finish_reason TEXT)")
        db.execute("INSERT INTO responses VALUES ('old', 'kept', 30, 2, 'stop')")
    db.close()
    cache = ResponseCache(path)
    old = cache.get("old")
    assert (old.text, old.usage.prompt_tokens, old.usage.cached_prompt_tokens, old.cached) == ("kept", 30, 0, True)
    cache.put("new", ChatResponse("fresh", Usage(40, 3, cached_prompt_tokens=32), finish_reason="stop"))
    assert ResponseCache(path).get("new").usage == Usage(40, 3, 32)


def test_sampling_calls_bypass_the_cache(tmp_path):
    backend = ScriptedClient(lambda r: "x")
    client = RoleClient("designer", backend, default_temperature=0.7, cache=ResponseCache(tmp_path / "c.sqlite"))
    request = ChatRequest([{"role": "user", "content": "q"}])
    client.complete(request)
    client.complete(request)
    assert len(backend.requests) == 2


def test_role_limits_reach_the_backend_and_map_keeps_order(tmp_path):
    backend = ScriptedClient(lambda r: f"{r.messages[0]['content']}:{r.max_tokens}")
    client = RoleClient("answerer", backend, default_max_tokens=64, cache=ResponseCache(tmp_path / "c.sqlite"))
    texts = [r.text for r in client.map([ChatRequest([{"role": "user", "content": str(i)}]) for i in range(20)],
                                        workers=4)]
    assert texts == [f"{i}:64" for i in range(20)]


def test_tolerant_json_parsing():
    assert parse_json('Sure! Here it is:\n```json\n{"a": [1, 2]}\n```') == {"a": [1, 2]}
    assert parse_json('{"a": 1,}') == {"a": 1}
    with pytest.raises(SchemaError):
        parse_json("no json at all here")
    with pytest.raises(SchemaError, match="schema"):
        parse_json('{"a": "x"}', {"type": "object", "properties": {"a": {"type": "integer"}}})
