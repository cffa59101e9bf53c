"""Data files shipped with memskill (the seed skill bank)."""
