"""The executor: one LLM call per span applies the selected skills and emits memory operations.

Memories are shown under small local numbers (never their real ids), so the LLM cannot invent ids;
any operation on a number it was not shown, of a type the selected skills do not allow, or malformed,
is rejected and counted, never applied and never a crash.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from memskill_cli.data.spans import Span
from memskill_cli.errors import SchemaError
from memskill_cli.fileio import stable_hash
from memskill_cli.llm import ChatRequest, LLMClient, parse_json
from memskill_cli.memory import MemoryBank, MemoryItem
from memskill_cli.skills import ACTIONS, Skill

SYSTEM = (
    "You maintain the long-term memory of an assistant. You read one new span of a long history, "
    "apply the given memory skills, and output memory operations as JSON. Memories are short, "
    "self-contained facts that name who they are about."
)
USER_TEMPLATE = (
    "Skills to apply:\n{skills}\n\n"
    "Allowed actions: {allowed}\n\n"
    "Related memories (refer to them by number):\n{memories}\n\n"
    "New span:\n{span}\n\n"
    "Answer with JSON {{\"operations\": [...]}}, each operation one of:\n{formats}"
)
OPERATION_FORMATS = {
    "INSERT": '{"action": "INSERT", "content": "<new fact, naming the person and the date>"}',
    "UPDATE": '{"action": "UPDATE", "ref": <memory number>, "content": "<corrected full fact>"}',
    "DELETE": '{"action": "DELETE", "ref": <memory number>}',
    "NOOP": '{"action": "NOOP"}',
}
MAX_OPERATIONS = 12
MAX_CONTENT_CHARS = 600


def operations_schema(allowed: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"operations": {"type": "array", "maxItems": MAX_OPERATIONS, "items": {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": allowed},
                "ref": {"type": "integer"},
                "content": {"type": "string"},
            },
            "required": ["action"],
        }}},
        "required": ["operations"],
    }


@dataclass
class SpanRecord:
    """Everything one span did: for audits, reports and the hard-case buffer."""

    span_id: str
    skills: list[str]
    shown_memories: list[str]
    raw_output: str
    parse_error: str | None = None
    parsed: list[dict[str, Any]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render_prompt(span: Span, memories: list[MemoryItem], skills: list[Skill]) -> list[dict[str, str]]:
    allowed = allowed_actions(skills)
    skill_text = "\n\n".join(f"### {s.name}\n{s.instructions}" for s in skills)
    memory_text = "\n".join(f"[{n}] {m.content}" for n, m in enumerate(memories, start=1)) or "(none yet)"
    user = USER_TEMPLATE.format(skills=skill_text, allowed=", ".join(allowed), memories=memory_text, span=span.text,
                                formats="\n".join(OPERATION_FORMATS[a] for a in allowed))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def allowed_actions(skills: list[Skill]) -> list[str]:
    allowed = {a for s in skills for a in s.actions} | {"NOOP"}
    return [a for a in ACTIONS if a in allowed]


def prompt_hash() -> str:
    """The prompt text and output schema themselves, so an edited prompt never reuses memories built with the old."""
    return stable_hash([SYSTEM, USER_TEMPLATE, OPERATION_FORMATS, operations_schema(list(ACTIONS)),
                        MAX_CONTENT_CHARS])


class Executor:
    def __init__(self, client: LLMClient, memory_top_k: int = 10) -> None:
        self.client = client
        self.memory_top_k = memory_top_k

    @property
    def identity(self) -> str:
        """What shapes this executor's output: model, output limit, temperature, prompt, memories shown."""
        return stable_hash({
            "model": self.client.identity, "prompt": prompt_hash(), "memories_shown": self.memory_top_k,
            "max_tokens": getattr(self.client, "default_max_tokens", None),
            "temperature": getattr(self.client, "default_temperature", None),
        })

    def request(self, span: Span, memories: list[MemoryItem], skills: list[Skill]) -> ChatRequest:
        return ChatRequest(render_prompt(span, memories, skills),
                           json_schema=operations_schema(allowed_actions(skills)))

    def process(self, span: Span, memories: list[MemoryItem], bank: MemoryBank, skills: list[Skill],
                step: int) -> SpanRecord:
        """Apply `skills` to `span`; `memories` are the related items retrieved for it (shown by number)."""
        response = self.client.complete(self.request(span, memories, skills))
        record = SpanRecord(span_id=span.span_id, skills=[s.name for s in skills],
                            shown_memories=[m.id for m in memories], raw_output=response.text,
                            prompt_tokens=response.usage.prompt_tokens,
                            completion_tokens=response.usage.completion_tokens, cached=response.cached)
        try:
            operations = parse_operations(response.text)
        except SchemaError as exc:
            record.parse_error = str(exc)
            return record
        record.parsed = operations
        apply_operations(bank, operations, memories, allowed_actions(skills), span.span_id, step, record)
        return record


def parse_operations(text: str) -> list[dict[str, Any]]:
    """The operations list, tolerating prose around the JSON and a bare list; anything else is a SchemaError."""
    value = parse_json(text)
    if isinstance(value, dict):
        value = value.get("operations")
    if not isinstance(value, list):
        raise SchemaError("executor output has no operations list")
    return value


def apply_operations(bank: MemoryBank, operations: list[Any], shown: list[MemoryItem], allowed: list[str],
                     span_id: str, step: int, record: SpanRecord) -> None:
    """Validate every operation, then apply in a fixed order: by-reference edits first, then inserts."""
    def reject(op: Any, reason: str) -> None:
        record.rejected.append({"operation": op, "reason": reason})

    edits: dict[str, tuple[str, dict[str, Any]]] = {}  # real id -> (action, op)
    inserts: list[str] = []
    for op in operations[:MAX_OPERATIONS * 2]:
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
        content = op.get("content")
        if action in ("INSERT", "UPDATE"):
            if not isinstance(content, str) or not content.strip():
                reject(op, "malformed")
                continue
            content = content.strip()[:MAX_CONTENT_CHARS]
        if action == "INSERT":
            if bank.find_duplicate(content) or content.lower() in (c.lower() for c in inserts):
                reject(op, "duplicate")
                continue
            inserts.append(content)
            continue
        ref = op.get("ref")
        if isinstance(ref, bool) or not isinstance(ref, int) or not 1 <= ref <= len(shown):
            reject(op, "unknown_ref")
            continue
        real_id = shown[ref - 1].id
        if real_id in edits:
            reject(op, "conflict")
            continue
        edits[real_id] = (action, {**op, "content": content})
    for real_id, (action, op) in sorted(edits.items(), key=lambda kv: bank._faiss_id(kv[0])):
        if action == "DELETE":
            bank.delete(real_id)
            record.applied.append({"action": "DELETE", "id": real_id})
        else:
            bank.update(real_id, op["content"], span_id, step)
            record.applied.append({"action": "UPDATE", "id": real_id, "content": op["content"]})
    if inserts:
        for item_id, content in zip(bank.insert(inserts, span_id, step), inserts, strict=True):
            record.applied.append({"action": "INSERT", "id": item_id, "content": content})
