"""Playing a set of ALFWorld queries with their retrieved memories: the embodied counterpart of answering."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memskill_cli.config import AlfworldSettings
from memskill_cli.data.schema import Query
from memskill_cli.embodied import requirement
from memskill_cli.embodied.actor import LLMActor
from memskill_cli.embodied.textenv import Episode, GamePool, GameTask, Policy
from memskill_cli.errors import DataError
from memskill_cli.llm import LLMClient


def game_path(query: Query, prepared_dir: Path) -> Path:
    if not query.game:
        raise DataError("not an embodied query (no game file)", record=query.query_id, field="game")
    path = Path(query.game)
    path = path if path.is_absolute() else prepared_dir / path
    if not path.exists():
        raise DataError(f"game file not found: {path}", record=query.query_id, field="game")
    return path


def episode_row(query: Query, context: Sequence[str], episode: Episode) -> dict[str, Any]:
    """One played game in the shape of an answered question (score = success), plus its transcript."""
    return {"query_id": query.query_id, "trace_id": query.trace_id, "category": query.category,
            "question": query.question, "gold": query.answers, "prediction": " > ".join(episode.actions),
            "retrieved": list(context), "success": float(episode.won), "steps": episode.steps,
            "inadmissible": episode.inadmissible, "score": float(episode.won),
            "transcript": [list(t) for t in episode.transcript]}


class GamePlayer:
    """Plays queries' games in parallel environments with one policy (the LLM actor unless given)."""

    def __init__(self, settings: AlfworldSettings, prepared_dir: Path, client: LLMClient | None = None,
                 policy: Policy | None = None) -> None:
        requirement()
        if policy is None and client is None:
            raise ValueError("GamePlayer needs an LLM client or a policy")
        self.settings, self.prepared_dir = settings, prepared_dir
        self.policy: Policy = policy or LLMActor(client, settings.history_steps)  # type: ignore[arg-type]

    def __call__(self, queries: Sequence[Query], contexts: Sequence[Sequence[str]],
                 on_done: Callable[[Episode], None] | None = None) -> list[dict[str, Any]]:
        tasks = [GameTask(q.query_id, str(game_path(q, self.prepared_dir)), tuple(c))
                 for q, c in zip(queries, contexts, strict=True)]
        with GamePool(min(self.settings.workers, max(1, len(tasks)))) as pool:
            episodes = pool.play(tasks, self.policy, self.settings.max_steps, on_done)
        return [episode_row(q, c, e) for q, c, e in zip(queries, contexts, episodes, strict=True)]
