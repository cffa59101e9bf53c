"""What an agent hands the library: chat messages (OpenAI style) or plain turns, read into dated sessions of
turns, the prepared format's units. A session is a run of messages with one date; spans never cross one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memskill_cli.data.schema import MAX_TURN_CHARS, Session, Turn
from memskill_cli.errors import DataError

#: A message: {"role", "content", "name"?, "date"?}, or a plain turn {"speaker", "text"}, or a bare string.
Message = dict[str, Any] | str


def _speaker_and_text(message: Message, number: int) -> tuple[str, str]:
    where = f"message {number}"
    if isinstance(message, str):
        return "user", message
    if not isinstance(message, dict):
        raise DataError(f"a message must be a dict or a string, not {type(message).__name__}", record=where)
    text = message.get("content", message.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise DataError("a message needs non-empty text in `content` (or `text`)", record=where, field="content")
    if len(text) > MAX_TURN_CHARS:
        raise DataError(f"{len(text):,} characters; a message may hold at most {MAX_TURN_CHARS:,}", record=where,
                        field="content")
    speaker = message.get("name") or message.get("speaker") or message.get("role") or "user"
    if not isinstance(speaker, str):
        raise DataError("the speaker (`name`, `speaker` or `role`) must be a string", record=where, field="name")
    return speaker.strip() or "user", text.strip()


def read_sessions(messages: Sequence[Message], session_date: str | None, first_turn: int,
                  first_session: int) -> list[Session]:
    """Messages -> sessions of numbered turns (`t<n>`, continuing from `first_turn`). A message's own `date`
    overrides `session_date`; a change of date starts a new session (`s<n>`, from `first_session`)."""
    if isinstance(messages, (str, dict)) or not isinstance(messages, Sequence):
        raise DataError("messages must be a list of messages (dicts with `role` and `content`, or strings)")
    if not messages:
        raise DataError("no messages to add (the list is empty)")
    sessions: list[Session] = []
    for number, message in enumerate(messages, start=1):
        speaker, text = _speaker_and_text(message, number)
        date = message.get("date", session_date) if isinstance(message, dict) else session_date
        if date is not None and not isinstance(date, str):
            raise DataError("a date must be a string", record=f"message {number}", field="date")
        if not sessions or sessions[-1].date_time != date:
            sessions.append(Session(session_id=f"s{first_session + len(sessions)}", date_time=date, turns=[]))
        turn_id = f"t{first_turn + number - 1}"
        sessions[-1].turns.append(Turn(turn_id=turn_id, speaker=speaker, text=text))
    return sessions
