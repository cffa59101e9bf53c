"""Typed errors, so a caller can tell bad input from a failing LLM from a broken model file."""

from __future__ import annotations


class MemskillError(Exception):
    """Base class of every error memskill raises on purpose."""

    exit_code = 1


class DataError(MemskillError):
    """Bad input data: names the file, the record and the field at fault."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, record: str | None = None,
                 field: str | None = None) -> None:
        self.file, self.record, self.field = file, record, field
        where = ", ".join(
            f"{name} {value}" for name, value in (("file", file), ("record", record), ("field", field)) if value
        )
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(MemskillError):
    """A setting is missing, contradictory or names something that does not exist."""

    exit_code = 2


class NotFoundError(MemskillError):
    """A user, memory or run that does not exist was asked for."""

    exit_code = 2


class ModelError(MemskillError):
    """A model file is missing, incomplete or not the one we pinned."""


class LLMError(MemskillError):
    """An LLM backend failed to answer (after its retries)."""


class SchemaError(MemskillError):
    """An LLM answer could not be read as the JSON that was asked for."""


class MissingExtraError(MemskillError):
    """An optional dependency group (an extra) is needed and not installed: says how to install it."""

    exit_code = 2
