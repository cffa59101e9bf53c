"""ALFWorld games in TextWorld, played in parallel worker processes.

A game file is loaded with ALFWorld's own wrappers (names demangled to `apple 1`, the task text from the
grammar). Each worker process holds one game at a time; the main process keeps up to N games going and
asks the policy for all of their next commands at once, so LLM calls and environment steps overlap.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from memskill_cli.embodied import requirement
from memskill_cli.errors import DataError

MAX_STEPS = 50


@dataclass
class Observation:
    """What the policy sees of one game before its next command."""

    game_id: str
    objective: str
    room: str                  # the first observation: what the room holds
    text: str                  # the latest feedback
    admissible: list[str]
    step: int
    history: list[tuple[str, str]] = field(default_factory=list)   # (command, feedback) so far
    expert_plan: list[str] = field(default_factory=list)           # the planner's plan from the start (expert only)
    context: list[str] = field(default_factory=list)               # memories retrieved for this game


@dataclass
class Episode:
    game_id: str
    objective: str
    won: bool
    steps: int                 # a failure counts max_steps, as in the paper
    actions: list[str]
    first_observation: str
    transcript: list[tuple[str, str]]
    inadmissible: int = 0


@dataclass(frozen=True)
class GameTask:
    game_id: str
    path: str
    context: tuple[str, ...] = ()


Policy = Callable[[Sequence[Observation]], list[str]]


def open_game(path: str | Path, expert: bool = False) -> Any:
    """A TextWorld environment for one ALFWorld game file, with ALFWorld's demangler and infos.

    The expert asks for the walkthrough: Fast Downward plans once at reset. (`policy_commands` would
    replan after every step, ten times slower, for the same plan in a deterministic game.)

    The PDDL backend is named here rather than left to `textworld.start`, which guesses it from the path and
    takes any ".z1" to ".z8" in it (a folder `.alfworld.z7snjobd`, say) for a Z-machine game."""
    requirement()
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.pddl import PddlEnv

    if not Path(path).is_file():
        raise DataError(f"{path}: ALFWorld game file not found")
    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["walkthrough"] if expert else [])
    env = PddlEnv(infos)
    for wrapper in (AlfredDemangler(), AlfredInfos):
        env = wrapper(env)
    env.load(str(path))
    return env


def split_intro(feedback: str) -> tuple[str, str]:
    """(room description, objective) from the first feedback of an ALFWorld game."""
    text = feedback.replace("-= Welcome to TextWorld, ALFRED! =-", "").strip()
    room, _, task = text.partition("Your task is to:")
    return room.strip(), task.strip()


def _state(state: Any, expert: bool) -> dict[str, Any]:
    return {"feedback": state.feedback.strip(), "won": bool(state.won),
            "admissible": [c for c in state.admissible_commands if c not in ("help",)],
            "plan": list(state.get("extra.walkthrough") or []) if expert else []}


def _worker(conn: Connection, expert: bool) -> None:
    env = None
    while True:
        op, arg = conn.recv()
        try:
            if op == "close":
                break
            if op == "reset":
                if env is not None:
                    env.close()
                env = open_game(arg, expert)
                conn.send(("ok", _state(env.reset(), expert)))
            elif op == "step":
                state, _, _ = env.step(arg)
                conn.send(("ok", _state(state, expert)))
        except Exception as exc:  # report to the parent instead of dying silently
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    if env is not None:
        env.close()


class GamePool:
    """N worker processes (spawned, so no LLM threads or torch state are forked)."""

    def __init__(self, workers: int, expert: bool = False) -> None:
        requirement()
        context = mp.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs = []
        for _ in range(max(1, workers)):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(child, expert), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    @property
    def workers(self) -> int:
        return len(self._conns)

    def _send(self, slot: int, op: str, arg: Any) -> None:
        self._conns[slot].send((op, arg))

    def _recv(self, slot: int, what: str) -> dict[str, Any]:
        status, value = self._conns[slot].recv()
        if status == "error":
            raise RuntimeError(f"ALFWorld worker failed on {what}: {value}")
        return value

    def play(self, tasks: Sequence[GameTask], policy: Policy, max_steps: int = MAX_STEPS,
             on_done: Callable[[Episode], None] | None = None) -> list[Episode]:
        """Play every game to a win or `max_steps` commands; the policy decides for all running games at once."""
        pending = list(enumerate(tasks))
        running: dict[int, tuple[int, GameTask, Observation, Episode]] = {}   # slot -> game
        results: dict[int, Episode] = {}

        def start(slot: int) -> None:
            index, task = pending.pop(0)
            self._send(slot, "reset", task.path)
            state = self._recv(slot, f"reset {task.path}")
            room, objective = split_intro(state["feedback"])
            episode = Episode(task.game_id, objective, False, 0, [], room, [])
            obs = Observation(task.game_id, objective, room, room, state["admissible"], 0, [], state["plan"],
                              list(task.context))
            running[slot] = (index, task, obs, episode)

        for slot in range(self.workers):
            if pending:
                start(slot)
        while running:
            slots = sorted(running)
            commands = policy([running[s][2] for s in slots])
            for slot, command in zip(slots, commands, strict=True):
                self._send(slot, "step", command)
            for slot, command in zip(slots, commands, strict=True):
                index, task, obs, episode = running[slot]
                state = self._recv(slot, f"step {command!r} in {task.path}")
                episode.actions.append(command)
                episode.transcript.append((command, state["feedback"]))
                episode.inadmissible += command not in obs.admissible
                step = obs.step + 1
                if state["won"] or step >= max_steps:
                    episode.won = bool(state["won"])
                    episode.steps = step if episode.won else max_steps
                    results[index] = episode
                    del running[slot]
                    if on_done:
                        on_done(episode)
                    if pending:
                        start(slot)
                    continue
                running[slot] = (index, task, Observation(
                    task.game_id, obs.objective, obs.room, state["feedback"], state["admissible"], step,
                    [*obs.history, (command, state["feedback"])], state["plan"], obs.context), episode)
        return [results[i] for i in range(len(tasks))]

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("close", None))
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()

    def __enter__(self) -> GamePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
