"""Stage `evolve`: hard cases from training -> designer edits -> a new bank version scored on validation
traces; a version worse than the best snapshot is rolled back; the best bank is exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memskill_cli.config import Settings
from memskill_cli.errors import SchemaError
from memskill_cli.evolution.designer import analyse, apply_edits, propose, render_case, validate_edits
from memskill_cli.evolution.hardcases import HardCaseBuffer, select_cases
from memskill_cli.evolution.snapshots import SnapshotStore
from memskill_cli.fileio import read_json, read_jsonl
from memskill_cli.llm import LLMClient
from memskill_cli.skills import SkillBank
from stages.evaluate import EvalContext, run_method
from stages.train import hard_case


def buffer_from_run(train_dir: Path, settings: Settings) -> HardCaseBuffer:
    """The training run's hard-case buffer: from its checkpoint, else rebuilt from its history."""
    state = train_dir / "checkpoint" / "state.json"
    if state.exists() and "hard_cases" in (meta := read_json(state)):
        return HardCaseBuffer.model_validate(meta["hard_cases"])
    e = settings.evolve
    buffer = HardCaseBuffer(threshold=e.fail_threshold, capacity=e.buffer_capacity, expiry_steps=e.expiry_steps)
    last = 0
    if (train_dir / "history.jsonl").exists():
        for record in read_jsonl(train_dir / "history.jsonl"):
            last = record["update"]
            for episode in record.get("episodes", []):
                for case in episode.get("cases", []):
                    buffer.add(hard_case(case, episode["id"]), step=last)
    buffer.expire(last)
    return buffer


def score_bank(ctx: EvalContext, bank: SkillBank, out_dir: Path) -> float:
    """The validation score with memories built from `bank`: mean F1, or the success rate for ALFWorld."""
    ctx.skill_bank = bank
    return float(run_method(ctx, "memskill", out_dir)["overall"]["score"] or 0.0)


def evolve(settings: Settings, ctx: EvalContext, designer: LLMClient, run_dir: Path, initial: SkillBank,
           buffer: HardCaseBuffer, max_changes: int, cycles: int) -> dict[str, Any]:
    store = SnapshotStore.open(run_dir, initial, buffer)
    state = store.state
    newest = max((c.step for c in state.buffer.cases.values()), default=-1)
    for case in buffer.cases.values():  # failures from later training updates refresh the persisted buffer
        if case.step > newest:
            state.buffer.add(case.model_dump(exclude={"failures"}), case.step)
    if state.get(state.best).score is None:
        store.record_score(state.best, score_bank(ctx, store.bank(state.best), store.bank_path(state.best).parent))
        store.save()
    turns = {trace.trace_id: {turn.turn_id: f"{turn.speaker}: {turn.text}" for turn in trace.turns()}
             for trace in ctx.traces}  # turn ids are unique within a trace only
    log = []
    for _ in range(cycles):
        if state.stale_cycles >= settings.evolve.patience:
            log.append({"round": state.round, "stopped": "patience exhausted"})
            break
        e = settings.evolve
        cases = select_cases(list(state.buffer.cases.values()), ctx.encoder.encode, e.clusters, e.per_cluster,
                             e.budget, settings.seed)
        if not cases:
            log.append({"round": state.round, "stopped": "no hard cases"})
            break
        state.round += 1
        current = store.bank(state.current)
        cases_text = "\n\n".join(render_case(n, c, turns.get(c.trace_id, {})) for n, c in enumerate(cases, start=1))
        try:
            analysis = analyse(designer, current, cases_text)
            edits = propose(designer, current, analysis, max_changes, state.failed_proposals)
        except SchemaError as exc:
            analysis, edits = {"error": str(exc)}, []
        accepted, rejected = validate_edits(current, edits, max_changes)
        state.failed_proposals.extend(rejected)
        entry: dict[str, Any] = {"round": state.round, "cases": len(cases), "analysis": analysis,
                                 "proposed": edits, "accepted": accepted, "rejected": rejected}
        if accepted:
            version = store.add(apply_edits(current, accepted, state.round), state.current, analysis, accepted,
                                rejected)
            score = score_bank(ctx, store.bank(version.version), store.bank_path(version.version).parent)
            outcome = store.record_score(version.version, score)
            entry.update(version=version.version, score=score, outcome=outcome)
            if outcome == "rolled_back":
                state.failed_proposals.extend({**edit, "why": f"rolled back: validation F1 {score:.3f} below the "
                                               f"best {state.get(state.best).score:.3f}"} for edit in accepted)
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
            "versions": [v.model_dump(include={"version", "score", "status", "parent"}) for v in state.versions]}
