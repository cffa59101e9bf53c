"""Diagnostic (issue: skill selection that matters): what a controller checkpoint picks, without an LLM call.

For every span of a split's traces it prints the policy's mean first-pick probability of each skill and how often
each skill is in the greedy top-K, the set the executor would get at evaluation (state: the span with an empty
memory, as each window starts). A policy whose probabilities are flat is untrained, and its greedy top-K is an
accident of initialisation: with K=3 of the four seeds it can leave out `insert` on every span, and a memory built
with it stores nothing.

Run: .venv/bin/python bench/policy_picks.py CHECKPOINT [--dataset locomo] [--split validation] [--top-k 3]
     [--bank BANK.yaml (default: the bank the checkpoint trained with)]
Reads data/prepared/<dataset> and the current span cache under artifacts/cache (`memskill prepare`, `build-cache`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli.checkpoint import load_controller
from memskill_cli.controller import make_state
from memskill_cli.data.cache import SpanCache, current_cache
from memskill_cli.data.schema import load_prepared
from memskill_cli.embeddings import Encoder
from memskill_cli.skills import SkillBank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--dataset", default="locomo")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--bank", type=Path)
    args = parser.parse_args()
    controller, identity, trained_on = load_controller(args.checkpoint)
    bank = SkillBank.load(args.bank) if args.bank else trained_on or SkillBank.seed()
    traces, _ = load_prepared(Path("data/prepared") / args.dataset)
    cache = SpanCache.load(current_cache(Path("artifacts/cache"), args.dataset))
    vectors = [vector for trace in traces if trace.split == args.split for _, vector in cache.for_trace(trace.trace_id)]
    empty = np.zeros((0, cache.span_vectors.shape[1]), dtype=np.float32)
    states = torch.tensor(np.stack([make_state(v, empty, controller.config.fusion) for v in vectors]))
    skills = torch.tensor(Encoder().encode([s.description for s in bank.skills]))
    with torch.no_grad():
        logits = controller.logits(states, skills)
    first_pick = torch.softmax(logits, -1).mean(0).numpy()
    greedy = torch.topk(logits, min(args.top_k, len(bank.skills)), -1).indices
    print(f"controller {identity}, {len(vectors)} {args.split} spans, greedy top-{args.top_k} of {len(bank.skills)}")
    for i, skill in enumerate(bank.skills):
        share = float((greedy == i).any(-1).float().mean())
        print(f"  {skill.name:<24} first pick {first_pick[i]:.3f}   in the greedy top-{args.top_k} of {share:.0%} "
              f"of spans")


if __name__ == "__main__":
    main()
