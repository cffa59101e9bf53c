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


def test_map_keeps_order(embedded_llm):
    requests = [ChatRequest([{"role": "user", "content": f"Reply with the number {n} only."}], max_tokens=6)
                for n in (3, 8)]
    answers = [r.text for r in embedded_llm.map(requests, workers=2)]
    assert "3" in answers[0] and "8" in answers[1]
