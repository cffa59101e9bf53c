"""The executor: one LLM call per span applies the selected skills and emits memory operations.

Built for small models. The span's turns are shown as T1..Tn with their session date and memories as M1..Mn
(never their real ids), so the model can neither invent ids nor lose track of dates; every INSERT and UPDATE
cites the turns it draws on, and the memory keeps those turn ids as provenance. In a conversation a fact starts with
the name of the person who said the turns it cites (one grammar variant per speaker): small models otherwise pin one
speaker's words on the other and cite a neighbouring turn. A worked example (made-up people, citing turns in order)
comes first, because small models copy turns unless they see facts written from them. The output budget and the
JSON schema agree: a bounded number of operations with bounded content (the grammar enforces both), so a full
answer fits in the role's `max_tokens`. A reply item's keys say its action (`turns` and `fact` insert, `update`
or `delete` name a memory): an `"action"` key and its value would cost four tokens an operation, a sixth of a reply.
A response cut off at the token limit is detected: its complete operations are applied and the incomplete one is
discarded and counted (`truncated`), never half-applied.
Anything else invalid is rejected with a reason, never applied and never a crash. An UPDATE that writes another
fact than the memory it names holds (another person's, or one its embedding says is unrelated) is stored as an
INSERT: small models reach for "UPDATE M1" to write anything new, which would erase M1's fact and leave its turns
cited by a memory that no longer says it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from memskill_cli.data.spans import Span, SpanTurn
from memskill_cli.errors import SchemaError
from memskill_cli.fileio import stable_hash
from memskill_cli.llm import ChatRequest, ChatResponse, LLMClient, parse_json
from memskill_cli.memory import MemoryBank, MemoryItem
from memskill_cli.quality import is_verbatim_copy
from memskill_cli.skills import ACTIONS, Skill

SYSTEM = (
    "You keep the long-term memory of an assistant as a list of short facts about people. You read a new "
    "excerpt of a conversation, whose turns are numbered T1, T2, ..., and write memory operations as JSON.\n"
    "Each fact is one short sentence in the third person that names the person it is about: what they did, "
    "plan, own or like, their work, family, pets and places, with the date resolved against the turn's date. "
    "Write it in your own words: never copy a turn, never repeat a fact. Leave out greetings, questions and "
    "small talk. Each INSERT or UPDATE lists the numbers of the turns it comes from, and its fact starts with "
    "the name of the person who said them."
)
USER_TEMPLATE = (  # what changes least comes first, so llama.cpp reuses the cached prefix across spans
    "Skills to apply:\n{skills}\n\n"
    "Reply with JSON {{\"operations\":[...]}} of at most {max_operations} operations, each one of:\n{formats}\n\n"
    "Existing memories (refer to them by M number):\n{memories}\n\n"
    "New excerpt:\n{span}\n\n"
    "Facts from this excerpt as memory operations:"
)
OPERATION_FORMATS = {  # a reply item's keys say its action: no "action" key is spent on it
    "INSERT": '{"turns":[<T numbers>],"fact":"<Name ...>"}',
    "UPDATE": '{"update":<M number>,"turns":[<T numbers>],"fact":"<Name ...>"}',
    "DELETE": '{"delete":<M number>}',
    "NOOP": '{"noop":true}',
}
# A worked example, shown as an earlier exchange: small models copy turns unless they see facts written from
# them. Its people and events are made up and far from any benchmark; a memory that repeats one is rejected.
EXAMPLE_SKILLS = "### insert\nINSERT each new fact.\n\n### update\nUPDATE a memory the excerpt changes."
EXAMPLE_MEMORIES = "M1 Maria lives in Boston."
EXAMPLE_SPAN = (
    "Date: 3:10 pm on 2 June, 2021\n"
    "T1 Maria: Hi Tom! How was your week?\n"
    "T2 Tom: Busy! I started a pottery class on Monday, my sister Ana got me into it.\n"
    "T3 Maria: Fun! I moved to Denver last month for a new job at a bakery.\n"
    "T4 Tom: Wow, congrats! Do you like it there?\n"
    "T5 Maria: I love it. I adopted a cat there, her name is Luna. [shares an image: a grey cat on a sofa]\n"
    "T6 Tom: Aww! I'm driving to Seattle next weekend for my cousin's wedding."
)
EXAMPLE_OPERATIONS = [  # the turns cited in order, each fact naming that turn's speaker; small talk left out
    {"turns": [2], "fact": "Tom started a pottery class on 31 May 2021."},
    {"turns": [2], "fact": "Tom's sister Ana got him into pottery."},
    {"update": 1, "turns": [3], "fact": "Maria moved from Boston to Denver in May 2021 for a job at a bakery."},
    {"turns": [5], "fact": "Maria adopted a grey cat named Luna in Denver."},
    {"turns": [6], "fact": "Tom plans to drive to Seattle around 12 June 2021 for his cousin's wedding."},
]
EXAMPLE_FACTS = [op["fact"] for op in EXAMPLE_OPERATIONS]
FACT_CHARS = 120             # most characters in a fact, and so in a memory (the grammar enforces it)
HEAD_CHARS = 24              # a fact's opening, where no colon may stand (and its shortest length)
# The grammar enforces this: a fact starts with a capital (the person's name) and has no colon in its first
# HEAD_CHARS characters, so "Name: what they said" cannot pass as a memory. (A small model may still copy a turn's
# words; the verbatim-copy rate measures that.)
FACT_PATTERN = rf"^[A-Z][^\n:]{{{HEAD_CHARS - 1}}}[^\n]{{0,{FACT_CHARS - HEAD_CHARS}}}$"
MAX_CITED_TURNS = 3          # most turns one operation cites
MAX_OPERATIONS = 8           # most operations in one response, whatever the token budget
SAME_FACT = 0.8              # MiniLM cosine of an UPDATE's fact to its memory's, below which it is another fact
OPERATION_TOKENS = 24 + -(-FACT_CHARS // 3)  # an operation's worst case: keys and refs, content at 3 chars/token


def max_operations(max_tokens: int | None) -> int:
    """How many complete operations always fit in `max_tokens` (at least one)."""
    if max_tokens is None:
        return MAX_OPERATIONS
    return max(1, min(MAX_OPERATIONS, (max_tokens - 16) // OPERATION_TOKENS))


def fact_schema(speaker: str | None) -> dict[str, Any]:
    """A fact: one line, no colon in its opening; when its turns are one person's, it starts with their name."""
    if speaker is None:
        pattern = FACT_PATTERN
    else:
        head = max(0, HEAD_CHARS - len(speaker))
        # regex syntax only: re.escape also escapes spaces, which llama.cpp's pattern reader need not take
        name = re.sub(r"([\\.^$*+?()\[\]{}|/-])", r"\\\1", speaker)
        pattern = rf"^{name}[^\n:]{{{head}}}[^\n]{{0,{FACT_CHARS - len(speaker) - head}}}$"
    return {"type": "string", "minLength": HEAD_CHARS, "maxLength": FACT_CHARS, "pattern": pattern}


def person(turn: list[SpanTurn]) -> str | None:
    """The name a fact from this turn must start with: its speaker, when that is a name (not a role such as
    `user` or `document`, which cannot start a fact)."""
    speaker = turn[0].speaker
    return speaker if speaker and speaker[0].isupper() else None


def operations_schema(allowed: list[str], speakers: list[str | None], n_memories: int, limit: int) -> dict[str, Any]:
    """One JSON schema variant per allowed action and per person who speaks in the span: turn and memory numbers
    are enums of what was shown, and a fact drawn from a person's turns starts with their name, so the grammar
    ties each fact to the one who said it (`speakers[n - 1]` is turn n's person, None where there is none)."""
    by_person: dict[str | None, list[int]] = {}
    for number, name in enumerate(speakers, start=1):
        by_person.setdefault(name, []).append(number)
    ref = {"type": "integer", "enum": list(range(1, n_memories + 1))}

    def turns(numbers: list[int]) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer", "enum": numbers}, "minItems": 1,
                "maxItems": MAX_CITED_TURNS}

    def variant(**fields: Any) -> dict[str, Any]:
        return {"type": "object", "properties": fields, "required": list(fields), "additionalProperties": False}

    variants = []
    for action in allowed:
        if action == "INSERT":
            variants += [variant(turns=turns(numbers), fact=fact_schema(name)) for name, numbers in by_person.items()]
        elif action == "UPDATE" and n_memories:
            variants += [variant(update=ref, turns=turns(numbers), fact=fact_schema(name))
                         for name, numbers in by_person.items()]
        elif action == "DELETE" and n_memories:
            variants.append(variant(delete=ref))
        elif action == "NOOP":
            variants.append(variant(noop={"const": True}))
    return {"type": "object",
            "properties": {"operations": {"type": "array", "maxItems": limit, "items": {"anyOf": variants}}},
            "required": ["operations"], "additionalProperties": False}


@dataclass
class SpanRecord:
    """Everything one span did: for audits, reports, quality figures and the hard-case buffer."""

    span_id: str
    skills: list[str]
    shown_memories: list[str]
    raw_output: str
    parse_error: str | None = None
    truncated: bool = False
    parsed: list[dict[str, Any]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    cached_prompt_tokens: int = 0   # of prompt_tokens, those the server reused from its prefix cache

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def numbered_turns(span: Span) -> list[list[SpanTurn]]:
    """The span's turns grouped by turn id, in order: T1 is the first group (pieces of a long turn share one)."""
    groups: list[list[SpanTurn]] = []
    for turn in span.turns:
        if groups and groups[-1][0].turn_id == turn.turn_id:
            groups[-1].append(turn)
        else:
            groups.append([turn])
    return groups


def turn_text(pieces: list[SpanTurn]) -> str:
    """One numbered turn's text (the pieces of an over-long turn joined)."""
    return " ".join(p.line for p in pieces)


def render_span(turns: list[list[SpanTurn]]) -> str:
    lines, date = [], object()
    for number, pieces in enumerate(turns, start=1):
        if pieces[0].date_time != date:
            date = pieces[0].date_time
            lines.append(f"Date: {date}" if date else "Date: unknown")
        lines.append(f"T{number} {turn_text(pieces)}")
    return "\n".join(lines)


def render_prompt(turns: list[list[SpanTurn]], memories: list[MemoryItem], skills: list[Skill],
                  limit: int) -> list[dict[str, str]]:
    allowed = allowed_actions(skills)
    skill_text = "\n\n".join(f"### {s.name}\n{s.instructions}" for s in skills)
    memory_text = "\n".join(f"M{n} {m.content}" for n, m in enumerate(memories, start=1)) or "(none yet)"
    formats = render_formats([a for a in allowed if memories or a not in ("UPDATE", "DELETE")])
    user = USER_TEMPLATE.format(skills=skill_text, memories=memory_text, span=render_span(turns),
                                max_operations=limit, formats=formats)
    example = USER_TEMPLATE.format(skills=EXAMPLE_SKILLS, memories=EXAMPLE_MEMORIES, span=EXAMPLE_SPAN,
                                   max_operations=limit, formats=render_formats(list(OPERATION_FORMATS)))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": example},
            {"role": "assistant", "content": json.dumps({"operations": EXAMPLE_OPERATIONS}, separators=(",", ":"))},
            {"role": "user", "content": user}]


def render_formats(actions: list[str]) -> str:
    """Each action's reply format after its name, the name the skills' instructions use."""
    return "\n".join(f"{action} {OPERATION_FORMATS[action]}" for action in actions)


def allowed_actions(skills: list[Skill]) -> list[str]:
    allowed = {a for s in skills for a in s.actions} | {"NOOP"}
    return [a for a in ACTIONS if a in allowed]


def prompt_hash() -> str:
    """The prompt text, output schema and apply rules themselves, so an edited prompt never reuses memories built
    with the old."""
    return stable_hash([SYSTEM, USER_TEMPLATE, OPERATION_FORMATS, EXAMPLE_SKILLS, EXAMPLE_MEMORIES, EXAMPLE_SPAN,
                        EXAMPLE_OPERATIONS, FACT_CHARS, FACT_PATTERN, MAX_CITED_TURNS, MAX_OPERATIONS,
                        OPERATION_TOKENS, SAME_FACT])


class Executor:
    def __init__(self, client: LLMClient, memory_top_k: int = 3) -> None:
        self.client = client
        self.memory_top_k = memory_top_k
        self.limit = max_operations(getattr(client, "default_max_tokens", None))

    @property
    def identity(self) -> str:
        """What shapes this executor's output: model, output limit, temperature, prompt, memories shown."""
        return stable_hash({
            "model": self.client.identity, "prompt": prompt_hash(), "memories_shown": self.memory_top_k,
            "max_tokens": getattr(self.client, "default_max_tokens", None),
            "temperature": getattr(self.client, "default_temperature", None),
        })

    def request(self, span: Span, memories: list[MemoryItem], skills: list[Skill]) -> ChatRequest:
        turns = numbered_turns(span)
        schema = operations_schema(allowed_actions(skills), [person(t) for t in turns], len(memories), self.limit)
        return ChatRequest(render_prompt(turns, memories, skills, self.limit), json_schema=schema, compact_json=True)

    def process(self, span: Span, memories: list[MemoryItem], bank: MemoryBank, skills: list[Skill],
                step: int) -> SpanRecord:
        """Apply `skills` to `span`; `memories` are the related items retrieved for it (shown by number)."""
        response = self.client.complete(self.request(span, memories, skills))
        record = SpanRecord(span_id=span.span_id, skills=[s.name for s in skills],
                            shown_memories=[m.id for m in memories], raw_output=response.text,
                            prompt_tokens=response.usage.prompt_tokens,
                            completion_tokens=response.usage.completion_tokens, cached=response.cached,
                            cached_prompt_tokens=response.usage.cached_prompt_tokens)
        try:
            operations, record.truncated = read_operations(response)
        except SchemaError as exc:
            record.parse_error = str(exc)
            record.truncated = response.truncated
            return record
        record.parsed = operations[: 2 * self.limit]  # what a reply beyond its limits holds is counted, not kept
        apply_operations(bank, operations, memories, allowed_actions(skills), span, step, record, self.limit)
        return record


def _complete_objects(text: str) -> tuple[list[Any], bool] | None:
    """The complete items of the `operations` array in `text`, and whether the array was cut off; None when
    there is no such array to scan."""
    key = text.find('"operations"')
    start = text.find("[", key) if key >= 0 else -1
    if start < 0:
        return None
    decoder, items, position = json.JSONDecoder(), [], start + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text):
            return items, True            # the array never closed
        if text[position] == "]":
            return items, False
        try:
            item, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return items, True            # an item cut off mid-way
        items.append(item)


def read_operations(response: ChatResponse | str) -> tuple[list[Any], bool]:
    """(operations, truncated). A response cut off at the token limit keeps only its complete operations; other
    output is read tolerantly (prose around the JSON, a bare list); anything else is a SchemaError."""
    text = response if isinstance(response, str) else response.text
    hit_limit = not isinstance(response, str) and response.truncated
    try:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            scanned = _complete_objects(text)
            if scanned is not None and (scanned[1] or hit_limit):
                return [as_operation(item) for item in scanned[0]], True
            value = parse_json(text)
    except RecursionError:
        raise SchemaError("executor output nested too deeply to read") from None
    if isinstance(value, dict):
        value = value.get("operations")
    if not isinstance(value, list):
        raise SchemaError("executor output has no operations list")
    return [as_operation(item) for item in value], hit_limit


def as_operation(item: Any) -> Any:
    """A reply item (`OPERATION_FORMATS`: its keys say its action) as an operation `{"action": ..., "ref": ...}`.
    An item that already has an `action` key (a backend without the grammar, writing the longer form) is kept as it
    is, and so is anything unreadable, which validation then rejects with its reason."""
    if not isinstance(item, dict) or "action" in item:
        return item
    rest = {key: value for key, value in item.items() if key not in ("update", "delete", "noop")}
    if "update" in item:
        return {"action": "UPDATE", "ref": item["update"], **rest}
    if "delete" in item:
        return {"action": "DELETE", "ref": item["delete"]}
    if "noop" in item:
        return {"action": "NOOP"}
    if "fact" in item or "content" in item or "turns" in item:
        return {"action": "INSERT", **item}
    return item


def parse_operations(text: str) -> list[dict[str, Any]]:
    """The operations list of a complete output (see `read_operations`)."""
    return read_operations(text)[0]


def memory_text(op: dict[str, Any]) -> str | None:
    """A written memory: its `fact` (or a plain `content`, from backends without a grammar)."""
    for key in ("fact", "content"):
        value = op.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _cited_turns(op: dict[str, Any], turns: list[list[SpanTurn]]) -> list[list[SpanTurn]] | None:
    """The turns an operation cites, or None when it cites none or a number it was not shown."""
    numbers = op.get("turns")
    if not isinstance(numbers, list) or not numbers:
        return None
    if not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= len(turns) for n in numbers):
        return None
    return [turns[n - 1] for n in dict.fromkeys(numbers)]


def apply_operations(bank: MemoryBank, operations: list[Any], shown: list[MemoryItem], allowed: list[str],
                     span: Span, step: int, record: SpanRecord, limit: int = MAX_OPERATIONS) -> None:
    """Validate every operation, then apply in a fixed order: by-reference edits first, then inserts.

    An UPDATE whose fact is another than its memory's is an INSERT beside it (see the module's docstring), so it is
    no edit of that memory and conflicts with none: small models chain "UPDATE M1" over a span's new facts, and
    rejecting all but the first lost them. Two edits of one memory (restating UPDATEs, a DELETE of a memory an
    earlier operation named, anything naming a memory already deleted) conflict: the first wins."""
    def reject(op: Any, reason: str) -> None:
        record.rejected.append({"operation": op, "reason": reason})

    turns = numbered_turns(span)
    by_reference: list[tuple[str, str, dict[str, Any], str | None, Any]] = []  # (action, id, change, person, op)
    inserts: list[dict[str, Any]] = []

    def inserted(text: str) -> bool:
        return text.lower() in (c["content"].lower() for c in inserts)

    for op in operations[:limit]:
        if not isinstance(op, dict) or not isinstance(op.get("action"), str):
            reject(op, "malformed")
            continue
        action = op["action"].upper()
        if action not in ACTIONS:
            reject(op, "malformed")
            continue
        if action not in allowed:
            reject(op, "disallowed_action")
            continue
        if action == "NOOP":
            record.applied.append({"action": "NOOP"})
            continue
        change: dict[str, Any] = {}
        speaker = None  # the person a written fact is bound to
        if action in ("INSERT", "UPDATE"):
            content = memory_text(op)
            if content is None:
                reject(op, "malformed")
                continue
            if len(content) > FACT_CHARS:
                reject(op, "too_long")
                continue
            if is_verbatim_copy(content, EXAMPLE_FACTS):
                reject(op, "example_copy")
                continue
            cited = _cited_turns(op, turns)
            if cited is None:
                reject(op, "unknown_turn" if op.get("turns") else "no_source")
                continue
            change = {"content": content, "turn_ids": [group[0].turn_id for group in cited],
                      "session_date": cited[0][0].date_time,
                      "copy": is_verbatim_copy(content, map(turn_text, turns))}
            speaker = person(cited[0])
        if action == "INSERT":
            text = change["content"]
            if bank.find_duplicate(text) or inserted(text):
                reject(op, "duplicate")
                continue
            inserts.append(change)
            continue
        ref = op.get("ref")
        if isinstance(ref, bool) or not isinstance(ref, int) or not 1 <= ref <= len(shown):
            reject(op, "unknown_ref")
            continue
        real_id = shown[ref - 1].id
        if action == "UPDATE" and bank.find_duplicate(change["content"]) not in (None, real_id):
            reject(op, "duplicate")  # rewriting one memory into another's words would store it twice
            continue
        by_reference.append((action, real_id, change, speaker, op))
    if len(operations) > limit:  # counted in one entry (with the first as a sample), never stored one by one
        record.rejected.append({"operation": operations[limit], "reason": "over_limit",
                                "count": len(operations) - limit})
    updates = [i for i, (action, *_) in enumerate(by_reference) if action == "UPDATE"]
    facts = [by_reference[i][2]["content"] for i in updates] + [change["content"] for change in inserts]
    vectors = list(bank.embed(facts)) if facts else []  # every fact of the reply in one encoder call
    update_vectors = dict(zip(updates, vectors, strict=False))
    insert_vectors = vectors[len(updates):]
    edits: dict[str, tuple[str, dict[str, Any], np.ndarray | None]] = {}  # real id -> (action, change, vector)
    named: set[str] = set()
    for i, (action, real_id, change, speaker, op) in enumerate(by_reference):
        restates = action == "UPDATE" and rewrites_same_fact(bank, real_id, speaker, update_vectors[i])
        edited = real_id in edits and (restates or edits[real_id][0] == "DELETE")  # restated again, or deleted
        if edited or (action == "DELETE" and real_id in named):
            reject(op, "conflict")
        elif action == "DELETE" or restates:
            edits[real_id] = (action, change, update_vectors.get(i))
        elif inserted(change["content"]):
            reject(op, "duplicate")
        else:  # another fact: stored beside the memory it named, which keeps its own
            inserts.append({**change, "instead_of_update": real_id})
            insert_vectors.append(update_vectors[i])
        named.add(real_id)
    for real_id, (action, change, vector) in sorted(edits.items(), key=lambda kv: bank._faiss_id(kv[0])):
        if action == "DELETE":
            bank.delete(real_id, step, span.span_id)
            record.applied.append({"action": "DELETE", "id": real_id})
        else:
            bank.update(real_id, change["content"], span.span_id, step, change["turn_ids"], change["session_date"],
                        vector=vector)
            record.applied.append({"action": "UPDATE", "id": real_id, **change})
    if inserts:
        ids = bank.insert([c["content"] for c in inserts], span.span_id, step, vectors=np.stack(insert_vectors),
                          sources=[c["turn_ids"] for c in inserts], session_dates=[c["session_date"] for c in inserts])
        for item_id, change in zip(ids, inserts, strict=True):
            record.applied.append({"action": "INSERT", "id": item_id, **change})


def rewrites_same_fact(bank: MemoryBank, item_id: str, speaker: str | None, vector: np.ndarray) -> bool:
    """Whether an UPDATE restates its memory's fact (so rewriting it loses nothing): the same person, where the
    new fact is bound to one, and an embedding within `SAME_FACT` of the old."""
    if speaker and not re.match(rf"{re.escape(speaker)}\b", bank.items[item_id].content):  # "Jo" is not "Jolene"
        return False
    return bank.similarity(item_id, vector) >= SAME_FACT
