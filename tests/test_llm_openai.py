"""The openai backend against real HTTP servers on 127.0.0.1."""

import itertools
import socket
import time

import pytest

from memskill_cli.config import LLMRoleSettings
from memskill_cli.errors import LLMError
from memskill_cli.llm import ChatRequest
from memskill_cli.llm.openai_compat import OpenAIClient
from tests.fake_openai import FakeOpenAIServer, completion

REQUEST = ChatRequest([{"role": "user", "content": "hello"}])


def _client(urls, monkeypatch, keys="key-alpha-111,key-beta-222", max_backoff_s=0.05, **kw):
    monkeypatch.setenv("TEST_LLM_KEYS", keys)
    settings = LLMRoleSettings(backend="openai", model="served-model", base_urls=urls,
                               api_key_env="TEST_LLM_KEYS", **kw)
    return OpenAIClient(settings, backoff_s=0.01, max_backoff_s=max_backoff_s)


def test_round_robin_across_urls_and_keys(monkeypatch):
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b:
        client = _client([a.url, b.url], monkeypatch, keys="key-alpha-111,key-beta-222,key-gamma-333")
        for _ in range(6):
            assert client.complete(REQUEST).text == "ok"
        assert len(a.seen) == 3 and len(b.seen) == 3
        keys_used = [auth for auth, _ in a.seen + b.seen]
        assert {keys_used.count(f"Bearer {k}") for k in ("key-alpha-111", "key-beta-222", "key-gamma-333")} == {2}
        assert a.seen[0][1]["model"] == "served-model"


@pytest.mark.parametrize("failure", [
    (429, {"retry-after": "0"}, {"error": "rate limited"}),
    (500, {}, {"error": "boom"}),
    (503, {}, {"error": "busy"}),
])
def test_transient_errors_are_retried_then_succeed(monkeypatch, failure):
    answers = itertools.chain([failure, failure], itertools.repeat(completion("fine")))
    with FakeOpenAIServer(lambda body, auth: next(answers)) as server:
        response = _client([server.url], monkeypatch).complete(REQUEST)
    assert response.text == "fine"
    assert len(server.seen) == 3
    assert response.usage.prompt_tokens == 11


def test_retry_after_is_honoured_up_to_the_backoff_cap_and_counted(monkeypatch):
    answers = itertools.chain([(429, {"retry-after": "0.4"}, {})], itertools.repeat(completion("late")))
    with FakeOpenAIServer(lambda body, auth: next(answers)) as server:
        start = time.perf_counter()
        response = _client([server.url], monkeypatch, max_backoff_s=1.0).complete(REQUEST)
        assert response.text == "late" and time.perf_counter() - start >= 0.4
    # The ledger sees the retry, its wait and the whole call's time, not only the last attempt's.
    assert response.retries == 1 and response.retry_wait_s == pytest.approx(0.4, abs=0.01)
    assert response.latency_s >= 0.4
    # A server asking for an hour (or forever, or nonsense) waits at most the cap: the run goes on.
    for value in ("3600", "inf", "nan", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"):
        answers = itertools.chain([(503, {"retry-after": value}, {})], itertools.repeat(completion("soon")))
        with FakeOpenAIServer(lambda body, auth, answers=answers: next(answers)) as server:
            start = time.perf_counter()
            assert _client([server.url], monkeypatch).complete(REQUEST).text == "soon"
            assert time.perf_counter() - start < 2.0, value


def test_a_200_that_is_not_a_completion_is_retried(monkeypatch):
    page = "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
    for bad in ((200, {}, page), (200, {}, {"unexpected": True}), (200, {}, "[" * 100_000)):
        answers = itertools.chain([bad, bad], itertools.repeat(completion("real answer")))
        with FakeOpenAIServer(lambda body, auth, answers=answers: next(answers)) as server:
            response = _client([server.url], monkeypatch).complete(REQUEST)
        assert response.text == "real answer" and response.retries == 2 and len(server.seen) == 3
    with FakeOpenAIServer(lambda body, auth: (200, {}, page)) as server:  # always broken: a bounded failure
        with pytest.raises(LLMError, match=r"not a completion.*Bad Gateway"):
            _client([server.url], monkeypatch, max_retries=2).complete(REQUEST)
        assert len(server.seen) == 3


def test_timeout_is_retried(monkeypatch):
    calls = itertools.count()

    def slow_first(body, auth):
        if next(calls) == 0:
            time.sleep(1.0)
        return completion("after timeout")

    with FakeOpenAIServer(slow_first) as server:
        client = _client([server.url], monkeypatch, timeout_s=0.3)
        assert client.complete(REQUEST).text == "after timeout"


def test_permanent_401_fails_fast_without_leaking_the_key(monkeypatch):
    def reject(body, auth):
        return 401, {}, {"error": f"invalid key {auth.removeprefix('Bearer ')}"}

    with FakeOpenAIServer(reject) as server:
        client = _client([server.url], monkeypatch, keys="sk-very-secret-key-123")
        with pytest.raises(LLMError) as info:
            client.complete(REQUEST)
    assert len(server.seen) == 1  # not retried
    assert "401" in str(info.value)
    assert "sk-very-secret-key-123" not in str(info.value)


def test_gives_up_after_max_retries(monkeypatch):
    with FakeOpenAIServer(lambda body, auth: (502, {}, {})) as server:
        with pytest.raises(LLMError, match="gave up after 3 attempts"):
            _client([server.url], monkeypatch, max_retries=2).complete(REQUEST)
        assert len(server.seen) == 3


def test_prompt_tokens_from_the_servers_prefix_cache_are_counted_apart(monkeypatch):
    from memskill_cli.llm import RoleClient, UsageLedger

    def reply(cached):
        status, headers, body = completion("ok")
        return status, headers, {**body, "usage": {**body["usage"], "prompt_tokens_details": cached}}

    replies = iter([reply({"cached_tokens": 8}), reply({"cached_tokens": "many"}), reply(None)])
    ledger = UsageLedger()
    with FakeOpenAIServer(lambda body, auth: next(replies)) as server:
        role = RoleClient("executor", _client([server.url], monkeypatch), ledger=ledger)
        usages = [role.complete(REQUEST).usage for _ in range(3)]
    assert [(u.prompt_tokens, u.cached_prompt_tokens) for u in usages] == [(11, 8), (11, 0), (11, 0)]
    assert (ledger.role("executor").prompt_tokens, ledger.role("executor").cached_prompt_tokens) == (33, 8)


def test_json_schema_is_sent_as_response_format(monkeypatch):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    with FakeOpenAIServer(lambda body, auth: completion('{"a": 1}')) as server:
        response = _client([server.url], monkeypatch).complete(ChatRequest(REQUEST.messages, json_schema=schema))
        assert server.seen[0][1]["response_format"]["json_schema"]["schema"] == schema
    assert response.json(schema) == {"a": 1}


def test_keys_are_split_redacted_in_every_spelling_and_never_stored_from_an_echo(monkeypatch):
    import json

    from memskill_cli.errors import ConfigError

    def echo(body, auth):  # a hostile endpoint: echoes the key, JSON-escaped, in errors and in answers
        key = auth.removeprefix("Bearer ")
        if body["messages"][0]["content"] == "fail":
            return 400, {}, {"error": f"bad key {json.dumps(key)}"}
        return completion(f"your key is {key}")

    with FakeOpenAIServer(echo) as server:
        client = _client([server.url], monkeypatch, keys="sk-one/abc+1\nsk-two/def+2")  # a key file's lines
        answer = client.complete(REQUEST)
        assert "sk-" not in answer.text and "***" in answer.text
        with pytest.raises(LLMError) as failure:
            client.complete(ChatRequest([{"role": "user", "content": "fail"}]))
        assert "sk-" not in str(failure.value) and "abc" not in str(failure.value)
        assert [auth for auth, _ in server.seen] == ["Bearer sk-one/abc+1", "Bearer sk-two/def+2"]
    with pytest.raises(ConfigError, match=r"key 1 .* printable ASCII") as refused:
        _client(["http://127.0.0.1:9/v1"], monkeypatch, keys="sk-clé-123")
    assert "clé" not in str(refused.value)


def test_a_refused_connection_is_retried_and_then_reported(monkeypatch):
    with socket.socket() as probe:   # a port that nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _client([f"http://127.0.0.1:{port}/v1"], monkeypatch, max_retries=1)
    with pytest.raises(LLMError, match=r"gave up after 2 attempts: .*127\.0\.0\.1.*(Connection|refused)"):
        client.complete(REQUEST)


def test_requests_over_a_kept_alive_connection_each_get_their_reply(monkeypatch):
    with FakeOpenAIServer(keep_alive=True) as server:
        client = _client([server.url], monkeypatch)
        assert [client.complete(REQUEST).text for _ in range(5)] == ["ok"] * 5
        assert len(server.seen) == 5
