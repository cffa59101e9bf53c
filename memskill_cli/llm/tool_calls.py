"""OpenAI tool calling on a backend that only does JSON-schema output (llama.cpp's grammar): the tools become one
schema the reply must follow, and the reply becomes the `tool_calls` an OpenAI client expects.

Why: libraries built on tool calling (LangMem through trustcall, LangChain agents) then run on the embedded model
behind `memskill serve`, with the grammar guaranteeing that every call names a real tool and fits its parameters.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import jsonschema

from memskill_cli.llm.base import parse_json

#: At most this many calls in one reply: a grammar with no bound lets a small model repeat a call until the cap.
MAX_PARALLEL_CALLS = 12


class ToolRequestError(ValueError):
    """The request's `tools` or `tool_choice` cannot be honoured (the server answers 400 with this message)."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolCalling:
    """The tools of one request and what it asks of them: `choice` is auto, required, or one tool's name."""

    tools: tuple[Tool, ...]
    choice: str
    parallel: bool = True

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ToolCalling | None:
        """None when the request has no tools or forbids calling them (`tool_choice: none`)."""
        raw, choice = body.get("tools"), body.get("tool_choice", "auto")
        if not raw:
            return None
        if not isinstance(raw, list):
            raise ToolRequestError("`tools` must be a list")
        tools = []
        for number, tool in enumerate(raw, start=1):
            function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise ToolRequestError(f"tool {number} must be {{type: function, function: {{name, parameters}}}}")
            parameters = function.get("parameters") or {"type": "object", "properties": {}}
            if not isinstance(parameters, dict):
                raise ToolRequestError(f"tool {function['name']!r}: `parameters` must be a JSON schema object")
            tools.append(Tool(function["name"], function.get("description") or "", parameters))
        if isinstance(choice, dict):
            choice = (choice.get("function") or {}).get("name")
        if choice == "none":
            return None
        names = [t.name for t in tools]
        if choice not in ("auto", "required", *names):
            raise ToolRequestError(f"tool_choice {choice!r} is none of auto, none, required, {', '.join(names)}")
        return cls(tuple(tools), choice, bool(body.get("parallel_tool_calls", True)))

    def schema(self) -> dict[str, Any]:
        """The reply's shape: {"tool_calls": [{"name", "arguments"}...]}, or {"content"} where calling is optional.
        Each tool's own `$defs` move to the root under a per-tool prefix, so its `$ref`s still resolve."""
        defs: dict[str, Any] = {}
        calls = []
        for index, tool in enumerate(self.tools):
            if self.choice in ("auto", "required") or tool.name == self.choice:
                parameters = _hoist_defs(tool.parameters, f"t{index}_", defs)
                calls.append({"type": "object", "properties": {"name": {"const": tool.name}, "arguments": parameters},
                              "required": ["name", "arguments"], "additionalProperties": False})
        array = {"type": "array", "items": calls[0] if len(calls) == 1 else {"anyOf": calls}, "minItems": 1,
                 "maxItems": MAX_PARALLEL_CALLS if self.parallel else 1}
        schema: dict[str, Any] = {"type": "object", "properties": {"tool_calls": array}, "required": ["tool_calls"],
                                  "additionalProperties": False}
        if self.choice == "auto":
            answer = {"type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"],
                      "additionalProperties": False}
            schema = {"anyOf": [schema, answer]}
        return {**schema, "$defs": defs} if defs else schema

    def instruction(self) -> str:
        """What the model is told of its tools (added to the system message)."""
        lines = ["You can call these tools:"]
        for tool in self.tools:
            lines.append(f"- {tool.name}: {tool.description.strip()}\n  parameters: "
                         f"{json.dumps(tool.parameters, separators=(',', ':'))}")
        how = ('Reply with JSON: {"tool_calls": [{"name": <tool name>, "arguments": {...}}]}'
               + (", one entry per call." if self.parallel else ", with exactly one call."))
        if self.choice == "auto":
            how += ' If no tool is needed, reply {"content": <your answer>} instead.'
        elif self.choice != "required":
            how += f" Call {self.choice}."
        return "\n".join([*lines, how])

    def reply(self, text: str, truncated: bool = False) -> tuple[str | None, list[dict[str, Any]]]:
        """The message content and the OpenAI `tool_calls` in a reply. A call that does not match its tool's
        parameters is left out, and so is the last one of a reply cut off by the token limit (it was being
        written when the limit came: its repaired JSON may validate, but it is half of what the model meant)."""
        value = parse_json(text)
        if isinstance(value, dict) and isinstance(value.get("content"), str) and "tool_calls" not in value:
            return value["content"], []   # as OpenAI does: cut-off text, with finish_reason "length"
        parameters = {t.name: t.parameters for t in self.tools}
        written = (value.get("tool_calls") or []) if isinstance(value, dict) else []
        calls = []
        for call in written[:-1] if truncated else written:
            if not isinstance(call, dict) or call.get("name") not in parameters:
                continue
            arguments = call.get("arguments")
            try:
                jsonschema.validate(arguments, parameters[call["name"]])
            except (jsonschema.ValidationError, jsonschema.SchemaError):
                continue
            calls.append({"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                          "function": {"name": call["name"], "arguments": json.dumps(arguments)}})
        return None, calls


def _hoist_defs(schema: dict[str, Any], prefix: str, defs: dict[str, Any]) -> dict[str, Any]:
    local = {**schema.get("definitions", {}), **schema.get("$defs", {})}
    renamed = {f"#/$defs/{name}": f"#/$defs/{prefix}{name}" for name in local}
    renamed |= {f"#/definitions/{name}": f"#/$defs/{prefix}{name}" for name in local}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (renamed.get(v, v) if k == "$ref" else rewrite(v)) for k, v in node.items()
                    if k not in ("$defs", "definitions")}
        if isinstance(node, list):
            return [rewrite(v) for v in node]
        return node

    defs.update({f"{prefix}{name}": rewrite(body) for name, body in local.items()})
    return rewrite(schema)


def render_message(message: dict[str, Any]) -> dict[str, str] | None:
    """A tool-calling turn as plain chat for a model that knows no tool roles: an assistant's calls as the JSON it
    would have written, a tool's result as a user message naming the call. None for any other message."""
    if message.get("role") == "assistant" and message.get("tool_calls"):
        calls = []
        for call in message["tool_calls"]:
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
            except json.JSONDecodeError:
                arguments = function.get("arguments")
            calls.append({"id": call.get("id"), "name": function.get("name"), "arguments": arguments})
        return {"role": "assistant", "content": json.dumps({"tool_calls": calls})}
    if message.get("role") == "tool":
        return {"role": "user",
                "content": f"Result of tool call {message.get('tool_call_id')}: {text_of(message.get('content'))}"}
    return None


def text_of(content: Any) -> Any:
    """A message's text: OpenAI content parts joined (their text ones), anything else as it came."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content
