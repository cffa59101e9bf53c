"""The evolution loop: hard cases -> designer edits -> a new bank version, scored question by question through
`score(bank)`; a version is kept only when its paired gain over the best snapshot is significant, else the bank
rolls back; the best bank is exported.

As GEPA's adapter separates the optimizer from what it optimizes, the loop knows nothing of the evaluation
harness: it is given a scoring function, the source turns that hard cases cite, and an encoder for
clustering the cases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from memskill_cli.config import EvolveSettings
from memskill_cli.evolution.designer import apply_edits, design
from memskill_cli.evolution.hardcases import HardCaseBuffer, select_cases
from memskill_cli.evolution.snapshots import SnapshotStore
from memskill_cli.llm import LLMClient
from memskill_cli.skills import SkillBank

#: A bank's score on each validation question (query id -> score, higher is better); per-version outputs go
#: under the given folder.
Score = Callable[[SkillBank, Path], dict[str, float]]
#: trace id -> turn id -> "speaker: text", the source turns that hard cases cite.
Turns = dict[str, dict[str, str]]


def evolve(settings: EvolveSettings, score: Score, turns: Turns, encode: Callable[[list[str]], np.ndarray],
           designer: LLMClient, run_dir: Path, initial: SkillBank, buffer: HardCaseBuffer, source: str,
           max_changes: int, cycles: int, seed: int = 0) -> dict[str, Any]:
    """Up to `cycles` designer cycles; `source` identifies what produced `initial` and `buffer` (the training
    run's bank and controller): when it changes, the run starts afresh instead of resuming stale scores."""
    store = SnapshotStore.open(run_dir, initial, buffer, source)
    state = store.state
    store.merge_cases(buffer)
    if state.get(state.best).score is None or not store.has_scores(state.best):  # (older runs kept no scores.json)
        store.record_score(state.best, score(store.bank(state.best), store.bank_path(state.best).parent),
                           settings.confidence)
        store.save()
    log = []
    for _ in range(cycles):
        if state.stale_cycles >= settings.patience:
            log.append({"round": state.round, "stopped": "patience exhausted"})
            break
        e = settings
        cases = select_cases(list(state.buffer.cases.values()), encode, e.clusters, e.per_cluster,
                             e.max_cases_shown, seed)
        if not cases:
            log.append({"round": state.round, "stopped": "no hard cases"})
            break
        state.round += 1
        current = store.bank(state.current)
        analysis, edits, accepted, rejected = design(designer, current, cases, turns, max_changes,
                                                     settings.max_skills, state.failed_proposals)
        state.failed_proposals.extend(rejected)
        entry: dict[str, Any] = {"round": state.round, "cases": len(cases), "analysis": analysis,
                                 "proposed": edits, "accepted": accepted, "rejected": rejected}
        if accepted:
            version = store.add(apply_edits(current, accepted, state.round), state.current, analysis, accepted,
                                rejected)
            scores = score(store.bank(version.version), store.bank_path(version.version).parent)
            outcome = store.record_score(version.version, scores, settings.confidence)
            scored = state.get(version.version)
            entry.update(version=version.version, score=scored.score, outcome=outcome,
                         gain=scored.gain.model_dump() if scored.gain else None)
            if outcome == "rolled_back":
                state.failed_proposals.extend({**edit, "why": f"rolled back: validation gain {scored.gain} over the "
                                               "best version is not significant"} for edit in accepted)
            state.stale_cycles = 0 if outcome == "best" else state.stale_cycles + 1
        else:
            state.stale_cycles += 1
            entry["outcome"] = "no valid edit"
        log.append(entry)
        state.cycles.append(entry)
        store.save()
    exported = store.export_best()
    store.save()
    return {"best_version": state.best, "best_score": state.get(state.best).score, "current": state.current,
            "rounds": state.round, "cycles": log, "exported": str(exported),
            "versions": [v.model_dump(include={"version", "score", "gain", "status", "parent"})
                         for v in state.versions]}
