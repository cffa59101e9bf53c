"""The designer: a two-stage LLM (analysis, then edits) and the validation every edit must pass.

Stage 1 names failure patterns with the cases that show them; stage 2 proposes at most `max_changes`
edits, each refining an existing skill or adding a new one, with a reason. Nothing is applied unless it
passes `validate_edits`; rejected edits are reported and shown to the next cycle.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from memskill_cli.errors import SchemaError
from memskill_cli.evolution.hardcases import HardCase
from memskill_cli.llm import ChatRequest, LLMClient, parse_json
from memskill_cli.quality import is_verbatim_copy
from memskill_cli.skills import Provenance, Skill, SkillBank

MIN_TEXT, MAX_DESCRIPTION, MAX_INSTRUCTIONS = 10, 300, 1500

ANALYSIS_SCHEMA = {
    "type": "object",
    "properties": {
        "patterns": {"type": "array", "maxItems": 5, "items": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["missing_storage", "wrong_content", "retrieval_miss", "other"]},
                "description": {"type": "string", "maxLength": 300},
                "cases": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["type", "description", "cases"],
        }},
        "recommendations": {"type": "array", "maxItems": 5, "items": {"type": "string"}},
    },
    "required": ["patterns", "recommendations"],
}


def edits_schema(max_changes: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"edits": {"type": "array", "maxItems": max_changes, "items": {
            "type": "object",
            "properties": {
                "op": {"type": "string", "enum": ["refine", "add"]},
                "skill": {"type": "string"},
                "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
                "instructions": {"type": "string", "maxLength": MAX_INSTRUCTIONS},
                "actions": {"type": "array", "items": {"type": "string", "enum": ["INSERT", "UPDATE"]}},
                "reason": {"type": "string", "minLength": MIN_TEXT, "maxLength": 300},
            },
            "required": ["op", "skill", "description", "instructions", "reason"],
        }}},
        "required": ["edits"],
    }


NEW_SKILL_ACTIONS = {"INSERT", "UPDATE"}
# Specifics a general skill must not name: capitalised words inside a sentence (names, places, titles), the
# speaker of a cited turn, and long numbers, taken from the hard cases the designer was shown.
_INNER_CAPITAL = re.compile(r"(?<=[a-z,;] )[A-Z][\w'-]{2,}")
_SPEAKER = re.compile(r"^\s+\S+: ([A-Z][\w'-]{2,}):", re.MULTILINE)
_NUMBER = re.compile(r"\b\d{3,}\b")
_CALENDAR = {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
_WORD = re.compile(r"[\w'-]+")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}|\{\{|\}\}|\$\{|<[A-Z_]{2,}>|\[\[")
_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,47}$")
# "Do not name the person": the 1.5B turns the rule against the cases' names into a rule for the memory writer,
# and a memory that does not say whom or what it is about answers nothing
_FORBIDS_NAMES = re.compile(r"\b(?:do not|don't|never|without)\s+nam(?:e|ing)\b", re.IGNORECASE)


def render_case(n: int, case: HardCase, evidence_text: dict[str, str]) -> str:
    evidence = "\n".join(f"    {e}: {evidence_text[e]}" for e in case.evidence if e in evidence_text) or "    (none)"
    memory = "\n".join(f"    - {m}" for m in case.retrieved[:5]) or "    (nothing retrieved)"
    return (f"Case {n} [{case.category}, failed {case.failures}x, score {case.score:.2f}]\n"
            f"  Question: {case.question}\n  Gold: {' | '.join(case.gold)}\n  Predicted: {case.prediction}\n"
            f"  Source turns holding the answer:\n{evidence}\n  What memory returned:\n{memory}")


def case_specifics(cases_text: list[str], bank: SkillBank) -> set[str]:
    """Names, places and numbers in the hard cases shown (not already in the bank's own text): an edit that
    repeats them writes one conversation's trivia into a skill instead of a general rule."""
    found: set[str] = set()
    for text in cases_text:
        found |= {*_INNER_CAPITAL.findall(text), *_SPEAKER.findall(text), *_NUMBER.findall(text)}
    return found - _CALENDAR - set(_WORD.findall(render_bank(bank)))


def render_bank(bank: SkillBank) -> str:
    return "\n".join(f"- {s.name} ({', '.join(s.actions)}): {s.description}\n  {s.instructions}" for s in bank.skills)


def analyse(client: LLMClient, bank: SkillBank, cases_text: str) -> dict[str, Any]:
    prompt = (
        "You improve the memory skills of an assistant. Below are questions it failed, each with the source "
        "turns that held the answer and what its memory returned. Compare them: was the fact never stored "
        "(missing_storage), stored wrongly or lossily (wrong_content), or stored but not retrieved "
        f"(retrieval_miss)?\n\nCurrent skills:\n{render_bank(bank)}\n\nFailed cases:\n{cases_text}\n\n"
        "Reply as JSON with failure patterns (each with the case numbers that show it) and recommendations."
    )
    return parse_json(client.complete(ChatRequest([{"role": "user", "content": prompt}],
                                                  json_schema=ANALYSIS_SCHEMA)).text, ANALYSIS_SCHEMA)


def propose(client: LLMClient, bank: SkillBank, analysis: dict[str, Any], max_changes: int,
            failed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    history = "\n".join(f"- {f.get('op')} {f.get('skill')}: {f.get('why')}" for f in failed[-10:]) or "(none)"
    prompt = (
        f"Current skills:\n{render_bank(bank)}\n\nAnalysis of failures:\n{analysis}\n\n"
        f"Earlier proposals that failed (do not repeat them):\n{history}\n\n"
        f"Propose at most {max_changes} edits. Each edit either adds a new skill (op 'add', skill = a new lowercase "
        "name with dashes, description, instructions, actions INSERT and/or UPDATE) for a kind of information the "
        "failed questions needed that no current skill asks for, or refines an existing skill (op 'refine', skill "
        "= its name, new description and instructions) to change what it asks for: never re-send a skill's "
        f"current text. The bank holds {len(bank.skills)} skills; prefer adding. Instructions tell the "
        "memory writer exactly what to store and how, as general rules for any conversation: the people, places "
        "and numbers of these cases must not appear in a skill (say 'the person', 'the place'), while the "
        "memories it asks for always name whom and what they are about. Give a reason for each. Reply as JSON."
    )
    # The schema constrains generation; the edits are then checked one by one by `validate_edits`, so a
    # truncated or half-formed edit is rejected on its own instead of sinking the whole proposal.
    value = parse_json(client.complete(ChatRequest([{"role": "user", "content": prompt}],
                                                   json_schema=edits_schema(max_changes))).text)
    edits = value.get("edits") if isinstance(value, dict) else value
    if not isinstance(edits, list):
        raise SchemaError("designer output has no edits list")
    return edits


class Proposal(NamedTuple):
    analysis: dict[str, Any]
    edits: list[Any]              # as the designer wrote them
    accepted: list[dict[str, Any]]
    rejected: list[dict[str, Any]]  # each with its reason, `why`


def design(client: LLMClient, bank: SkillBank, cases: list[HardCase], turns: dict[str, dict[str, str]],
           max_changes: int, max_skills: int | None, failed: list[dict[str, Any]]) -> Proposal:
    """One designer turn on the hard cases shown: analysis, edits, and the validation every edit must pass.
    `turns` is trace id -> turn id -> "speaker: text"; an unreadable reply is an analysis error and no edit."""
    shown = [render_case(n, c, turns.get(c.trace_id, {})) for n, c in enumerate(cases, start=1)]
    try:
        analysis = analyse(client, bank, "\n\n".join(shown))
        edits = propose(client, bank, analysis, max_changes, failed)
    except SchemaError as exc:
        analysis, edits = {"error": str(exc)}, []
    accepted, rejected = validate_edits(bank, edits, max_changes, max_skills, case_specifics(shown, bank))
    return Proposal(analysis, edits, accepted, rejected)


def validate_edits(bank: SkillBank, edits: list[Any], max_changes: int, max_skills: int | None = None,
                   specifics: set[str] | frozenset[str] = frozenset()
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(accepted, rejected-with-reason). Checks: shape, budget, slugs, uniqueness, action types, lengths,
    no prompt-template placeholders, seed primitives keep their action type, the bank's size limit, and no
    `specifics` (names, places, numbers from the hard cases) in a skill's text, no rule against naming what a
    memory is about, and no edit that restates a skill's current instructions."""
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    names = set(bank.names)
    touched: set[str] = set()

    def reject(edit: Any, why: str) -> None:
        rejected.append({**(edit if isinstance(edit, dict) else {"edit": edit}), "why": why})

    for edit in edits:
        well_formed = isinstance(edit, dict) and edit.get("op") in ("refine", "add")
        if not well_formed or not isinstance(edit.get("skill"), str):
            reject(edit, "malformed edit")
            continue
        if edit["op"] == "add":  # "Dated_Events" means dated-events: small designers write names many ways
            edit = {**edit, "skill": re.sub(r"[\s_]+", "-", edit["skill"].strip().lower())}
        name, description, instructions = edit["skill"], edit.get("description"), edit.get("instructions")
        if not isinstance(edit.get("reason"), str) or not edit["reason"].strip():
            reject(edit, "an edit needs a reason")
            continue
        if len(accepted) >= max_changes:
            reject(edit, f"over the budget of {max_changes} changes")
            continue
        if not all(isinstance(t, str) and len(t.strip()) >= MIN_TEXT for t in (description, instructions)):
            reject(edit, "description and instructions must be text of at least 10 characters")
            continue
        if len(description) > MAX_DESCRIPTION or len(instructions) > MAX_INSTRUCTIONS:
            reject(edit, f"too long (description <= {MAX_DESCRIPTION}, instructions <= {MAX_INSTRUCTIONS} chars)")
            continue
        if _PLACEHOLDER.search(description) or _PLACEHOLDER.search(instructions):
            reject(edit, "contains a prompt-template placeholder")
            continue
        if name in touched:
            reject(edit, f"skill {name!r} is edited twice in one cycle")
            continue
        if _FORBIDS_NAMES.search(f"{description} {instructions}"):
            reject(edit, "tells the memory writer not to name what a memory is about")
            continue
        named = sorted(specifics & set(_WORD.findall(f"{description} {instructions}")))
        if named:
            reject(edit, f"names specifics from the hard cases ({', '.join(named[:3])}); a skill must be general")
            continue
        # small designers re-send a skill they were shown, as a refinement or as a "new" skill; scoring such a
        # version costs a whole cycle
        copied = next((s.name for s in bank.skills if is_verbatim_copy(instructions, [s.instructions])), None)
        if copied:
            reject(edit, f"restates skill {copied!r}: most of its instructions are that skill's")
            continue
        actions = edit.get("actions")
        if actions is not None and not (isinstance(actions, list) and all(isinstance(a, str) for a in actions)):
            reject(edit, "actions must be a list of action names")
            continue
        if edit["op"] == "add":
            if not _SLUG.match(name):
                reject(edit, f"{name!r} is not a slug name")
                continue
            if name in names:
                reject(edit, f"a skill named {name!r} already exists")
                continue
            if max_skills is not None and len(names) >= max_skills:
                reject(edit, f"the bank is full: it holds {len(names)} skills, evolve.max_skills is {max_skills}")
                continue
            if not actions or not isinstance(actions, list) or not set(actions) <= NEW_SKILL_ACTIONS:
                reject(edit, "a new skill may only INSERT or UPDATE")
                continue
        else:
            if name not in names:
                reject(edit, f"no skill named {name!r} to refine")
                continue
            current = bank.get(name)
            if actions is not None and set(actions) != set(current.actions) and (
                    current.is_seed or not set(actions) <= NEW_SKILL_ACTIONS):
                reject(edit, "a seed primitive keeps its action type" if current.is_seed
                       else "a skill may only INSERT or UPDATE")
                continue
        touched.add(name)
        names.add(name)
        accepted.append(edit)
    return accepted, rejected


def apply_edits(bank: SkillBank, edits: list[dict[str, Any]], round_: int) -> SkillBank:
    skills = list(bank.skills)
    for edit in edits:
        if edit["op"] == "add":
            skills.append(Skill(name=edit["skill"], description=edit["description"].strip(),
                                instructions=edit["instructions"].strip(), actions=sorted(set(edit["actions"])),
                                provenance=Provenance(origin="added", round=round_, reason=edit.get("reason"))))
        else:
            index = next(i for i, s in enumerate(skills) if s.name == edit["skill"])
            old = skills[index]
            skills[index] = old.model_copy(update={
                "description": edit["description"].strip(), "instructions": edit["instructions"].strip(),
                "version": old.version + 1,
                "provenance": Provenance(origin="refined", parent_version=old.version, round=round_,
                                         reason=edit.get("reason"))})
    return SkillBank(version=bank.version + 1, skills=skills)
