"""Benchmark data: one normalised format (traces, queries), loaders for each dataset, and spans."""
