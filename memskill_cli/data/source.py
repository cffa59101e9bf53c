"""Small helpers for reading a source file and reporting exactly where it is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from memskill_cli.errors import DataError
from memskill_cli.fileio import reading


def load_json(path: Path) -> Any:
    with reading(path, "source file"):
        return json.loads(path.read_text(encoding="utf-8"))


class Reader:
    """Field access on one source record that raises DataError naming file, record and field."""

    def __init__(self, path: Path, record: str, data: Any) -> None:
        self.path, self.record, self.data = path, record, data
        if not isinstance(data, dict):
            self.fail("", f"expected an object, got {type(data).__name__}")

    def fail(self, field: str, message: str) -> DataError:
        raise DataError(message, file=str(self.path), record=self.record, field=field or None)

    def get(self, field: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if field not in self.data:
            if default is not ...:
                return default
            self.fail(field, "missing field")
        value = self.data[field]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
            names = "/".join(t.__name__ for t in _as_tuple(kind))
            self.fail(field, f"expected {names}, got {type(value).__name__}")
        return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def answer_text(value: Any) -> str:
    """Gold answers are strings; a few source answers are integers."""
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
