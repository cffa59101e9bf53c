"""Diagnostic (issue: skill selection that matters): would a bank version of a training run pass the gate with more
validation questions? Scores two of the run's versions with the run's own last policy (its weights and exploration
floor, as the loop's judgement does) on `--windows` validation windows, the densest first, and prints the paired
gain resampled by question and by window, on all of them and on the densest and a seeded random `--subset`.

Run: .venv/bin/python bench/rejudge.py TRAIN_DIR [--dataset locomo] [--base 1] [--new 3] [--windows 100]
     [--subset 24]
TRAIN_DIR is a `memskill train` output with evolution (checkpoint/, evolution/versions/vN/bank.yaml); its settings
are the checkpoint's. Reads data/prepared/<dataset> and the current span cache; LLM calls go through the response
cache, so windows the loop already scored with that policy cost nothing. Outputs go under TRAIN_DIR/rejudge/.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli.components import build_components
from memskill_cli.config import Settings
from memskill_cli.data.cache import current_cache
from memskill_cli.data.windows import Window
from memskill_cli.evaluation import bank_scorer, load_context, scoring_windows
from memskill_cli.fileio import read_json
from memskill_cli.learning import make_trainer
from memskill_cli.significance import paired_gain
from memskill_cli.skills import SkillBank


def report(name: str, windows: list[Window], base: dict[str, float], new: dict[str, float]) -> None:
    ids = [q.query_id for w in windows for q in w.queries]
    groups = [i for i, w in enumerate(windows) for _ in w.queries]
    spans = sum(len(w.spans) for w in windows)
    before, after = [base[q] for q in ids], [new[q] for q in ids]
    print(f"{name}: {len(windows)} windows, {spans} spans, {len(ids)} questions; base {sum(before) / len(ids):.3f}")
    for label, gain in (("by question", paired_gain(before, after)),
                        ("by window  ", paired_gain(before, after, groups=groups))):
        print(f"  {label} {gain}" + (f"; {gain.outlook()}" if gain.outlook() else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_dir", type=Path)
    parser.add_argument("--dataset", default="locomo", help="The dataset the run trained on.")
    parser.add_argument("--base", type=int, default=1, help="The version the gain is over (the best).")
    parser.add_argument("--new", type=int, default=2, help="The version judged.")
    parser.add_argument("--windows", type=int, default=100, help="Validation windows scored (the densest first).")
    parser.add_argument("--subset", type=int, default=24, help="Windows of the smaller comparisons printed.")
    args = parser.parse_args()
    meta = read_json(args.train_dir / "checkpoint" / "state.json")
    settings = Settings.model_validate(meta["settings"])
    settings = settings.model_copy(update={
        "eval": settings.eval.model_copy(update={"split": "validation", "judge": False}),
        "evolve": settings.evolve.model_copy(update={"validation_windows": args.windows})})
    prepared = Path(settings.paths.data_dir) / "prepared" / args.dataset
    cache = current_cache(Path(settings.paths.artifacts_dir) / "cache", args.dataset)
    components = build_components(settings, ("executor", "answerer"))
    trainer = make_trainer(settings, prepared, cache, components)
    trainer.resume(args.train_dir / "checkpoint")
    policy = trainer.selector(settings.eval.skills_per_span)
    ctx = load_context(settings, prepared, cache, components)
    scored = scoring_windows(ctx)
    if scored is None:
        sys.exit("the validation questions cite no evidence: versions are scored on whole traces, not windows")
    windows = list(scored.values())  # the densest first
    print(f"policy {policy.identity}; scored by {settings.train.reward}")
    score, scores = bank_scorer(ctx, policy), {}
    for version in (args.base, args.new):
        start = time.perf_counter()
        bank = SkillBank.load(args.train_dir / "evolution" / "versions" / f"v{version}" / "bank.yaml")
        scores[version] = score(bank, args.train_dir / "rejudge" / f"v{version}")
        print(f"v{version} scored in {time.perf_counter() - start:.0f} s")
    base, new = scores[args.base], scores[args.new]
    report("all", windows, base, new)
    report("densest", windows[: args.subset], base, new)
    report("random", random.Random(settings.seed).sample(windows, min(args.subset, len(windows))), base, new)


if __name__ == "__main__":
    main()
