"""Benchmark (issue: skill selection that matters): which designer model writes valid, general skill edits for the
least designer time.

Every model sees the same LoCoMo hard cases: the buffer of a training run (by default bench_selection.py's run with
the evidence reward), in `--rounds` rounds, each showing the designer a different seeded half of the buffer (as
successive evolution cycles see different failures), always against the seed bank; a round is shown the edits
earlier rounds had rejected, as a cycle is. Per model it prints: designer seconds and tokens, edits proposed,
edits that pass the loop's own validation (the loop's `design` turn: well formed, within the budget, and general:
no name, place or number taken from the cases shown), the reasons for the rest, and valid general edits per hour
of designer time. Every valid edit is printed, to be read: validation cannot tell a useful rule from a platitude,
and whether a version survives the significance test costs a scored evolution cycle (~25 minutes of executor and
answerer time on 2 cores), which this benchmark does not run.

With `--grow BANK.yaml` every round's valid edits are applied, so the next round sees the grown bank (what
successive cycles would see if every version were kept), until the bank holds `--target` skills; the bank is
written to BANK.yaml (a rerun grows it further): a larger bank for bench_selection.py to select from without
a scored cycle per version.

Run: .venv/bin/python bench/bench_designer.py [--models qwen2.5-coder-0.5b qwen2.5-coder-1.5b] [--rounds 3]
     [--train-dir .cache/bench-selection/train-evidence] [--grow BANK.yaml --target 8]
Reads ../shared/data/locomo for the turns the cases cite. Nothing is cached: every designer call is timed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locomo import SOURCE

from memskill_cli.config import EvolveSettings, PrepareSettings, Settings
from memskill_cli.data.prepare import prepare
from memskill_cli.data.schema import load_prepared
from memskill_cli.embeddings import Encoder
from memskill_cli.evolution.designer import apply_edits, design
from memskill_cli.evolution.hardcases import buffer_from_training, select_cases
from memskill_cli.learning import source_turns
from memskill_cli.llm import RoleClient, UsageLedger, create_backend
from memskill_cli.skills import SkillBank

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache/bench-designer"
DEFAULT_TRAIN_DIR = ROOT / ".cache/bench-selection/train-evidence"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--rounds", type=int, default=3, help="Designer cycles per model, each on other cases.")
    parser.add_argument("--train-dir", type=Path, default=DEFAULT_TRAIN_DIR, help="A training run's folder.")
    parser.add_argument("--grow", type=Path, default=None, help="Apply valid edits round after round; write the bank.")
    parser.add_argument("--target", type=int, default=8, help="With --grow: stop once the bank holds this many.")
    args = parser.parse_args()
    if args.grow and len(args.models) != 1:
        sys.exit("--grow grows one bank: name one model with --models")
    if not SOURCE.exists():
        sys.exit(f"skipped: {SOURCE} is absent")
    if not (args.train_dir / "history.jsonl").exists():
        sys.exit(f"no training run in {args.train_dir}: run `.venv/bin/python bench/bench_selection.py "
                 "--reward evidence` first (its hard cases are what the designer is shown)")
    settings = Settings()
    evolve: EvolveSettings = settings.evolve
    buffer = buffer_from_training(args.train_dir, evolve)
    [prepared] = prepare("locomo", PrepareSettings(source=str(SOURCE)), WORK / "prepared")
    turns = source_turns(load_prepared(prepared.path)[0])
    encoder = Encoder()
    cases = sorted(buffer.cases.values(), key=lambda c: c.query_id)
    samples = [random.Random(r).sample(cases, len(cases) // 2) for r in range(args.rounds)]
    print(f"== {len(cases)} hard cases from {args.train_dir}; {args.rounds} rounds of up to "
          f"{evolve.max_cases_shown} cases, at most {evolve.max_changes} edits each, against "
          f"{'the growing' if args.grow else 'the seed'} bank")
    for model in args.models:
        role = settings.llm.designer.model_copy(update={"model": model})
        ledger = UsageLedger()
        designer = RoleClient("designer", create_backend(role), default_max_tokens=role.max_tokens, ledger=ledger)
        bank = SkillBank.load(args.grow) if args.grow and args.grow.exists() else SkillBank.seed()  # grow on
        proposed, valid, failed, reasons, seconds, rounds = 0, [], [], Counter(), 0.0, 0
        for r, sample in enumerate(samples):
            if args.grow and len(bank.skills) >= args.target:
                break
            rounds += 1
            shown = select_cases(sample, encoder.encode, evolve.clusters, evolve.per_cluster, evolve.max_cases_shown, r)
            start = time.perf_counter()
            analysis, edits, accepted, rejected = design(designer, bank, shown, turns, evolve.max_changes,
                                                         evolve.max_skills, failed)
            failed += rejected  # shown to the next round, as the loop shows them to the next cycle
            seconds += time.perf_counter() - start
            if "error" in analysis:
                reasons[f"unreadable designer output ({analysis['error'][:60]})"] += 1
            proposed += len(edits)
            valid += accepted
            reasons.update(e["why"].split(" (")[0] for e in rejected)  # `r` stays the round
            if args.grow:
                bank = apply_edits(bank, accepted, r + 1)
        usage = ledger.role("designer")
        print(f"\n== designer {model}: {rounds} rounds, {usage.calls} calls, {usage.prompt_tokens:,} prompt + "
              f"{usage.completion_tokens:,} completion tokens, {seconds:.0f} s of designer time")
        print(f"edits proposed {proposed}, valid and general {len(valid)}: "
              f"{len(valid) / seconds * 3600:.1f} per hour of designer time")
        print(f"rejected: {dict(reasons) or 'none'}")
        for edit in valid:
            print(f"  + {edit['op']} {edit['skill']} ({', '.join(edit.get('actions') or [])}): "
                  f"{edit['description']}\n      {edit['instructions'][:300]}")
        if args.grow:
            bank.save(args.grow)
            print(f"bank of {len(bank.skills)} skills ({', '.join(bank.names)}) written to {args.grow}")


if __name__ == "__main__":
    main()
