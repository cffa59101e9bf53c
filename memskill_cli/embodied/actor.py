"""Policies that play ALFWorld games: the planner expert, and the LLM actor that reads retrieved memories."""

from __future__ import annotations

from collections.abc import Sequence

from memskill_cli.embodied.textenv import Observation
from memskill_cli.errors import SchemaError
from memskill_cli.llm import ChatRequest, LLMClient
from memskill_cli.llm.base import parse_json

INSTRUCTIONS = (
    "You are an agent in a household, solving a task by typing commands. Useful memories from earlier tasks "
    "may tell you where objects usually are and which steps a task needs (find the object, take it, change "
    "its state with the right appliance if asked, go to the target, open it if it is closed, move the "
    "object there). Choose the single best next command from the admissible commands."
)


def expert_policy(observations: Sequence[Observation]) -> list[str]:
    """The PDDL planner's next command (needs a pool opened with `expert=True`)."""
    return [obs.expert_plan[obs.step] if obs.step < len(obs.expert_plan) else "look" for obs in observations]


def choices(obs: Observation) -> list[str]:
    """The commands offered to the actor: admissible ones that can change the game. Looking, the inventory,
    examining and repeating the last command only feed the loops small models fall into."""
    last = obs.history[-1][0] if obs.history else None
    useful = [c for c in obs.admissible if not c.startswith(("look", "inventory", "examine")) and c != last]
    return useful or list(obs.admissible)


def actor_request(obs: Observation, history_steps: int) -> ChatRequest:
    """Stable parts first (task, memories), then recent history and the choices: llama.cpp reuses the prefix."""
    memories = "\n".join(f"- {m}" for m in obs.context) if obs.context else "(none)"
    options = choices(obs)
    recent = obs.history[-history_steps:] if history_steps else []
    history = "\n".join(f"> {command}\n{feedback}" for command, feedback in recent) or "(no commands yet)"
    user = (f"Task: {obs.objective}\n\nMemories:\n{memories}\n\nRoom: {obs.room}\n\nRecent steps:\n{history}"
            "\n\nAdmissible commands:\n" + "\n".join(options) + "\n\nNext command:")
    schema = {"type": "object", "properties": {"command": {"type": "string", "enum": options}},
              "required": ["command"], "additionalProperties": False}
    return ChatRequest([{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": user}],
                       json_schema=schema, max_tokens=48)


class LLMActor:
    """Asks the LLM for every running game's next command at once (the client's pool batches them)."""

    def __init__(self, client: LLMClient, history_steps: int = 8) -> None:
        self.client, self.history_steps = client, history_steps

    def __call__(self, observations: Sequence[Observation]) -> list[str]:
        responses = self.client.map([actor_request(obs, self.history_steps) for obs in observations])
        return [self._command(response.text, obs) for obs, response in zip(observations, responses, strict=True)]

    @staticmethod
    def _command(text: str, obs: Observation) -> str:
        """The chosen command; an unreadable answer is played as typed (the game then says nothing happens)."""
        try:
            value = parse_json(text)
        except SchemaError:
            value = None
        command = str(value.get("command", "")).strip() if isinstance(value, dict) else ""
        return command or (text.strip().splitlines()[0] if text.strip() else "look")
