"""ALFWorld -> the prepared format: expert trajectories become traces, games to play become queries.

One trace per task type holds the planner expert's trajectories on batch A of the training games (one
session per trajectory). Every other game is a query whose `question` is its objective and whose `game`
is the file to play: batch B of the training games (split `train`), games in training floor plans
(`seen`, split `validation`) and in held-out floor plans (`unseen`, split `test`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from memskill_cli.config import AlfworldSettings, GamesPerTask
from memskill_cli.data.schema import Query, Session, Trace, Turn
from memskill_cli.embodied import games
from memskill_cli.embodied.actor import expert_policy
from memskill_cli.embodied.textenv import Episode, GamePool, GameTask
from memskill_cli.errors import DataError

QUERY_SPLIT = {"train": "train", "seen": "validation", "unseen": "test"}
OFFICIAL_SPLITS = {"train": "train", "valid_seen": "seen", "valid_unseen": "unseen"}
SPEAKERS = ["task", "observation", "action"]


@dataclass(frozen=True)
class GameEntry:
    game_id: str
    path: Path          # where the game file is now
    stored: str         # what the query records: relative to the prepared dir, or an absolute path
    split: str          # train | seen | unseen
    task_type: str
    role: str           # memory | train | eval


def trace_id(task_type: str) -> str:
    return f"alfworld-{task_type}"


def _role(split: str, n: int, counts: GamesPerTask) -> str:
    """The n-th game of a task type in a split: batch A (memory) or B (train) of train, else eval."""
    if split != "train":
        return "eval"
    return "memory" if n <= counts.memory else "train"


def generated_games(settings: AlfworldSettings, seed: int, workdir: Path) -> list[GameEntry]:
    """Write the generated games under `workdir/games/<split>/<game_id>/`."""
    counts = settings.games_per_task
    entries = []
    for split, per_task in (("train", counts.memory + counts.train), ("seen", counts.seen),
                            ("unseen", counts.unseen)):
        if per_task == 0:
            continue
        chosen: dict[str, int] = {}
        for spec in games.generate_split(split, per_task, seed):
            n = chosen[spec.task_type] = chosen.get(spec.task_type, 0) + 1
            path = games.write_game(spec, workdir / "games")
            entries.append(GameEntry(spec.game_id, path, path.relative_to(workdir).as_posix(), split,
                                     spec.task_type, _role(split, n, counts)))
    return entries


def official_games(root: Path, settings: AlfworldSettings) -> list[GameEntry]:
    """Official ALFWorld game files (`json_2.1.1/{train,valid_seen,valid_unseen}/<task>-*/trial_*/game.tw-pddl`),
    used where they lie; the per-task counts cap how many are taken, in sorted order."""
    counts = settings.games_per_task
    entries = []
    for folder, split in OFFICIAL_SPLITS.items():
        taken: dict[str, int] = {}
        limit = counts.memory + counts.train if split == "train" else getattr(counts, split)
        for path in sorted((root / folder).glob(f"*/*/{games.GAME_FILE}")):
            task_type = games.task_type_of(path)
            n = taken[task_type] = taken.get(task_type, 0) + 1
            if n > limit:
                continue
            game_id = f"{split}-{path.parent.parent.name}-{path.parent.name}"
            entries.append(GameEntry(game_id, path, str(path.resolve()), split, task_type, _role(split, n, counts)))
    if not entries:
        raise DataError("no ALFWorld game files found (expected train/, valid_seen/, valid_unseen/ with "
                        f"<task>-*/trial_*/{games.GAME_FILE})", file=str(root))
    return entries


def run_expert(entries: list[GameEntry], workers: int, max_steps: int) -> list[Episode]:
    with GamePool(workers, expert=True) as pool:
        return pool.play([GameTask(e.game_id, str(e.path)) for e in entries], expert_policy, max_steps)


def trajectory_session(episode: Episode) -> Session:
    turns = [Turn(turn_id="t0", speaker="task", text=episode.objective),
             Turn(turn_id="t1", speaker="observation", text=episode.first_observation)]
    for command, feedback in episode.transcript:
        n = len(turns)
        turns += [Turn(turn_id=f"t{n}", speaker="action", text=command),
                  Turn(turn_id=f"t{n + 1}", speaker="observation", text=feedback)]
    return Session(session_id=episode.game_id, turns=turns)


def to_prepared(entries: list[GameEntry], episodes: list[Episode]) -> tuple[list[Trace], list[Query], dict]:
    """Traces of the expert's wins on batch A, queries for every other solvable game."""
    sessions: dict[str, list[Session]] = {}
    queries, unsolved = [], []
    for entry, episode in zip(entries, episodes, strict=True):
        if not episode.won:
            unsolved.append(entry.game_id)
            continue
        if entry.role == "memory":
            sessions.setdefault(entry.task_type, []).append(trajectory_session(episode))
            continue
        queries.append(Query(query_id=entry.game_id, trace_id=trace_id(entry.task_type), question=episode.objective,
                             answers=[" > ".join(episode.actions)], category=entry.task_type,
                             split=QUERY_SPLIT[entry.split], game=entry.stored))
    traces = [Trace(trace_id=trace_id(t), split="train", speakers=SPEAKERS, sessions=s)
              for t, s in sorted(sessions.items())]
    missing = sorted({q.category for q in queries} - set(sessions))
    if missing:
        raise DataError(f"no expert trajectory to build memory from for task types {missing}")
    return traces, queries, {"games": len(entries), "unsolved_by_expert": unsolved,
                             "expert_steps_mean": round(sum(e.steps for e in episodes if e.won) /
                                                        max(1, sum(e.won for e in episodes)), 2)}


def load(source: Path | None, settings: AlfworldSettings, seed: int,
         workdir: Path) -> tuple[list[Trace], list[Query], dict]:
    """Generate (or find) the games, run the expert on all of them, and build traces and queries."""
    entries = official_games(source, settings) if source else generated_games(settings, seed, workdir)
    episodes = run_expert(entries, settings.workers, settings.max_steps)
    traces, queries, info = to_prepared(entries, episodes)
    info["source"] = str(source) if source else "generated"
    info["games_per_task"] = json.loads(settings.games_per_task.model_dump_json())
    return traces, queries, info
