"""Skill bank, memory bank and executor, with a scripted LLM behind the real interface."""

import json

import numpy as np
import pytest

from memskill_cli.data.spans import Span, SpanTurn
from memskill_cli.errors import DataError
from memskill_cli.executor import Executor, operations_schema, parse_operations
from memskill_cli.llm import ChatResponse, Usage
from memskill_cli.memory import MemoryBank
from memskill_cli.quality import build_quality
from memskill_cli.skills import Skill, SkillBank
from tests.scripted import ScriptedClient

SPAN = Span(span_id="t/00001", trace_id="t", index=1, session_ids=["S1"], turn_ids=["S1:1", "S1:2"],
            date_time="1 May 2024", text="[1 May 2024]\nAnn: I moved to Oslo and sold my car.\nBo: Wow!", n_tokens=20,
            turns=[SpanTurn(turn_id="S1:1", date_time="1 May 2024", line="Ann: I moved to Oslo and sold my car.",
                            speaker="Ann"),
                   SpanTurn(turn_id="S1:2", date_time="1 May 2024", line="Bo: Wow!", speaker="Bo")])


def fake_encode(texts):
    """Deterministic bag-of-letters vectors: similar texts land close, no model needed."""
    out = np.zeros((len(texts), 32), np.float32)
    for row, text in enumerate(texts):
        for ch in text.lower():
            out[row, ord(ch) % 32] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def make_bank(*contents):
    bank = MemoryBank(32, fake_encode)
    if contents:
        bank.insert(list(contents), "t/00000", 0)
    return bank


def run(output, skills, bank):
    executor = Executor(ScriptedClient(lambda r: output), memory_top_k=10)
    shown = [item for item, _ in bank.search(fake_encode([SPAN.text])[0], executor.memory_top_k)]
    record = executor.process(SPAN, shown, bank, skills, step=1)
    return record, executor


SEED = SkillBank.seed()
ALL = SEED.skills
INSERT_ONLY = [SEED.get("insert")]


def test_good_output_applies_in_a_fixed_order():
    bank = make_bank("Ann lives in Bergen.", "Ann drives a red car.")
    shown = [item.id for item, _ in bank.search(fake_encode([SPAN.text])[0], 10)]
    car = shown.index("m2") + 1
    city = shown.index("m1") + 1
    output = json.dumps({"operations": [  # the reply's form: its keys say the action
        {"turns": [1], "fact": "Ann moved to Oslo on 1 May 2024."},
        {"delete": car},
        {"update": city, "turns": [1], "fact": "Ann lives in Oslo (since 1 May 2024)."},
    ]})
    record, _ = run(output, ALL, bank)
    assert [a["action"] for a in record.applied] == ["UPDATE", "DELETE", "INSERT"]  # edits by id, then inserts
    assert record.rejected == [] and record.parse_error is None
    assert {i.id: i.content for i in bank.items.values()} == {
        "m1": "Ann lives in Oslo (since 1 May 2024).", "m3": "Ann moved to Oslo on 1 May 2024."}
    assert [e.action for e in bank.items["m1"].history] == ["INSERT", "UPDATE"]
    assert bank.items["m1"].history[1].old == "Ann lives in Bergen."
    # Provenance: the cited turn ids (never the local numbers) and the session date.
    assert bank.items["m3"].source_turn_ids == ["S1:1"] and bank.items["m3"].session_date == "1 May 2024"
    assert bank.items["m1"].source_turn_ids == ["S1:1"] and bank.items["m1"].history[1].turn_ids == ["S1:1"]


def test_hostile_output_is_rejected_and_counted_never_applied():
    bank = make_bank("Ann lives in Bergen.")
    output = ('Sure! Here are the operations:\n```json\n{"operations": ['
              '{"action": "UPDATE", "ref": 7, "content": "invented"},'
              '{"action": "DELETE", "ref": 1},'
              '{"action": "EXPLODE"}, "not an object",'
              '{"action": "INSERT", "turns": [1], "content": "  "},'
              '{"action": "INSERT", "turns": [1], "content": "Ann lives in Bergen."},'
              '{"action": "INSERT", "turns": [1], "fact": "Tom started a pottery class on 31 May 2021."},'
              '{"action": "INSERT", "turns": [9], "content": "Ann has a dog."},'
              '{"action": "INSERT", "turns": [1], "content": "Ann sold her car."}]}\n```\nHope this helps!')
    record, executor = run(output, INSERT_ONLY, bank)
    assert executor.limit == 8  # the ninth operation is over the limit: rejected with that reason, not dropped
    reasons = [r["reason"] for r in record.rejected]
    assert reasons == ["disallowed_action", "disallowed_action", "malformed", "malformed", "malformed", "duplicate",
                       "example_copy", "unknown_turn", "over_limit"]
    assert [i.content for i in bank.items.values()] == ["Ann lives in Bergen."]


def test_an_update_into_another_memorys_words_is_a_duplicate():
    bank = make_bank("Ann lives in Bergen.", "Ann drives a red car.")
    shown = [item.id for item, _ in bank.search(fake_encode([SPAN.text])[0], 10)]
    car = shown.index("m2") + 1
    output = json.dumps({"operations": [
        {"action": "UPDATE", "ref": car, "turns": [1], "content": "ann lives in  Bergen."}]})
    record, _ = run(output, ALL, bank)
    assert [r["reason"] for r in record.rejected] == ["duplicate"] and record.applied == []
    assert [i.content for i in bank.items.values()] == ["Ann lives in Bergen.", "Ann drives a red car."]
    same = json.dumps({"operations": [  # an UPDATE that keeps an item's own words is not a duplicate of itself
        {"action": "UPDATE", "ref": car, "turns": [1], "content": "Ann drives a red car."}]})
    record, _ = run(same, ALL, bank)
    assert record.rejected == [] and [a["action"] for a in record.applied] == ["UPDATE"]


def dialogue_span(session: str, date: str, index: int, said: list[tuple[str, str]]) -> Span:
    """A span of one session's turns, each (speaker, words), numbered `<session>:1`, `<session>:2`, ..."""
    turns = [SpanTurn(turn_id=f"{session}:{n}", date_time=date, line=f"{who}: {words}", speaker=who)
             for n, (who, words) in enumerate(said, start=1)]
    return Span(span_id=f"c/{index:05d}", trace_id="c", index=index, session_ids=[session],
                turn_ids=[t.turn_id for t in turns], date_time=date, text="\n".join(t.line for t in turns),
                n_tokens=30, turns=turns)


def test_an_update_that_writes_another_fact_is_stored_beside_its_memory(encoder):
    """Small models UPDATE a shown memory to write whatever is new (LoCoMo conv-48: "Jolene finished an electrical
    engineering project" became "Jolene received a letter from her husband"); applied, that erases a fact and leaves
    its turn cited by a memory that no longer says it."""
    span = dialogue_span("D2", "2 Feb 2023", 9, [("Jolene", "My husband wrote me a letter last month."),
                                                 ("John", "Video games make me so happy!"),
                                                 ("Deborah", "I'm going back to my yoga practice.")])
    bank = MemoryBank(encoder.dim, encoder.encode)
    bank.insert(["Jolene finished an electrical engineering project in December 2022.",
                 "James says video games make him happy.", "Deborah plans to resume yoga."], "c/00001", 0,
                sources=[["D1:2"], ["D1:5"], ["D1:7"]])
    output = json.dumps({"operations": [
        {"action": "UPDATE", "ref": 1, "turns": [1],
         "fact": "Jolene received a letter from her husband in January 2023."},
        {"action": "UPDATE", "ref": 2, "turns": [2], "fact": "John says video games make him happy."},   # John's now
        {"action": "UPDATE", "ref": 3, "turns": [3], "fact": "Deborah plans to resume her yoga practice."}]})
    record = Executor(ScriptedClient(lambda r: output)).process(span, list(bank.items.values()), bank, ALL, step=9)
    assert record.rejected == []
    assert {i.id: (i.content, i.source_turn_ids) for i in bank.items.values()} == {
        "m1": ("Jolene finished an electrical engineering project in December 2022.", ["D1:2"]),  # kept whole
        "m2": ("James says video games make him happy.", ["D1:5"]),
        "m3": ("Deborah plans to resume her yoga practice.", ["D1:7", "D2:3"]),                  # a restatement
        "m4": ("Jolene received a letter from her husband in January 2023.", ["D2:1"]),
        "m5": ("John says video games make him happy.", ["D2:2"])}
    assert [(a["action"], a["id"], a.get("instead_of_update")) for a in record.applied] == [
        ("UPDATE", "m3", None), ("INSERT", "m4", "m1"), ("INSERT", "m5", "m2")]
    assert build_quality([record], len(bank))["updates_kept_apart"] == 2


def test_a_chain_of_updates_to_one_memory_keeps_each_new_fact(encoder):
    """The 1.5B chains "UPDATE M1" over a span's turns, one new fact each (the first four sessions of conv-47 and
    conv-48: 37 such UPDATEs rejected as conflicts in 31 spans, each a fact lost). An UPDATE of another fact is an
    INSERT, so none conflicts; a DELETE of the memory they named still does, and so does a second restatement."""
    span = dialogue_span("D3", "9 Mar 2023", 11, [("James", "I'm building a game about space pirates."),
                                                  ("John", "I adopted a puppy called Rex!"),
                                                  ("James", "My sister Ada moved to Rome.")])
    bank = MemoryBank(encoder.dim, encoder.encode)
    bank.insert(["James likes strategy video games."], "c/00001", 0, sources=[["D1:2"]])
    output = json.dumps({"operations": [
        {"update": 1, "turns": [1], "fact": "James is building a video game about space pirates."},
        {"update": 1, "turns": [2], "fact": "John adopted a puppy named Rex in March 2023."},
        {"update": 1, "turns": [3], "fact": "James's sister Ada moved to Rome in March 2023."},
        {"update": 1, "turns": [1], "fact": "James likes strategy video games very much."},    # restates M1: an edit
        {"update": 1, "turns": [1], "fact": "James really likes strategy video games."},       # a second edit
        {"delete": 1}]})                                                                         # M1 was named
    record = Executor(ScriptedClient(lambda r: output)).process(span, list(bank.items.values()), bank, ALL, step=11)
    assert [r["reason"] for r in record.rejected] == ["conflict", "conflict"]
    assert sorted(i.content for i in bank.items.values()) == [
        "James is building a video game about space pirates.", "James likes strategy video games very much.",
        "James's sister Ada moved to Rome in March 2023.", "John adopted a puppy named Rex in March 2023."]
    assert bank.items["m2"].source_turn_ids == ["D3:1"] and bank.items["m3"].source_turn_ids == ["D3:2"]


def test_ten_thousand_operations_are_counted_not_stored():
    bank = make_bank("Ann lives in Bergen.")
    ops = [{"action": "INSERT", "turns": [1], "content": f"Ann owns bike number {i}."} for i in range(10_000)]
    record, executor = run(json.dumps({"operations": ops}), INSERT_ONLY, bank)
    assert len(bank) == 1 + executor.limit and len(record.applied) == executor.limit
    assert record.rejected == [{"operation": ops[executor.limit], "reason": "over_limit",
                                "count": 10_000 - executor.limit}]
    assert len(record.parsed) == 2 * executor.limit  # the rest is counted, not kept
    assert build_quality([record], len(bank))["rejected_by_reason"] == {"over_limit": 10_000 - executor.limit}


def test_a_reply_longer_than_its_token_limit_allows_is_cut_and_marked():
    from memskill_cli.llm import ChatRequest, RoleClient
    from memskill_cli.llm.roles import REPLY_CHARS_PER_TOKEN

    client = RoleClient("executor", ScriptedClient(lambda r: "x" * 5_000_000), default_max_tokens=100)
    response = client.complete(ChatRequest([{"role": "user", "content": "hi"}]))
    assert len(response.text) == 100 * REPLY_CHARS_PER_TOKEN and response.truncated


def test_unknown_reference_with_update_allowed():
    bank = make_bank("Ann lives in Bergen.")
    record, _ = run('{"operations": [{"action": "UPDATE", "ref": 2, "turns": [1], "content": "x"}, '
                    '{"action": "UPDATE", "ref": 0, "turns": [1], "content": "y"}, {"action": "DELETE", "ref": "1"}]}',
                    ALL, bank)
    assert [r["reason"] for r in record.rejected] == ["unknown_ref", "unknown_ref", "unknown_ref"]
    assert bank.items["m1"].content == "Ann lives in Bergen."


def test_malformed_output_is_a_recorded_parse_error():
    bank = make_bank("Ann lives in Bergen.")
    record, _ = run("I cannot help with that.", ALL, bank)
    assert record.parse_error and "no JSON" in record.parse_error
    assert len(bank) == 1
    assert parse_operations('[{"action": "NOOP"}]') == [{"action": "NOOP"}]  # a named action is read as it is
    assert parse_operations('[{"noop": true}, {"delete": 2}, {"update": 1, "turns": [1], "fact": "x"}, {"x": 1}]') == [
        {"action": "NOOP"}, {"action": "DELETE", "ref": 2}, {"action": "UPDATE", "ref": 1, "turns": [1], "fact": "x"},
        {"x": 1}]


def test_prompt_shows_local_numbers_and_schema_limits_actions():
    bank = make_bank("Ann lives in Bergen.")
    _, executor = run('{"operations": []}', INSERT_ONLY, bank)
    request = executor.client.requests[0]
    prompt = request.messages[-1]["content"]
    assert "M1 Ann lives in Bergen." in prompt and "T1 Ann: I moved to Oslo" in prompt and "T2 Bo: Wow!" in prompt
    assert "Date: 1 May 2024" in prompt
    assert "m1" not in prompt and "S1:1" not in prompt  # real ids never reach the LLM
    assert request.json_schema == operations_schema(["INSERT", "NOOP"], ["Ann", "Bo"], n_memories=1, limit=8)
    [ann, bo, _] = request.json_schema["properties"]["operations"]["items"]["anyOf"]
    # the grammar allows only shown turns, and a fact from a person's turns starts with their name
    assert ann["properties"]["turns"]["items"]["enum"] == [1] and bo["properties"]["turns"]["items"]["enum"] == [2]
    assert ann["properties"]["fact"]["pattern"].startswith("^Ann[^\\n:]")
    assert ann["properties"]["fact"]["maxLength"] == 120
    assert ann["required"] == ["turns", "fact"]


def test_a_cut_off_response_applies_only_complete_operations():
    bank = make_bank("Ann lives in Bergen.")
    text = ('{"operations": [{"action": "INSERT", "turns": [1], "content": "Ann moved to Oslo on 1 May 2024."}, '
            '{"action": "INSERT", "turns": [1], "content": "Ann sold her c')
    cut = ChatResponse(text=text, usage=Usage(50, 40), finish_reason="length")
    record, _ = run(cut, INSERT_ONLY, bank)
    assert record.truncated and record.parse_error is None
    assert [i.content for i in bank.items.values()] == ["Ann lives in Bergen.", "Ann moved to Oslo on 1 May 2024."]
    # The same cut without a finish reason (a backend that does not say) is detected from the unterminated JSON.
    record, _ = run(text, INSERT_ONLY, make_bank("x"))
    assert record.truncated and [a["content"] for a in record.applied] == ["Ann moved to Oslo on 1 May 2024."]
    # Cut inside the first operation: nothing is applied, and it still counts as truncated.
    record, _ = run(ChatResponse(text='{"operations": [{"action": "INS', finish_reason="length"), INSERT_ONLY,
                    make_bank("x"))
    assert record.truncated and record.applied == [] and record.parse_error is None


def test_invented_turns_sources_and_conflicts_are_rejected():
    bank = make_bank("Ann lives in Bergen.")
    output = json.dumps({"operations": [
        {"action": "INSERT", "turns": [3], "content": "Ann has a brother."},       # T3 was never shown
        {"action": "INSERT", "content": "Ann likes jazz."},                        # no source turn
        {"action": "INSERT", "turns": [1], "content": "x" * 201},                  # over the content limit
        {"action": "UPDATE", "ref": 1, "turns": [1], "content": "Ann lives in Oslo."},
        {"action": "DELETE", "ref": 1},                                            # the same item: a conflict
    ]})
    record, _ = run(output, ALL, bank)
    assert [r["reason"] for r in record.rejected] == ["unknown_turn", "no_source", "too_long", "conflict"]
    assert [i.content for i in bank.items.values()] == ["Ann lives in Oslo."]


def test_verbatim_copies_are_flagged_and_provenance_survives_save_and_load(tmp_path):
    bank = make_bank()
    output = json.dumps({"operations": [
        {"action": "INSERT", "turns": [1], "content": "Ann: I moved to Oslo and sold my car."},
        {"action": "INSERT", "turns": [1, 2], "content": "Ann moved to Oslo in May 2024."},
    ]})
    record, _ = run(output, INSERT_ONLY, bank)
    assert [a["copy"] for a in record.applied] == [True, False]
    bank.save(tmp_path / "bank")
    loaded = MemoryBank.load(tmp_path / "bank", fake_encode)
    assert [i.source_turn_ids for i in loaded.items.values()] == [["S1:1"], ["S1:1", "S1:2"]]
    assert loaded.items == bank.items


def test_memory_bank_ids_and_index_stay_consistent(tmp_path):
    bank = make_bank("alpha fact", "beta fact", "gamma fact")
    bank.delete("m2")
    bank.update("m3", "gamma fact revised", "t/2", 2)
    [new_id] = bank.insert(["delta fact"], "t/3", 3)
    assert new_id == "m4"  # ids are never reused
    assert bank.index.ntotal == len(bank) == 3
    top, score = bank.search(fake_encode(["gamma fact revised"])[0], 1)[0]
    assert top.id == "m3" and score == pytest.approx(1.0, abs=1e-5)
    assert {i.id for i, _ in bank.search(fake_encode(["beta fact"])[0], 10)} == {"m1", "m3", "m4"}
    bank.save(tmp_path / "bank")
    loaded = MemoryBank.load(tmp_path / "bank", fake_encode)
    assert loaded.items == bank.items and loaded.next_id == 5
    assert [i.id for i, _ in loaded.search(fake_encode(["delta"])[0], 3)] == \
        [i.id for i, _ in bank.search(fake_encode(["delta"])[0], 3)]
    assert loaded.insert(["epsilon"], None, 4) == ["m5"]


def test_diverse_retrieval_skips_rewordings_of_a_memory_already_chosen():
    def unit(*xs):
        v = np.zeros(32, np.float32)
        v[: len(xs)] = xs
        return v / np.linalg.norm(v)

    bank = MemoryBank(32, fake_encode)
    bank.insert(["Ann moved to Oslo.", "Ann relocated to Oslo.", "Ann sold her car."], "t/1", 1,
                vectors=np.stack([unit(1, 0.3, 0), unit(1, 0.4, 0), unit(0.6, 0, 0.8)]))
    query = unit(1, 0.3, 0.5)
    plain = bank.search(query, 2)
    assert [item.id for item, _ in plain] == ["m1", "m2"]          # the rewording is the second most similar
    diverse = bank.search(query, 2, diversity=0.2)
    assert [item.id for item, _ in diverse] == ["m1", "m3"]        # ... and gives way to the other fact
    assert diverse[1][1] == pytest.approx(float(query @ unit(0.6, 0, 0.8)), abs=1e-6)  # scores stay cosines
    assert [item.id for item, _ in bank.search(query, 10, diversity=0.2)] == ["m1", "m3", "m2"]


def test_skill_bank_roundtrip_validate_and_diff(tmp_path):
    seed = SkillBank.seed()
    assert seed.names == ["insert", "update", "delete", "skip"]
    seed.save(tmp_path / "bank.yaml")
    loaded = SkillBank.load(tmp_path / "bank.yaml")
    assert loaded.hash == seed.hash
    grown = SkillBank(version=2, skills=[*seed.skills, Skill(
        name="capture-dates", description="Record when events happen.", instructions="Insert dated events.",
        actions=["INSERT"])])
    assert grown.hash != seed.hash
    assert "+- name: capture-dates" in seed.diff(grown)
    bad = "skills:\n- {name: Bad Name, description: d, instructions: i, actions: [INSERT]}\n"
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(DataError, match="not a slug"):
        SkillBank.load(tmp_path / "bad.yaml")
    (tmp_path / "dup.yaml").write_text(seed.to_yaml().replace("name: update", "name: insert"))
    with pytest.raises(DataError, match="duplicate skill names"):
        SkillBank.load(tmp_path / "dup.yaml")


def test_the_worked_example_obeys_the_grammar_and_precedes_the_span():
    """The example exchange must itself pass the schema the model is held to (or it teaches a format the grammar
    forbids), and the real excerpt comes last."""
    import jsonschema

    from memskill_cli.executor import EXAMPLE_OPERATIONS, EXAMPLE_SPAN

    speakers = [line.split()[1].rstrip(":") for line in EXAMPLE_SPAN.splitlines() if line.startswith("T")]
    schema = operations_schema(["INSERT", "UPDATE", "DELETE", "NOOP"], speakers, n_memories=1, limit=8)
    jsonschema.validate({"operations": EXAMPLE_OPERATIONS}, schema)
    with pytest.raises(jsonschema.ValidationError):  # "Name: words" is not a fact
        transcript = {"turns": [1], "fact": "Maria: I moved to Oslo with my two dogs."}
        jsonschema.validate({"operations": [transcript]}, schema)
    with pytest.raises(jsonschema.ValidationError):  # a fact from Tom's turn is not about Maria
        misattributed = {"turns": [2], "fact": "Maria started a pottery class in May 2021."}
        jsonschema.validate({"operations": [misattributed]}, schema)
    unbound = operations_schema(["INSERT"], [None, None], n_memories=0, limit=8)  # roles, documents: any name
    jsonschema.validate({"operations": [{"turns": [2], "fact": "The user owns a red bicycle."}]}, unbound)
    bank = make_bank("Ann lives in Bergen.")
    _, executor = run('{"operations": []}', ALL, bank)
    roles = [m["role"] for m in executor.client.requests[0].messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert "T1 Ann: I moved to Oslo" in executor.client.requests[0].messages[-1]["content"]
