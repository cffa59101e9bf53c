"""LLM clients: one interface (`LLMClient`), several backends, a response cache and usage accounting."""

from memskill_cli.llm.base import ChatRequest, ChatResponse, LLMClient, Usage, parse_json
from memskill_cli.llm.roles import ROLES, RoleClient, build_role_clients, create_backend
from memskill_cli.llm.usage import UsageLedger

__all__ = [
    "ROLES",
    "ChatRequest",
    "ChatResponse",
    "LLMClient",
    "RoleClient",
    "Usage",
    "UsageLedger",
    "build_role_clients",
    "create_backend",
    "parse_json",
]
