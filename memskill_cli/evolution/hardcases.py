"""The hard-case buffer: failed queries, refreshed on repeat failure, expiring, bounded; and the selection of
what the designer sees (deduplicated, clustered by question, the hardest few of each cluster)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sklearn.cluster import KMeans

from memskill_cli.config import EvolveSettings
from memskill_cli.fileio import read_json, read_jsonl


class HardCase(BaseModel):
    query_id: str
    trace_id: str
    question: str
    gold: list[str]
    category: str
    evidence: list[str] = Field(default_factory=list)
    prediction: str
    retrieved: list[str] = Field(default_factory=list)
    score: float
    step: int
    failures: int = 1

    @property
    def difficulty(self) -> float:
        return (1.0 - self.score) * self.failures


class HardCaseBuffer(BaseModel):
    threshold: float = 0.5
    capacity: int = 200
    expiry_steps: int = 50
    cases: dict[str, HardCase] = Field(default_factory=dict)

    def add(self, case: dict[str, Any], step: int) -> bool:
        """Record a scored query; only failures (score below the threshold) enter. True if it entered."""
        score = float(case["score"])
        if score >= self.threshold:
            return False
        previous = self.cases.get(case["query_id"])
        failures = previous.failures + 1 if previous else 1
        self.cases[case["query_id"]] = HardCase(**{**case, "step": step, "failures": failures})
        self._evict()
        return True

    def expire(self, step: int) -> None:
        self.cases = {k: c for k, c in self.cases.items() if step - c.step <= self.expiry_steps}

    def _evict(self) -> None:
        if len(self.cases) > self.capacity:
            keep = sorted(self.cases.values(), key=lambda c: (c.step, c.difficulty), reverse=True)[: self.capacity]
            self.cases = {c.query_id: c for c in keep}


def hard_case(case: dict[str, Any], episode_id: str) -> dict[str, Any]:
    """An episode's scored query in the hard-case buffer's shape (a case names its trace; older histories do not,
    and carry `f1` instead of `score`: their episode was the whole trace)."""
    keys = ("query_id", "question", "gold", "category", "evidence", "prediction", "retrieved")
    return {**{k: case.get(k, []) for k in keys}, "trace_id": case.get("trace_id", episode_id),
            "score": case.get("score", case.get("f1"))}


def empty_buffer(settings: EvolveSettings) -> HardCaseBuffer:
    return HardCaseBuffer(threshold=settings.fail_threshold, capacity=settings.buffer_capacity,
                          expiry_steps=settings.expiry_steps)


def buffer_from_training(train_dir: Path, settings: EvolveSettings) -> HardCaseBuffer:
    """A training run's hard-case buffer: from its checkpoint, else rebuilt from its history."""
    state = train_dir / "checkpoint" / "state.json"
    if state.exists() and "hard_cases" in (meta := read_json(state)):
        return HardCaseBuffer.model_validate(meta["hard_cases"])
    buffer = empty_buffer(settings)
    last = 0
    if (train_dir / "history.jsonl").exists():
        for record in read_jsonl(train_dir / "history.jsonl"):
            last = record["update"]
            for episode in record.get("episodes", []):
                for case in episode.get("cases", []):
                    buffer.add(hard_case(case, episode["id"]), step=last)
    buffer.expire(last)
    return buffer


def select_cases(cases: list[HardCase], encode: Callable[[list[str]], np.ndarray], clusters: int,
                 per_cluster: int, max_cases: int, seed: int = 0) -> list[HardCase]:
    """Dedupe by question, KMeans on question embeddings, rank by difficulty within each cluster,
    take the top few of each cluster (round-robin, hardest clusters first) up to `max_cases`."""
    unique: dict[str, HardCase] = {}
    for case in sorted(cases, key=lambda c: -c.difficulty):
        unique.setdefault(case.question.strip().lower(), case)
    items = list(unique.values())
    if not items:
        return []
    k = max(1, min(clusters, len(items)))
    labels = (KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(encode([c.question for c in items]))
              if k > 1 else np.zeros(len(items), dtype=int))
    groups = [sorted((c for c, label in zip(items, labels, strict=True) if label == g), key=lambda c: -c.difficulty)
              for g in range(k)]
    groups = sorted((g[:per_cluster] for g in groups if g), key=lambda g: -g[0].difficulty)
    chosen: list[HardCase] = []
    for rank in range(per_cluster):
        for group in groups:
            if rank < len(group) and len(chosen) < max_cases:
                chosen.append(group[rank])
    return chosen
