"""LoCoMo (`locomo10.json`) with the MemSkill conversation-level splits."""

from __future__ import annotations

import re
from pathlib import Path

from memskill_cli.data.schema import Query, Session, Trace, Turn
from memskill_cli.data.source import Reader, answer_text, load_json

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
SPLITS = {
    **dict.fromkeys(["conv-26", "conv-30", "conv-41", "conv-42", "conv-43", "conv-44"], "train"),
    **dict.fromkeys(["conv-47", "conv-48"], "validation"),
    **dict.fromkeys(["conv-49", "conv-50"], "test"),
}
INDEX_SPLITS = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
OFFICIAL_MD5 = "03e2a21d45726cd5ad29602c4f9998e0"
OFFICIAL_URL = "https://github.com/snap-research/locomo/raw/main/data/locomo10.json"
_EVIDENCE = re.compile(r"D:?(\d+):(\d+)")


def parse_evidence(raw: list[str]) -> list[str]:
    """Normalise evidence ids, surviving the known quirks: 'D8:6; D9:17', 'D', 'D:11:26'."""
    ids: list[str] = []
    for item in raw:
        for match in _EVIDENCE.finditer(str(item)):
            turn_id = f"D{match.group(1)}:{match.group(2)}"
            if turn_id not in ids:
                ids.append(turn_id)
    return ids


def _session_numbers(conversation: dict) -> list[int]:
    """Sessions that exist (conv-26 has date keys with no matching session)."""
    numbers = [int(key.split("_")[1]) for key in conversation
               if re.fullmatch(r"session_\d+", key)]
    return sorted(numbers)


def load(path: Path) -> tuple[list[Trace], list[Query]]:
    data = load_json(path)
    if not isinstance(data, list):
        raise Reader(path, "top level", {}).fail("", f"expected a list of samples, got {type(data).__name__}")
    traces, queries = [], []
    for index, raw in enumerate(data):
        sample = Reader(path, f"sample #{index}", raw)
        sample_id = sample.get("sample_id", str)
        sample.record = f"sample {sample_id}"
        split = SPLITS.get(sample_id) or (INDEX_SPLITS[index] if index < len(INDEX_SPLITS) else "test")
        conv = Reader(path, f"sample {sample_id} conversation", sample.get("conversation", dict))
        speakers = [conv.get("speaker_a", str), conv.get("speaker_b", str)]
        sessions = []
        for number in _session_numbers(conv.data):
            raw_turns = conv.get(f"session_{number}", list)
            turns = []
            for t, raw_turn in enumerate(raw_turns):
                turn = Reader(path, f"sample {sample_id} session_{number} turn #{t}", raw_turn)
                speaker = turn.get("speaker", str)
                if speaker not in speakers:
                    turn.fail("speaker", f"unknown speaker {speaker!r} (expected one of {speakers})")
                caption = turn.get("blip_caption", (str, list), None)
                turns.append(Turn(
                    turn_id=turn.get("dia_id", str), speaker=speaker, text=turn.get("text", str),
                    image_caption=(" ".join(caption) if isinstance(caption, list) else caption) or None,
                ))
            if turns:
                sessions.append(Session(session_id=f"session_{number}",
                                        date_time=conv.get(f"session_{number}_date_time", str, None), turns=turns))
        if not sessions:
            conv.fail("session_1", "empty conversation: no sessions with turns")
        traces.append(Trace(trace_id=sample_id, split=split, speakers=speakers, sessions=sessions))
        for q, raw_qa in enumerate(sample.get("qa", list)):
            qa = Reader(path, f"sample {sample_id} qa #{q}", raw_qa)
            category_id = qa.get("category", int)
            if category_id not in CATEGORIES:
                qa.fail("category", f"unknown category {category_id}")
            answer_field = "adversarial_answer" if category_id == 5 and "answer" not in qa.data else "answer"
            answer = qa.get(answer_field, (str, int, float, list))
            queries.append(Query(
                query_id=f"{sample_id}/q{q:03d}", trace_id=sample_id, question=qa.get("question", str),
                answers=[answer_text(answer)], category=CATEGORIES[category_id],
                evidence=parse_evidence(qa.get("evidence", list, [])), split=split,
            ))
    return traces, queries
