"""memskill: learn and evolve memory skills for LLM agents."""

__version__ = "0.1.0"
