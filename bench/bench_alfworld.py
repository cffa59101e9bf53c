"""Benchmark (issue: ALFWorld): game generation, the planner expert, and environment throughput with N workers.

Prints games generated/s, expert games/min, and env steps/s + games/min for a random admissible policy with
1 and 2 worker processes; then the expert's plan lengths next to the real ALFWorld demonstrations in
../shared/data/alfworld/alfworld_3prompts.json (ReAct's `act_*` prompts, which search instead of knowing).

Run: .venv/bin/python bench/bench_alfworld.py   (needs the alfworld extra)
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from memskill_cli.embodied import games
from memskill_cli.embodied.actor import expert_policy
from memskill_cli.embodied.textenv import GamePool, GameTask, Observation

REFERENCE = Path(__file__).resolve().parents[2] / "shared/data/alfworld/alfworld_3prompts.json"
PREFIX = {"put": "pick_and_place_simple", "examine": "look_at_obj_in_light", "clean": "pick_clean_then_place_in_recep",
          "heat": "pick_heat_then_place_in_recep", "cool": "pick_cool_then_place_in_recep",
          "puttwo": "pick_two_obj_and_place"}
STEPS = 20


def random_policy(seed: int):
    rng = random.Random(seed)

    def policy(observations: Sequence[Observation]) -> list[str]:
        return [rng.choice(obs.admissible) for obs in observations]

    return policy


def main() -> None:
    start = time.perf_counter()
    specs = [s for split in games.SPLITS for s in games.generate_split(split, 2, seed=1)]
    generate_s = time.perf_counter() - start
    print(f"generated {len(specs)} games (3 splits x 6 task types x 2) in {generate_s:.2f}s")
    with tempfile.TemporaryDirectory() as tmp:
        tasks = [GameTask(s.game_id, str(games.write_game(s, Path(tmp)))) for s in specs]
        plans: dict[str, list[int]] = {}
        for workers in (1, 2):
            start = time.perf_counter()
            with GamePool(workers, expert=True) as pool:
                episodes = pool.play(tasks, expert_policy)
            seconds = time.perf_counter() - start
            won = sum(e.won for e in episodes)
            print(f"expert, {workers} worker(s): {won}/{len(tasks)} won, {len(tasks) / seconds * 60:.1f} games/min "
                  "(load + plan + play)")
            for spec, episode in zip(specs, episodes, strict=True):
                plans.setdefault(spec.task_type, []).append(episode.steps)
        for workers in (1, 2):
            start = time.perf_counter()
            with GamePool(workers) as pool:
                episodes = pool.play(tasks, random_policy(0), max_steps=STEPS)
            seconds = time.perf_counter() - start
            steps = sum(len(e.actions) for e in episodes)
            print(f"random policy, {workers} worker(s), {STEPS} steps/game: {steps / seconds:.0f} env steps/s, "
                  f"{len(tasks) / seconds * 60:.1f} games/min, {sum(e.won for e in episodes)} won by chance")
    if REFERENCE.exists():
        reference = json.loads(REFERENCE.read_text())
        print("plan length per task type: our planner expert (omniscient) vs ALFWorld act_* demonstrations")
        for short, task_type in PREFIX.items():
            demo = [sum(1 for line in text.splitlines() if line.startswith("> ") and not line.startswith("> think"))
                    for key, text in reference.items() if key.rsplit("_", 1)[0] == f"act_{short}"]
            print(f"  {task_type:32s} expert {statistics.fmean(plans[task_type]):4.1f}   demos "
                  f"{statistics.fmean(demo):4.1f}")


if __name__ == "__main__":
    main()
