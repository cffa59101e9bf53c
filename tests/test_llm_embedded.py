"""The embedded model, for real."""

import pytest

from memskill_cli.llm import ChatRequest, parse_json

pytestmark = pytest.mark.llm

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "hobbies": {
        "type": "array", "items": {"type": "string"}}},
    "required": ["name", "age", "hobbies"],
    "additionalProperties": False,
}


def test_embedded_model_answers_schema_request_with_valid_json(embedded_llm):
    response = embedded_llm.complete(ChatRequest(
        [{"role": "user", "content": "Ana is 31 and likes chess and hiking. Describe her as JSON."}],
        json_schema=SCHEMA, max_tokens=80))
    value = parse_json(response.text, SCHEMA)  # raises unless valid against the schema
    assert value["age"] == 31
    assert value["name"] == "Ana"
    assert response.usage.prompt_tokens > 10 and response.usage.completion_tokens > 5


def test_embedded_model_is_deterministic_at_temperature_zero(embedded_llm):
    request = ChatRequest([{"role": "user", "content": "Name one primary colour."}], max_tokens=12)
    assert embedded_llm.complete(request).text == embedded_llm.complete(request).text


def test_a_prompt_prefix_already_read_is_reported_as_cached(embedded_llm):
    """llama.cpp reuses the key-value cache of the prompt prefix it has just read; the usage says how much, so a
    fixed prefix (the executor's instructions and worked example) is seen to be computed once."""
    prefix = "You keep notes about people. Each note is one short sentence in the third person. " * 4

    def usage(question):
        return embedded_llm.complete(ChatRequest([{"role": "system", "content": prefix},
                                                  {"role": "user", "content": question}], max_tokens=4)).usage

    usage("Who is Ana?")
    again = usage("Who is Bo?")
    assert embedded_llm.count_tokens(prefix) <= again.cached_prompt_tokens < again.prompt_tokens


def test_map_keeps_order(embedded_llm):
    requests = [ChatRequest([{"role": "user", "content": f"Reply with the number {n} only."}], max_tokens=6)
                for n in (3, 8)]
    answers = [r.text for r in embedded_llm.map(requests, workers=2)]
    assert "3" in answers[0] and "8" in answers[1]


def test_output_cut_at_the_token_limit_comes_back_with_its_finish_reason(embedded_llm):
    schema = {"type": "object", "properties": {"colors": {"type": "array", "items": {"type": "string"}}},
              "required": ["colors"]}
    cut = embedded_llm.complete(ChatRequest([{"role": "user", "content": "Name ten colors as JSON."}],
                                            json_schema=schema, max_tokens=8))
    assert cut.truncated and cut.usage.completion_tokens == 8 and cut.text.startswith("{")
    full = embedded_llm.complete(ChatRequest([{"role": "user", "content": "Name two colors as JSON."}],
                                             json_schema=schema, max_tokens=64))
    assert full.finish_reason == "stop" and parse_json(full.text, schema)["colors"]
    # Token counts come from the model's own tokenizer.
    assert embedded_llm.count_tokens("Caroline went to the support group on 7 May 2023.") == 17


def test_dry_sampling_stops_the_model_copying_a_long_run_of_its_prompt(embedded_llm):
    """The executor's DRY setting reaches llama.cpp: asked to repeat a sentence, the model copies it whole without
    DRY, and with DRY it cannot (a run of more than 2 tokens already seen costs more the longer it gets)."""
    from memskill_cli.config import LLMRoleSettings
    from memskill_cli.llm.llamacpp import LlamaCppClient

    sentence = "Caroline went to the LGBTQ support group on the seventh of May and felt accepted there."
    request = ChatRequest([{"role": "user", "content": f"Repeat this sentence exactly: {sentence}"}], max_tokens=40)
    with_dry = LlamaCppClient(LLMRoleSettings(n_ctx=4096, dry_multiplier=0.8))   # the same loaded model
    assert sentence in embedded_llm.complete(request).text
    assert sentence not in with_dry.complete(request).text
    assert with_dry.identity != embedded_llm.identity        # cached answers never cross the two settings


def test_dry_sampling_lets_a_number_already_written_be_written_again(monkeypatch):
    """Digits break DRY's runs: with llama.cpp's own breakers a year the executor model has written is penalised the
    next time, so dates drift (LoCoMo facts went "January 2020", "2019", "2018" in one session of 2023; here the
    1.5B lists "12 May 2022" for an event the prompt dates 12 May 2023)."""
    from memskill_cli.config import LLMRoleSettings
    from memskill_cli.llm import llamacpp

    events = ["the party", "the trip", "the exam", "the concert", "the match", "the wedding"]
    listed = "; ".join(f"{event} on {day} May 2023" for event, day in zip(events, (3, 9, 12, 17, 21, 28), strict=True))
    schema = {"type": "object", "properties": {"dates": {"type": "array", "items": {"type": "string"},
                                                         "minItems": 6, "maxItems": 6}},
              "required": ["dates"]}
    request = ChatRequest([{"role": "user", "content": f"Events: {listed}. List the date of each event as JSON."}],
                          json_schema=schema, max_tokens=120)
    with_dry = llamacpp.LlamaCppClient(LLMRoleSettings(model="qwen2.5-coder-1.5b", n_ctx=4096, dry_multiplier=0.8))

    def years(client):
        return [s.count("2023") for s in parse_json(client.complete(request).text, schema)["dates"]]

    assert years(with_dry) == [1] * 6
    monkeypatch.setattr(llamacpp, "DRY_BREAKERS", ["\n", ":", '"', "*"])   # llama.cpp's defaults
    assert years(with_dry) != [1] * 6


def test_json_comes_back_compact_when_asked(embedded_llm):
    """A request may ask for JSON without spaces after separators (structure costs fewer tokens); others keep them."""
    def reply(compact):
        return embedded_llm.complete(ChatRequest(
            [{"role": "user", "content": "Ana is 31 and likes chess and hiking. Describe her as JSON."}],
            json_schema=SCHEMA, max_tokens=80, compact_json=compact)).text

    compact, spaced = reply(True), reply(False)
    assert parse_json(compact, SCHEMA)["age"] == 31 and parse_json(spaced, SCHEMA)["age"] == 31
    assert compact.startswith('{"name":"Ana"') and '": ' not in compact and '", "' not in compact
    assert '"name": "Ana"' in spaced                  # the model's own spacing (here, pretty-printed)
