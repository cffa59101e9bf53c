"""Atomic file writes and JSONL helpers: a crash never leaves a half-written artifact."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from memskill_cli.errors import DataError


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import (setting the umask to read it is not thread-safe)


def _usual_mode(path: Path, directory: bool) -> None:
    """Temporary files are created private (0600/0700); what they become gets the usual mode under the umask."""
    path.chmod((0o777 if directory else 0o666) & ~_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _usual_mode(tmp_path, directory=False)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def recover_dir(path: str | Path) -> None:
    """Undo what a kill in the middle of `atomic_dir` left: the previous complete version set aside (between
    the two renames) comes back, and abandoned temporary directories are removed."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if old.exists():
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, path)
    if path.parent.exists():
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` as a whole once the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        _usual_mode(tmp, directory=True)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@contextlib.contextmanager
def reading(path: str | Path, what: str = "", record: str | None = None) -> Iterator[None]:
    """Turn what goes wrong reading a file (missing, a folder, not UTF-8, not JSON, nested too deep, corrupt)
    into one DataError that names the file (and record)."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{what or 'file'} not found", file=str(path), record=record) from None
    except IsADirectoryError:
        raise DataError(f"expected {what or 'a file'}, found a directory", file=str(path), record=record) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", file=str(path), record=record) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", file=str(path),
                        record=record) from None
    except RecursionError:
        raise DataError("JSON nested too deeply to read", file=str(path), record=record) from None
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"unreadable {what or 'file'}: {exc}", file=str(path), record=record) from None


def read_json(path: str | Path) -> Any:
    with reading(path):
        return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_csv(path: str | Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """A CSV table (for DVC plots); None is written as an empty cell."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(header))
        writer.writerows([["" if v is None else v for v in row] for row in rows])


def read_jsonl(path: str | Path) -> list[Any]:
    rows = []
    with reading(path):
        text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            with reading(path, record=f"line {number}"):
                rows.append(json.loads(line))
    return rows


def write_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, array, allow_pickle=False)


def read_npy(path: str | Path) -> np.ndarray:
    with reading(path, "array file"):
        return np.load(path, allow_pickle=False)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def stable_hash(data: Any, length: int = 16) -> str:
    """A short content hash of JSON-serialisable data, independent of dict order."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
