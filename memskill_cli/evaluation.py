"""The evaluation harness: build memories for the evaluation traces, answer every question (or, for
ALFWorld, play every game), score, write it all.

Every method runs in the same harness with the same answerer, so comparisons are side by side:
`memskill` (skill bank + selector), `no-memory`, `full-context`, `raw-rag`, `static-primitives` and
`random-skills`. Built memories are cached under a key of everything that shapes them.
"""

from __future__ import annotations

import collections
import statistics
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from memskill_cli.answering import answer_request, clean_answer, fit_context, prompt_tokens, rank_sources, with_sources
from memskill_cli.components import Components, build_selector, load_skill_bank
from memskill_cli.config import Settings
from memskill_cli.construction import TraceMemory, build_trace_memory
from memskill_cli.data.cache import SpanCache
from memskill_cli.data.schema import Query, Trace, load_prepared
from memskill_cli.data.spans import Span
from memskill_cli.data.windows import Window, densest_windows, make_windows
from memskill_cli.embeddings import Encoder
from memskill_cli.errors import ConfigError
from memskill_cli.executor import Executor, SpanRecord
from memskill_cli.fileio import atomic_dir, read_json, read_jsonl, stable_hash, write_json, write_jsonl
from memskill_cli.llm import ChatRequest, ChatResponse, LLMClient, UsageLedger
from memskill_cli.memory import MemoryBank
from memskill_cli.metrics import answer_coverage, best_over_golds, judge
from memskill_cli.peers import PEER_METHODS
from memskill_cli.progress import NoProgress, ProgressSink
from memskill_cli.quality import build_quality, evidence_recall, evidence_share
from memskill_cli.selectors import AllSkills, RandomK, SkillSelector, check_top_k
from memskill_cli.skills import SkillBank

METHODS = ("memskill", "no-memory", "full-context", "raw-rag", "static-primitives", "random-skills", *PEER_METHODS)
MEMORY_METHODS = ("memskill", "static-primitives", "random-skills")


@dataclass
class EvalContext:
    """What every method shares: data, cache, models and settings."""

    settings: Settings
    dataset: str
    traces: list[Trace]
    queries: list[Query]
    cache: SpanCache
    cache_key: str
    encoder: Encoder
    clients: dict[str, LLMClient]
    ledger: UsageLedger
    memory_root: Path
    skill_bank: SkillBank
    progress: ProgressSink = field(default_factory=NoProgress)
    prepared_dir: Path | None = None   # embodied queries name game files relative to it
    selector: SkillSelector | None = None  # memskill's selector if given (the policy in training), else configured

    @property
    def embodied(self) -> bool:
        return any(q.game for q in self.queries)


def select_queries(queries: list[Query], settings: Settings) -> list[Query]:
    chosen = [q for q in queries if q.split == settings.eval.split
              and q.category not in settings.eval.exclude_categories
              and (settings.eval.include_abstention or not q.abstention)]
    return chosen[: settings.eval.max_queries] if settings.eval.max_queries else chosen


def make_selector(method: str, ctx: EvalContext) -> tuple[SkillBank, SkillSelector]:
    """The bank and selector a memory method builds with; `memskill` uses the trained controller if given."""
    k = ctx.settings.eval.skills_per_span
    if method == "static-primitives":
        return SkillBank.seed(), AllSkills()
    selector = (RandomK(k, ctx.settings.seed) if method == "random-skills"
                else ctx.selector or build_selector(ctx.settings, ctx.encoder, k))
    check_top_k(k, ctx.skill_bank, "eval.skills_per_span", selector)
    return ctx.skill_bank, selector


def executor_for(ctx: EvalContext) -> Executor:
    return Executor(ctx.clients["executor"], ctx.settings.memory.memories_shown_to_executor)


def memory_key(ctx: EvalContext, bank: SkillBank, selector: SkillSelector) -> str:
    """Everything that shapes a built memory (bank, selector with its controller, spans, and the executor's
    model, limits and prompt text), so a cached memory is never stale."""
    return stable_hash({"skill_bank": bank.hash, "selector": selector.identity, "spans": ctx.cache_key,
                        "executor": executor_for(ctx).identity})


def build_memories(ctx: EvalContext, method: str, bank: SkillBank, selector: SkillSelector,
                   traces: list[Trace]) -> dict[str, TraceMemory]:
    root = ctx.memory_root / memory_key(ctx, bank, selector)
    executor = executor_for(ctx)
    dim = ctx.cache.span_vectors.shape[1]
    todo = [t for t in traces if not (root / t.trace_id / "meta.json").exists()]
    advance = ctx.progress.task(f"{method}: building memory", sum(len(ctx.cache.for_trace(t.trace_id)) for t in todo))

    def build(trace: Trace) -> None:
        memory = build_trace_memory(trace.trace_id, ctx.cache.for_trace(trace.trace_id), bank, selector,
                                    executor, ctx.encoder.encode, dim, on_span=advance)
        with atomic_dir(root / trace.trace_id) as tmp:
            memory.bank.save(tmp)
            write_jsonl(tmp / "records.jsonl", (r.to_dict() for r in memory.records))

    with ThreadPoolExecutor(max_workers=ctx.settings.memory.workers) as pool:
        list(pool.map(build, todo))
    memories = {}
    for trace in traces:
        directory = root / trace.trace_id
        records = [SpanRecord(**row) for row in read_jsonl(directory / "records.jsonl")]
        memories[trace.trace_id] = TraceMemory(trace.trace_id, MemoryBank.load(directory), records)
    return memories


@dataclass(frozen=True)
class Passage:
    """One piece of answer context: a memory, a retrieved span or a stretch of history, with the turns it cites."""

    id: str
    text: str
    turn_ids: list[str]


def fit(ctx: EvalContext, passages: list[Passage]) -> list[Passage]:
    """The leading passages that fit the shared answer budget, counted with the answerer's tokenizer."""
    return fit_context(passages, lambda p: p.text, ctx.settings.eval.answer_context_tokens,
                       ctx.clients["answerer"].count_tokens)


def full_context(ctx: EvalContext, trace_id: str) -> list[Passage]:
    """The most recent spans that fit the answer budget, in order: as much history as the budget holds."""
    recent = [Passage("history", span.text, span.turn_ids) for span, _ in reversed(ctx.cache.for_trace(trace_id))]
    return fit(ctx, recent)[::-1]


def ranked_spans(ctx: EvalContext, query: Query) -> list[Passage]:
    """The trace's `memories_per_question` spans most similar to the question, best first."""
    spans = ctx.cache.for_trace(query.trace_id)
    if not spans:
        return []
    scores = np.stack([v for _, v in spans]) @ ctx.cache.query_vectors[query.query_id]
    order = np.argsort(-scores, kind="stable")[: ctx.settings.eval.memories_per_question]
    return [Passage(spans[i][0].span_id, spans[i][0].text, spans[i][0].turn_ids) for i in order]


def raw_rag(ctx: EvalContext, query: Query) -> list[Passage]:
    """The spans most similar to the question, best first, as many as the answer budget holds."""
    return fit(ctx, ranked_spans(ctx, query))


def check_answer_window(ctx: EvalContext, queries: list[Query]) -> None:
    """Refuse, before any LLM call, a budget that cannot fit the answerer's context window."""
    if not queries or ctx.embodied:
        return
    answerer, role = ctx.clients["answerer"], ctx.settings.llm.answerer
    prompt = max(prompt_tokens(q, ctx.dataset, answerer.count_tokens) for q in queries)
    budget = ctx.settings.eval.answer_context_tokens
    if prompt + budget + role.max_tokens > role.n_ctx:
        raise ConfigError(
            f"the answer budget does not fit the answerer's context window: eval.answer_context_tokens {budget} "
            f"+ prompt {prompt} + llm.answerer.max_tokens {role.max_tokens} > llm.answerer.n_ctx {role.n_ctx}; "
            f"lower the budget to at most {role.n_ctx - prompt - role.max_tokens} or raise n_ctx")


def retrieved_memories(ctx: EvalContext, memory: MemoryBank, query: Query) -> list[Passage]:
    """The memories retrieved for a question (`eval.memories_per_question`, `eval.memory_diversity`), with the
    turns each cites."""
    found = memory.search(ctx.cache.query_vectors[query.query_id], ctx.settings.eval.memories_per_question,
                          ctx.settings.eval.memory_diversity)
    return [Passage(item.id, item.content, item.source_turn_ids) for item, _ in found]


def source_spans(ctx: EvalContext, memory: MemoryBank, query: Query, spans: list[tuple[Span, np.ndarray]]
                 ) -> list[Passage]:
    """The spans a memory was built from, best first for `query` (`answering.rank_sources`)."""
    by_id = {span.span_id: span for span, _ in spans}
    ranked = rank_sources(memory, ctx.cache.query_vectors[query.query_id], list(by_id),
                          np.stack([v for _, v in spans]))
    return [Passage(s, by_id[s].text, by_id[s].turn_ids) for s in ranked]


def memory_context(ctx: EvalContext, memory: MemoryBank, query: Query, spans: list[tuple[Span, np.ndarray]]
                   ) -> list[Passage]:
    """What a memory method answers from within the answer budget: its retrieved memories, then (with
    `eval.source_share`) the spans they were written from in the share of the budget left to them."""
    share = ctx.settings.eval.source_share
    sources = source_spans(ctx, memory, query, spans) if share and spans else []
    return with_sources(retrieved_memories(ctx, memory, query), sources, lambda p: p.text,
                        ctx.settings.eval.answer_context_tokens, share, ctx.clients["answerer"].count_tokens)


def method_rows(ctx: EvalContext, method: str) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, TraceMemory]]:
    """One method's scored rows, its metrics, and the memories it built (memory methods only)."""
    if method not in METHODS:
        raise ConfigError(f"unknown eval method {method!r}; choose from {', '.join(METHODS)}")
    start = time.perf_counter()
    if ctx.embodied:
        from memskill_cli.embodied import requirement

        requirement()  # say so before any memory is built
    if method in PEER_METHODS:
        from memskill_cli.peers import requirement as peer_requirement

        peer_requirement(method)
    queries = select_queries(ctx.queries, ctx.settings)
    trace_ids = {q.trace_id for q in queries}
    traces = [t for t in ctx.traces if t.trace_id in trace_ids]
    check_answer_window(ctx, queries)
    memories, selector = {}, None
    if method in MEMORY_METHODS:
        bank, selector = make_selector(method, ctx)
        memories = build_memories(ctx, method, bank, selector, traces)
    peer = run_peer_method(ctx, method, traces, queries) if method in PEER_METHODS else None
    contexts: list[list[Passage]] = []
    for query in queries:
        if peer is not None:   # a peer's memories cite no turns: evidence recall is omitted, not guessed
            contexts.append(fit(ctx, [Passage(f"{method}-{i}", text, []) for i, text in
                                      enumerate(peer.contexts[query.query_id])]))
        elif method in MEMORY_METHODS:
            memory = memories[query.trace_id].bank
            contexts.append(retrieved_memories(ctx, memory, query) if ctx.embodied
                            else memory_context(ctx, memory, query, ctx.cache.for_trace(query.trace_id)))
        elif method == "raw-rag":
            contexts.append(raw_rag(ctx, query))
        elif method == "full-context":
            contexts.append(full_context(ctx, query.trace_id))
        else:
            contexts.append([])
    rows = (play_rows(ctx, method, queries, contexts) if ctx.embodied
            else answer_rows(ctx, method, queries, contexts))
    if peer is not None:
        for row in rows:
            row["retrieved_turns"] = None
    metrics = summarise(rows)
    metrics["method"] = method
    if selector is not None:  # which skills built the memory: the label says what really ran
        metrics["skill_bank"], metrics["selector"] = bank.hash, selector.identity
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    metrics["cost"] = memory_cost(memories) if peer is None else peer_cost(peer)
    return rows, metrics, memories


#: The context a peer's LLM gets at least: Mem0's extraction prompt alone is about 7,900 tokens (Qwen tokenizer).
PEER_MIN_CONTEXT = 16384
#: A peer's output limit: Mem0's own default (its LLM config's `max_tokens`). With our 1,024 a third of Mem0's
#: replies for a LoCoMo session were cut off and stored nothing.
PEER_MAX_TOKENS = 2000


def run_peer_method(ctx: EvalContext, method: str, traces: list[Trace], queries: list[Query]) -> Any:
    """A peer's memories (cached under everything that shapes them) and what it retrieves for each question. Its
    LLM is the executor's model, served to it in-process and counted under the peer's name in the ledger."""
    from memskill_cli.embeddings import local_model
    from memskill_cli.llm import RoleClient, create_backend
    from memskill_cli.llm.llamacpp import LlamaCppClient
    from memskill_cli.peers import peer_version
    from memskill_cli.peers.run import run_peer

    executor, role = ctx.clients["executor"], ctx.settings.llm.executor
    backend = getattr(executor, "backend", executor)
    n_ctx = max(role.n_ctx, PEER_MIN_CONTEXT)
    if isinstance(backend, LlamaCppClient):   # the same model with a wider window and plain sampling (our DRY
        backend = create_backend(backend.settings.model_copy(   # setting is tuned for our executor, not for them)
            update={"n_ctx": max(n_ctx, backend.settings.n_ctx), "dry_multiplier": 0.0}))
    llm = RoleClient(method, backend, default_max_tokens=PEER_MAX_TOKENS,
                     cache=getattr(executor, "cache", None), ledger=ctx.ledger)
    # keyed on the traces it reads (sessions, not our spans: how we cut spans is not the peer's business)
    key = stable_hash({"peer": method, "version": peer_version(method), "llm": backend.identity,
                       "traces": [t.model_dump() for t in traces], "max_tokens": llm.default_max_tokens,
                       "embedder": ctx.settings.embedding.model})
    return run_peer(method, traces, queries, ctx.memory_root / f"{method}-{key}", llm, role.model, n_ctx,
                    local_model(ctx.settings.embedding.model), ctx.cache.span_vectors.shape[1],
                    ctx.settings.eval.memories_per_question)


def peer_cost(peer: Any) -> dict[str, Any]:
    """A peer's LLM cost per conversation and in all, and the traces it failed on (with its messages)."""
    keys = ("llm_calls", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "llm_seconds", "memories")
    total = {k: round(sum(c[k] for c in peer.cost.values()), 3) for k in keys}
    return {"total": {**total, "failed_traces": len(peer.errors)}, "per_trace": peer.cost, "errors": peer.errors}


def write_run(target: Path, rows: list[dict[str, Any]], metrics: dict[str, Any],
              memories: dict[str, TraceMemory] | None = None) -> None:
    """A method's predictions, metrics and built memories, replacing `target` as a whole."""
    with atomic_dir(target) as tmp:
        write_jsonl(tmp / "predictions.jsonl", rows)
        write_json(tmp / "metrics.json", metrics)
        if memories:
            write_json(tmp / "memories.json", {
                tid: {"items": [i.model_dump() for i in m.bank.items.values()],
                      "records": [r.to_dict() for r in m.records]} for tid, m in memories.items()})


def run_method(ctx: EvalContext, method: str, out_dir: Path) -> dict[str, Any]:
    rows, metrics, memories = method_rows(ctx, method)
    write_run(out_dir / "runs" / method, rows, metrics, memories)
    return metrics


def answer_rows(ctx: EvalContext, method: str, queries: list[Query],
                contexts: list[list[Passage]]) -> list[dict[str, Any]]:
    label = "Conversation" if method == "full-context" else "Context" if method == "raw-rag" else "Memories"
    advance = ctx.progress.task(f"{method}: answering", len(queries))
    requests = [answer_request(q, [p.text for p in c], ctx.dataset, label) for q, c in zip(queries, contexts,
                                                                                             strict=True)]
    responses = complete_all(ctx.clients["answerer"], requests, advance)
    predictions = [clean_answer(r.text) for r in responses]
    judgements = (judge(ctx.clients["judge"], [(q.question, q.answers, p) for q, p in zip(queries, predictions,
                                                                                          strict=True)])
                  if ctx.settings.eval.judge else [None] * len(queries))
    rows = []
    for query, context, prediction, judgement in zip(queries, contexts, predictions, judgements, strict=True):
        f1, em = best_over_golds(prediction, query.answers, query.category)
        rows.append({
            "query_id": query.query_id, "trace_id": query.trace_id, "category": query.category,
            "question": query.question, "gold": query.answers, "prediction": prediction,
            "retrieved_ids": [p.id for p in context], "retrieved": [p.text for p in context],
            "retrieved_turns": [p.turn_ids for p in context], "evidence": query.evidence,
            "f1": f1, "em": em, "score": f1,
            "answer_coverage": answer_coverage([p.text for p in context], query.answers),
            "judge": judgement.score if judgement else None,
            "judge_readable": judgement.readable if judgement else None,
            "judge_explanation": judgement.explanation if judgement else None,
        })
    return rows


#: Most answering threads: enough to keep an endpoint fleet or a batching engine busy.
MAX_ANSWER_THREADS = 64


def complete_all(client: LLMClient, requests: list[ChatRequest], advance: Callable[[], None]) -> list[ChatResponse]:
    """Every request, as many at once as the client serves (`max_concurrency`: llama.cpp slots, endpoint workers,
    or a batching engine's queue). Each is its own call, so each answer is cached as it arrives and a failure
    loses none already given."""
    def one(request: ChatRequest) -> ChatResponse:
        response = client.complete(request)
        advance()
        return response

    workers = max(1, min(client.max_concurrency, MAX_ANSWER_THREADS, len(requests)))
    if workers == 1:
        return [one(r) for r in requests]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, r) for r in requests]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:   # after a failure, nothing not yet started is sent: the run stops promptly
            future.cancel()
        return [f.result() for f in futures]


def play_rows(ctx: EvalContext, method: str, queries: list[Query],
              contexts: list[list[tuple[str, str]]]) -> list[dict[str, Any]]:
    """ALFWorld: the answerer role is the actor; it plays each game with the memories retrieved for it."""
    from memskill_cli.embodied.play import GamePlayer

    if ctx.prepared_dir is None:
        raise ConfigError("embodied evaluation needs the prepared dataset folder (for its game files)")
    advance = ctx.progress.task(f"{method}: playing games", len(queries))
    player = GamePlayer(ctx.settings.alfworld, ctx.prepared_dir, ctx.clients["answerer"])
    rows = player([*queries], [[p.text for p in c] for c in contexts], on_done=lambda _: advance())
    for row, context in zip(rows, contexts, strict=True):
        row["retrieved_ids"] = [p.id for p in context]
    return rows


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def block(group: list[dict[str, Any]]) -> dict[str, Any]:
        if group and "success" in group[0]:  # embodied: success rate, and steps with a failure counted in full
            success = _mean([r["success"] for r in group])
            return {"n": len(group), "success": success, "steps": _mean([r["steps"] for r in group]),
                    "score": success}
        judged = [r for r in group if r["judge"] is not None]
        f1 = _mean([r["f1"] for r in group])
        recall = evidence_recall([(r.get("evidence", []), [t for ts in r["retrieved_turns"] for t in ts])
                                  for r in group if r.get("retrieved_turns") is not None])
        coverage = _mean([r["answer_coverage"] for r in group if "answer_coverage" in r])
        return {"n": len(group), "f1": f1, "em": _mean([r["em"] for r in group]), "answer_coverage": coverage,
                "judge": _mean([r["judge"] for r in judged]), "judged": len(judged),
                "judge_unreadable": sum(not r.get("judge_readable", True) for r in judged), "score": f1,
                **(recall if recall["evidence_questions"] else {})}

    return by_category(rows, block)


def by_category(rows: list[dict[str, Any]], block: Callable[[list[dict[str, Any]]], dict[str, Any]]
                ) -> dict[str, Any]:
    """`block` of all rows (`overall`) and of each category's rows (`per_category`)."""
    groups: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        groups[row["category"]].append(row)
    return {"overall": block(rows), "per_category": {c: block(g) for c, g in sorted(groups.items())}}


def memory_cost(memories: dict[str, TraceMemory]) -> dict[str, Any]:
    """Executor cost and build quality (truncation, rejections by reason, verbatim copies, tokens per span,
    memories per span), per trace and over all traces."""
    def cost(records: list[SpanRecord], size: int) -> dict[str, Any]:
        return {"prompt_tokens": sum(r.prompt_tokens for r in records),
                "completion_tokens": sum(r.completion_tokens for r in records),
                "cached_prompt_tokens": sum(r.cached_prompt_tokens for r in records), **build_quality(records, size)}

    per_trace = {tid: cost(m.records, len(m.bank)) for tid, m in memories.items()}
    total = cost([r for m in memories.values() for r in m.records], sum(len(m.bank) for m in memories.values()))
    return {"total": total, "per_trace": per_trace}


def evaluate(ctx: EvalContext, methods: list[str], out_dir: Path) -> dict[str, Any]:
    """Run each method, then write the side-by-side summary with LLM usage per role. The previous summary goes
    first: a run killed half-way never leaves it beside results it does not describe."""
    if not select_queries(ctx.queries, ctx.settings):
        splits = sorted({q.split for q in ctx.queries})
        raise ConfigError(f"no questions to evaluate in split {ctx.settings.eval.split!r} of {ctx.dataset} (after "
                          f"eval.exclude_categories); its splits are {', '.join(splits) or 'none'}")
    (out_dir / "metrics.json").unlink(missing_ok=True)
    results = {}
    for method in methods:
        results[method] = run_method(ctx, method, out_dir)
    summary = {
        "dataset": ctx.dataset, "split": ctx.settings.eval.split, "skill_bank": ctx.skill_bank.hash,
        "methods": {m: {"overall": r["overall"], "per_category": r["per_category"], "cost": r["cost"]["total"],
                        **{k: r[k] for k in ("selector", "skill_bank") if k in r}}
                    for m, r in results.items()},
        "llm_usage": ctx.ledger.to_dict(),
    }
    write_json(out_dir / "metrics.json", summary)
    return summary


def load_context(settings: Settings, prepared_dir: Path, cache_dir: Path, components: Components,
                 progress: ProgressSink | None = None, memory_root: Path | None = None) -> EvalContext:
    """The harness over a prepared dataset and its span cache, with the bank `memory.skill_bank` names;
    built memories are cached under `memory_root` (default: `memory.cache_dir`/<dataset>)."""
    traces, queries = load_prepared(prepared_dir)
    return EvalContext(settings=settings, dataset=prepared_dir.name, traces=traces, queries=queries,
                       cache=SpanCache.load(cache_dir), cache_key=read_json(cache_dir / "meta.json")["key"],
                       encoder=components.encoder, clients=components.clients, ledger=components.ledger,
                       memory_root=memory_root or Path(settings.memory.cache_dir) / prepared_dir.name,
                       skill_bank=load_skill_bank(settings), progress=progress or NoProgress(),
                       prepared_dir=prepared_dir)


def window_rows(ctx: EvalContext, bank: SkillBank, selector: SkillSelector, windows: list[Window]
                ) -> list[dict[str, Any]]:
    """Each window's memory built on its own, its questions answered from it (rows as `answer_rows` gives)."""
    return answer_rows(ctx, "memskill", *window_contexts(ctx, bank, selector, windows))


def window_contexts(ctx: EvalContext, bank: SkillBank, selector: SkillSelector, windows: list[Window]
                    ) -> tuple[list[Query], list[list[Passage]]]:
    """Each window's memory built on its own; its questions, each with the memories it would be answered from."""
    executor, dim = executor_for(ctx), ctx.cache.span_vectors.shape[1]
    advance = ctx.progress.task("memskill: building window memories", len(windows))
    queries, contexts = [], []
    for window in windows:
        memory = build_trace_memory(window.trace_id, window.spans, bank, selector, executor, ctx.encoder.encode, dim)
        for query in window.queries:
            queries.append(query)
            contexts.append(fit(ctx, retrieved_memories(ctx, memory.bank, query)))
        advance()
    return queries, contexts


def unanswered_rows(queries: list[Query], contexts: list[list[Passage]], measure: str) -> list[dict[str, Any]]:
    """Rows scored without an answerer, as training's answer-free rewards score an episode: `evidence`, the share
    of each question's evidence turns the context cites; `coverage`, the share of its gold answer's words it holds."""
    rows = []
    for query, context in zip(queries, contexts, strict=True):
        cited = [t for p in context for t in p.turn_ids]
        scores = {"evidence": evidence_share(query.evidence, cited),
                  "coverage": answer_coverage([p.text for p in context], query.answers)}
        rows.append({"query_id": query.query_id, "trace_id": query.trace_id, "category": query.category,
                     "question": query.question, "gold": query.answers, "evidence": query.evidence,
                     "prediction": f"(not answered: scored by {measure})", "retrieved_ids": [p.id for p in context],
                     "retrieved": [p.text for p in context], "retrieved_turns": [p.turn_ids for p in context],
                     "evidence_share": scores["evidence"], "answer_coverage": scores["coverage"],
                     "score": scores[measure]})
    return rows


def unanswered_summary(rows: list[dict[str, Any]], measure: str) -> dict[str, Any]:
    """Mean score (and evidence recall) of `unanswered_rows`, overall and per category."""
    def block(group: list[dict[str, Any]]) -> dict[str, Any]:
        recall = evidence_recall([(r["evidence"], [t for ts in r["retrieved_turns"] for t in ts]) for r in group])
        return {"n": len(group), "score": _mean([r["score"] for r in group]), "scored_by": measure,
                "evidence_share": _mean([r["evidence_share"] for r in group]),
                "answer_coverage": _mean([r["answer_coverage"] for r in group]),
                **(recall if recall["evidence_questions"] else {})}

    return by_category(rows, block)


def scoring_windows(ctx: EvalContext) -> dict[str, Window] | None:
    """The validation windows that score a bank version: the `evolve.validation_windows` with the most questions per
    span, as many questions as a scoring's executor calls can buy (on LoCoMo 162 in 73 spans, where a random 24
    gave 111 in 76), or None to score whole traces (the setting is 0, or the questions cite no evidence)."""
    count = ctx.settings.evolve.validation_windows
    queries = select_queries(ctx.queries, ctx.settings)
    if not count or ctx.embodied or not any(q.evidence for q in queries):
        return None
    return densest_windows(make_windows(queries, ctx.cache, 1, None, ctx.settings.seed), count)


def scoring_groups(ctx: EvalContext) -> dict[str, str] | None:
    """Each scored question's session window, the memory build that answers it (the gain's interval resamples
    windows); None on whole traces, where a benchmark's few validation traces leave too few builds to resample."""
    windows = scoring_windows(ctx)
    if windows is None:
        return None
    return {q.query_id: name for name, window in windows.items() for q in window.queries}


def version_measure(ctx: EvalContext) -> str:
    """What a bank version's validation questions score: training's reward (`train.reward`) where versions are
    scored on session windows, so the gate keeps what the controller is trained for, at no answerer call for the
    answer-free rewards; F1 (or an embodied task's success) on whole traces, where questions cite no evidence."""
    return _measure(ctx, scoring_windows(ctx))


def _measure(ctx: EvalContext, windows: dict[str, Window] | None) -> str:
    if windows is not None:
        return ctx.settings.train.reward
    return "success" if ctx.embodied else "f1"


def bank_scorer(ctx: EvalContext, selector: SkillSelector | None = None
                ) -> Callable[[SkillBank, Path], dict[str, float]]:
    """The evolution loop's view of the harness: a bank's score on each validation question (`version_measure`),
    its memories built by `selector` (the policy being trained) or the configured one, on session windows where
    questions cite evidence (a few executor calls per window), else on whole traces; outputs go under the given
    folder. Questions are answered from the memories alone (no source spans, as in training episodes): a bank
    version is judged by the memory it writes, not by spans that any version would show."""
    windows = scoring_windows(ctx)
    measure = _measure(ctx, windows)
    memories_only = ctx.settings.model_copy(update={"eval": ctx.settings.eval.model_copy(
        update={"source_share": 0.0})})

    def score(bank: SkillBank, out_dir: Path) -> dict[str, float]:
        scoring = replace(ctx, settings=memories_only, skill_bank=bank, selector=selector or ctx.selector)
        if windows is None:
            rows, metrics, memories = method_rows(scoring, "memskill")
        else:
            _, chosen = make_selector("memskill", scoring)
            queries, contexts = window_contexts(scoring, bank, chosen, list(windows.values()))
            if measure == "f1":
                rows = answer_rows(scoring, "memskill", queries, contexts)
                metrics = summarise(rows)
            else:
                rows = unanswered_rows(queries, contexts, measure)
                metrics = unanswered_summary(rows, measure)
            metrics, memories = {**metrics, "method": "memskill", "windows": len(windows)}, None
        write_run(out_dir / "runs" / "memskill", rows, metrics, memories)
        return {row["query_id"]: float(row["score"] or 0.0) for row in rows}

    return score
