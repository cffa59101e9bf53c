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
           max_changes: int, cycles: int, seed: int = 0, scored_with: str = "", trial: bool = False,
           groups: dict[str, str] | None = None) -> dict[str, Any]:
    """Up to `cycles` designer cycles; `source` identifies what produced `initial` and `buffer` (the training
    run's bank and controller): when it changes, the run starts afresh instead of resuming stale scores.
    `scored_with` names the policy `score` builds memories with: in the method's outer loop it changes between
    cycles, and the best version is scored again first, so a gain is always paired under one policy (against
    scores of an older policy, what PPO learned in between would pass for the edit's gain).

    With `trial` (the outer loop), a new version is not scored when it is proposed: it goes on trial, the
    controller trains on it for a PPO phase, and the next call judges it, paired with the best under the policy
    of then, before the designer proposes again; `cycles=0` only judges. A new skill is so judged by a policy
    that has had a phase to learn when to pick it, not by one that has never tried it.

    `groups` maps each validation question to the memory build that answers it (its session window): the gain's
    interval then resamples builds, since the questions of one build rise and fall together."""
    store = SnapshotStore.open(run_dir, initial, buffer, source)
    state = store.state
    store.merge_cases(buffer)

    def score_best() -> dict[str, Any] | None:
        """Score the best version with the policy of now; what it scored before, if it had been scored."""
        best = state.get(state.best)
        before = best.score if store.has_scores(best.version) else None  # (older runs kept no scores.json)
        store.record_score(best.version, score(store.bank(best.version), store.bank_path(best.version).parent),
                           settings.confidence, scored_with)
        store.save()
        return None if before is None else {"version": best.version, "score_before": before, "score": best.score}

    def best_scored() -> bool:
        return state.get(state.best).score is not None and store.has_scores(state.best)

    def judge(version: int) -> dict[str, Any]:
        """Score `version` paired with the best, both under the policy of now: kept as best or rolled back."""
        verdict: dict[str, Any] = {}
        if not best_scored() or state.get(state.best).scored_with != scored_with:
            rescored = score_best()
            if rescored:
                verdict["best_rescored"] = rescored
        outcome = store.record_score(version, score(store.bank(version), store.bank_path(version).parent),
                                     settings.confidence, scored_with, groups)
        scored = state.get(version)
        verdict.update(version=version, score=scored.score, outcome=outcome,
                       gain=scored.gain.model_dump() if scored.gain else None)
        if outcome == "rolled_back":
            state.failed_proposals.extend({**edit, "why": f"rolled back: validation gain {scored.gain} over the "
                                           "best version is not significant"} for edit in scored.changes)
        state.stale_cycles = 0 if outcome == "best" else state.stale_cycles + 1
        store.save()
        return verdict

    judged = None
    pending = state.get(state.current)
    if pending.status == "on_trial" and trial and pending.hash != initial.hash:
        cycles = 0  # proposed, but the policy has not trained on it yet (a run resumed after a kill): still on trial
    elif pending.status == "on_trial":
        judged = judge(state.current)
        for proposed in state.cycles:  # the verdict joins the record of the cycle that proposed the version
            if proposed.get("version") == judged["version"]:
                proposed.update(judged)
        store.save()
    elif not trial and not best_scored():
        score_best()
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
            if trial:
                version.status, state.current = "on_trial", version.version
                entry.update(version=version.version, outcome="on_trial")
            else:
                entry.update(judge(version.version))
        else:
            state.stale_cycles += 1
            entry["outcome"] = "no valid edit"
        log.append(entry)
        state.cycles.append(entry)
        store.save()
    exported = store.export_best()
    store.save()
    return {"best_version": state.best, "best_score": state.get(state.best).score, "current": state.current,
            "current_bank": str(store.bank_path(state.current)), "judged": judged,
            "rounds": state.round, "cycles": log, "exported": str(exported),
            "versions": [v.model_dump(include={"version", "score", "gain", "status", "parent"})
                         for v in state.versions]}
