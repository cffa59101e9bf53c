"""A persistent SQLite response cache, so that re-running a stage costs no LLM time."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from memskill_cli.errors import DataError
from memskill_cli.fileio import stable_hash
from memskill_cli.llm.base import ChatRequest, ChatResponse, Usage


def cache_key(identity: str, request: ChatRequest) -> str:
    return stable_hash({"identity": identity, **request.cache_payload()}, length=64)


class ResponseCache:
    """Keyed by backend + model identity + messages + generation params; safe across threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            with self._lock, self._db:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                    "prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT, "
                    "cached_prompt_tokens INTEGER NOT NULL DEFAULT 0)"
                )
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(responses)")}
                for column, kind in (("finish_reason", "TEXT"), ("cached_prompt_tokens", "INTEGER NOT NULL DEFAULT 0")):
                    if column not in columns:  # a cache written before this was kept
                        self._db.execute(f"ALTER TABLE responses ADD COLUMN {column} {kind}")
                        columns.add(column)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"not a usable LLM response cache ({exc}); delete it (it only saves time) or set "
                            "llm.cache_path elsewhere", file=str(self.path)) from None
        if not {"key", "text", "prompt_tokens", "completion_tokens"} <= columns:
            raise DataError(f"not a memskill LLM response cache (its responses table has {sorted(columns)}); delete "
                            "it or set llm.cache_path elsewhere", file=str(self.path))

    def get(self, key: str) -> ChatResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, finish_reason, cached_prompt_tokens FROM responses "
                "WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        # the usage of the call that computed it (a replay's records say what building them cost)
        return ChatResponse(text=row[0], usage=Usage(row[1], row[2], row[4]), cached=True, finish_reason=row[3])

    def put(self, key: str, response: ChatResponse) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, text, prompt_tokens, completion_tokens, finish_reason, "
                "cached_prompt_tokens) VALUES (?, ?, ?, ?, ?, ?)",
                (key, response.text, response.usage.prompt_tokens, response.usage.completion_tokens,
                 response.finish_reason, response.usage.cached_prompt_tokens),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return json.dumps({"cache": str(self.path)})
