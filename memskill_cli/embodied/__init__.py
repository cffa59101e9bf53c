"""Embodied memory: ALFWorld games, the planner expert, an LLM actor and parallel rollouts."""

from __future__ import annotations

from memskill_cli.errors import MissingExtraError

INSTALL_HINT = "pip install -e '.[alfworld]'  (or: pip install 'memskill[alfworld]')"


def requirement() -> None:
    """Fail with the install command when the `alfworld` extra is missing (or will not import)."""
    try:
        import alfworld  # noqa: F401
        import textworld  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(f"ALFWorld support needs the `alfworld` extra ({exc}); install it with: "
                                f"{INSTALL_HINT}") from None
