"""The hard-case buffer: failed queries, refreshed on repeat failure, expiring, bounded; and the selection of
what the designer sees (deduplicated, clustered by question, the hardest few of each cluster)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from sklearn.cluster import KMeans


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


def select_cases(cases: list[HardCase], encode: Callable[[list[str]], np.ndarray], clusters: int,
                 per_cluster: int, budget: int, seed: int = 0) -> list[HardCase]:
    """Dedupe by question, KMeans on question embeddings, rank by difficulty within each cluster,
    take the top few of each cluster (round-robin, hardest clusters first) up to the budget."""
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
            if rank < len(group) and len(chosen) < budget:
                chosen.append(group[rank])
    return chosen
