"""Cut a trace into spans, the unit the controller selects skills for and the executor reads.

Modes (from the paper): `turn`, `turn-pair`, `full-session`, `fixed-length` (a token budget with
overlap; whole turns are packed, a single over-long turn is split), and `trajectory` (whole sessions,
i.e. whole embodied trajectories, packed up to the budget and never cut). The session date heads each span.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from memskill_cli.config import SpanSettings
from memskill_cli.data.schema import Record, Session, Trace, Turn
from memskill_cli.data.tokens import TokenCounter


class SpanTurn(Record):
    """One rendered turn of a span (or a piece of an over-long one), with its id and session date: what the
    executor numbers and cites."""

    turn_id: str
    date_time: str | None = None
    line: str
    speaker: str | None = None  # who said it, for conversations (facts from a turn are bound to its speaker)


class Span(Record):
    span_id: str
    trace_id: str
    index: int
    session_ids: list[str]
    turn_ids: list[str]
    date_time: str | None = None
    text: str
    n_tokens: int = Field(ge=0)
    turns: list[SpanTurn] = Field(default_factory=list)


@dataclass(frozen=True)
class _Unit:
    """A rendered turn (or a piece of an over-long one) with the session it belongs to."""

    session: Session
    turn_id: str
    speaker: str
    line: str


#: Bump when what a span holds changes, so span caches rebuild.
SPAN_FORMAT = 3


def render_turn(turn: Turn) -> str:
    text = turn.text.strip()
    if turn.image_caption:
        text += f" [shares an image: {turn.image_caption}]"
    return text if turn.speaker == "document" else f"{turn.speaker}: {text}"


def _header(session: Session) -> str:
    return f"[{session.date_time}]" if session.date_time else f"[{session.session_id}]"


def render(units: list[_Unit]) -> str:
    lines: list[str] = []
    current = None
    for unit in units:
        if unit.session is not current:
            current = unit.session
            lines.append(_header(current))
        lines.append(unit.line)
    return "\n".join(lines)


def make_spans(trace: Trace, settings: SpanSettings, counter: TokenCounter | None = None) -> list[Span]:
    counter = counter or TokenCounter(settings.tokenizer)
    by_session = [[_Unit(s, t.turn_id, t.speaker, render_turn(t)) for t in s.turns] for s in trace.sessions]
    units = [u for session_units in by_session for u in session_units]
    if settings.mode == "turn":
        groups = [[u] for u in units]
    elif settings.mode == "turn-pair":
        groups = [own[i:i + 2] for own in by_session for i in range(0, len(own), 2)]
    elif settings.mode == "full-session":
        groups = by_session
    elif settings.mode == "trajectory":
        groups = _pack_sessions(by_session, settings.max_tokens, counter)
    else:
        groups = _pack(units, settings.max_tokens, settings.overlap, counter)
    spans = []
    for index, group in enumerate(g for g in groups if g):
        text = render(group)
        spans.append(Span(
            span_id=f"{trace.trace_id}/{index:05d}", trace_id=trace.trace_id, index=index,
            session_ids=list(dict.fromkeys(u.session.session_id for u in group)),
            turn_ids=list(dict.fromkeys(u.turn_id for u in group)),
            date_time=group[0].session.date_time, text=text, n_tokens=counter.count(text),
            turns=[SpanTurn(turn_id=u.turn_id, date_time=u.session.date_time, line=u.line,
                            speaker=u.speaker) for u in group],
        ))
    return spans


def _split_long(unit: _Unit, budget: int, counter: TokenCounter) -> list[_Unit]:
    overhead = counter.count(_header(unit.session)) + 4  # header line and the newline between
    if counter.count(unit.line) + overhead <= budget:
        return [unit]
    pieces = counter.split(unit.line, max(8, budget - overhead))
    return [_Unit(unit.session, unit.turn_id, unit.speaker, piece) for piece in pieces]


def _pack(units: list[_Unit], budget: int, overlap: int, counter: TokenCounter) -> list[list[_Unit]]:
    """Greedy packing of whole turns up to `budget` tokens; the next span repeats up to `overlap` tokens."""
    pieces = [piece for unit in units for piece in _split_long(unit, budget, counter)]
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    fresh = 0  # units in `current` that no earlier span holds
    for piece in pieces:
        if current and counter.count(render([*current, piece])) > budget:
            if fresh:
                groups.append(current)
            current = _tail(current, overlap, counter) if overlap else []
            fresh = 0
            while current and counter.count(render([*current, piece])) > budget:
                current = current[1:]
        current.append(piece)
        fresh += 1
    if current and fresh:
        groups.append(current)
    return groups


def _pack_sessions(by_session: list[list[_Unit]], budget: int, counter: TokenCounter) -> list[list[_Unit]]:
    """Whole sessions packed greedily up to `budget` tokens; a session over the budget is a span of its own."""
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    used = 0
    for own in by_session:
        size = counter.count(render(own)) + 1   # each session counted once; +1 for the joining newline
        if current and used + size > budget:
            groups.append(current)
            current, used = [], 0
        current += own
        used += size
    if current:
        groups.append(current)
    return groups


def _tail(units: list[_Unit], overlap: int, counter: TokenCounter) -> list[_Unit]:
    tail: list[_Unit] = []
    for unit in reversed(units):
        if counter.count(render([unit, *tail])) > overlap:
            break
        tail.insert(0, unit)
    return tail
