"""The library: a MemSkill memory for any agent, in a few lines.

    from memskill_cli import MemSkill
    memory = MemSkill.from_run("exported-run")   # or MemSkill.from_config() for the seed skills
    memory.add([{"role": "user", "name": "Ana", "content": "I moved to Lisbon."}], user_id="ana")
    memory.search("Where does Ana live?", user_id="ana")

The same core as the CLI: messages are cut into spans as build-cache cuts traces, the selector (a trained
controller, or the configured one) picks skills per span, the executor writes cited memory operations, and
they are applied to that user's memory bank. New messages extend it; nothing is rebuilt. Every `add` says
what happened and what it cost. An `add` that fails changes nothing: the user's memory is replaced only when
every span of the call succeeded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memskill_cli.answering import clean_answer, question_request, rank_sources, with_sources
from memskill_cli.components import build_encoder, build_selector, load_skill_bank
from memskill_cli.config import Settings, load_settings, with_overrides
from memskill_cli.construction import extend_memory
from memskill_cli.conversation import Message, read_sessions
from memskill_cli.data.schema import Session, Trace
from memskill_cli.data.spans import Span, make_spans
from memskill_cli.data.tokens import TokenCounter
from memskill_cli.embeddings import Encoder
from memskill_cli.errors import DataError, NotFoundError
from memskill_cli.executor import Executor, SpanRecord
from memskill_cli.export import read_export, write_export
from memskill_cli.fileio import atomic_dir, read_json, write_json
from memskill_cli.llm import LLMClient, RoleClient, UsageLedger, build_role_clients
from memskill_cli.memory import MemoryBank, MemoryItem
from memskill_cli.selectors import SkillSelector, check_top_k
from memskill_cli.skills import SkillBank
from memskill_cli.user_memory import UserMemory

ROLES = ("executor", "answerer")


@dataclass(frozen=True)
class SpanOutcome:
    """One span of an `add`: the skills chosen for it and the operations applied and rejected (with reasons)."""

    span_id: str
    turn_ids: list[str]
    skills: list[str]
    applied: list[dict[str, Any]]
    rejected: list[dict[str, Any]]
    truncated: bool


@dataclass(frozen=True)
class AddResult:
    """What one `add` did and cost: LLM calls (cache hits apart), tokens and wall seconds."""

    user_id: str
    spans: list[SpanOutcome]
    llm_calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float

    @property
    def applied(self) -> list[dict[str, Any]]:
        return [op for span in self.spans for op in span.applied]

    @property
    def rejected(self) -> list[dict[str, Any]]:
        return [op for span in self.spans for op in span.rejected]


@dataclass(frozen=True)
class SearchHit:
    """A memory found for a query, with its provenance: the turns it cites (their text) and its date."""

    id: str
    content: str
    score: float
    session_date: str | None
    turn_ids: list[str]
    source_turns: list[str]


@dataclass(frozen=True)
class SourceSpan:
    """A stretch of the conversation that memories were written from, shown to the answerer after them."""

    id: str
    content: str
    session_date: str | None
    turn_ids: list[str]


@dataclass(frozen=True)
class Answer:
    """An answer and what it was answered from: memories first, then the spans they came from."""

    text: str
    memories: list[SearchHit]
    sources: list[SourceSpan]
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a memory: the operation, old and new text, and the span and skills that made it."""

    step: int
    action: str
    old: str | None
    new: str | None
    span_id: str | None
    turn_ids: list[str]
    skills: list[str]


def _settings(params: Settings | Mapping[str, Any] | str | Path | None) -> Settings:
    """A Settings object as given; a params.yaml path; a mapping of dotted keys or sections over the defaults;
    None: the defaults (embedded model, seed skills) with MEMSKILL_* environment variables."""
    if isinstance(params, Settings):
        return params
    if isinstance(params, (str, Path)):
        return load_settings(params)
    return load_settings(None, dict(params or {}), read_params_file=False)


@dataclass
class _User:
    memory: UserMemory
    lock: threading.Lock = field(default_factory=threading.Lock)


class MemSkill:
    """Memories per user, built with a skill bank and a selector; thread-safe (one lock per user)."""

    def __init__(self, settings: Settings, skill_bank: SkillBank, *, encoder: Encoder | None = None,
                 clients: Mapping[str, LLMClient] | None = None) -> None:
        self.settings = settings
        self.skill_bank = skill_bank
        self.encoder = encoder or build_encoder(settings)
        self._dim = self.encoder.dim
        self.ledger = UsageLedger()
        self.selector = self._selector()
        self._given_clients = dict(clients or {})
        self._clients: dict[str, LLMClient] | None = None
        self._counter = TokenCounter(settings.spans.tokenizer)
        self._users: dict[str, _User] = {}
        self._guard = threading.Lock()           # the users dict; taken before a user's lock, never after
        self._clients_lock = threading.Lock()

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, params: Settings | Mapping[str, Any] | str | Path | None = None, *,
                    skill_bank: SkillBank | str | Path | None = None, controller: str | Path | None = None,
                    encoder: Encoder | None = None, clients: Mapping[str, LLMClient] | None = None) -> MemSkill:
        """Any bank (default: `memory.skill_bank`, else the seed skills) with any selector (a trained
        `controller` checkpoint, else `memory.selector`). The LLM roles and the encoder come from the settings,
        as in the CLI; `clients` (role -> LLMClient) replaces the executor's or answerer's backend."""
        settings = _settings(params)
        memory = {"controller": str(controller)} if controller is not None else {}
        if isinstance(skill_bank, (str, Path)):
            memory["skill_bank"] = str(skill_bank)
        if memory:
            settings = settings.model_copy(update={"memory": settings.memory.model_copy(update=memory)})
        bank = skill_bank if isinstance(skill_bank, SkillBank) else load_skill_bank(settings)
        return cls(settings, bank, encoder=encoder, clients=clients)

    @classmethod
    def from_run(cls, run: str | Path, overrides: Mapping[str, Any] | None = None, *, encoder: Encoder | None = None,
                 clients: Mapping[str, LLMClient] | None = None) -> MemSkill:
        """A run's best bank and trained controller: an export folder (`memskill export`, or `save`), or the id of
        the MLflow run it was logged to. `overrides` (dotted keys) change settings, e.g. where the LLM is served."""
        path = Path(run)
        if not path.exists():
            from memskill_cli.mlflow_runs import download_export

            path = download_export(str(run), _settings(None).mlflow.tracking_uri)
        exported = read_export(path)
        settings = with_overrides(exported.settings, dict(overrides)) if overrides else exported.settings
        settings = settings.model_copy(update={"memory": settings.memory.model_copy(update={
            "controller": str(exported.controller) if exported.controller else None})})
        memory = cls(settings, exported.skill_bank, encoder=encoder, clients=clients)
        memory._load_users(path / "users")
        return memory

    load = from_run  # a folder written by `save` is an export with its users

    def _selector(self) -> SkillSelector:
        k = self.settings.eval.skills_per_span
        selector = build_selector(self.settings, self.encoder, k)
        check_top_k(k, self.skill_bank, "eval.skills_per_span", selector)
        return selector

    def _client(self, role: str) -> LLMClient:
        """LLM clients are made on first use: a process that only searches never loads a model."""
        with self._clients_lock:
            if self._clients is None:
                missing = [r for r in ROLES if r not in self._given_clients]
                built = build_role_clients(self.settings.llm, self.ledger, roles=missing) if missing else {}
                wrapped = {r: c if isinstance(c, RoleClient) else RoleClient(
                    r, c, default_max_tokens=self.settings.llm.role(r).max_tokens, ledger=self.ledger)
                    for r, c in self._given_clients.items()}
                self._clients = {**built, **wrapped}
            return self._clients[role]

    # -- writing ----------------------------------------------------------------------------------------------
    def add(self, messages: Sequence[Message], *, user_id: str, session_date: str | None = None) -> AddResult:
        """Add chat messages (`{"role", "content", "name"?, "date"?}`) or plain turns (strings) to a user's memory.
        A run of messages with one date is a session (`session_date` for messages without their own)."""
        if session_date is not None and not isinstance(session_date, str):
            raise DataError(f"session_date must be a string (got {type(session_date).__name__})")
        user = self._user(user_id, create=True)
        with user.lock:
            try:
                return self._add(user, messages, session_date)
            except BaseException:
                if user.memory.counters.next_span == 0:  # a first add that failed leaves no empty user behind
                    with self._guard:
                        self._users.pop(user_id, None)
                raise

    def add_many(self, batch: Mapping[str, Sequence[Message]], *, session_date: str | None = None
                 ) -> dict[str, AddResult]:
        """Several users' messages as one batch: users in parallel (`memory.workers`), each user's spans in order.
        Every message list is checked before any LLM call."""
        for user_id, messages in batch.items():
            _check_user_id(user_id)
            read_sessions(messages, session_date, 1, 1)
        with ThreadPoolExecutor(max_workers=self.settings.memory.workers) as pool:
            futures = {u: pool.submit(self.add, m, user_id=u, session_date=session_date) for u, m in batch.items()}
            return {u: f.result() for u, f in futures.items()}

    def _add(self, user: _User, messages: Sequence[Message], session_date: str | None) -> AddResult:
        start = time.perf_counter()
        memory = user.memory
        sessions = read_sessions(messages, session_date, memory.counters.next_turn, memory.counters.next_session)
        spans = self._spans(memory.user_id, sessions, memory.counters.next_span)
        vectors = self.encoder.encode([s.text for s in spans], kind="passage")
        working = memory.bank.copy()  # the user's memory changes only if every span succeeds
        executor = Executor(self._client("executor"), self.settings.memory.memories_shown_to_executor)
        records = extend_memory(working, list(zip(spans, vectors, strict=True)), self.skill_bank, self.selector,
                                executor, first_step=memory.counters.next_span)
        memory.bank = working
        memory.records.extend(records)
        memory.add_spans(spans, vectors)
        memory.turns.update({t.turn_id: t for span in spans for t in span.turns})
        memory.counters.next_turn += sum(len(s.turns) for s in sessions)
        memory.counters.next_session += len(sessions)
        memory.counters.next_span += len(spans)
        return _add_result(memory.user_id, spans, records, time.perf_counter() - start)

    def _spans(self, user_id: str, sessions: list[Session], first_span: int) -> list[Span]:
        """Each session cut as build-cache cuts a trace; span ids continue the user's numbering."""
        spans: list[Span] = []
        for session in sessions:
            trace = Trace(trace_id=user_id, split="library", sessions=[session])
            for span in make_spans(trace, self.settings.spans, self._counter):
                index = first_span + len(spans)
                spans.append(span.model_copy(update={"index": index, "span_id": f"{user_id}/{index:05d}"}))
        return spans

    def delete(self, memory_id: str, *, user_id: str) -> None:
        user = self._user(user_id)
        with user.lock:
            _item(user.memory, memory_id)
            user.memory.bank.delete(memory_id, user.memory.counters.next_span)

    def reset(self, user_id: str) -> None:
        """Forget everything about a user."""
        self._user(user_id)
        with self._guard:
            del self._users[user_id]

    # -- reading ----------------------------------------------------------------------------------------------
    def search(self, query: str, *, user_id: str, limit: int = 20, diversity: float = 0.0) -> list[SearchHit]:
        """The user's `limit` memories most similar to `query`, best first; with `diversity` above 0, by maximal
        marginal relevance (a memory close to one already chosen ranks lower), as `answer` retrieves."""
        _check_search(query, limit, diversity)
        user = self._user(user_id)
        vector = self.encoder.encode([query], kind="query")[0]
        with user.lock:
            return _hits(user.memory, vector, limit, diversity)

    def answer(self, question: str, *, user_id: str) -> Answer:
        """Answer from the memories retrieved for the question (`eval.memories_per_question`,
        `eval.memory_diversity`) and then the spans they were written from (`eval.source_share` of the budget,
        as the evaluation answers), within `eval.answer_context_tokens`, with the configured answerer."""
        start = time.perf_counter()
        settings = self.settings.eval
        _check_search(question, settings.memories_per_question, settings.memory_diversity)
        answerer = self._client("answerer")
        user = self._user(user_id)
        vector = self.encoder.encode([question], kind="query")[0]
        with user.lock:
            hits = _hits(user.memory, vector, settings.memories_per_question, settings.memory_diversity)
            sources = _sources(user.memory, vector) if settings.source_share else []
        shown: list[SearchHit | SourceSpan] = with_sources(
            hits, sources, lambda x: x.content, settings.answer_context_tokens, settings.source_share,
            answerer.count_tokens)
        response = answerer.complete(question_request(question, [x.content for x in shown]))
        return Answer(clean_answer(response.text), [x for x in shown if isinstance(x, SearchHit)],
                      [x for x in shown if isinstance(x, SourceSpan)], response.usage.prompt_tokens,
                      response.usage.completion_tokens, round(time.perf_counter() - start, 3))

    def get(self, memory_id: str, *, user_id: str) -> MemoryItem:
        user = self._user(user_id)
        with user.lock:
            return _item(user.memory, memory_id).model_copy(deep=True)

    def get_all(self, *, user_id: str) -> list[MemoryItem]:
        user = self._user(user_id)
        with user.lock:
            return [item.model_copy(deep=True) for item in user.memory.bank.items.values()]

    def history(self, memory_id: str, *, user_id: str) -> list[HistoryEntry]:
        """Every version of a memory (deleted ones included), with the span and skills that changed it."""
        user = self._user(user_id)
        with user.lock:
            item = _item(user.memory, memory_id, deleted=True)
            return [HistoryEntry(e.step, e.action, e.old, e.new, e.span_id, list(e.turn_ids),
                                 list(user.memory.skills_of_span(e.span_id))) for e in item.history]

    @property
    def users(self) -> list[str]:
        return list(self._users)

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """This memory as a folder (an export plus every user's memory), replaced as a whole; load it with
        `MemSkill.load`. JSON, YAML, .npy and safetensors only."""
        directory = Path(directory)
        controller = Path(self.settings.memory.controller) if self.settings.memory.controller else None
        with self._guard, atomic_dir(directory) as tmp:
            write_export(tmp, self.settings, self.skill_bank, controller)
            folders = {}
            for number, (user_id, user) in enumerate(sorted(self._users.items()), start=1):
                with user.lock:
                    user.memory.save(tmp / "users" / f"u{number}")
                folders[user_id] = f"u{number}"
            write_json(tmp / "users" / "users.json", folders)
        return directory

    def _load_users(self, root: Path) -> None:
        if not (root / "users.json").exists():
            return
        for user_id, folder in read_json(root / "users.json").items():
            self._users[user_id] = _User(UserMemory.load(root / folder, self._encode_passages))

    def _encode_passages(self, texts: list[str]) -> Any:
        return self.encoder.encode(texts, kind="passage")

    def _user(self, user_id: str, create: bool = False) -> _User:
        _check_user_id(user_id)
        with self._guard:
            if user_id not in self._users:
                if not create:
                    known = ", ".join(sorted(self._users)[:10]) or "none yet"
                    raise NotFoundError(f"no memory for user {user_id!r} (users: {known})")
                bank = MemoryBank(self._dim, self._encode_passages)
                self._users[user_id] = _User(UserMemory(user_id, bank))
            return self._users[user_id]


def _check_user_id(user_id: Any) -> None:
    if not isinstance(user_id, str) or not user_id.strip():
        raise DataError(f"user_id must be a non-empty string (got {user_id!r})")


def _item(memory: UserMemory, memory_id: str, deleted: bool = False) -> MemoryItem:
    item = memory.bank.items.get(memory_id) or (memory.bank.deleted.get(memory_id) if deleted else None)
    if item is None:
        raise NotFoundError(f"user {memory.user_id!r} has no memory {memory_id!r}")
    return item


def _check_search(query: Any, limit: int, diversity: float) -> None:
    if not isinstance(query, str) or not query.strip():
        raise DataError("the query is empty")
    if limit < 1:
        raise DataError(f"limit must be at least 1 (got {limit})")
    if not 0 <= diversity < 1:
        raise DataError(f"diversity must be in [0, 1) (got {diversity})")


def _hits(memory: UserMemory, vector: np.ndarray, limit: int, diversity: float) -> list[SearchHit]:
    return [_hit(memory, item, score) for item, score in memory.bank.search(vector, limit, diversity)]


def _sources(memory: UserMemory, vector: np.ndarray) -> list[SourceSpan]:
    """The user's spans, best first for the query vector: ranked by the memories written from them and by their
    own similarity (`answering.rank_sources`). Memories saved before spans were kept have none."""
    if not memory.spans or memory.span_vectors is None:
        return []
    by_id = {span.span_id: span for span in memory.spans}
    ranked = rank_sources(memory.bank, vector, list(by_id), memory.span_vectors)
    return [SourceSpan(s, by_id[s].text, by_id[s].date_time, list(by_id[s].turn_ids)) for s in ranked]


def _hit(memory: UserMemory, item: MemoryItem, score: float) -> SearchHit:
    turns = [memory.turns[t].line for t in item.source_turn_ids if t in memory.turns]
    return SearchHit(item.id, item.content, round(score, 6), item.session_date, list(item.source_turn_ids), turns)


def _add_result(user_id: str, spans: list[Span], records: list[SpanRecord], seconds: float) -> AddResult:
    outcomes = [SpanOutcome(s.span_id, list(s.turn_ids), r.skills, r.applied, r.rejected, r.truncated)
                for s, r in zip(spans, records, strict=True)]
    fresh = [r for r in records if not r.cached]
    return AddResult(user_id, outcomes, len(fresh), len(records) - len(fresh),
                     sum(r.prompt_tokens for r in fresh), sum(r.completion_tokens for r in fresh), round(seconds, 3))


__all__ = ["AddResult", "Answer", "HistoryEntry", "MemSkill", "SearchHit", "SourceSpan", "SpanOutcome"]
