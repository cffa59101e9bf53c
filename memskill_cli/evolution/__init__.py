"""Skill-bank evolution: hard cases -> designer edits -> validated bank versions, kept only if they help."""
