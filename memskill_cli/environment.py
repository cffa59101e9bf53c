"""The real training environment: an episode builds memory with the controller's skill choices, then answers
questions from it; the mean F1 is the reward (or, with `reward="evidence"`, the mean share of each question's
evidence turns that the memories in its answer budget cite; with `reward="coverage"`, the mean share of its gold
answer's words those memories hold: no answerer call either way, and less noisy).

Where questions cite their evidence turns (LoCoMo, LongMemEval), an episode is a window of consecutive
sessions of a training trace with every question whose evidence lies inside it: a few executor calls, and a
reward from many questions. Otherwise an episode is a whole trace with a fixed sample of its questions.

Embodied data (ALFWorld) follows the pair protocol: the trace is batch A's expert trajectories of one task
type, the queries are batch B's games, a `player` plays them with the memory, and the success rate is the
reward."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from memskill_cli.answering import answer_request, clean_answer, fit_context
from memskill_cli.construction import TraceMemory, build_trace_memory
from memskill_cli.controller import Fusion, make_state
from memskill_cli.data.cache import SpanCache
from memskill_cli.data.schema import Query
from memskill_cli.data.windows import make_windows
from memskill_cli.embeddings import Encoder
from memskill_cli.executor import Executor
from memskill_cli.llm import LLMClient
from memskill_cli.metrics import answer_coverage, best_over_golds
from memskill_cli.quality import build_quality, evidence_share
from memskill_cli.skills import Skill, SkillBank
from memskill_cli.training import Act, EpisodeResult


class _ActSelector:
    """Routes each span's selection through the trainer's `act`, which records the transition."""

    identity = "training-policy"

    def __init__(self, act: Act, fusion: Fusion) -> None:
        self.act, self.fusion = act, fusion

    def select(self, span: Any, span_vector: np.ndarray, memory_vectors: np.ndarray,
               bank: SkillBank) -> list[Skill]:
        return [bank.skills[i] for i in self.act(make_state(span_vector, memory_vectors, self.fusion))]


Player = Callable[[Sequence[Query], Sequence[Sequence[str]]], list[dict[str, Any]]]


class MemoryEnvironment:
    def __init__(self, queries: list[Query], cache: SpanCache, executor: Executor, answerer: LLMClient,
                 encoder: Encoder, dataset: str, mem_top_k: int, queries_per_trace: int | None, seed: int,
                 fusion: Fusion = "mean", shaping_penalty: float = 0.0, player: Player | None = None,
                 answer_budget: int | None = None, window_sessions: int = 0,
                 reward: Literal["f1", "evidence", "coverage"] = "f1", memory_diversity: float = 0.0) -> None:
        self.shaping_penalty, self.player, self.answer_budget = shaping_penalty, player, answer_budget
        self.reward, self.memory_diversity = reward, memory_diversity
        self.cache, self.executor, self.answerer, self.encoder = cache, executor, answerer, encoder
        self.dataset, self.mem_top_k, self.fusion = dataset, mem_top_k, fusion
        self.episodes = make_windows(queries, cache, window_sessions, queries_per_trace, seed)

    def episode_ids(self) -> list[str]:
        return sorted(self.episodes)

    def episode(self, episode_id: str, act: Act, bank: SkillBank) -> EpisodeResult:
        dim = self.cache.span_vectors.shape[1]
        episode = self.episodes[episode_id]
        memory = build_trace_memory(episode.trace_id, episode.spans, bank, _ActSelector(act, self.fusion),
                                    self.executor, self.encoder.encode, dim)
        queries = episode.queries
        found = [memory.bank.search(self.cache.query_vectors[q.query_id], self.mem_top_k, self.memory_diversity)
                 for q in queries]
        if self.player is not None:
            cases = self.player(queries, [[item.content for item, _ in hits] for hits in found])
            return self._result(float(np.mean([c["score"] for c in cases])) if cases else 0.0, "success",
                                [{**c, "trace_id": episode.trace_id} for c in cases], memory)
        if self.answer_budget is not None:  # the same answer budget as evaluation
            found = [fit_context(hits, lambda hit: hit[0].content, self.answer_budget, self.answerer.count_tokens)
                     for hits in found]
        if self.reward == "evidence":
            predictions = ["(not answered: the reward is the evidence turns cited)"] * len(queries)
            scores = [evidence_share(q.evidence, [t for item, _ in hits for t in item.source_turn_ids])
                      for q, hits in zip(queries, found, strict=True)]
        elif self.reward == "coverage":
            predictions = ["(not answered: the reward is the answer's words held)"] * len(queries)
            scores = [answer_coverage([item.content for item, _ in hits], q.answers)
                      for q, hits in zip(queries, found, strict=True)]
        else:
            responses = self.answerer.map([answer_request(q, [item.content for item, _ in hits], self.dataset)
                                           for q, hits in zip(queries, found, strict=True)])
            predictions = [clean_answer(r.text) for r in responses]
            scores = [best_over_golds(p, q.answers, q.category)[0]
                      for p, q in zip(predictions, queries, strict=True)]
        metric = {"f1": "f1", "evidence": "evidence_share", "coverage": "answer_coverage"}[self.reward]
        cases = [{"query_id": query.query_id, "trace_id": episode.trace_id, "question": query.question,
                  "gold": query.answers, "category": query.category, "evidence": query.evidence,
                  "prediction": prediction, metric: score, "score": score,
                  "retrieved": [item.content for item, _ in hits]}
                 for query, hits, prediction, score in zip(queries, found, predictions, scores, strict=True)]
        return self._result(float(np.mean(scores)) if scores else 0.0, metric, cases, memory)

    def _result(self, score: float, metric: str, cases: list[dict[str, Any]], memory: TraceMemory) -> EpisodeResult:
        troubled = sum(r.parse_error is not None or bool(r.rejected) for r in memory.records)
        penalty = self.shaping_penalty * troubled / max(1, memory.executor_calls)
        return EpisodeResult(score - penalty, {
            "reward": score - penalty, metric: score, "shaping_penalty": penalty,
            "executor_calls": memory.executor_calls,
            "parse_failures": memory.parse_failures, "rejected_operations": memory.rejected,
            "memories": len(memory.bank), "quality": build_quality(memory.records, len(memory.bank)),
            "cases": cases,
        })
