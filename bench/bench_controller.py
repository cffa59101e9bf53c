"""Benchmark (issue: training): controller forward+backward throughput and peak memory for banks of 4, 30
and 200 skills (K=3, batch 32).

Run: .venv/bin/python bench/bench_controller.py
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli.controller import ControllerConfig, SkillController


def main() -> None:
    torch.manual_seed(0)
    controller = SkillController(ControllerConfig())
    optimizer = torch.optim.Adam(controller.parameters(), lr=1e-4)
    for skills in (4, 30, 200):
        states, bank = torch.randn(32, 768), torch.randn(skills, 384)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2.0:
            _, log_prob, entropy, value = controller.get_action_and_value(states, bank, 3)
            loss = -(log_prob.mean() + 0.01 * entropy.mean()) + value.pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        rate = steps * 32 / (time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{skills:>3} skills: {rate:,.0f} states/s forward+backward (batch 32, K=3); peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
