"""The prepared format every dataset is normalised into (traces.jsonl, queries.jsonl, manifest.json)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memskill_cli.errors import DataError
from memskill_cli.fileio import read_jsonl

SPLITS = ("train", "validation", "test")


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Turn(Record):
    turn_id: str
    speaker: str
    text: str
    image_caption: str | None = None


class Session(Record):
    session_id: str
    date_time: str | None = None
    turns: list[Turn]


class Trace(Record):
    """One agent history: ordered sessions of turns (a dialogue, documents, a trajectory)."""

    trace_id: str
    split: str
    speakers: list[str] = Field(default_factory=list)
    sessions: list[Session]

    def turns(self) -> list[Turn]:
        return [turn for session in self.sessions for turn in session.turns]


#: The most characters one turn may hold: a longer one is a mistake in the data (a whole file pasted into a
#: turn), and embedding it would take minutes and gigabytes for one span.
MAX_TURN_CHARS = 200_000


def check_turn_sizes(traces: list[Trace], file: Path) -> None:
    for trace in traces:
        for turn in trace.turns():
            if len(turn.text) > MAX_TURN_CHARS:
                raise DataError(f"a turn of {len(turn.text):,} characters; the most one turn may hold is "
                                f"{MAX_TURN_CHARS:,} (split it into several turns)", file=str(file),
                                record=f"trace {trace.trace_id}", field=f"turn {turn.turn_id}")


class Query(Record):
    query_id: str
    trace_id: str
    question: str
    answers: list[str]
    category: str
    evidence: list[str] = Field(default_factory=list)
    split: str
    question_date: str | None = None
    abstention: bool = False
    game: str | None = None   # embodied queries: the game file to play (relative to the prepared dir)


def load_records(path: Path, model: type[Record]) -> list:
    """Read and validate a prepared JSONL file; a bad line names the file, line and field."""
    records = []
    for number, row in enumerate(read_jsonl(path), start=1):
        try:
            records.append(model.model_validate(row))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise DataError(err["msg"], file=str(path), record=f"line {number}",
                            field=".".join(str(p) for p in err["loc"])) from None
    return records


def load_prepared(prepared_dir: Path) -> tuple[list[Trace], list[Query]]:
    if not (prepared_dir / "manifest.json").exists():
        raise DataError("not a prepared dataset (no manifest.json); run `memskill prepare` first",
                        file=str(prepared_dir))
    return (load_records(prepared_dir / "traces.jsonl", Trace),
            load_records(prepared_dir / "queries.jsonl", Query))
